#!/usr/bin/python3
"""Runs bench_mamba (ssmkit) and mamba_torch.py (PyTorch) side by side with the
same thread count and writes bench/results/mamba_cpu.json: forward+backward
time of Mamba's selective scan (ssmkit's kernel vs PyTorch's sequential loop,
selective_scan_ref, and vs a PyTorch parallel prefix scan) and of the Mamba
block (vs the same block in PyTorch with the loop scan), with the ratios and
the machine they ran on.

Usage: bench/run_mamba.py [--build build] [--threads 2] [--repeats 3]
                          [--cases scan,block] [--B 8 --D 512 --N 16 --L 1024]
                          [--d_model 256 --batch 8 --seq 1024]
                          [--runs 10 --warmup 3] [--torch-runs 3 --torch-warmup 1]
                          [--pytorch-malloc cached|stock] [--out FILE]
Every call is a fresh process doing one case. Each repeat runs every case on
every side, the order of the sides reversed between repeats; the figure kept
per case and side is the median of the repeats' medians. The PyTorch loop
takes seconds per run, hence --torch-runs 3, --torch-warmup 1 by default for
every PyTorch case (the first run of a process is several times slower than
the next); ssmkit uses --runs / --warmup. See mamba_torch.py for what the
PyTorch side computes and for --pytorch-malloc.

bench_mamba's interface (ssmkit, bench/bench_mamba.cpp):
  bench_mamba --case scan|block [--B --D --N --L] [--d_model --batch --seq]
              --runs R --warmup W --threads T
printing one JSON object with "case", the sizes, "threads", "runs_ms" and
"median_ms". The scan: input-dependent B, C (one group), z, D, delta_bias,
softplus, gradients for every input; the block: d_state 16, d_conv 4,
expand 2, gradients for x and every parameter, as mamba_torch.py.
Needs Debian's python3-torch (scripts/install_deps.sh --bench).
"""
import argparse
import datetime
import json
import os
import statistics
import sys

import run_ops
from run_ops import ROOT, machine

CASES = ("scan", "block")
TORCH_SCRIPT = os.path.join(ROOT, "bench", "mamba_torch.py")
BLOCK_D_STATE = 16  # both sides' block default; bench_mamba takes no --N for the block


def run_json(cmd, env, expect, keys):
    """run_ops.run_json, plus: the block must run at the d_state the PyTorch side uses."""
    r = run_ops.run_json(cmd, env, expect, keys)
    if r.get("d_state", BLOCK_D_STATE) != BLOCK_D_STATE and r["case"] == "block":
        sys.exit(f"run_mamba.py: {' '.join(cmd)}\nran the block with d_state {r['d_state']}, "
                 f"the other side uses {BLOCK_D_STATE}")
    return r


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--build", default=os.path.join(ROOT, "build"))
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--cases", default=",".join(CASES))
    p.add_argument("--B", type=int, default=8)
    p.add_argument("--D", type=int, default=512)
    p.add_argument("--N", type=int, default=16)
    p.add_argument("--L", type=int, default=1024)
    p.add_argument("--d_model", type=int, default=256)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--seq", type=int, default=1024)
    p.add_argument("--runs", type=int, default=10, help="ssmkit runs per process")
    p.add_argument("--warmup", type=int, default=3, help="ssmkit warmup runs per process")
    p.add_argument("--torch-runs", type=int, default=3, help="PyTorch runs per process")
    p.add_argument("--torch-warmup", type=int, default=1, help="PyTorch warmup runs per process")
    p.add_argument("--pytorch-malloc", choices=("cached", "stock"), default="cached",
                   help="mamba_torch.py --malloc (see its docstring)")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--out", default=os.path.join(ROOT, "bench", "results", "mamba_cpu.json"))
    args = p.parse_args()
    cases = [c for c in args.cases.split(",") if c]
    unknown = [c for c in cases if c not in CASES]
    if unknown or not cases:
        p.error(f"--cases takes a comma-separated subset of {','.join(CASES)}, "
                f"got {args.cases!r}")
    counts = {k: getattr(args, k) for k in ("threads", "B", "D", "N", "L", "d_model", "batch",
                                            "seq", "runs", "torch_runs", "repeats")}
    bad = {k: v for k, v in counts.items() if v < 1}
    if bad or args.warmup < 0 or args.torch_warmup < 0:
        p.error(f"sizes, runs, threads and repeats must be positive and warmups >= 0, got "
                f"{bad or {'warmup': args.warmup, 'torch_warmup': args.torch_warmup}}")

    exe = os.path.join(args.build, "bin", "bench_mamba")
    if not os.path.isfile(exe) or not os.access(exe, os.X_OK):
        sys.exit(f"run_mamba.py: {exe} not found (or not executable); build it first "
                 f"(cmake --build {args.build} --target bench_mamba), or pass --build DIR")
    try:
        import torch
    except ImportError:
        sys.exit(f"run_mamba.py: {sys.executable} cannot import torch; install Debian's "
                 "python3-torch (scripts/install_deps.sh --bench) and run with /usr/bin/python3")
    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads),
               OPENBLAS_NUM_THREADS=str(args.threads), MKL_NUM_THREADS=str(args.threads))

    scan_sizes = {"B": args.B, "D": args.D, "N": args.N, "L": args.L}
    block_sizes = {"d_model": args.d_model, "batch": args.batch, "seq": args.seq}
    threads = ["--threads", str(args.threads)]
    ours_timing = ["--runs", str(args.runs), "--warmup", str(args.warmup)]
    torch_timing = ["--runs", str(args.torch_runs), "--warmup", str(args.torch_warmup),
                    "--malloc", args.pytorch_malloc]

    def flags(sizes):
        return [x for k, v in sizes.items() for x in (f"--{k}", str(v))]

    # (case, side label) -> (command, expected echo)
    runs = {}
    if "scan" in cases:
        runs[("scan", "ssmkit")] = ([exe, "--case", "scan"] + flags(scan_sizes) + threads
                                    + ours_timing, dict(case="scan", **scan_sizes))
        for c in ("scan_loop", "scan_parallel"):
            runs[("scan", c)] = ([sys.executable, TORCH_SCRIPT, "--case", c] + flags(scan_sizes)
                                 + threads + torch_timing, dict(case=c, **scan_sizes))
    if "block" in cases:
        runs[("block", "ssmkit")] = ([exe, "--case", "block"] + flags(block_sizes) + threads
                                     + ours_timing, dict(case="block", **block_sizes))
        runs[("block", "block")] = ([sys.executable, TORCH_SCRIPT, "--case", "block"]
                                    + flags(block_sizes) + threads + torch_timing,
                                    dict(case="block", **block_sizes))

    load_start = os.getloadavg()
    medians = {key: [] for key in runs}
    torch_info = {}
    for rep in range(args.repeats):
        order = list(runs) if rep % 2 == 0 else list(reversed(list(runs)))
        for key in order:
            cmd, expect = runs[key]
            r = run_json(cmd, env, dict(expect, threads=args.threads), ["runs_ms", "median_ms"])
            medians[key].append(r["median_ms"])
            if key[1] != "ssmkit":
                torch_info[key[1]] = {k: r[k] for k in ("malloc", "slicing") if k in r}
            print(f"  repeat {rep + 1}/{args.repeats} {key[0]:5s} {key[1]:13s} "
                  f"{r['median_ms']:10.2f} ms", flush=True)
    load_end = os.getloadavg()

    def med(key):
        return statistics.median(medians[key])

    rows = []
    comparisons = [("scan", "scan_loop", "selective scan: ssmkit vs the PyTorch loop "
                                         "(selective_scan_ref)"),
                   ("scan", "scan_parallel", "selective scan: ssmkit vs a PyTorch parallel "
                                             "prefix scan"),
                   ("block", "block", "Mamba block: ssmkit vs PyTorch (loop scan)")]
    for case, theirs, what in comparisons:
        if case not in cases:
            continue
        s, t = med((case, "ssmkit")), med((case, theirs))
        rows.append({"comparison": what, "ssmkit_case": case, "pytorch_case": theirs,
                     "ssmkit_ms": round(s, 3), "pytorch_ms": round(t, 3),
                     "ratio": round(s / t, 4), "speedup": round(t / s, 2),
                     "ssmkit_medians_ms": [round(v, 3) for v in medians[(case, "ssmkit")]],
                     "pytorch_medians_ms": [round(v, 3) for v in medians[(case, theirs)]],
                     **({"pytorch_" + k: v for k, v in torch_info.get(theirs, {}).items()})})
        print(f"{case:5s} ssmkit {s:10.2f} ms  {theirs:13s} {t:10.2f} ms  ratio {s / t:6.3f}  "
              f"(ssmkit {t / s:.1f}x faster)")

    result = {
        "benchmark": "Mamba selective scan and block, forward+backward, CPU, float32",
        "scan": "delta' = softplus(delta + delta_bias); h_t = exp(delta'_t A) h_{t-1} + "
                "delta'_t B_t u_t; y = (C_t h_t + D u) * silu(z); input-dependent B, C "
                "(B, N, L), one group; gradients of every input",
        "block": "in_proj -> (x, z); x = silu(causal depthwise conv1d k=4); x_proj -> "
                 "(dt, B, C); dt = dt_proj.weight dt; scan with delta_bias = dt_proj.bias, "
                 "softplus; out_proj; gradients of x and every parameter",
        "loss": "sum(y * g), g fixed random",
        "threads": args.threads, "repeats": args.repeats,
        "ssmkit_runs_per_repeat": args.runs, "ssmkit_warmup": args.warmup,
        "pytorch_runs_per_repeat": args.torch_runs, "pytorch_warmup": args.torch_warmup,
        "pytorch_note": "the PyTorch loop scan and block take seconds per run, so they run "
                        f"{args.torch_runs} times after {args.torch_warmup} warmup per process",
        "pytorch_malloc": args.pytorch_malloc,
        "pytorch_version": torch.__version__, "machine": machine(),
        "loadavg_1min": {"start": round(load_start[0], 2), "end": round(load_end[0], 2)},
        "date": datetime.date.today().isoformat(),
        "config": {"scan": scan_sizes,
                   "block": dict(block_sizes, d_state=BLOCK_D_STATE, d_conv=4, expand=2)},
        "results": rows,
    }
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump(result, f, indent=2)
        f.write("\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
