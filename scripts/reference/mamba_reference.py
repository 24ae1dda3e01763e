#!/usr/bin/python3
"""Golden values of Mamba's selective scan, the Mamba block and Vision Mamba's
bidirectional block, in plain PyTorch float64, for ssmkit's C++ tests.

Regenerate (Debian's python3-torch, PyTorch 1.13, and python3-h5py; from the
source root):

    /usr/bin/python3 scripts/reference/mamba_reference.py

which checks the reference against independent formulations first (see
"Self-checks" below; --check-only stops there) and writes
tests/data/mamba_golden.h5 (--out to write elsewhere). The file is the same
bit for bit on every run on the same PyTorch build (fixed seed, no
timestamps).

Semantics (written from the papers and the reference code, state-spaces/mamba
mamba_ssm/ops/selective_scan_interface.py selective_scan_ref and
mamba_ssm/modules/mamba_simple.py Mamba; hustvl/Vim mamba-1p1p1 bimamba v2):

  selective scan, per batch b, channel d, state n, time t:
    delta' = delta + delta_bias (when given), then softplus (when delta_softplus)
    h_t    = exp(delta'_t A_dn) h_{t-1} + delta'_t B_tn u_t,  h_{-1} = initial_state or 0
    y_t    = sum_n C_tn h_tn + D_d u_t,  then y_t *= silu(z_t) (when z is given)
    last_state = h_{L-1}
  B and C are constant (D, N) or input-dependent (B, G, N, L); channel d reads
  group d // (D / G). (selective_scan_ref itself computes in float32 and has no
  initial state; here everything is float64 and initial_state is h_{-1}.)

  Mamba block (no fused path, no inference cache), x (B, L, d_model):
    xz = in_proj(x) -> (B, 2 d_inner, L);  x, z = first / second half of channels
    x  = silu(depthwise conv1d(x, kernel d_conv, bias, left zero padding d_conv - 1)[:L])
    dt | B | C = x_proj(x) split into dt_rank | N | N  (B, C as (B, N, L))
    dt = dt_proj.weight @ dt  (the bias is NOT added here)
    y  = scan(x, dt, A = -exp(A_log), B, C, D, z, delta_bias = dt_proj.bias,
              delta_softplus = True)
    out = out_proj(y)  (no bias)      -> (B, L, d_model)
  d_model 16, d_state N 8, d_conv 4, expand 2 (d_inner 32), dt_rank ceil(16/16) = 1.

  Vision Mamba block (bimamba_type "v2", if_devide_out = True): the same xz;
    y_f = the branch above on (x, z);
    y_b = the same branch on (x.flip(L), z.flip(L)) with conv1d_b, x_proj_b,
          dt_proj_b, A_b_log, D_b;
    out = out_proj((y_f + y_b.flip(L)) / 2).

Parameters: created in float64 in the reference's order from torch.manual_seed
(SEED); nn.Linear / nn.Conv1d default init except dt_proj.weight ~
U(+-dt_rank^-0.5), dt_proj.bias = inverse softplus of dt = exp(U[log 1e-3,
log 1e-1]) clamped to >= 1e-4, A_log = log(1..N) per channel, D = 1. The
backward branch is initialised the same way (Vim's code leaves dt_proj_b at
nn.Linear's default; the stored values are what the tests use either way).
Then, so that a test can tell the parameters apart, A_log, A_b_log += 0.05 n,
D, D_b += 0.1 n, conv1d(_b).bias, dt_proj(_b).bias += 0.1 n (n ~ N(0, 1)).
At this init (softplus(dt) ~ 1e-3..1e-1, small B and C) the scan carries only
~0.1% of the blocks' out (the D u skip dominates): compare in float64 with a
tolerance scaled per tensor (the stored values are exact to ~1e-15); the grads
of A_log, dt_proj.*, x_proj.weight reach the parameters only through the scan
and so check it at their own scale.

File layout (HDF5; every dataset float64, C order, shapes as in PyTorch):

  /  attributes: format = "ssmkit-mamba-golden", version = 1,
                 generator = "scripts/reference/mamba_reference.py",
                 torch_version, seed
  /scan_const    constant B/C; no D, z, delta_bias, softplus or initial state
                 (B, D, N, L) = (2, 3, 4, 10); delta > 0
      inputs/u (B, D, L)  inputs/delta (B, D, L)  inputs/A (D, N) (negative)
      inputs/B (D, N)  inputs/C (D, N)
  /scan_full     input-dependent B/C with G = 2, z, D, delta_bias, softplus,
                 initial state; (B, D, N, L, G) = (2, 4, 3, 12, 2)
      inputs/u, delta, z (B, D, L)  inputs/A (D, N)  inputs/B, C (B, G, N, L)
      inputs/D (D)  inputs/delta_bias (D)  inputs/initial_state (B, D, N)
    both scan groups:
      inputs/R (B, D, L)  inputs/R_last (B, D, N)
      outputs/y (B, D, L)  outputs/last_state (B, D, N)
      grads/<every input but R, R_last>: gradient of
                 sum(y * R) + sum(last_state * R_last)
      attributes: delta_softplus (0/1), G (0 for constant B/C)
  /mamba         the Mamba block, (batch, L) = (2, 12)
      inputs/x (B, L, d_model)  inputs/R (B, L, d_model)
      params/in_proj.weight (2 d_inner, d_model)  params/conv1d.weight (d_inner, 1, d_conv)
      params/conv1d.bias (d_inner)  params/x_proj.weight (dt_rank + 2 N, d_inner)
      params/dt_proj.weight (d_inner, dt_rank)  params/dt_proj.bias (d_inner)
      params/A_log (d_inner, N)  params/D (d_inner)  params/out_proj.weight (d_model, d_inner)
      outputs/out (B, L, d_model)
      grads/x and grads/<every parameter name>: gradient of sum(out * R)
      attributes: d_model, d_state, d_conv, expand, d_inner, dt_rank
  /bimamba       the Vim v2 block, (batch, L) = (2, 12); as /mamba plus
      params/conv1d_b.weight, conv1d_b.bias, x_proj_b.weight, dt_proj_b.weight,
      dt_proj_b.bias, A_b_log, D_b (the same shapes as their forward twins) and
      their grads
      attributes: as /mamba plus bimamba_type = "v2", if_devide_out = 1

Self-checks (run before writing; float64):
  1. the scan equals a scalar loop over (b, d, n, t) in numpy written from the
     formula (both scan cases);
  2. the Mamba block equals its recurrent form: a conv state of the last
     d_conv inputs and the (B, D, N) SSM state stepped one token at a time
     (mamba_simple.Mamba.step's semantics);
  3. the Vim block equals forward step mode plus the backward branch stepped
     from t = L-1 down to 0 on the unflipped sequence;
  4. torch.autograd.gradcheck of the scan_full scan on a smaller case.
"""
import argparse
import math
import os
import sys

import h5py
import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

FORMAT = "ssmkit-mamba-golden"
VERSION = 1
SEED = 20231201
GENERATOR = "scripts/reference/mamba_reference.py"
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DT = torch.float64


# ---------------------------------------------------------------------------
# Selective scan


def expand_groups(M, D):
    """Input-dependent B or C, (B, G, N, L) or (B, N, L), -> (B, D, N, L): channel d
    reads group d // (D / G)."""
    if M.dim() == 3:
        M = M.unsqueeze(1)
    G = M.shape[1]
    if D % G:
        raise ValueError(f"D = {D} is not a multiple of G = {G}")
    return M.repeat_interleave(D // G, dim=1)


def selective_scan(u, delta, A, B, C, D=None, z=None, delta_bias=None, delta_softplus=False,
                   initial_state=None):
    """u, delta, z (B, D, L); A (D, N); B, C (D, N) or (B, G, N, L) or (B, N, L);
    D, delta_bias (D); initial_state (B, D, N). Returns y (B, D, L), last_state (B, D, N)."""
    batch, dim, L = u.shape
    N = A.shape[1]
    if delta_bias is not None:
        delta = delta + delta_bias[:, None]
    if delta_softplus:
        delta = F.softplus(delta)
    Bx = B if B.dim() == 2 else expand_groups(B, dim)  # (D, N) or (B, D, N, L)
    Cx = C if C.dim() == 2 else expand_groups(C, dim)
    h = initial_state if initial_state is not None else u.new_zeros(batch, dim, N)  # (B, D, N)
    ys = []
    for t in range(L):
        dt = delta[:, :, t, None]  # (B, D, 1)
        Bt = Bx if Bx.dim() == 2 else Bx[..., t]  # (D, N) or (B, D, N)
        Ct = Cx if Cx.dim() == 2 else Cx[..., t]
        h = torch.exp(dt * A) * h + dt * Bt * u[:, :, t, None]
        ys.append((h * Ct).sum(-1))
    y = torch.stack(ys, dim=-1)  # (B, D, L)
    if D is not None:
        y = y + D[:, None] * u
    if z is not None:
        y = y * F.silu(z)
    return y, h


def scan_numpy(u, delta, A, B, C, D=None, z=None, delta_bias=None, delta_softplus=False,
               initial_state=None):
    """Scalar loops over (b, d, n, t): the oracle of self-check 1."""
    u, delta, A = u.numpy(), delta.numpy(), A.numpy()
    B, C = B.numpy(), C.numpy()
    nb, nd, L = u.shape
    N = A.shape[1]
    y = np.zeros((nb, nd, L))
    last = np.zeros((nb, nd, N))
    for b in range(nb):
        for d in range(nd):
            for n in range(N):
                h = 0.0 if initial_state is None else float(initial_state[b, d, n])
                for t in range(L):
                    dt = delta[b, d, t]
                    if delta_bias is not None:
                        dt += float(delta_bias[d])
                    if delta_softplus:
                        dt = math.log1p(math.exp(dt))
                    if B.ndim == 2:
                        bv, cv = B[d, n], C[d, n]
                    else:
                        g = d // (nd // B.shape[1])
                        bv, cv = B[b, g, n, t], C[b, g, n, t]
                    h = math.exp(dt * A[d, n]) * h + dt * bv * u[b, d, t]
                    y[b, d, t] += cv * h
                last[b, d, n] = h
            for t in range(L):
                if D is not None:
                    y[b, d, t] += float(D[d]) * u[b, d, t]
                if z is not None:
                    zz = float(z[b, d, t])
                    y[b, d, t] *= zz / (1 + math.exp(-zz))
    return torch.from_numpy(y), torch.from_numpy(last)


def scan_inputs(batch, dim, N, L, G, full):
    """Random inputs of a scan case; G = 0: constant B/C."""
    x = {}
    x["u"] = torch.randn(batch, dim, L, dtype=DT)
    if full:
        x["delta"] = torch.randn(batch, dim, L, dtype=DT) * 0.5 - 1.0  # raw, before softplus
    else:
        x["delta"] = torch.rand(batch, dim, L, dtype=DT) * 0.5 + 0.05  # used as is: > 0
    x["A"] = -torch.exp(torch.randn(dim, N, dtype=DT) * 0.5)  # (D, N) < 0
    shape = (batch, G, N, L) if G else (dim, N)
    x["B"] = torch.randn(*shape, dtype=DT)
    x["C"] = torch.randn(*shape, dtype=DT)
    if full:
        x["D"] = torch.randn(dim, dtype=DT)
        x["z"] = torch.randn(batch, dim, L, dtype=DT)
        x["delta_bias"] = torch.randn(dim, dtype=DT) * 0.5
        x["initial_state"] = torch.randn(batch, dim, N, dtype=DT)
    return x


def scan_call(x, softplus):
    names = ("D", "z", "delta_bias", "initial_state")
    return selective_scan(x["u"], x["delta"], x["A"], x["B"], x["C"],
                          delta_softplus=softplus, **{k: x.get(k) for k in names})


# ---------------------------------------------------------------------------
# Mamba and Vim blocks


class MambaBlock(nn.Module):
    """mamba_simple.Mamba's non-fused forward; bidirectional: Vim's bimamba v2 with
    if_devide_out. Parameter names and creation order follow the reference."""

    def __init__(self, d_model, d_state=8, d_conv=4, expand=2, bidirectional=False,
                 dt_min=1e-3, dt_max=1e-1, dt_floor=1e-4):
        super().__init__()
        self.d_model, self.d_state, self.d_conv, self.expand = d_model, d_state, d_conv, expand
        self.d_inner = expand * d_model
        self.dt_rank = math.ceil(d_model / 16)
        self.bidirectional = bidirectional
        di, r, N = self.d_inner, self.dt_rank, d_state
        self.in_proj = nn.Linear(d_model, 2 * di, bias=False, dtype=DT)
        self.conv1d, self.x_proj, self.dt_proj = self.branch_modules(dt_min, dt_max, dt_floor)
        self.A_log = nn.Parameter(self.a_log_init())  # (d_inner, N)
        self.D = nn.Parameter(torch.ones(di, dtype=DT))
        if bidirectional:
            self.A_b_log = nn.Parameter(self.a_log_init())
            self.conv1d_b, self.x_proj_b, self.dt_proj_b = self.branch_modules(
                dt_min, dt_max, dt_floor)
            self.D_b = nn.Parameter(torch.ones(di, dtype=DT))
        self.out_proj = nn.Linear(di, d_model, bias=False, dtype=DT)
        assert self.x_proj.weight.shape == (r + 2 * N, di)

    def a_log_init(self):
        n = torch.arange(1, self.d_state + 1, dtype=DT)
        return torch.log(n).repeat(self.d_inner, 1)  # (d_inner, N): log 1..N per channel

    def branch_modules(self, dt_min, dt_max, dt_floor):
        di, r, N, K = self.d_inner, self.dt_rank, self.d_state, self.d_conv
        conv = nn.Conv1d(di, di, K, groups=di, padding=K - 1, bias=True, dtype=DT)
        x_proj = nn.Linear(di, r + 2 * N, bias=False, dtype=DT)
        dt_proj = nn.Linear(r, di, bias=True, dtype=DT)
        with torch.no_grad():
            bound = r ** -0.5
            dt_proj.weight.uniform_(-bound, bound)
            log_lo, log_hi = math.log(dt_min), math.log(dt_max)
            dt = torch.exp(torch.rand(di, dtype=DT) * (log_hi - log_lo) + log_lo)
            dt = dt.clamp(min=dt_floor)
            dt_proj.bias.copy_(dt + torch.log(-torch.expm1(-dt)))  # softplus^-1(dt)
        return conv, x_proj, dt_proj

    def perturb(self):
        """Noise on A_log, D and the biases, so that the init's symmetries (every
        channel the same A_log, D = 1) cannot hide a mix-up."""
        suffixes = ("",) + (("_b",) if self.bidirectional else ())
        with torch.no_grad():
            for s in suffixes:
                getattr(self, "A_b_log" if s else "A_log").add_(
                    0.05 * torch.randn(self.d_inner, self.d_state, dtype=DT))
                getattr(self, "D" + s).add_(0.1 * torch.randn(self.d_inner, dtype=DT))
                getattr(self, "conv1d" + s).bias.add_(0.1 * torch.randn(self.d_inner, dtype=DT))
                getattr(self, "dt_proj" + s).bias.add_(0.1 * torch.randn(self.d_inner, dtype=DT))

    def branch_params(self, backward):
        if backward:
            return self.conv1d_b, self.x_proj_b, self.dt_proj_b, self.A_b_log, self.D_b
        return self.conv1d, self.x_proj, self.dt_proj, self.A_log, self.D

    def branch(self, x, z, backward):
        """x, z (B, d_inner, L) -> y (B, d_inner, L)."""
        conv, x_proj, dt_proj, A_log, D = self.branch_params(backward)
        L = x.shape[-1]
        x = F.silu(conv(x)[..., :L])  # causal: the first L outputs of the padded conv
        x_dbl = x_proj(x.transpose(1, 2))  # (B, L, dt_rank + 2N)
        dt, Bm, Cm = torch.split(x_dbl, [self.dt_rank, self.d_state, self.d_state], dim=-1)
        dt = (dt @ dt_proj.weight.t()).transpose(1, 2)  # (B, d_inner, L), no bias
        Bm, Cm = Bm.transpose(1, 2), Cm.transpose(1, 2)  # (B, N, L)
        y, _ = selective_scan(x, dt, -torch.exp(A_log), Bm, Cm, D, z,
                              delta_bias=dt_proj.bias, delta_softplus=True)
        return y

    def forward(self, x):
        """x (B, L, d_model) -> (B, L, d_model)."""
        xz = (x @ self.in_proj.weight.t()).transpose(1, 2)  # (B, 2 d_inner, L)
        xs, z = xz.chunk(2, dim=1)
        y = self.branch(xs, z, False)
        if self.bidirectional:
            y_b = self.branch(xs.flip(-1), z.flip(-1), True)
            y = (y + y_b.flip(-1)) / 2
        return self.out_proj(y.transpose(1, 2))

    @torch.no_grad()
    def branch_steps(self, xs, z, backward, order):
        """Recurrent form of one branch (Mamba.step's semantics), visiting the time
        indices in order: conv state of the last d_conv inputs, SSM state (B, d_inner, N)."""
        conv, x_proj, dt_proj, A_log, D = self.branch_params(backward)
        batch = xs.shape[0]
        w = conv.weight[:, 0, :]  # (d_inner, d_conv)
        A = -torch.exp(A_log)
        conv_state = xs.new_zeros(batch, self.d_inner, self.d_conv)
        h = xs.new_zeros(batch, self.d_inner, self.d_state)
        y = torch.zeros_like(xs)
        for t in order:
            conv_state = torch.cat([conv_state[..., 1:], xs[..., t, None]], dim=-1)
            xt = F.silu((conv_state * w).sum(-1) + conv.bias)  # (B, d_inner)
            dt, Bt, Ct = torch.split(x_proj(xt), [self.dt_rank, self.d_state, self.d_state], -1)
            dt = F.softplus(dt @ dt_proj.weight.t() + dt_proj.bias)  # (B, d_inner)
            h = torch.exp(dt[..., None] * A) * h + (dt * xt)[..., None] * Bt[:, None, :]
            y[..., t] = ((h * Ct[:, None, :]).sum(-1) + D * xt) * F.silu(z[..., t])
        return y

    @torch.no_grad()
    def forward_steps(self, x):
        xz = (x @ self.in_proj.weight.t()).transpose(1, 2)
        xs, z = xz.chunk(2, dim=1)
        L = xs.shape[-1]
        y = self.branch_steps(xs, z, False, range(L))
        if self.bidirectional:
            y = (y + self.branch_steps(xs, z, True, range(L - 1, -1, -1))) / 2
        return self.out_proj(y.transpose(1, 2))


# ---------------------------------------------------------------------------
# Cases


def gradients(loss, named):
    names = list(named)
    grads = torch.autograd.grad(loss, [named[k] for k in names], allow_unused=True)
    missing = [k for k, g in zip(names, grads) if g is None]
    if missing:
        raise RuntimeError(f"no gradient reaches {missing}")
    return dict(zip(names, grads))


def scan_case(batch, dim, N, L, G, full):
    x = scan_inputs(batch, dim, N, L, G, full)
    for v in x.values():
        v.requires_grad_(True)
    y, last = scan_call(x, softplus=full)
    R, R_last = torch.randn_like(y), torch.randn_like(last)
    grads = gradients((y * R).sum() + (last * R_last).sum(), x)
    inputs = dict(x, R=R, R_last=R_last)
    return {"inputs": inputs, "outputs": {"y": y, "last_state": last}, "grads": grads,
            "attrs": {"delta_softplus": int(full), "G": G}}


def block_case(bidirectional, batch=2, L=12, d_model=16):
    block = MambaBlock(d_model, d_state=8, d_conv=4, expand=2, bidirectional=bidirectional)
    block.perturb()
    x = torch.randn(batch, L, d_model, dtype=DT, requires_grad=True)
    out = block(x)
    R = torch.randn_like(out)
    params = dict(block.named_parameters())
    grads = gradients((out * R).sum(), dict(x=x, **params))
    attrs = {"d_model": d_model, "d_state": block.d_state, "d_conv": block.d_conv,
             "expand": block.expand, "d_inner": block.d_inner, "dt_rank": block.dt_rank}
    if bidirectional:
        attrs.update(bimamba_type="v2", if_devide_out=1)
    return {"inputs": {"x": x, "R": R}, "params": params, "outputs": {"out": out},
            "grads": grads,
            "attrs": attrs, "block": block}


def make_cases():
    torch.manual_seed(SEED)
    return {
        "scan_const": scan_case(2, 3, 4, 10, G=0, full=False),
        "scan_full": scan_case(2, 4, 3, 12, G=2, full=True),
        "mamba": block_case(False),
        "bimamba": block_case(True),
    }


# ---------------------------------------------------------------------------
# Self-checks


def self_check(cases):
    failures = []

    def check(name, got, want, tol):
        err = (got - want).abs().max().item()
        scale = max(1.0, want.abs().max().item())
        ok = err <= tol * scale
        print(f"{'ok  ' if ok else 'FAIL'} {name:52s} max err {err:.2e}")
        if not ok:
            failures.append(name)

    # 1. Scan vs scalar loops.
    for name in ("scan_const", "scan_full"):
        c = cases[name]
        x = {k: v.detach() for k, v in c["inputs"].items() if not k.startswith("R")}
        names = ("D", "z", "delta_bias", "initial_state")
        y, last = scan_numpy(x["u"], x["delta"], x["A"], x["B"], x["C"],
                             delta_softplus=bool(c["attrs"]["delta_softplus"]),
                             **{k: x.get(k) for k in names})
        check(f"{name}: y == scalar loop", c["outputs"]["y"].detach(), y, 1e-13)
        check(f"{name}: last_state == scalar loop", c["outputs"]["last_state"].detach(), last,
              1e-13)

    # 2, 3. Blocks vs their recurrent forms.
    for name in ("mamba", "bimamba"):
        c = cases[name]
        want = c["outputs"]["out"].detach()
        check(f"{name}: block == step-by-step recurrence",
              c["block"].forward_steps(c["inputs"]["x"].detach()), want, 1e-13)

    # 4. gradcheck of the full scan (every input) on a smaller case.
    g = torch.Generator().manual_seed(1)
    shapes = {"u": (1, 2, 5), "delta": (1, 2, 5), "z": (1, 2, 5), "B": (1, 2, 3, 5),
              "C": (1, 2, 3, 5), "D": (2,), "delta_bias": (2,), "initial_state": (1, 2, 3)}
    x = {k: torch.randn(*s, dtype=DT, generator=g, requires_grad=True) for k, s in shapes.items()}
    x["A"] = (-torch.exp(torch.randn(2, 3, dtype=DT, generator=g))).requires_grad_(True)
    keys = list(x)

    def f(*vals):
        y, last = scan_call(dict(zip(keys, vals)), softplus=True)
        return y, last
    ok = torch.autograd.gradcheck(f, tuple(x[k] for k in keys), raise_exception=False)
    print(f"{'ok  ' if ok else 'FAIL'} scan gradcheck (all inputs, G = 2, both outputs)")
    if not ok:
        failures.append("scan gradcheck")
    return failures


# ---------------------------------------------------------------------------
# Output


def new_group(parent, name):
    """A group without modification times (so the file is the same bit for bit on
    every run)."""
    gcpl = h5py.h5p.create(h5py.h5p.GROUP_CREATE)
    gcpl.set_obj_track_times(False)
    return h5py.Group(h5py.h5g.create(parent.id, name.encode(), gcpl=gcpl))


def write(cases, path):
    tmp = path + ".tmp"
    fcpl = h5py.h5p.create(h5py.h5p.FILE_CREATE)
    fcpl.set_obj_track_times(False)
    # HDF5 1.8 object formats: compact groups (a third of the size of 1.6's symbol
    # tables here), readable by any HDF5 >= 1.8.
    fapl = h5py.h5p.create(h5py.h5p.FILE_ACCESS)
    fapl.set_libver_bounds(h5py.h5f.LIBVER_V18, h5py.h5f.LIBVER_V18)
    fid = h5py.h5f.create(tmp.encode(), h5py.h5f.ACC_TRUNC, fcpl=fcpl, fapl=fapl)
    with h5py.File(fid) as f:
        f.attrs["format"] = FORMAT
        f.attrs["version"] = VERSION
        f.attrs["generator"] = GENERATOR
        f.attrs["torch_version"] = str(torch.__version__)
        f.attrs["seed"] = SEED
        for name, c in cases.items():
            grp = new_group(f, name)
            for k, v in c["attrs"].items():
                grp.attrs[k] = v
            for section in ("inputs", "params", "outputs", "grads"):
                if section not in c:
                    continue
                sub = new_group(grp, section)
                for k, v in c[section].items():
                    arr = np.ascontiguousarray(v.detach().numpy(), dtype=np.float64)
                    sub.create_dataset(k, data=arr, track_times=False)
    os.replace(tmp, path)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", default=os.path.join(ROOT, "tests", "data", "mamba_golden.h5"))
    p.add_argument("--check-only", action="store_true", help="run the self-checks, write nothing")
    args = p.parse_args()
    torch.set_num_threads(1)  # thread-independent reductions, same bits every run
    cases = make_cases()
    failures = self_check(cases)
    if failures:
        sys.exit(f"mamba_reference.py: {len(failures)} self-check(s) failed: {failures}")
    if args.check_only:
        return
    write(cases, args.out)
    print(f"wrote {args.out} ({os.path.getsize(args.out)} bytes)")


if __name__ == "__main__":
    main()
