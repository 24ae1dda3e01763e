#!/usr/bin/python3
"""Runs bench_ops (ssmkit) and ops_torch.py (PyTorch) side by side with the
same thread count and writes bench/results/ops_<device>[_<preset>].json: per
op the median forward+backward time of each, the ratio ssmkit / PyTorch (< 1:
ssmkit faster), and for the mamba130m preset the achieved bandwidth of each
(least bytes moved / time), with the machine (and GPU) they ran on.

Usage: bench/run_ops.py [--build build] [--threads N] [--runs N] [--repeats K]
                        [--device cpu|cuda] [--preset core|mamba130m] [--rows R]
Each side runs K times (alternating); the figure kept per op is the median of
the K medians. Needs Debian's python3-torch (scripts/install_deps.sh --bench).
"""
import argparse
import datetime
import json
import os
import platform
import statistics
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def machine():
    cpu = platform.processor()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    mem_gib = None
    try:
        with open("/proc/meminfo") as f:
            mem_gib = round(int(f.readline().split()[1]) / 2**20, 1)
    except OSError:
        pass
    return {"cpu": cpu, "logical_cores": os.cpu_count(), "memory_gib": mem_gib,
            "os": platform.platform()}


def run_json(cmd, env, expect, keys):
    """Runs cmd, returns the last JSON object it prints; checks that it echoes the
    config in expect and holds keys. Exits with a message naming the calling
    script otherwise."""
    who = os.path.basename(sys.argv[0])
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        sys.exit(f"{who}: {' '.join(cmd)}\nexited with {proc.returncode}:\n"
                 f"{proc.stderr[-2000:]}{proc.stdout[-1000:]}")
    lines = [l for l in proc.stdout.splitlines() if l.startswith("{")]
    if not lines:
        sys.exit(f"{who}: {' '.join(cmd)}\nprinted no JSON object:\n{proc.stdout[-1000:]}")
    try:
        r = json.loads(lines[-1])
    except json.JSONDecodeError as e:
        sys.exit(f"{who}: {' '.join(cmd)}\nprinted bad JSON ({e}):\n{lines[-1][:1000]}")
    wrong = {k: (r.get(k), v) for k, v in expect.items() if r.get(k) != v}
    missing = [k for k in keys if k not in r]
    if wrong or missing:
        sys.exit(f"{who}: {' '.join(cmd)}\nanswered {lines[-1]}\n"
                 f"(got, asked) {wrong}; missing keys {missing}")
    return r



def run_lines(cmd, env):
    out = subprocess.run(cmd, env=env, check=True, capture_output=True, text=True).stdout
    return {r["op"]: r for r in (json.loads(l) for l in out.splitlines() if l.startswith("{"))}


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--build", default=os.path.join(ROOT, "build"))
    p.add_argument("--threads", type=int, default=os.cpu_count())
    p.add_argument("--runs", type=int, default=20)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    p.add_argument("--preset", default="core", choices=["core", "mamba130m"])
    p.add_argument("--rows", type=int, default=16 * 2048)
    p.add_argument("--out", default=None)
    args = p.parse_args()
    if args.out is None:
        name = f"ops_{args.device}" + ("" if args.preset == "core" else f"_{args.preset}")
        args.out = os.path.join(ROOT, "bench", "results", name + ".json")
    extra = ["--device", args.device, "--preset", args.preset, "--rows", str(args.rows)]
    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads),
               OPENBLAS_NUM_THREADS=str(args.threads))
    exe = os.path.join(args.build, "bin", "bench_ops")
    if not os.path.exists(exe):
        sys.exit(f"run_ops.py: {exe} not found; build first (./test.sh or cmake --build build)")
    import torch  # noqa: F401  (fail early with a clear message if missing)
    ours, theirs = {}, {}
    for _ in range(args.repeats):
        for op, r in run_lines([exe, "--runs", str(args.runs)] + extra, env).items():
            ours.setdefault(op, dict(r, all=[]))["all"].append(r["median_ms"])
        torch_cmd = [sys.executable, os.path.join(ROOT, "bench", "ops_torch.py"),
                     "--runs", str(args.runs), "--threads", str(args.threads)] + extra
        for op, r in run_lines(torch_cmd, env).items():
            theirs.setdefault(op, dict(r, all=[]))["all"].append(r["median_ms"])
    rows = []
    for op, r in ours.items():
        s = statistics.median(r["all"])
        t = statistics.median(theirs[op]["all"])
        row = {"op": op, "shape": r["shape"], "ssmkit_ms": round(s, 3),
               "pytorch_ms": round(t, 3), "ratio": round(s / t, 3)}
        if r.get("bytes"):
            row["bytes"] = int(r["bytes"])
            row["ssmkit_gb_per_s"] = round(r["bytes"] / s / 1e6, 1)
            row["pytorch_gb_per_s"] = round(r["bytes"] / t / 1e6, 1)
        row["ssmkit_medians_ms"] = [round(v, 3) for v in r["all"]]
        row["pytorch_medians_ms"] = [round(v, 3) for v in theirs[op]["all"]]
        rows.append(row)
        print(f"{op:24s} {r['shape']:24s} ssmkit {s:9.3f} ms  pytorch {t:9.3f} ms  "
              f"ratio {s / t:5.2f}")
    import torch as _t
    m = machine()
    if args.device == "cuda":
        m["gpu"] = _t.cuda.get_device_name(0)
        m["cuda"] = _t.version.cuda
    result = {"benchmark": f"forward+backward, {args.device}, float32, preset {args.preset}",
              "threads": args.threads,
              "runs_per_repeat": args.runs, "repeats": args.repeats,
              "pytorch_version": _t.__version__, "machine": m,
              "date": datetime.date.today().isoformat(), "results": rows}
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump(result, f, indent=2)
        f.write("\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
