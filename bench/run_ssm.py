#!/usr/bin/python3
"""Runs bench_ssm (ssmkit) and ssm_torch.py (PyTorch) side by side on
S4-family layers: by default on the CPU (four layers, whole layer forward +
backward, then peak memory; bench/results/ssm_cpu.json), or with --device cuda
/ --sweep a table of cases (whole layer, kernel generation alone, FFT
convolution alone, over several L; bench/results/ssm_cuda.json on cuda,
ssm_cases_cpu.json on the CPU).

Usage: bench/run_ssm.py [--build build] [--device cpu|cuda] [--sweep]
                        [--what layer,kernel,fftconv] [--layers s4d,s4,rtf,lssl]
                        [--H 128] [--N 64] [--L 1024[,2048,...]] [--B 16]
                        [--threads 2] [--runs 10] [--warmup 3] [--repeats 3]
                        [--inner K] [--case-timeout S] [--deadline S]
                        [--skip-memory] [--out FILE]

CPU default (no --device cuda, no --sweep, --what layer, one L): each repeat
runs every layer on both sides, the side that goes first alternating between
repeats; the figure kept per layer is the median of the repeats' medians
("ratio" = ssmkit / PyTorch, < 1: ssmkit faster). Memory then runs each side
once per (layer, H) in a fresh process (--memory), LSSL and S4 at H = 128,
256, 512.

Cases (--device cuda, --sweep, --what other than layer, or several L): a row
per (what, layer, L), what one of
  layer    the whole layer forward + backward (the layer below), gradients of
           the input and every parameter;
  kernel   the layer's kernel generation alone, K = kernel(L) and the backward
           of sum(K * R) (S4D's Vandermonde product, S4's Cauchy + Woodbury +
           irfft, ...), gradients of the kernel's parameters;
  fftconv  the FFT convolution alone, y = irfft(rfft(u, 2L) * rfft(k, 2L))[:L]
           + D u on u (B, H, L), k (1, H, L), D (H), gradients of u, k and D (no
           layer: one row per L).
ssmkit runs one process per row (bench_ssm --what W); PyTorch one process per
(layer, L) answering all its whats (and the fftconv row of that L with the
first layer), to pay its start (import torch, CUDA context) fewer times. Each
row gets "speedup_vs_pytorch" = PyTorch ms / ssmkit ms (> 1: ssmkit faster)
and, for what = layer, "goal_2x" (speedup >= 2, the GPU issue's goal).
--sweep: layers s4d, s4 (DPLR), H 256, N 64, B 32, L 1024, 2048, 4096, 8192,
16384, what layer, kernel, fftconv (each of --layers --H --N --B --L --what
given explicitly overrides its sweep value, e.g. small shapes to try it on the
CPU). A bench_ssm without --what / --device (built from an older source) is
refused before anything runs.
--device cuda: both sides on the GPU (bench_ssm --device cuda, ssm_torch.py
--device cuda: inputs drawn on the CPU, moved to the GPU; a device synchronize
ends every timed run; PyTorch with TF32 off, as ssmkit). Defaults then: --runs
5, --warmup 2, --repeats 1, --inner 0 (auto: after the warmup, K =
ceil(20 ms / one step's time) clamped to [1, 32] steps per timed run, each
side for itself; the time is per step), --case-timeout 45 s, --deadline 240 s
(no process starts after it; one running at it is killed; rows left are
recorded as not run), --out bench/results/ssm_cuda.json. A process that fails
(an error, CUDA out of memory, past its timeout) is recorded with its error
and the run goes on; after a timeout the same side skips that (what, layer)
at larger L. The results file is rewritten after every process ("complete":
false until the end), so an interrupted run leaves what it measured.

The layer is the same on both sides: kernel K (H, L) -> causal FFT conv + D u
-> GELU -> Conv1d(H, 2H, 1) -> GLU; see ssm_torch.py for the four kernels and
the memory measure. Every step is a forward and the backward of sum(y * g), g
a fixed random tensor (seeded as y.backward(g)).
Needs torch (on the CPU: Debian's python3-torch, scripts/install_deps.sh
--bench; on a GPU: a CUDA build of torch).
"""
import argparse
import datetime
import json
import os
import statistics
import subprocess
import sys
import time

from run_ops import ROOT, machine, run_json

LAYERS = ("s4d", "s4", "rtf", "lssl")
WHATS = ("layer", "kernel", "fftconv")
MEMORY_LAYERS = ("lssl", "s4")
MEMORY_H = (128, 256, 512)
TORCH_SCRIPT = os.path.join(ROOT, "bench", "ssm_torch.py")
SWEEP = dict(layers="s4d,s4", H=256, N=64, B=32, L="1024,2048,4096,8192,16384",
             what="layer,kernel,fftconv")
LAYER_DESC = ("kernel K (H, L) -> irfft(rfft(u, 2L) * rfft(K, 2L))[:L] + D u -> GELU "
              "-> Conv1d(H, 2H, 1) -> GLU; backward of sum(y * g), g fixed random, "
              "u requires grad")


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--build", default=os.path.join(ROOT, "build"))
    p.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    p.add_argument("--sweep", action="store_true",
                   help="the GPU issue's cases: s4d, s4 at H 256, N 64, B 32, L 1024..16384, "
                        "what layer, kernel, fftconv")
    p.add_argument("--what", default=None,
                   help="layer, kernel, fftconv or a comma-separated list (default layer)")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--layers", default=None, help="comma-separated subset of s4d,s4,rtf,lssl")
    p.add_argument("--H", type=int, default=None, help="(128; sweep 256)")
    p.add_argument("--N", type=int, default=None, help="(64)")
    p.add_argument("--L", default=None, help="one L or a comma-separated list (1024)")
    p.add_argument("--B", type=int, default=None, help="(16; sweep 32)")
    p.add_argument("--runs", type=int, default=None, help="runs per process (10; cuda 5)")
    p.add_argument("--warmup", type=int, default=None, help="warmup steps (3; cuda 2)")
    p.add_argument("--repeats", type=int, default=None, help="(3; cases 1)")
    p.add_argument("--inner", type=int, default=None,
                   help="steps per timed run (1 on cpu; 0 = auto, the default on cuda)")
    p.add_argument("--case-timeout", type=float, default=None,
                   help="seconds per process (default: none on cpu, 45 on cuda)")
    p.add_argument("--deadline", type=float, default=None,
                   help="seconds for the whole run: no process starts after it, and none "
                        "runs past it by more than 10 s (default: none on cpu, 240 on cuda)")
    p.add_argument("--skip-memory", action="store_true")
    p.add_argument("--out", default=None,
                   help="default bench/results/ssm_cpu.json (CPU default), ssm_cuda.json "
                        "(cuda) or ssm_cases_cpu.json (cases on the CPU)")
    args = p.parse_args()
    cuda = args.device == "cuda"
    base = dict(layers=",".join(LAYERS), H=128, N=64, B=16, L="1024", what="layer")
    for k, v in base.items():
        if getattr(args, k) is None:
            setattr(args, k, SWEEP[k] if args.sweep else v)
    try:
        Ls = [int(x) for x in str(args.L).split(",") if x]
    except ValueError:
        p.error(f"--L takes a length or a comma-separated list, got {args.L!r}")
    layers = [l for l in args.layers.split(",") if l]
    unknown = [l for l in layers if l not in LAYERS]
    if unknown or not layers:
        p.error(f"--layers takes a comma-separated subset of {','.join(LAYERS)}, "
                f"got {args.layers!r}")
    whats = [w for w in args.what.split(",") if w]
    if not whats or any(w not in WHATS for w in whats):
        p.error(f"--what takes a comma-separated subset of {','.join(WHATS)}, "
                f"got {args.what!r}")
    whats = [w for w in WHATS if w in whats]
    cases = cuda or args.sweep or whats != ["layer"] or len(Ls) != 1
    defaults = dict(runs=5 if cuda else 10, warmup=2 if cuda else 3,
                    repeats=1 if cases else 3, inner=0 if cuda else 1,
                    case_timeout=45.0 if cuda else None, deadline=240.0 if cuda else None,
                    out=os.path.join(ROOT, "bench", "results",
                                     "ssm_cuda.json" if cuda else
                                     "ssm_cases_cpu.json" if cases else "ssm_cpu.json"))
    for k, v in defaults.items():
        if getattr(args, k) is None:
            setattr(args, k, v)
    counts = {k: getattr(args, k) for k in ("threads", "H", "N", "B", "runs", "repeats")}
    bad = {k: v for k, v in counts.items() if v < 1}
    if bad or not Ls or min(Ls) < 1 or args.warmup < 0 or args.inner < 0 or args.N % 2:
        p.error(f"sizes, runs, threads and repeats must be positive (N even), warmup and "
                f"inner >= 0; got {bad or vars(args)}")

    exe = os.path.join(args.build, "bin", "bench_ssm")
    if not os.path.isfile(exe) or not os.access(exe, os.X_OK):
        sys.exit(f"run_ssm.py: {exe} not found (or not executable); build it first "
                 f"(cmake --build {args.build} --target bench_ssm), or pass --build DIR")
    if cases:  # a bench_ssm built before --what / --device would fail every row
        try:
            helptext = subprocess.run([exe, "--help"], capture_output=True, text=True,
                                      timeout=30).stdout
        except (OSError, subprocess.TimeoutExpired) as e:
            helptext = str(e)
        if "--what" not in helptext or "--device" not in helptext:
            sys.exit(f"run_ssm.py: {exe} has no --what / --device option: built from an "
                     f"older bench/bench_ssm.cpp; rebuild it (cmake --build {args.build} "
                     "--target bench_ssm)")
    try:
        import torch
    except ImportError:
        sys.exit(f"run_ssm.py: {sys.executable} cannot import torch; install Debian's "
                 "python3-torch (scripts/install_deps.sh --bench) and run with /usr/bin/python3")
    gpu = ""
    if cuda:
        if not torch.cuda.is_available():
            sys.exit(f"run_ssm.py: --device cuda, but torch {torch.__version__} "
                     f"({sys.executable}) sees no CUDA GPU")
        gpu = torch.cuda.get_device_name(0)
    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads),
               OPENBLAS_NUM_THREADS=str(args.threads), MKL_NUM_THREADS=str(args.threads))
    if cases:
        run_cases(args, exe, torch, env, gpu, layers, whats, Ls)
    else:
        args.L = Ls[0]
        run_cpu_layers(args, exe, torch, env, layers)


def run_jsons(cmd, env, timeout):
    """Runs cmd; returns (JSON objects it printed, error text or None, timed out). On a
    timeout the objects printed before it are kept."""
    try:
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)
        stdout, stderr, rc, timed_out = proc.stdout, proc.stderr, proc.returncode, False
    except subprocess.TimeoutExpired as e:
        out = e.stdout or ""
        stdout = out.decode(errors="replace") if isinstance(out, bytes) else out
        stderr, rc, timed_out = "", None, True
    objs = []
    for line in stdout.splitlines():
        if line.startswith("{"):
            try:
                objs.append(json.loads(line))
            except json.JSONDecodeError:
                pass
    if timed_out:
        return objs, f"killed after {timeout:.0f} s (--case-timeout / --deadline)", True
    if rc != 0:
        tail = (stderr.strip().splitlines() or stdout.strip().splitlines() or [""])
        return objs, f"exited with {rc}: {' | '.join(tail[-3:])[:600]}", False
    if not objs:
        return objs, f"printed no JSON object: {stdout[-300:]}", False
    return objs, None, False


def run_cases(args, exe, torch, env, gpu, layers, whats, Ls):
    """The table of cases: a row per (what, layer, L); see the docstring."""
    cuda = args.device == "cuda"
    common = ["--H", str(args.H), "--B", str(args.B), "--threads", str(args.threads),
              "--device", args.device, "--runs", str(args.runs), "--warmup", str(args.warmup),
              "--inner", str(args.inner)]

    def echo(what, layer, L):
        e = {"what": what, "device": args.device, "H": args.H, "L": L, "B": args.B}
        if layer is not None:
            e.update(layer=layer, N=args.N)
        return e

    rows = []  # {"what", "layer", "L"}
    for L in Ls:
        for what in whats:
            for layer in ([None] if what == "fftconv" else layers):
                rows.append({"what": what, "layer": layer, "L": L})
    index = {(r["what"], r["layer"], r["L"]): i for i, r in enumerate(rows)}
    # Tasks per L, a task one process: (side, skip key, L, command, [(row, echo)]).
    tasks_by_L = {}
    for L in Ls:
        ours, theirs = [], []
        for what in whats:
            for layer in ([None] if what == "fftconv" else layers):
                cmd = [exe, "--what", what, "--L", str(L)] + common
                if layer is not None:
                    cmd += ["--layer", layer, "--N", str(args.N)]
                ours.append(("ssmkit", (what, layer), L, cmd,
                             [(index[(what, layer, L)], echo(what, layer, L))]))
        per_layer = [w for w in whats if w != "fftconv"]
        groups = [(layer, per_layer + (["fftconv"] if "fftconv" in whats and j == 0 else []))
                  for j, layer in enumerate(layers)] if per_layer else [(None, ["fftconv"])]
        for layer, ws in groups:
            if not ws:
                continue
            cmd = [sys.executable, TORCH_SCRIPT, "--what", ",".join(ws), "--L", str(L),
                   "--N", str(args.N)] + common
            if layer is not None:
                cmd += ["--layer", layer]
            answers = [(index[(w, None if w == "fftconv" else layer, L)],
                        echo(w, None if w == "fftconv" else layer, L)) for w in ws]
            theirs.append(("pytorch", (layer,), L, cmd, answers))
        tasks_by_L[L] = (ours, theirs)

    measured, extra = {}, {}  # (row, side) -> list of medians or error text; -> details
    timed_out_at = {}  # (side, key) -> L of a timeout: that side skips it at larger L
    load_start = os.getloadavg()
    t_start = time.time()

    def summarize(complete):
        out_rows, goal = [], []
        for i, row in enumerate(rows):
            r = {"what": row["what"]}
            if row["layer"] is not None:
                r.update(layer=row["layer"], N=args.N)
            r.update(H=args.H, L=row["L"], B=args.B)
            ms = {}
            for side in ("ssmkit", "pytorch"):
                v = measured.get((i, side))
                if v is None:
                    r[side] = {"skipped": "not run (yet)"}
                elif isinstance(v, str):
                    r[side] = {"error": v}
                else:
                    ms[side] = statistics.median(v)
                    r[side] = {"ms": round(ms[side], 4), "medians_ms": [round(x, 4) for x in v],
                               **extra.get((i, side), {})}
            if len(ms) == 2:
                r["speedup_vs_pytorch"] = round(ms["pytorch"] / ms["ssmkit"], 3)
                if row["what"] == "layer":
                    r["goal_2x"] = r["speedup_vs_pytorch"] >= 2
                    goal.append(r["goal_2x"])
            out_rows.append(r)
        m = machine()
        if cuda:
            m["gpu"] = gpu
            m["cuda"] = torch.version.cuda
        layer_rows = [r for r in out_rows if r["what"] == "layer"]
        return {
            "benchmark": f"S4-family layers ({', '.join(layers)}): {', '.join(whats)}, forward+"
                         f"backward, {args.device}" + (f" ({gpu})" if gpu else "")
                         + ", float32, ssmkit vs PyTorch (torch.fft)",
            "complete": complete, "device": args.device, "gpu": gpu,
            "config": {"layers": layers, "what": whats, "H": args.H, "N": args.N, "B": args.B,
                       "L": Ls},
            "what": {"layer": LAYER_DESC,
                     "kernel": "the layer's kernel generation alone: K = kernel(L) (1, H, L), "
                               "backward of sum(K * R), R fixed random; gradients of the "
                               "kernel's parameters",
                     "fftconv": "irfft(rfft(u, 2L) * rfft(k, 2L))[:L] + D u, u (B, H, L), "
                                "k (1, H, L), D (H); backward of sum(y * g); gradients of "
                                "u, k and D"},
            "timing": "per step; a timed run is 'inner' steps then one synchronize (cuda); "
                      "'ms' is the median of a process's runs (median over repeats)",
            "speedup": "speedup_vs_pytorch = PyTorch ms / ssmkit ms (> 1: ssmkit faster)",
            "goal": {"2x_vs_pytorch_whole_layer": "what = layer rows, speedup >= 2",
                     "rows_measured": len(goal), "rows_met": sum(goal),
                     "all_met": bool(goal) and all(goal)
                                and len(goal) == len(layer_rows)},
            "threads": args.threads, "runs": args.runs, "warmup": args.warmup,
            "inner": args.inner if args.inner else "auto (ceil(20 ms / step), [1, 32])",
            "repeats": args.repeats, "case_timeout_s": args.case_timeout,
            "deadline_s": args.deadline,
            "tf32": "off: ssmkit's default (exact float32 GEMMs); PyTorch on cuda sets "
                    "torch.backends.cuda.matmul / cudnn.allow_tf32 = False (each row's "
                    "pytorch.tf32 reads them back)",
            "pytorch_version": torch.__version__, "machine": m,
            "loadavg_1min": {"start": round(load_start[0], 2),
                             "end": round(os.getloadavg()[0], 2)},
            "elapsed_s": round(time.time() - t_start, 1),
            "date": datetime.date.today().isoformat(),
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

    def label(i):
        r = rows[i]
        return f"{r['what']:7s} {r['layer'] or '-':4s} L={r['L']:<6d}"

    for rep in range(args.repeats):
        for L in Ls:
            ours, theirs = tasks_by_L[L]
            for side, key, _, cmd, answers in (ours + theirs if rep % 2 == 0
                                               else theirs + ours):
                t0 = time.time()
                skip_L = timed_out_at.get((side, key))
                if skip_L is not None:
                    objs, err, to = [], f"not run: timed out at L {skip_L}", False
                elif args.deadline is not None and t0 - t_start > args.deadline:
                    objs, err, to = [], f"not run: past --deadline {args.deadline:.0f} s", False
                else:
                    timeout = args.case_timeout
                    if args.deadline is not None:  # at most 10 s past the deadline
                        left = max(10.0, args.deadline - (t0 - t_start))
                        timeout = min(timeout or left, left)
                    objs, err, to = run_jsons(cmd, env, timeout)
                    if to:
                        timed_out_at[(side, key)] = L
                for i, want in answers:
                    got, why = None, None
                    for o in objs:
                        if o.get("what") != want["what"]:
                            continue
                        if "error" in o:
                            why = o["error"]
                            continue
                        wrong = {k: (o.get(k), v) for k, v in want.items() if o.get(k) != v}
                        if wrong or "median_ms" not in o:
                            why = f"answered {wrong} (got, asked), or no median_ms"
                            continue
                        got = o
                    if got is not None:
                        prev = measured.get((i, side))
                        measured[(i, side)] = (prev if isinstance(prev, list) else []) + [
                            got["median_ms"]]
                        info = {"inner": got.get("inner"),
                                "min_ms": round(got.get("min_ms") or 0, 4)}
                        if "gpu_peak_bytes" in got:
                            info["peak_gpu_memory_gib"] = round(got["gpu_peak_bytes"] / 2**30, 3)
                        if "peak_gpu_memory_gib" in got:
                            info["peak_gpu_memory_gib"] = got["peak_gpu_memory_gib"]
                        if got.get("gpu"):
                            info["gpu"] = got["gpu"]
                        if "tf32" in got:
                            info["tf32"] = got["tf32"]
                        extra[(i, side)] = info
                        print(f"  repeat {rep + 1}/{args.repeats} {label(i)} {side:7s} "
                              f"{got['median_ms']:10.3f} ms", flush=True)
                    else:
                        why = why or err or "no result for this case"
                        if not isinstance(measured.get((i, side)), list):
                            measured[(i, side)] = why
                        print(f"  repeat {rep + 1}/{args.repeats} {label(i)} {side:7s} "
                              f"FAILED: {why}", flush=True)
                if time.time() - t0 > 30:
                    print(f"  ({side} took {time.time() - t0:.0f} s)", flush=True)
                write(False)
    result = write(True)

    print(f"\n{args.device}{' ' + gpu if gpu else ''}, H={args.H} N={args.N} B={args.B}, "
          f"{result['elapsed_s']:.0f} s")
    hdr = (f"{'what':8s} {'layer':5s} {'L':>6s} {'ssmkit ms':>10s} {'pytorch ms':>11s} "
           f"{'speedup':>8s}")
    print(hdr)
    print("-" * len(hdr))

    def cell(side):
        if "ms" in side:
            return f"{side['ms']:.3f}"
        return "err" if "error" in side else "-"
    for r in result["results"]:
        x = r.get("speedup_vs_pytorch")
        print(f"{r['what']:8s} {r.get('layer', '-'):5s} {r['L']:6d} {cell(r['ssmkit']):>10s} "
              f"{cell(r['pytorch']):>11s} {'-' if x is None else f'{x:.2f}x':>8s}"
              + ("" if "goal_2x" not in r else f"  2x goal {'ok' if r['goal_2x'] else 'MISSED'}"))
    g = result["goal"]
    print(f"2x goal (whole layer): {g['rows_met']}/{g['rows_measured']} measured rows met"
          f"{' (all)' if g['all_met'] else ''}")
    print(f"wrote {args.out}")


def run_cpu_layers(args, exe, torch, env, layers):
    """The CPU default: whole layers at one shape, repeats alternating the sides, then
    the peak memory of LSSL and S4."""

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
