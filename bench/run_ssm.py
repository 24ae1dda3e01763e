#!/usr/bin/python3
"""Runs bench_ssm (ssmkit) and ssm_torch.py (PyTorch) side by side with the
same thread count on four S4-family layers (s4d, s4, rtf, lssl) and writes
bench/results/ssm_cpu.json: per layer the median forward+backward time of each
and the ratio ssmkit / PyTorch (< 1: ssmkit faster), then the peak memory of
one forward+backward of LSSL and S4 at H = 128, 256, 512 for both, with the
machine they ran on.

Usage: bench/run_ssm.py [--build build] [--threads 2] [--layers s4d,s4,rtf,lssl]
                        [--runs 10] [--warmup 3] [--repeats 3] [--skip-memory]
Every call is a fresh process doing one layer. Each repeat runs every layer on
both sides, the side that goes first alternating between repeats; the figure
kept per layer is the median of the repeats' medians. Memory runs each side
once per (layer, H) in a fresh process (--memory). The layer is the same on
both sides: kernel K (H, L) -> causal FFT conv + D u -> GELU -> Conv1d(H, 2H,
1) -> GLU; see ssm_torch.py for the four kernels and the memory measure.
Needs Debian's python3-torch (scripts/install_deps.sh --bench).
"""
import argparse
import datetime
import json
import os
import statistics
import sys

from run_ops import ROOT, machine, run_json

LAYERS = ("s4d", "s4", "rtf", "lssl")
MEMORY_LAYERS = ("lssl", "s4")
MEMORY_H = (128, 256, 512)
TORCH_SCRIPT = os.path.join(ROOT, "bench", "ssm_torch.py")


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--build", default=os.path.join(ROOT, "build"))
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--layers", default=",".join(LAYERS))
    p.add_argument("--H", type=int, default=128)
    p.add_argument("--N", type=int, default=64)
    p.add_argument("--L", type=int, default=1024)
    p.add_argument("--B", type=int, default=16)
    p.add_argument("--runs", type=int, default=10)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--skip-memory", action="store_true")
    p.add_argument("--out", default=os.path.join(ROOT, "bench", "results", "ssm_cpu.json"))
    args = p.parse_args()
    layers = [l for l in args.layers.split(",") if l]
    unknown = [l for l in layers if l not in LAYERS]
    if unknown or not layers:
        p.error(f"--layers takes a comma-separated subset of {','.join(LAYERS)}, "
                f"got {args.layers!r}")

    exe = os.path.join(args.build, "bin", "bench_ssm")
    if not os.path.isfile(exe) or not os.access(exe, os.X_OK):
        sys.exit(f"run_ssm.py: {exe} not found (or not executable); build it first "
                 f"(cmake --build {args.build} --target bench_ssm), or pass --build DIR")
    try:
        import torch
    except ImportError:
        sys.exit(f"run_ssm.py: {sys.executable} cannot import torch; install Debian's "
                 "python3-torch (scripts/install_deps.sh --bench) and run with /usr/bin/python3")
    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads),
               OPENBLAS_NUM_THREADS=str(args.threads), MKL_NUM_THREADS=str(args.threads))

    def commands(layer, H, extra):
        cfg = ["--layer", layer, "--H", str(H), "--N", str(args.N), "--L", str(args.L),
               "--B", str(args.B), "--threads", str(args.threads)] + extra
        return {"ssmkit": [exe] + cfg, "pytorch": [sys.executable, TORCH_SCRIPT] + cfg}

    def expect(layer, H):
        return {"layer": layer, "H": H, "N": args.N, "L": args.L, "B": args.B,
                "threads": args.threads}

    timing = ["--runs", str(args.runs), "--warmup", str(args.warmup)]
    medians = {(l, side): [] for l in layers for side in ("ssmkit", "pytorch")}
    for rep in range(args.repeats):
        sides = ("ssmkit", "pytorch") if rep % 2 == 0 else ("pytorch", "ssmkit")
        for layer in layers:
            cmds = commands(layer, args.H, timing)
            for side in sides:
                r = run_json(cmds[side], env, expect(layer, args.H), ["runs_ms", "median_ms"])
                medians[(layer, side)].append(r["median_ms"])
                print(f"  repeat {rep + 1}/{args.repeats} {layer:5s} {side:7s} "
                      f"{r['median_ms']:10.2f} ms", flush=True)
    rows = []
    for layer in layers:
        s = statistics.median(medians[(layer, "ssmkit")])
        t = statistics.median(medians[(layer, "pytorch")])
        rows.append({"layer": layer, "ssmkit_ms": round(s, 3), "pytorch_ms": round(t, 3),
                     "ratio": round(s / t, 3),
                     "ssmkit_medians_ms": [round(v, 3) for v in medians[(layer, "ssmkit")]],
                     "pytorch_medians_ms": [round(v, 3) for v in medians[(layer, "pytorch")]]})
        print(f"{layer:5s} ssmkit {s:10.2f} ms  pytorch {t:10.2f} ms  ratio {s / t:5.2f}")

    result = {"benchmark": "S4-family layer forward+backward, CPU, float32",
              "layer": "kernel K (H, L) -> irfft(rfft(u, 2L) * rfft(K, 2L))[:L] + D u -> GELU "
                       "-> Conv1d(H, 2H, 1) -> GLU; backward of sum(y * g), g fixed random, "
                       "u requires grad",
              "threads": args.threads, "runs_per_repeat": args.runs, "warmup": args.warmup,
              "repeats": args.repeats, "pytorch_version": torch.__version__,
              "machine": machine(), "date": datetime.date.today().isoformat(),
              "config": {"H": args.H, "N": args.N, "L": args.L, "B": args.B},
              "results": rows}

    if not args.skip_memory:
        mem_rows = []
        for layer in MEMORY_LAYERS:
            for H in MEMORY_H:
                cmds = commands(layer, H, ["--memory"])
                ours = run_json(cmds["ssmkit"], env, expect(layer, H), ["peak_bytes"])
                theirs = run_json(cmds["pytorch"], env, expect(layer, H),
                                  ["peak_bytes", "peak_rss_bytes"])
                s, t = ours["peak_bytes"], theirs["peak_bytes"]
                mem_rows.append({"layer": layer, "H": H, "ssmkit_peak_bytes": s,
                                 "pytorch_peak_bytes": t,
                                 "pytorch_peak_rss_bytes": theirs["peak_rss_bytes"],
                                 "ratio": round(s / t, 3)})
                print(f"{layer:5s} H={H:4d} peak ssmkit {s / 2**20:9.1f} MiB  pytorch "
                      f"{t / 2**20:9.1f} MiB (rss {theirs['peak_rss_bytes'] / 2**20:.1f})  "
                      f"ratio {s / t:5.2f}", flush=True)
        result["memory"] = {
            "config": {"N": args.N, "L": args.L, "B": args.B, "H": list(MEMORY_H)},
            "ssmkit_method": "bench_ssm --memory: allocator peak of one forward+backward "
                             "above the baseline after building the layer and inputs",
            "pytorch_method": "ssm_torch.py --memory: peak of the running sum of the CPU "
                              "allocator's allocations and frees reported to torch.profiler "
                              "(profile_memory=True) during one forward+backward; "
                              "pytorch_peak_rss_bytes: VmHWM - VmRSS across the process's "
                              "first forward+backward (cross-check only)",
            "results": mem_rows}

    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump(result, f, indent=2)
        f.write("\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
