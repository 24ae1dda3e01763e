#!/usr/bin/env python3
"""Summarises an Nsight Compute CSV (--metrics gpu__time_duration.sum --csv
--print-units base) of one bench_ops run: per kernel, in launch order, its
duration in microseconds, for the last timed step (the kernels after the last
random-fill kernel of the setup).
Usage: scripts/ncu_summary.py FILE.csv OP"""
import csv
import sys

path, op = sys.argv[1], sys.argv[2]
rows = []
with open(path, newline="") as f:
    lines = [l for l in f if l.startswith('"')]
for r in csv.DictReader(lines):
    if r.get("Metric Name") != "gpu__time_duration.sum":
        continue
    name = r["Kernel Name"].split("(")[0].split("<")[0]
    full = r["Kernel Name"]
    tmpl = full[full.find("<"):full.find(">") + 1] if "<" in full.split("(")[0] else ""
    rows.append((name + tmpl[:40], float(r["Metric Value"].replace(",", "")) / 1000.0))
if not rows:
    print(f"{op}: no kernels profiled")
    sys.exit(0)
# bench_ops runs warmup 1 + runs 1: the step's kernels repeat twice after the
# setup; keep the second half of the kernels after the last rng kernel.
last_rng = max([i for i, (n, _) in enumerate(rows) if "rand" in n.lower() or "philox" in n.lower()],
               default=-1)
step = rows[last_rng + 1:]
step = step[len(step) // 2:]
total = sum(t for _, t in step)
print(f"{op}: {len(step)} kernels, {total:.1f} us")
for n, t in step:
    print(f"  {t:9.1f} us  {n}")
