#!/usr/bin/python3
"""The PyTorch half of bench/run_mamba.py: Mamba's selective scan and the Mamba
block in plain PyTorch (no fused kernels, no extension packages), on the CPU
or a CUDA GPU, timed forward or forward + backward, one JSON object per mode.

Usage:
  mamba_torch.py --case scan_loop|scan_parallel [--B 8 --D 512 --N 16 --L 1024]
                 [--runs 3 --warmup 1] --threads T [--slicing unbind|index]
                 [--malloc cached|stock] [--device cpu|cuda] [--mode fwd|fwdbwd|fwd,fwdbwd]
                 [--inner K] [--dtype float32|bfloat16]
  mamba_torch.py --case block [--d_model 256 --batch 8 --seq 1024 --N 16]
                 [--runs 3 --warmup 1] --threads T [--slicing unbind|index]
                 [--malloc cached|stock] [--device cpu|cuda] [--mode ...] [--inner K]
  mamba_torch.py --selftest

Cases (the scan as Mamba's selective_scan_ref, state-spaces/mamba
mamba_ssm/ops/selective_scan_interface.py; the block as mamba_simple.Mamba
without the fused path; see ../shared/SSM_MATH.md "Selective scan"):
  scan_loop      delta' = softplus(delta + delta_bias);
                 h_t = exp(delta'_t A) h_{t-1} + delta'_t B_t u_t  (per b, d, n)
                 y = (C_t h_t + D u) * silu(z)
                 with input-dependent B, C (B, N, L) (one group), z (B, D, L),
                 D, delta_bias (D). As selective_scan_ref: exp(delta' A) and
                 delta' B u materialised as (B, D, L, N), then a Python loop
                 over the L steps, each one (B, D, N) update and one
                 contraction with C_t. --slicing: how step t reads its slice
                 of those tensors (and of C). "unbind" (default): all L slices
                 by one unbind, whose backward stacks the L gradients once.
                 "index": x[:, :, t] as selective_scan_ref writes it; autograd
                 then gives every step's slice a zero-filled gradient of the
                 whole (B, D, L, N) tensor and adds them up, O(L^2) memory
                 traffic: at B 8, D 512, N 16, one thread, forward +
                 backward took 4-6 s at L = 64 and 130-150 s at L = 128,
                 where unbind took 0.3-0.8 s and 1.6 s, so a run at L = 1024
                 would take hours.
                 The unbind loop is the fair baseline: same arithmetic, no
                 autograd artefact.
  scan_parallel  the same scan by a log-depth parallel prefix over the pairs
                 (a_t, b_t) = (exp(delta'_t A), delta'_t B_t u_t), which
                 compose as (a2 a1, a2 b1 + b2): recursive doubling (combine
                 neighbours, scan the half-length sequence, fill in the other
                 half; Blelloch's work-efficient up-sweep / down-sweep in
                 tensor form), materialising a, b, h of B D N L elements each
                 (time-major, (L, B, D, N)).
  block          the Mamba block, x (batch, seq, d_model) -> same: in_proj
                 (no bias) -> x, z; x = silu(causal depthwise conv1d, kernel
                 4, bias); x_proj -> dt (dt_rank = ceil(d_model / 16)), B, C
                 (N each); dt = dt_proj.weight @ dt; scan_loop(x, dt, A =
                 -exp(A_log), B, C, D, z, delta_bias = dt_proj.bias,
                 softplus) (the loop above, --slicing); out_proj (no bias).
                 d_inner = 2 d_model. The
                 reference's init (dt_proj U(+-dt_rank^-0.5), inverse-softplus
                 dt bias, A_log = log(1..N), D = 1).

Timing: with --mode fwdbwd (default) each run is one forward and one backward
of sum(y * g) with g a fixed random tensor of the output's shape (computed as
y.backward(g)); with --mode fwd, the forward only, under torch.no_grad() (no
input requires grad). --mode fwd,fwdbwd runs both in one process, one JSON
object each (fwd first). --device cuda: the inputs are drawn on the CPU (the
same values as a CPU run) and moved to the GPU; torch.cuda.synchronize() before
and after each timed run. --inner K: a timed run is K steps back to back (then
one synchronize); the time reported is per step. The JSON also has "device",
"mode", "gpu" (torch.cuda.get_device_name(), "" on the CPU), and for the scans
"bytes", the least memory traffic of one step as bench_mamba.cpp's scan_bytes
counts it (element size of --dtype):
  forward  4 B D L + 2 B N L + D N + 2 D + B D N elements
           (read u, delta, z, B, C, A, D, delta_bias; write y, last state)
  fwdbwd   11 B D L + 6 B N L + 3 (D N + 2 D) + B D N
           (the backward reads u, delta, z, grad_y, B, C, A, D, delta_bias and
           writes the gradient of each).
--dtype bfloat16 (scans only): the inputs (and g) are bfloat16 leaves; the scan
upcasts them to float32 (float32 state and arithmetic, as mamba_ssm's kernels)
and y is rounded to bfloat16. A CUDA out-of-memory error prints a JSON object
with "error" and exits with 3. For the scans
every input (u, delta, A, B, C, D, z, delta_bias) is a leaf that requires
grad, as inside a Mamba block; for the block, x and every parameter.
Gradients are dropped (set to None) after each run. The loop takes several
seconds per run at the default sizes (~1024 small steps forward and backward),
hence the small default --runs / --warmup. The first run is several times
slower than the next ones (fresh memory): keep --warmup >= 1.

--malloc: "cached" (default) tells glibc malloc, before the benchmark allocates
anything, never to hand memory back to the kernel (mallopt M_MMAP_MAX = 0,
M_TRIM_THRESHOLD = 2^31 - 1), so freed blocks are reused as ssmkit's host
allocator reuses its cached blocks (core/cpu_allocator.h). "stock" leaves
glibc's defaults: every large tensor is a fresh mmap, and the kernel's page
faults on it then dominate PyTorch's time. Measured at the default sizes, one
thread, after a warmup run: scan_loop 2.5 s cached vs 22 s stock,
scan_parallel 5.3-6.8 s vs 33-36 s (at the price of a higher peak RSS:
5.2 GB vs 2.7 GB for scan_parallel). The JSON also holds the 1-minute
load average before and after the runs: on a shared machine every small op of
the loop waits for its OpenMP threads to be scheduled, so a loaded machine
slows the loop far more than the big ops of the parallel scan.

--selftest (float64): scan_parallel == scan_loop (both slicings) (y, last
state, every gradient) at several lengths, odd ones included, and with an
initial state; scan_loop == a scalar loop; the block (both slicings) ==
tests/data/mamba_golden.h5's "mamba" case, out and every gradient (when h5py
and the file are there).
"""
import argparse
import ctypes
import json
import math
import os
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

CASES = ("scan_loop", "scan_parallel", "block")
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


# ---------------------------------------------------------------------------
# Selective scan: loop and parallel prefix


def scan_loop(u, delta, A, B, C, D, z, delta_bias, initial_state=None, slicing="unbind"):
    """u, delta, z (B, D, L); A (D, N); B, C (B, N, L); D, delta_bias (D);
    initial_state (B, D, N) or None. Returns y (B, D, L), last state (B, D, N).
    slicing: how step t reads the precomputed (B, D, L, N) tensors and C:
    "unbind" (one autograd node for all L slices) or "index" (x[:, :, t], as
    selective_scan_ref; then every step's backward writes a zero-filled
    gradient of the whole tensor, O(L^2) memory traffic in all)."""
    delta = F.softplus(delta + delta_bias[:, None])  # (B, D, L)
    dA = torch.exp(torch.einsum("bdl,dn->bdln", delta, A))  # (B, D, L, N)
    dBu = torch.einsum("bdl,bnl,bdl->bdln", delta, B, u)  # (B, D, L, N)
    h = initial_state if initial_state is not None else u.new_zeros(u.shape[0], u.shape[1],
                                                                    A.shape[1])
    L = u.shape[2]
    if slicing == "unbind":
        dA_t, dBu_t, C_t = dA.unbind(2), dBu.unbind(2), C.unbind(2)
    elif slicing == "index":
        dA_t = [dA[:, :, t] for t in range(L)]
        dBu_t = [dBu[:, :, t] for t in range(L)]
        C_t = [C[:, :, t] for t in range(L)]
    else:
        raise ValueError(f"slicing must be unbind or index, got {slicing!r}")
    ys = []
    for t in range(L):
        h = dA_t[t] * h + dBu_t[t]  # (B, D, N)
        ys.append(torch.einsum("bdn,bn->bd", h, C_t[t]))
    y = torch.stack(ys, dim=2) + D[:, None] * u  # (B, D, L)
    return y * F.silu(z), h


def linear_scan(a, b):
    """h_t = a_t h_{t-1} + b_t along the first axis (time), h_{-1} = 0, by recursive
    doubling: the pairs (a_{2k}, b_{2k}), (a_{2k+1}, b_{2k+1}) combine into
    (a_{2k+1} a_{2k}, a_{2k+1} b_{2k} + b_{2k+1}), whose scan (half the length,
    recursively) is h at the odd indices; then h_{2k} = a_{2k} h_{2k-1} + b_{2k}.
    Depth 2 log2 L, work O(L). Time-major so that every even / odd half is a run
    of contiguous blocks (twice as fast as striding the last axis).
    a, b (L, ...) -> h (L, ...)."""
    L = a.shape[0]
    if L == 1:
        return b
    if L % 2:  # append the identity pair (1, 0), drop it at the end
        return linear_scan(torch.cat([a, torch.ones_like(a[:1])]),
                           torch.cat([b, torch.zeros_like(b[:1])]))[:L]
    # Even / odd halves by one unbind each: its backward stacks the two halves' gradients
    # (a[0::2], a[1::2] would each get a zero-filled full-length gradient, then a sum).
    a0, a1 = a.unflatten(0, (L // 2, 2)).unbind(1)  # (L/2, ...) each
    b0, b1 = b.unflatten(0, (L // 2, 2)).unbind(1)
    h_odd = linear_scan(a1 * a0, a1 * b0 + b1)  # h_1, h_3, ...
    h_before = torch.cat([torch.zeros_like(h_odd[:1]), h_odd[:-1]])  # h_{-1} = 0, h_1, ...
    h_even = a0 * h_before + b0  # h_0, h_2, ...
    return torch.stack([h_even, h_odd], dim=1).flatten(0, 1)


def scan_parallel(u, delta, A, B, C, D, z, delta_bias, initial_state=None):
    """scan_loop by a parallel prefix; same arguments and results."""
    delta = F.softplus(delta + delta_bias[:, None])  # (B, D, L)
    dt = delta.permute(2, 0, 1)  # (L, B, D)
    a = torch.exp(dt[..., None] * A)  # (L, B, D, N)
    b = (dt * u.permute(2, 0, 1))[..., None] * B.permute(2, 0, 1)[:, :, None, :]  # (L, B, D, N)
    if initial_state is not None:  # fold h_{-1} into b_0
        b = torch.cat([b[:1] + a[:1] * initial_state, b[1:]])
    h = linear_scan(a, b)  # (L, B, D, N)
    y = (h * C.permute(2, 0, 1)[:, :, None, :]).sum(-1).permute(1, 2, 0)  # (B, D, L)
    y = y + D[:, None] * u
    return y * F.silu(z), h[-1]


def scan_inputs(Bsz, D, N, L, dtype, generator=None):
    """Inputs as inside a Mamba block at init: A = -(1..N) per channel, D = 1,
    delta_bias = softplus^-1(dt), dt = exp(U[log 1e-3, log 1e-1])."""
    def randn(*shape):
        return torch.randn(*shape, dtype=dtype, generator=generator)
    dt = torch.exp(torch.rand(D, dtype=dtype, generator=generator)
                   * (math.log(0.1) - math.log(1e-3)) + math.log(1e-3))
    return {
        "u": randn(Bsz, D, L),
        "delta": randn(Bsz, D, L) * 0.5,
        "A": -torch.arange(1, N + 1, dtype=dtype).repeat(D, 1),
        "B": randn(Bsz, N, L),
        "C": randn(Bsz, N, L),
        "D": torch.ones(D, dtype=dtype),
        "z": randn(Bsz, D, L),
        "delta_bias": dt + torch.log(-torch.expm1(-dt)),
    }


SCAN_ARGS = ("u", "delta", "A", "B", "C", "D", "z", "delta_bias")


# ---------------------------------------------------------------------------
# Mamba block


class MambaBlock(nn.Module):
    """mamba_simple.Mamba's non-fused forward with scan_loop (parameter names as its
    state_dict)."""

    def __init__(self, d_model, d_state=16, d_conv=4, expand=2, dtype=torch.float32,
                 slicing="unbind"):
        super().__init__()
        self.slicing = slicing
        self.d_inner, self.d_state = expand * d_model, d_state
        self.dt_rank = math.ceil(d_model / 16)
        di, r = self.d_inner, self.dt_rank
        kw = {"dtype": dtype}
        self.in_proj = nn.Linear(d_model, 2 * di, bias=False, **kw)
        self.conv1d = nn.Conv1d(di, di, d_conv, groups=di, padding=d_conv - 1, bias=True, **kw)
        self.x_proj = nn.Linear(di, r + 2 * d_state, bias=False, **kw)
        self.dt_proj = nn.Linear(r, di, bias=True, **kw)
        with torch.no_grad():
            self.dt_proj.weight.uniform_(-r ** -0.5, r ** -0.5)
            dt = torch.exp(torch.rand(di, **kw) * (math.log(0.1) - math.log(1e-3))
                           + math.log(1e-3)).clamp(min=1e-4)
            self.dt_proj.bias.copy_(dt + torch.log(-torch.expm1(-dt)))
        self.A_log = nn.Parameter(torch.log(torch.arange(1, d_state + 1, **kw)).repeat(di, 1))
        self.D = nn.Parameter(torch.ones(di, **kw))
        self.out_proj = nn.Linear(di, d_model, bias=False, **kw)

    def forward(self, x):  # (B, L, d_model) -> (B, L, d_model)
        L = x.shape[1]
        xz = (x @ self.in_proj.weight.t()).transpose(1, 2)  # (B, 2 d_inner, L)
        xs, z = xz.chunk(2, dim=1)
        xs = F.silu(self.conv1d(xs)[..., :L])  # (B, d_inner, L)
        dt, Bm, Cm = torch.split(self.x_proj(xs.transpose(1, 2)),
                                 [self.dt_rank, self.d_state, self.d_state], dim=-1)
        dt = (dt @ self.dt_proj.weight.t()).transpose(1, 2)  # (B, d_inner, L), no bias
        y, _ = scan_loop(xs, dt, -torch.exp(self.A_log), Bm.transpose(1, 2).contiguous(),
                         Cm.transpose(1, 2).contiguous(), self.D, z, self.dt_proj.bias,
                         slicing=self.slicing)
        return self.out_proj(y.transpose(1, 2))


# ---------------------------------------------------------------------------
# Measurement


def time_step(step, runs, warmup, inner=1, sync=lambda: None):
    """Per-step milliseconds of runs timed runs (after warmup untimed ones), each
    inner steps then sync()."""
    def one():
        sync()
        t0 = time.perf_counter()
        for _ in range(inner):
            step()
        sync()
        return (time.perf_counter() - t0) * 1e3 / inner
    for _ in range(warmup):
        one()
    return [one() for _ in range(runs)]


def scan_bytes(B, D, N, L, backward, elem):
    """The least memory traffic of one scan step in bytes (bench_mamba.cpp's
    scan_bytes): forward reads u, delta, z, B, C, A, D, delta_bias and writes y and
    the last state; the backward reads the inputs and grad_y again and writes every
    input's gradient."""
    bdl, bnl, small, bdn = B * D * L, B * N * L, D * N + 2 * D, B * D * N
    fwd = 4 * bdl + 2 * bnl + small + bdn
    bwd = 7 * bdl + 4 * bnl + 2 * small
    return elem * (fwd + bwd if backward else fwd)


def make_step(args, mode, cache):
    """(step, config) for the case; step runs one forward (mode fwd) or one forward +
    backward (mode fwdbwd). Inputs drawn on the CPU (once per process: cache), then
    moved to args.device."""
    torch.manual_seed(0)
    dev = torch.device(args.device)
    backward = mode == "fwdbwd"
    dtype = getattr(torch, args.dtype)
    if args.case == "block":
        block = MambaBlock(args.d_model, args.N, slicing=args.slicing).to(dev)
        x = torch.randn(args.batch, args.seq, args.d_model).to(dev).requires_grad_(backward)
        g = torch.randn(args.batch, args.seq, args.d_model).to(dev)
        leaves = [x] + list(block.parameters())

        def forward():
            return block(x)
        config = {"d_model": args.d_model, "batch": args.batch, "seq": args.seq,
                  "d_state": args.N, "d_inner": block.d_inner, "dt_rank": block.dt_rank,
                  "d_conv": 4, "scan": "loop (selective_scan_ref)", "slicing": args.slicing,
                  "grads": "x and every parameter"}
    else:
        if not cache:
            cache.update(scan_inputs(args.B, args.D, args.N, args.L, torch.float32))
            cache["g"] = torch.randn(args.B, args.D, args.L)
        leaves = [cache[k].to(dtype).to(dev).requires_grad_(backward) for k in SCAN_ARGS]
        g = cache["g"].to(dtype).to(dev)
        config = {"B": args.B, "D": args.D, "N": args.N, "L": args.L, "G": 1,
                  "options": "input-dependent B, C; z; D; delta_bias; softplus",
                  "grads": ", ".join(SCAN_ARGS) if backward else "none (forward only)",
                  "bytes": scan_bytes(args.B, args.D, args.N, args.L, backward,
                                      torch.empty((), dtype=dtype).element_size())}
        scan = scan_parallel
        if args.case == "scan_loop":
            config["slicing"] = args.slicing

            def scan(*a):
                return scan_loop(*a, slicing=args.slicing)
        if dtype == torch.float32:
            def forward():
                return scan(*leaves)[0]
        else:  # bfloat16 leaves, float32 state and arithmetic, bfloat16 y
            config["compute_dtype"] = "float32"

            def forward():
                return scan(*(t.float() for t in leaves))[0].to(dtype)

    if backward:
        def step():
            forward().backward(g)
            for t in leaves:
                t.grad = None
    else:
        def step():
            with torch.no_grad():
                forward()
    return step, config


def set_malloc(mode):
    """Applies --malloc; returns what was done, for the JSON."""
    if mode == "stock":
        return "stock glibc malloc"
    M_TRIM_THRESHOLD, M_MMAP_MAX = -1, -4  # glibc's malloc.h
    try:
        libc = ctypes.CDLL(None)
        ok = libc.mallopt(M_MMAP_MAX, 0) == 1 and libc.mallopt(M_TRIM_THRESHOLD, 2**31 - 1) == 1
    except (OSError, AttributeError):
        ok = False
    if not ok:
        return "stock (mallopt unavailable: not glibc?)"
    return "cached: mallopt M_MMAP_MAX 0, M_TRIM_THRESHOLD 2^31-1"


def is_oom(e):
    oom = getattr(torch.cuda, "OutOfMemoryError", None)
    return (oom is not None and isinstance(e, oom)) or "out of memory" in str(e)


def run_bench(args):
    torch.set_num_threads(args.threads)
    cuda = args.device == "cuda"
    sync = torch.cuda.synchronize if cuda else (lambda: None)
    gpu = torch.cuda.get_device_name() if cuda else ""
    cache = {}
    for mode in args.modes:
        head = {"case": args.case, "device": args.device, "mode": mode, "gpu": gpu,
                "threads": args.threads, "dtype": args.dtype, "inner": args.inner}
        if cuda:
            torch.cuda.reset_peak_memory_stats()
        try:
            step, config = make_step(args, mode, cache)
            config["malloc"] = args.malloc_applied
            load_before = os.getloadavg()[0]
            times = time_step(step, args.runs, args.warmup, args.inner, sync)
        except RuntimeError as e:
            if not (cuda and is_oom(e)):
                raise
            print(json.dumps(dict(head, error=f"CUDA out of memory: {str(e)[:300]}")),
                  flush=True)
            sys.exit(3)
        out = {**head, **config, "impl": "pytorch", "torch_version": torch.__version__,
               "runs_ms": [round(t, 4) for t in times],
               "median_ms": sorted(times)[len(times) // 2], "min_ms": min(times),
               "runs": args.runs, "warmup": args.warmup,
               "loadavg_1min": [round(load_before, 2), round(os.getloadavg()[0], 2)]}
        if cuda:
            out["peak_gpu_memory_gib"] = round(torch.cuda.max_memory_allocated() / 2**30, 2)
        print(json.dumps(out), flush=True)
        del step
        if cuda:
            torch.cuda.empty_cache()


# ---------------------------------------------------------------------------
# Self-test (float64)


def scan_scalar(x, initial_state=None):
    """The scan by scalar loops over (b, d, n, t): the oracle of the self-test."""
    u, delta, A, B, C = (x[k].tolist() for k in ("u", "delta", "A", "B", "C"))
    Dv, z, bias = x["D"].tolist(), x["z"].tolist(), x["delta_bias"].tolist()
    nb, nd, L = x["u"].shape
    N = x["A"].shape[1]
    y = [[[0.0] * L for _ in range(nd)] for _ in range(nb)]
    for b in range(nb):
        for d in range(nd):
            for n in range(N):
                h = 0.0 if initial_state is None else initial_state[b, d, n].item()
                for t in range(L):
                    dt = math.log1p(math.exp(delta[b][d][t] + bias[d]))
                    h = math.exp(dt * A[d][n]) * h + dt * B[b][n][t] * u[b][d][t]
                    y[b][d][t] += C[b][n][t] * h
            for t in range(L):
                zz = z[b][d][t]
                y[b][d][t] = (y[b][d][t] + Dv[d] * u[b][d][t]) * zz / (1 + math.exp(-zz))
    return torch.tensor(y, dtype=torch.float64)


def selftest():
    failures = []

    def check(name, got, want, tol, floor=1.0):
        """max |got - want| <= tol * max(floor, max |want|)."""
        err = (got - want).abs().max().item()
        scale = want.abs().max().item()
        ok = err <= tol * max(floor, scale)
        print(f"{'ok  ' if ok else 'FAIL'} {name:56s} max err {err:.2e} (scale {scale:.2e})")
        if not ok:
            failures.append(name)

    gen = torch.Generator().manual_seed(0)
    dt64 = torch.float64
    for L in (1, 2, 7, 16, 37):
        for with_h0 in (False, True):
            x = scan_inputs(2, 3, 4, L, dt64, gen)
            x["A"] = x["A"] * torch.exp(torch.randn(3, 4, dtype=dt64, generator=gen) * 0.3)
            x["delta_bias"] = x["delta_bias"] + 3.0  # dt ~ 1: a scan that forgets
            x["D"] = torch.randn(3, dtype=dt64, generator=gen)
            h0 = torch.randn(2, 3, 4, dtype=dt64, generator=gen) if with_h0 else None
            leaves = {k: x[k].clone().requires_grad_(True) for k in SCAN_ARGS}
            args = [leaves[k] for k in SCAN_ARGS] + [h0]
            tag = f"L={L}{', h0' if with_h0 else ''}"
            y_i, h_i = scan_loop(*args, slicing="index")
            y_l, h_l = scan_loop(*args)
            y_p, h_p = scan_parallel(*args)
            check(f"scan_loop == scalar loop ({tag})", y_l.detach(), scan_scalar(x, h0), 1e-12)
            check(f"scan_loop index == unbind: y ({tag})", y_i.detach(), y_l.detach(), 0.0)
            check(f"scan_parallel == scan_loop: y ({tag})", y_p.detach(), y_l.detach(), 1e-12)
            check(f"scan_parallel == scan_loop: last state ({tag})", h_p.detach(),
                  h_l.detach(), 1e-12)
            g, g_h = torch.randn_like(y_l), torch.randn_like(h_l)  # loss on both outputs
            loss_l = (y_l * g).sum() + (h_l * g_h).sum()
            loss_p = (y_p * g).sum() + (h_p * g_h).sum()
            wrt = [leaves[k] for k in SCAN_ARGS]
            # allow_unused: at L = 1 without h0 the parallel scan never reads A.
            loss_i = (y_i * g).sum() + (h_i * g_h).sum()
            grads_l, grads_p, grads_i = (
                [torch.zeros_like(w) if d is None else d
                 for d, w in zip(torch.autograd.grad(loss, wrt, allow_unused=True), wrt)]
                for loss in (loss_l, loss_p, loss_i))
            for k, gp, gl, gi in zip(SCAN_ARGS, grads_p, grads_l, grads_i):
                check(f"scan_parallel == scan_loop: grad {k} ({tag})", gp, gl, 1e-11)
                check(f"scan_loop index == unbind: grad {k} ({tag})", gi, gl, 1e-14)

    golden = os.path.join(ROOT, "tests", "data", "mamba_golden.h5")
    try:
        import h5py
    except ImportError:
        h5py = None
    if h5py is None or not os.path.exists(golden):
        print(f"skip block == {golden} (h5py or the file missing)")
    else:
        with h5py.File(golden, "r") as f:
            c = f["mamba"]
            params = {k: torch.from_numpy(v[()]) for k, v in c["params"].items()}
            for slicing in ("unbind", "index"):
                block = MambaBlock(int(c.attrs["d_model"]), int(c.attrs["d_state"]),
                                   int(c.attrs["d_conv"]), int(c.attrs["expand"]), dtype=dt64,
                                   slicing=slicing)
                block.load_state_dict(params)
                x = torch.from_numpy(c["inputs/x"][()]).requires_grad_(True)
                R = torch.from_numpy(c["inputs/R"][()])
                out = block(x)
                check(f"block ({slicing}) == golden mamba: out", out.detach(),
                      torch.from_numpy(c["outputs/out"][()]), 1e-12, floor=0.0)
                (out * R).sum().backward()
                got = dict(block.named_parameters(), x=x)
                for k in c["grads"]:
                    want = torch.from_numpy(c["grads"][k][()])
                    check(f"block ({slicing}) == golden mamba: grad {k}", got[k].grad, want,
                          1e-12, floor=0.0)

    if failures:
        print(f"{len(failures)} check(s) failed: {', '.join(failures)}")
        return 1
    print("all checks passed")
    return 0


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--case", choices=CASES)
    p.add_argument("--B", type=int, default=8)
    p.add_argument("--D", type=int, default=512)
    p.add_argument("--N", type=int, default=16, help="d_state (scans and block)")
    p.add_argument("--L", type=int, default=1024)
    p.add_argument("--d_model", type=int, default=256)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--seq", type=int, default=1024)
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--slicing", choices=("unbind", "index"), default="unbind",
                   help="how the loop reads step t (scan_loop, block); see the docstring")
    p.add_argument("--malloc", choices=("cached", "stock"), default="cached",
                   help="glibc malloc keeps freed memory (cached) or returns it (stock)")
    p.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    p.add_argument("--mode", default="fwdbwd",
                   help="fwd, fwdbwd (default) or a comma-separated list (fwd,fwdbwd)")
    p.add_argument("--inner", type=int, default=1,
                   help="steps per timed run, one synchronize per run")
    p.add_argument("--dtype", choices=("float32", "bfloat16"), default="float32",
                   help="input dtype of the scans (bfloat16: float32 state and arithmetic)")
    p.add_argument("--selftest", action="store_true")
    args = p.parse_args()
    args.malloc_applied = set_malloc(args.malloc)
    if args.selftest:
        sys.exit(selftest())
    if args.case is None:
        p.error("--case is required (or --selftest)")
    args.modes = [m for m in args.mode.split(",") if m]
    if not args.modes or any(m not in ("fwd", "fwdbwd") for m in args.modes):
        p.error(f"--mode takes fwd, fwdbwd or both comma-separated, got {args.mode!r}")
    if args.device == "cuda" and not torch.cuda.is_available():
        print(f"mamba_torch.py: --device cuda, but torch {torch.__version__} sees no CUDA GPU",
              file=sys.stderr)
        sys.exit(2)
    if args.case == "block" and args.dtype != "float32":
        p.error("--dtype bfloat16 is for the scans only")
    sizes = ("d_model", "batch", "seq", "N") if args.case == "block" else ("B", "D", "N", "L")
    bad = [f"--{k} {getattr(args, k)}" for k in sizes if getattr(args, k) < 1]
    if bad or args.runs < 1 or args.warmup < 0 or args.threads < 1 or args.inner < 1:
        p.error(f"sizes, --runs and --threads must be positive, --warmup >= 0; got "
                f"{' '.join(bad)} --runs {args.runs} --warmup {args.warmup} "
                f"--threads {args.threads}")
    run_bench(args)


if __name__ == "__main__":
    main()
