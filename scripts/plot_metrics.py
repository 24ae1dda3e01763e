#!/usr/bin/env python3
"""Turns a run's metrics.jsonl into loss and accuracy curves as one SVG file.

    scripts/plot_metrics.py runs/smoke/metrics.jsonl            # writes runs/smoke/metrics.svg
    scripts/plot_metrics.py runs/smoke/metrics.jsonl -o out.svg

Needs only the Python standard library. Train lines ("event": "train") are
drawn against the optimizer step; validation evaluations ("event": "eval")
as points joined by lines; the final test metric is noted in the title.
"""
import argparse
import json
import math
import sys
from pathlib import Path

W, H = 900, 360           # whole picture
PW, PH = 380, 260         # one panel's plot area
LEFT, TOP = 60, 50        # first panel's plot origin (top-left)
GAP = 70                  # between panels
COLORS = {"train": "#1f77b4", "val": "#d62728"}


def read(path):
    train, val, test = [], [], None
    with open(path) as f:
        for n, line in enumerate(f, 1):
            line = line.strip()
            if not line:
                continue
            try:
                j = json.loads(line)
            except json.JSONDecodeError as e:
                sys.exit(f"plot_metrics: {path}:{n}: not JSON ({e})")
            ev = j.get("event")
            if ev == "train":
                train.append(j)
            elif ev == "eval":
                val.append(j)
            elif ev == "test":
                test = j
    return train, val, test


def nice_range(values):
    lo, hi = min(values), max(values)
    if not math.isfinite(lo) or not math.isfinite(hi):
        finite = [v for v in values if math.isfinite(v)]
        lo, hi = (min(finite), max(finite)) if finite else (0.0, 1.0)
    if hi - lo < 1e-12:
        lo, hi = lo - 0.5, hi + 0.5
    pad = 0.05 * (hi - lo)
    return lo - pad, hi + pad


def panel(x0, title, series, xmax, yrange):
    lo, hi = yrange
    out = [f'<g transform="translate({x0},{TOP})">',
           f'<rect width="{PW}" height="{PH}" fill="none" stroke="#444"/>',
           f'<text x="{PW / 2}" y="-12" text-anchor="middle" font-size="14">{title}</text>',
           f'<text x="{PW / 2}" y="{PH + 36}" text-anchor="middle" font-size="12">step</text>']
    for i in range(5):  # y ticks
        v = lo + (hi - lo) * i / 4
        y = PH - PH * i / 4
        out.append(f'<line x1="-4" x2="0" y1="{y:.1f}" y2="{y:.1f}" stroke="#444"/>')
        out.append(f'<text x="-8" y="{y + 4:.1f}" text-anchor="end" font-size="11">{v:.3g}</text>')
    for i in range(5):  # x ticks
        v = xmax * i / 4
        x = PW * i / 4
        out.append(f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{PH}" y2="{PH + 4}" stroke="#444"/>')
        out.append(f'<text x="{x:.1f}" y="{PH + 18}" text-anchor="middle" font-size="11">{v:.0f}</text>')
    ly = 14
    for name, pts in series:
        pts = [(s, v) for s, v in pts if math.isfinite(v)]
        if not pts:
            continue
        coords = " ".join(f"{PW * s / xmax:.1f},{PH - PH * (v - lo) / (hi - lo):.1f}" for s, v in pts)
        color = COLORS[name]
        out.append(f'<polyline points="{coords}" fill="none" stroke="{color}" stroke-width="1.5"/>')
        if name == "val":
            for c in coords.split():
                x, y = c.split(",")
                out.append(f'<circle cx="{x}" cy="{y}" r="3" fill="{color}"/>')
        out.append(f'<text x="{PW - 8}" y="{ly}" text-anchor="end" font-size="12" fill="{color}">{name}</text>')
        ly += 16
    out.append("</g>")
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("metrics", type=Path, help="a run's metrics.jsonl")
    ap.add_argument("-o", "--output", type=Path, help="SVG to write (default: beside metrics.jsonl)")
    args = ap.parse_args()
    if not args.metrics.is_file():
        print(f"plot_metrics: {args.metrics}: no such file", file=sys.stderr)
        return 2
    train, val, test = read(args.metrics)
    if not train:
        print(f"plot_metrics: {args.metrics}: no train lines", file=sys.stderr)
        return 2
    xmax = max(j["step"] for j in train + val) or 1
    loss = [("train", [(j["step"], j["loss"]) for j in train]),
            ("val", [(j["step"], j["loss"]) for j in val])]
    acc = [("train", [(j["step"], j["accuracy"]) for j in train]),
           ("val", [(j["step"], j["accuracy"]) for j in val])]
    title = f"{args.metrics.parent.name}"
    if test:
        title += f": test loss {test['loss']:.4f}, accuracy {test['accuracy']:.4f}"
    svg = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" font-family="sans-serif">',
           f'<rect width="{W}" height="{H}" fill="white"/>',
           f'<text x="{W / 2}" y="20" text-anchor="middle" font-size="15">{title}</text>']
    svg += panel(LEFT, "loss", loss, xmax, nice_range([v for _, s in loss for _, v in s]))
    svg += panel(LEFT + PW + GAP, "accuracy", acc, xmax, (0.0, 1.0))
    svg.append("</svg>")
    out = args.output or args.metrics.with_name("metrics.svg")
    out.write_text("\n".join(svg) + "\n")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
