#!/usr/bin/python3
"""Runs bench_mamba (ssmkit) and mamba_torch.py (PyTorch) side by side and writes
bench/results/mamba_cpu.json (--device cpu, default) or mamba_cuda.json (--device
cuda): the time of Mamba's selective scan, forward and / or forward+backward
(ssmkit's kernel vs PyTorch's sequential loop, selective_scan_ref, and vs a
PyTorch parallel prefix scan) and of the Mamba block (vs the same block in
PyTorch with the loop scan), the achieved bandwidth of the scans (least bytes
moved / time) and, with a known peak, its fraction of the peak, with the ratios
and the machine (and GPU) they ran on.

Usage: bench/run_mamba.py [--build build] [--device cpu|cuda] [--mode fwd,fwdbwd]
                          [--sweep] [--threads 2] [--repeats 3]
                          [--cases scan,block] [--B 8 --D 512 --N 16 --L 1024]
                          [--d_model 256 --batch 8 --seq 1024]
                          [--runs 10 --warmup 3] [--torch-runs 3 --torch-warmup 1]
                          [--torch-loop-runs R --torch-loop-warmup W]
                          [--torch-loop-max-L 8192] [--torch-parallel-max-L 131072]
                          [--peak-gbs G] [--inner K] [--bf16] [--case-timeout S]
                          [--pytorch-malloc cached|stock] [--out FILE]

--device cuda: both sides on the GPU (bench_mamba --device cuda, mamba_torch.py
--device cuda; every timed run ends with a device synchronize). Defaults then:
--mode fwd,fwdbwd, --cases scan, --repeats 1, ssmkit --runs 5 --warmup 2,
PyTorch --torch-runs 3 --torch-warmup 1 (parallel scan, block), the PyTorch
loop --torch-loop-runs 1 --torch-loop-warmup 1, --case-timeout 150 s, --deadline
300 s (no process starts after 300 s from the start; one killed at the deadline
is recorded as an error).
--sweep: the scan at the shapes of the GPU issue, B=1, D=1024, N=16,
L = 512, 2048, 8192, 32768, 131072, and B=16, D=1536, N=16, L=2048 (instead of
--B --D --N --L). The PyTorch loop runs one Python iteration per time step, so
it runs only where L <= --torch-loop-max-L (8192); the parallel scan
materialises several (L, B, D, N) float32 tensors (8.6 GB each at B 1, D 1024,
L 131072) and runs only where L <= --torch-parallel-max-L. Ratios are given
only where both sides were measured.
--inner K (0, default: auto): steps per timed run between two synchronizes, the
time reported per step; auto on cuda: ceil(4 GB / forward bytes) clamped to
[1, 100] for ssmkit, at most 10 for the PyTorch parallel scan, 1 for the loop
(a step of ssmkit's forward at L 2048 moves 34 MB, ~10 us at 4.8 TB/s, where
a synchronize per step would weigh); 1 on the CPU.
Bandwidth: bytes = the least memory traffic of one step (bench_mamba.cpp
scan_bytes; mamba_torch.py --help): forward 4 B D L + 2 B N L + D N + 2 D + B D N
elements, forward+backward 11 B D L + 6 B N L + 3 (D N + 2 D) + B D N, 4 bytes
each (float32); GB/s = bytes / time; fraction of peak = GB/s / --peak-gbs
(on cuda by default 4800 when the GPU's name holds H200, 3350 for H100 (SXM),
3900 H100 NVL, 2000 H100 PCIe; any other GPU needs --peak-gbs).
--bf16 (scans): also PyTorch's scans with bfloat16 inputs (float32 state);
ssmkit's selective scan is float32 only, so those rows have no ssmkit side.
Every call is a fresh process (a PyTorch process runs every mode of its case);
a side that fails (CUDA out of memory, an error, past --case-timeout) is
recorded with its error and the run goes on. The results file is rewritten
after every case ("complete": false until the end), so an interrupted run
leaves what it measured. Each repeat runs every case on every side, the order
of the sides reversed between repeats; the figure kept per case and side is the
median of the repeats' medians.

bench_mamba's interface (ssmkit, bench/bench_mamba.cpp):
  bench_mamba --case scan|block [--B --D --N --L] [--d_model --batch --seq]
              --runs R --warmup W --threads T [--device cpu|cuda]
              [--mode fwd|fwdbwd] [--inner K]
printing one JSON object with "case", the sizes, "device", "mode", "gpu",
"threads", "bytes" (scan), "runs_ms" and "median_ms". The scan: input-dependent
B, C (one group), z, D, delta_bias, softplus, gradients for every input; the
block: d_state 16, d_conv 4, expand 2, gradients for x and every parameter, as
mamba_torch.py.
Needs torch (on the CPU: Debian's python3-torch, scripts/install_deps.sh --bench;
on a GPU: a CUDA build of torch).
"""
import argparse
import datetime
import json
import math
import os
import statistics
import subprocess
import sys
import time

from run_ops import ROOT, machine

CASES = ("scan", "block")
TORCH_SCRIPT = os.path.join(ROOT, "bench", "mamba_torch.py")
BLOCK_D_STATE = 16  # both sides' block default; bench_mamba takes no --N for the block
SWEEP = [dict(B=1, D=1024, N=16, L=L) for L in (512, 2048, 8192, 32768, 131072)] + [
    dict(B=16, D=1536, N=16, L=2048)]
# Peak memory bandwidth (GB/s) by GPU name, first match wins.
PEAKS = [("H200", 4800.0), ("H100 NVL", 3900.0), ("H100 PCIe", 2000.0), ("H100", 3350.0)]
INNER_TARGET_BYTES = 4e9


def scan_bytes(B, D, N, L, backward, elem=4):
    """bench_mamba.cpp's scan_bytes (and mamba_torch.py's): the least memory traffic
    of one step in bytes."""
    bdl, bnl, small, bdn = B * D * L, B * N * L, D * N + 2 * D, B * D * N
    fwd = 4 * bdl + 2 * bnl + small + bdn
    bwd = 7 * bdl + 4 * bnl + 2 * small
    return elem * (fwd + bwd if backward else fwd)


def run_jsons(cmd, env, timeout):
    """Runs cmd; returns (JSON objects it printed, error text or None)."""
    try:
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return [], f"killed after {timeout:.0f} s (--case-timeout / --deadline)"
    objs = []
    for line in proc.stdout.splitlines():
        if line.startswith("{"):
            try:
                objs.append(json.loads(line))
            except json.JSONDecodeError:
                pass
    if proc.returncode != 0:
        tail = (proc.stderr.strip().splitlines() or proc.stdout.strip().splitlines() or [""])
        return objs, f"exited with {proc.returncode}: {' | '.join(tail[-3:])[:600]}"
    if not objs:
        return objs, f"printed no JSON object: {proc.stdout[-300:]}"
    return objs, None


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--build", default=os.path.join(ROOT, "build"))
    p.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    p.add_argument("--mode", default=None,
                   help="fwd, fwdbwd or fwd,fwdbwd (default: fwdbwd on cpu, both on cuda)")
    p.add_argument("--sweep", action="store_true", help="the GPU issue's scan shapes")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--cases", default=None, help="scan,block (default: both on cpu, scan on cuda)")
    p.add_argument("--B", type=int, default=8)
    p.add_argument("--D", type=int, default=512)
    p.add_argument("--N", type=int, default=16)
    p.add_argument("--L", type=int, default=1024)
    p.add_argument("--d_model", type=int, default=256)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--seq", type=int, default=1024)
    p.add_argument("--runs", type=int, default=None, help="ssmkit runs per process (10; cuda 5)")
    p.add_argument("--warmup", type=int, default=None, help="ssmkit warmup runs (3; cuda 2)")
    p.add_argument("--torch-runs", type=int, default=3, help="PyTorch runs per process")
    p.add_argument("--torch-warmup", type=int, default=1, help="PyTorch warmup runs per process")
    p.add_argument("--torch-loop-runs", type=int, default=None,
                   help="PyTorch loop scan runs (default: --torch-runs; cuda 1)")
    p.add_argument("--torch-loop-warmup", type=int, default=None,
                   help="PyTorch loop scan warmup runs (default: --torch-warmup; cuda 1)")
    p.add_argument("--torch-loop-max-L", type=int, default=8192)
    p.add_argument("--torch-parallel-max-L", type=int, default=131072)
    p.add_argument("--peak-gbs", type=float, default=None,
                   help="peak memory bandwidth, GB/s (cuda: known for H200, H100)")
    p.add_argument("--inner", type=int, default=0, help="steps per timed run (0: auto)")
    p.add_argument("--bf16", action="store_true",
                   help="also the PyTorch scans with bfloat16 inputs (ssmkit: float32 only)")
    p.add_argument("--case-timeout", type=float, default=None,
                   help="seconds per process (default: none on cpu, 150 on cuda)")
    p.add_argument("--deadline", type=float, default=None,
                   help="seconds for the whole run: no process starts after it, and none "
                        "runs past it by more than 10 s (default: none on cpu, 300 on cuda)")
    p.add_argument("--pytorch-malloc", choices=("cached", "stock"), default="cached",
                   help="mamba_torch.py --malloc (see its docstring)")
    p.add_argument("--repeats", type=int, default=None, help="(3; cuda 1)")
    p.add_argument("--out", default=None,
                   help="default bench/results/mamba_cpu.json or mamba_cuda.json")
    args = p.parse_args()
    cuda = args.device == "cuda"
    defaults = dict(mode="fwd,fwdbwd" if cuda else "fwdbwd", cases="scan" if cuda else
                    "scan,block", runs=5 if cuda else 10, warmup=2 if cuda else 3,
                    repeats=1 if cuda else 3,
                    torch_loop_runs=1 if cuda else args.torch_runs,
                    torch_loop_warmup=1 if cuda else args.torch_warmup,
                    case_timeout=150.0 if cuda else None, deadline=300.0 if cuda else None,
                    out=os.path.join(ROOT, "bench", "results", f"mamba_{args.device}.json"))
    for k, v in defaults.items():
        if getattr(args, k) is None:
            setattr(args, k, v)
    cases = [c for c in args.cases.split(",") if c]
    unknown = [c for c in cases if c not in CASES]
    if unknown or not cases:
        p.error(f"--cases takes a comma-separated subset of {','.join(CASES)}, "
                f"got {args.cases!r}")
    modes = [m for m in args.mode.split(",") if m]
    if not modes or any(m not in ("fwd", "fwdbwd") for m in modes):
        p.error(f"--mode takes fwd, fwdbwd or fwd,fwdbwd, got {args.mode!r}")
    modes = [m for m in ("fwd", "fwdbwd") if m in modes]
    counts = {k: getattr(args, k) for k in ("threads", "B", "D", "N", "L", "d_model", "batch",
                                            "seq", "runs", "torch_runs", "torch_loop_runs",
                                            "repeats")}
    bad = {k: v for k, v in counts.items() if v < 1}
    if bad or min(args.warmup, args.torch_warmup, args.torch_loop_warmup, args.inner) < 0:
        p.error(f"sizes, runs, threads and repeats must be positive and warmups, --inner >= 0, "
                f"got {bad or vars(args)}")

    exe = os.path.join(args.build, "bin", "bench_mamba")
    if not os.path.isfile(exe) or not os.access(exe, os.X_OK):
        sys.exit(f"run_mamba.py: {exe} not found (or not executable); build it first "
                 f"(cmake --build {args.build} --target bench_mamba), or pass --build DIR")
    try:
        import torch
    except ImportError:
        sys.exit(f"run_mamba.py: {sys.executable} cannot import torch; install Debian's "
                 "python3-torch (scripts/install_deps.sh --bench) and run with /usr/bin/python3")
    gpu, peak, peak_source = "", args.peak_gbs, "--peak-gbs" if args.peak_gbs else None
    if cuda:
        if not torch.cuda.is_available():
            sys.exit(f"run_mamba.py: --device cuda, but torch {torch.__version__} "
                     f"({sys.executable}) sees no CUDA GPU")
        gpu = torch.cuda.get_device_name(0)
        if peak is None:
            peak = next((v for k, v in PEAKS if k in gpu), None)
            peak_source = f"table in run_mamba.py for {gpu!r}"
        if peak is None:
            sys.exit(f"run_mamba.py: no known peak memory bandwidth for {gpu!r}; "
                     "pass --peak-gbs (GB/s, from the GPU's data sheet)")
    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads),
               OPENBLAS_NUM_THREADS=str(args.threads), MKL_NUM_THREADS=str(args.threads))
    torch_env = dict(env)
    if cuda:  # several 8.6 GB tensors at L 131072: less fragmentation
        torch_env.setdefault("PYTORCH_CUDA_ALLOC_CONF", "expandable_segments:True")

    def flags(sizes):
        return [x for k, v in sizes.items() for x in (f"--{k}", str(v))]

    device = ["--device", args.device, "--threads", str(args.threads)]
    scan_shapes = SWEEP if args.sweep else [dict(B=args.B, D=args.D, N=args.N, L=args.L)]
    block_sizes = {"d_model": args.d_model, "batch": args.batch, "seq": args.seq}
    dtypes = ["float32"] + (["bfloat16"] if args.bf16 else [])

    def inner_for(fwd_bytes, side):
        if args.inner:
            return args.inner
        if not cuda or side == "scan_loop" or fwd_bytes is None:
            return 1
        k = min(100, max(1, math.ceil(INNER_TARGET_BYTES / fwd_bytes)))
        return min(k, 10) if side != "ssmkit" else k

    # A row per (case, sizes, dtype): its sides, each a list of tasks. A task is one
    # process: (command, expected echo, modes it answers); skipped sides hold a reason.
    rows = []
    for case in cases:
        shapes = scan_shapes if case == "scan" else [block_sizes]
        for sizes in shapes:
            for dtype in (dtypes if case == "scan" else ["float32"]):
                fb = scan_bytes(**sizes, backward=False) if case == "scan" else None
                row = {"case": case, "sizes": sizes, "dtype": dtype, "sides": {}}
                theirs = ("scan_loop", "scan_parallel") if case == "scan" else ("block",)
                if dtype == "float32":
                    k = inner_for(fb, "ssmkit")
                    row["sides"]["ssmkit"] = [
                        ([exe, "--case", case] + flags(sizes) + device
                         + ["--mode", m, "--inner", str(k), "--runs", str(args.runs),
                            "--warmup", str(args.warmup)],
                         dict(case=case, device=args.device, mode=m, **sizes), [m], k)
                        for m in modes]
                else:
                    row["sides"]["ssmkit"] = ("not supported: ssmkit's selective scan is "
                                              "float32 only")
                for side in theirs:
                    L = sizes.get("L", sizes.get("seq"))
                    loopish = side in ("scan_loop", "block")
                    cap = (args.torch_loop_max_L if side == "scan_loop"
                           else args.torch_parallel_max_L if side == "scan_parallel" else None)
                    if cap is not None and L > cap:
                        flag = "loop" if side == "scan_loop" else "parallel"
                        row["sides"][side] = f"L {L} > --torch-{flag}-max-L {cap}"
                        continue
                    k = inner_for(fb, side)
                    r_, w_ = ((args.torch_loop_runs, args.torch_loop_warmup) if loopish
                              else (args.torch_runs, args.torch_warmup))
                    cmd = ([sys.executable, TORCH_SCRIPT, "--case", side] + flags(sizes)
                           + device + ["--mode", ",".join(modes), "--inner", str(k),
                                       "--runs", str(r_), "--warmup", str(w_),
                                       "--malloc", args.pytorch_malloc])
                    if case == "scan":
                        cmd += ["--dtype", dtype]
                    row["sides"][side] = [(cmd, dict(case=side, device=args.device, **sizes),
                                           modes, k)]
                rows.append(row)

    # measured[(row index, side, mode)] = list of per-repeat medians, or error text
    measured, extra = {}, {}
    load_start = os.getloadavg()
    t_start = time.time()

    def summarize(complete):
        out_rows = []
        for i, row in enumerate(rows):
            for mode in modes:
                sizes = row["sizes"]
                elem = 2 if row["dtype"] == "bfloat16" else 4
                nbytes = (scan_bytes(**sizes, backward=mode == "fwdbwd", elem=elem)
                          if row["case"] == "scan" else None)
                r = {"case": row["case"], **sizes, "mode": mode, "dtype": row["dtype"]}
                if nbytes:
                    r["bytes"] = nbytes
                ms = {}
                for side, tasks in row["sides"].items():
                    v = measured.get((i, side, mode))
                    if isinstance(tasks, str):
                        r[side] = {"skipped": tasks}
                    elif v is None:
                        r[side] = {"skipped": "not run (yet)"}
                    elif isinstance(v, str):
                        r[side] = {"error": v}
                    else:
                        t = statistics.median(v)
                        ms[side] = t
                        s = {"ms": round(t, 4), "medians_ms": [round(x, 4) for x in v],
                             **extra.get((i, side, mode), {})}
                        if nbytes:
                            gbs = nbytes / t / 1e6
                            s["gb_per_s"] = round(gbs, 1 if gbs >= 10 else 4)
                            if peak:
                                s["fraction_of_peak"] = round(nbytes / t / 1e6 / peak, 3)
                        r[side] = s
                if "ssmkit" in ms:
                    for side, t in ms.items():
                        if side != "ssmkit":
                            r[f"speedup_vs_{side}"] = round(t / ms["ssmkit"], 2)
                if row["case"] == "scan" and "ssmkit" in ms and row["dtype"] == "float32":
                    goals = {}
                    if mode == "fwd" and peak and sizes["L"] >= 2048:
                        goals["fwd_70pct_of_peak"] = r["ssmkit"]["fraction_of_peak"] >= 0.7
                    if "speedup_vs_scan_loop" in r:
                        goals["20x_vs_pytorch_loop"] = r["speedup_vs_scan_loop"] >= 20
                    if goals:
                        r["goals_met"] = goals
                out_rows.append(r)
        m = machine()
        if cuda:
            m["gpu"] = gpu
            m["cuda"] = torch.version.cuda
        goal_rows = [r for r in out_rows if "goals_met" in r]
        return {
            "benchmark": f"Mamba selective scan{' and block' if 'block' in cases else ''}, "
                         f"{'/'.join(modes)}, {args.device}"
                         + (f" ({gpu})" if gpu else "") + ", float32"
                         + (" (PyTorch also bfloat16)" if args.bf16 else ""),
            "complete": complete,
            "device": args.device, "gpu": gpu, "peak_gbs": peak, "peak_gbs_source": peak_source,
            "scan": "delta' = softplus(delta + delta_bias); h_t = exp(delta'_t A) h_{t-1} + "
                    "delta'_t B_t u_t; y = (C_t h_t + D u) * silu(z); input-dependent B, C "
                    "(B, N, L), one group; fwdbwd: gradients of every input",
            "block": "in_proj -> (x, z); x = silu(causal depthwise conv1d k=4); x_proj -> "
                     "(dt, B, C); dt = dt_proj.weight dt; scan with delta_bias = dt_proj.bias, "
                     "softplus; out_proj; fwdbwd: gradients of x and every parameter",
            "loss": "fwdbwd: sum(y * g), g fixed random (seeded as y.backward(g)); "
                    "fwd: forward only, no gradient recorded",
            "bytes": "least memory traffic of one scan step, elements x element size: fwd "
                     "4 B D L + 2 B N L + D N + 2 D + B D N (read u, delta, z, B, C, A, D, "
                     "delta_bias; write y, last state); fwdbwd 11 B D L + 6 B N L + "
                     "3 (D N + 2 D) + B D N (the backward reads the inputs and grad_y again "
                     "and writes every input's gradient); gb_per_s = bytes / time",
            "timing": "per step; a timed run is 'inner' steps then one synchronize "
                      "(cuda); median of a process's runs, then median over repeats",
            "threads": args.threads, "repeats": args.repeats,
            "ssmkit_runs_per_repeat": args.runs, "ssmkit_warmup": args.warmup,
            "pytorch_runs_per_repeat": args.torch_runs, "pytorch_warmup": args.torch_warmup,
            "pytorch_loop_runs_per_repeat": args.torch_loop_runs,
            "pytorch_loop_warmup": args.torch_loop_warmup,
            "torch_loop_max_L": args.torch_loop_max_L,
            "torch_parallel_max_L": args.torch_parallel_max_L,
            "pytorch_malloc": args.pytorch_malloc,
            "pytorch_version": torch.__version__, "machine": m,
            "loadavg_1min": {"start": round(load_start[0], 2),
                             "end": round(os.getloadavg()[0], 2)},
            "elapsed_s": round(time.time() - t_start, 1),
            "date": datetime.date.today().isoformat(),
            "goals": {"fwd_70pct_of_peak_at_L_ge_2048": "forward, L >= 2048, float32",
                      "20x_vs_pytorch_loop": "where the PyTorch loop was measured",
                      "all_met": bool(goal_rows) and all(all(r["goals_met"].values())
                                                         for r in goal_rows)},
            "results": out_rows,
        }

    def write(complete):
        result = summarize(complete)
        os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
        tmp = args.out + ".tmp"
        with open(tmp, "w") as f:
            json.dump(result, f, indent=2)
            f.write("\n")
        os.replace(tmp, args.out)
        return result

    def label(row):
        s = row["sizes"]
        return ",".join(f"{k}={v}" for k, v in s.items()) + (
            " bf16" if row["dtype"] == "bfloat16" else "")

    failed = set()  # (row, side): not retried in later repeats
    for rep in range(args.repeats):
        for i, row in enumerate(rows):
            sides = [s for s, t in row["sides"].items() if not isinstance(t, str)]
            if rep % 2:
                sides.reverse()
            for side in sides:
                if (i, side) in failed:
                    continue
                for cmd, expect, task_modes, k in row["sides"][side]:
                    e = torch_env if side != "ssmkit" else env
                    t0 = time.time()
                    timeout = args.case_timeout
                    if args.deadline is not None:
                        left = args.deadline - (t0 - t_start)
                        timeout = max(10.0, min(timeout or left, left))
                    if args.deadline is not None and t0 - t_start > args.deadline:
                        objs, err = [], f"not run: past --deadline {args.deadline:.0f} s"
                    else:
                        objs, err = run_jsons(cmd, e, timeout)
                    got = {}
                    for o in objs:
                        if o.get("mode") not in task_modes:
                            continue
                        if "error" in o:
                            err = err or o["error"]
                            continue
                        wrong = {kk: (o.get(kk), v) for kk, v in expect.items()
                                 if o.get(kk) != v and kk != "mode"}
                        if wrong or "median_ms" not in o:
                            err = f"answered {wrong} (got, asked), or no median_ms"
                            continue
                        if row["case"] == "block" and o.get("d_state", 16) != BLOCK_D_STATE:
                            err = f"ran the block with d_state {o['d_state']}"
                            continue
                        got[o["mode"]] = o
                    for m in task_modes:
                        if m in got:
                            o = got[m]
                            prev = measured.get((i, side, m))
                            measured[(i, side, m)] = (prev if isinstance(prev, list) else []) + [
                                o["median_ms"]]
                            info = {"inner": o.get("inner", k), "min_ms": o.get("min_ms")}
                            for kk in ("peak_gpu_memory_gib", "slicing",
                                       "gpu_peak_gbs_from_attributes"):
                                if kk in o:
                                    info[kk] = o[kk]
                            extra[(i, side, m)] = info
                            print(f"  repeat {rep + 1}/{args.repeats} {row['case']:5s} "
                                  f"{label(row):28s} {m:6s} {side:13s} "
                                  f"{o['median_ms']:11.4f} ms", flush=True)
                        else:
                            why = err or "no result for this mode"
                            if not isinstance(measured.get((i, side, m)), list):
                                measured[(i, side, m)] = why
                            failed.add((i, side))
                            print(f"  repeat {rep + 1}/{args.repeats} {row['case']:5s} "
                                  f"{label(row):28s} {m:6s} {side:13s} FAILED: {why}",
                                  flush=True)
                    if time.time() - t0 > 60:
                        print(f"  ({side} took {time.time() - t0:.0f} s)", flush=True)
                write(False)
    result = write(True)

    # The table.
    print(f"\n{args.device}{' ' + gpu if gpu else ''}"
          + (f", peak {peak:.0f} GB/s ({peak_source})" if peak else "")
          + f", {result['elapsed_s']:.0f} s")
    hdr = (f"{'case':34s} {'mode':6s} {'ssmkit ms':>10s} {'GB/s':>7s} {'%peak':>6s} "
           f"{'loop ms':>10s} {'x loop':>7s} {'par ms':>10s} {'x par':>7s}")
    print(hdr)
    print("-" * len(hdr))

    def cell(side, key, fmt):
        v = side.get(key) if isinstance(side, dict) else None
        if v is None:
            return "err" if isinstance(side, dict) and "error" in side else "-"
        return fmt.format(v)
    for r in result["results"]:
        name = r["case"] + " " + ",".join(
            f"{k}={r[k]}" for k in (("B", "D", "N", "L") if r["case"] == "scan"
                                    else ("d_model", "batch", "seq"))) + (
            " bf16" if r["dtype"] == "bfloat16" else "")
        s = r.get("ssmkit", {})
        theirs_loop = r.get("scan_loop", r.get("block", {}))
        x_loop = r.get("speedup_vs_scan_loop", r.get("speedup_vs_block"))
        par = r.get("scan_parallel", {})
        frac = s.get("fraction_of_peak") if isinstance(s, dict) else None
        x_par = r.get("speedup_vs_scan_parallel")
        print(f"{name:34s} {r['mode']:6s} {cell(s, 'ms', '{:.3f}'):>10s} "
              f"{cell(s, 'gb_per_s', '{:.4g}'):>7s} "
              f"{'-' if frac is None else f'{100 * frac:.0f}%':>6s} "
              f"{cell(theirs_loop, 'ms', '{:.3f}'):>10s} "
              f"{'-' if x_loop is None else f'{x_loop:.1f}x':>7s} "
              f"{cell(par, 'ms', '{:.3f}'):>10s} "
              f"{'-' if x_par is None else f'{x_par:.1f}x':>7s}"
              + ("" if "goals_met" not in r else "  goals " + ", ".join(
                  f"{k} {'ok' if v else 'MISSED'}" for k, v in r["goals_met"].items())))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
