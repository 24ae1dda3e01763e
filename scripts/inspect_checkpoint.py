#!/usr/bin/env python3
"""Print the layout of an ssmkit checkpoint (see docs/checkpoint.md).

    python3 scripts/inspect_checkpoint.py runs/x/last.h5 [--config-lines 20]

Shows the root attributes, the first lines of the config, the loader and RNG
positions, and every tensor (name, shape, dtype) and optimizer counter in the
order the file lists them. Needs h5py (Debian: python3-h5py).
"""
import argparse
import sys

import h5py


def text(value):
    """An HDF5 string (variable length: str, fixed length: bytes) as str."""
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)


def names(group):
    """The keys of a group in written order (its `names` attribute)."""
    if "names" not in group.attrs:
        return sorted(group.keys())  # not written by ssmkit: fall back to name order
    return [text(n) for n in group.attrs["names"]]


def print_tensors(f, path):
    group = f[path]
    keys = names(group)
    print(f"{path}: {len(keys)} tensors")
    width = max((len(k) for k in keys), default=0)
    for key in keys:
        if key not in group:
            print(f"  {key:<{width}}  MISSING")
            continue
        ds = group[key]
        shape = "()" if ds.shape == () else str(tuple(ds.shape))
        print(f"  {key:<{width}}  {shape:<16} {ds.dtype}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("path", help="checkpoint file (.h5)")
    parser.add_argument("--config-lines", type=int, default=10,
                        help="lines of the config to print (default 10)")
    args = parser.parse_args()

    with h5py.File(args.path, "r") as f:
        attrs = f.attrs
        fmt = text(attrs.get("format", "<missing>"))
        print(f"file:        {args.path}")
        print(f"format:      {fmt} version {attrs.get('format_version', '<missing>')}")
        if fmt != "ssmkit-checkpoint":
            print("not an ssmkit checkpoint", file=sys.stderr)
            return 1
        print(f"step:        {attrs['step']}")
        print(f"epoch:       {attrs['epoch']}")
        print(f"best_metric: {attrs['best_metric']!r}")
        print(f"data:        epoch {f['data/epoch'][()]}, index {f['data/index'][()]}")
        rng = f["rng"]
        print(f"rng:         seed {rng['seed'][()]}, stream {rng['stream'][()]}, "
              f"offset {rng['offset'][()]}")
        config = text(attrs["config"]).splitlines()
        print(f"config:      {len(config)} lines")
        for line in config[:args.config_lines]:
            print(f"  | {line}")
        if len(config) > args.config_lines:
            print(f"  | ... ({len(config) - args.config_lines} more)")
        print_tensors(f, "/model")
        print_tensors(f, "/optimizer/tensors")
        counters = f["optimizer/counters"]
        keys = names(counters)
        print(f"/optimizer/counters: {len(keys)} counters")
        for key in keys:
            value = counters[key][()] if key in counters else "MISSING"
            print(f"  {key} = {value}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
