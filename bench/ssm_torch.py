#!/usr/bin/python3
"""The PyTorch half of bench/run_ssm.py: four S4-family layers in plain
PyTorch (float32, no extension packages; torch.fft as the reference S4 code
without its extensions), timed forward + backward on the CPU or a CUDA GPU,
one JSON object per case.

Usage:
  ssm_torch.py --layer s4d|s4|rtf|lssl [--what layer|kernel|fftconv[,...]]
               [--H 128 --N 64 --L 1024 --B 16] [--runs 10 --warmup 3]
               --threads T [--device cpu|cuda] [--inner K] [--memory]
  ssm_torch.py --selftest

--what (a comma-separated list runs each in turn, one JSON object each,
"what" saying which; default layer):
  layer    the whole layer below: u (B, H, L) -> (B, H, L); gradients of u and
           of every parameter.
  kernel   the layer's kernel generation alone, K = kernel(L) (H, L) from the
           same parameters as the layer (the Vandermonde product of s4d, the
           Cauchy + Woodbury + irfft of s4, ...); gradients of its parameters.
  fftconv  the FFT convolution alone: irfft(rfft(u, 2L) * rfft(k, 2L))[:L] + D u,
           u (B, H, L), k (H, L), D (H); gradients of u, k and D. Needs no
           --layer (the JSON has no "layer" and no "N").
--device cuda: the inputs and parameters are drawn on the CPU (the same values
as a CPU run), then moved to the GPU; torch.cuda.synchronize() before and after
every timed run. TF32 is turned off (cuDNN's convolutions use it by default;
ssmkit computes in exact float32 unless told otherwise). The JSON has "gpu"
(torch.cuda.get_device_name(); "" on the CPU) and "peak_gpu_memory_gib"
(torch.cuda.max_memory_allocated over the case). A CUDA out-of-memory prints a
JSON object with "error" and exits with 3.
--inner K: a timed run is K steps back to back, then one synchronize; the time
reported is per step. --inner 0: chosen after the warmup (then at least one
step) from one synchronized step of t ms: K = ceil(20 / t) clamped to [1, 32]
(bench_ssm's rule).

Every layer maps u (B, H, L) -> (B, H, L) the same way:
  K = kernel(L)                                            # (H, L)
  y = irfft(rfft(u, 2L) * rfft(K, 2L), 2L)[..., :L] + D u  # causal FFT conv
  y = GLU(Conv1d(H, 2H, kernel 1)(GELU(y)), over channels)
and the four differ only in how K is built from their parameters:
  s4d   diagonal A, ZOH, Vandermonde (S4D paper, "minimal S4D"): materialises
        (H, N/2, L) exactly as the reference's naive path does. Parameters
        log_dt (H), log_A_real, A_imag (H, N/2; S4D-Lin init), B and C
        (H, N/2, 2); B (starts at 1) is trained as in the full S4D kernel,
        where the minimal one folds it into C.
  s4    DPLR A = Lambda - P P^*, rank 1, bilinear; truncated generating
        function at the L/2+1 rfft nodes by a naive Cauchy kernel (the
        reference's cauchy_naive with the conj pairs written out and the
        division factored, so the Cauchy matrices 1 / (z - dt Lambda) are
        materialised as (H, N/2, L/2+1) once, not once per (B, P) x (C~, Q)
        pair), Woodbury correction, irfft (S4 paper, Algorithm 1).
        Parameters log_dt (H), Lambda, P, B, C~ (H, N/2, 2: complex as
        view_as_real), one copy per channel; Lambda, P, B start from the HiPPO
        LegS NPLR form (eigh of the skew part, as the s4 code; no clipping of
        B). C~ = C (I - A-bar^L) is drawn directly (complex normal), since C~ is
        what S4 trains and its value does not change the cost.
  rtf   rational transfer function (RTF paper): a, b (H, n = N), h0 (H);
        K = irfft(rfft([0, b, 0...], L) / rfft([1, a, 0...], L) + h0, L).
        a starts U(+-1/n) (the paper's "montel" init: stable), b ~ N(0, 1/n).
  lssl  LSSL: A (N, N) HiPPO LegS shared by all channels, B (N), log_dt (H),
        C (H, N), all trained; bilinear (GBT 1/2) per channel by a batched
        solve (H, N, N); K = C [B-bar, A-bar B-bar, ...] by the LSSL code's
        Krylov doubling, materialising (H, N, L).
log_dt ~ U[log 1e-3, log 1e-1] for all but rtf (which has no dt).

Timing: each step is one forward and one backward of sum(y * g) with g a fixed
random tensor of y's shape (computed as y.backward(g), the same gradients without
the extra product); u is a leaf that requires grad (as inside a network), so
the backward computes the input gradient as well as the parameter gradients.
(--what kernel: no input; fftconv: u, k and D are leaves.) Gradients are
dropped (set to None) after each step.

Memory (--memory, one --what, meant to run in a fresh process): on the CPU two
figures, both above the baseline taken after the layer, u and g are built;
on cuda one, peak_bytes = torch.cuda.max_memory_allocated during the second
step minus memory_allocated before it.
  peak_bytes      the allocator-level peak: the running sum of every tensor
                  allocation and free that torch's CPU allocator reports to
                  torch.profiler (profile_memory=True) during one
                  forward+backward, its maximum. This is the primary figure:
                  it counts exactly the tensor storage the step needs, like
                  ssmkit's allocator peak, and is independent of what glibc
                  malloc keeps or returns to the OS. Memory outside tensor
                  storage (pocketfft work buffers, autograd graph nodes,
                  oneDNN/OpenBLAS scratch) is not counted, as FFTW's and
                  OpenBLAS's own buffers are outside ssmkit's allocator.
  peak_rss_bytes  VmHWM - VmRSS across the first forward+backward of the
                  process, with the high-water mark reset (/proc/self/
                  clear_refs 5) right before it. It sees everything the OS
                  sees, but it undercounts when malloc reuses memory freed
                  while building the layer and overcounts by first-call costs
                  (thread pool, FFT plans), so it is the cross-check, not the
                  headline: measured here on s4d at H=128 it reads 306 MB on
                  the first call, 151 MB on the second and 101 MB on the
                  third, while the allocator figure is 152 MB every time.
                  Falls back to ru_maxrss when clear_refs is refused (then it
                  is an upper bound; "rss_method" says which).
"""
import argparse
import gc
import json
import math
import os
import resource
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

LAYERS = ("s4d", "s4", "rtf", "lssl")
WHATS = ("layer", "kernel", "fftconv")


# ---------------------------------------------------------------------------
# Shared pieces


def fft_conv(u, k):
    """Causal convolution y_t = sum_{j <= t} k_j u_{t-j} by FFT.
    u (B, H, L), k (H, L) -> (B, H, L); zero padding to 2L keeps it causal."""
    L = u.size(-1)
    y = torch.fft.irfft(torch.fft.rfft(u, n=2 * L) * torch.fft.rfft(k, n=2 * L), n=2 * L)
    return y[..., :L]


def init_log_dt(H, dt_min=1e-3, dt_max=1e-1):
    return torch.rand(H) * (math.log(dt_max) - math.log(dt_min)) + math.log(dt_min)  # (H)


def hippo_legs(N, dtype=torch.float64):
    """HiPPO LegS (S4 code conventions, A negative): A_nk = -sqrt(2n+1) sqrt(2k+1)
    for n > k, -(n+1) for n = k, 0 above; B_n = sqrt(2n+1)."""
    q = torch.arange(N, dtype=dtype)
    r = torch.sqrt(2 * q + 1)
    A = -torch.tril(r[:, None] * r[None, :], diagonal=-1) - torch.diag(q + 1)  # (N, N)
    return A, r.clone()  # (N, N), (N)


def nplr_legs(N):
    """NPLR form of LegS (S4 paper): with P_n = sqrt(n + 1/2), A + P P^T = -I/2 + S,
    S skew, so A = V (Lambda - (V^*P)(V^*P)^*) V^* with Lambda = -1/2 + i eig(-i S)
    (a Hermitian eigenproblem, float64). Eigenvalues come in conjugate pairs: keep
    the N/2 with negative imaginary part. Returns Lambda, P~ = V^*P, B~ = V^*B,
    each (N/2) complex128, and V (N, N/2)."""
    A, B = hippo_legs(N)
    P = torch.sqrt(torch.arange(N, dtype=torch.float64) + 0.5)  # (N)
    AP = A + P[:, None] * P[None, :]
    S = 0.5 * (AP - AP.T)  # skew part; the symmetric part is -I/2
    w, V = torch.linalg.eigh(-1j * S.to(torch.complex128))  # ascending
    V = V[:, : N // 2]  # (N, N/2)
    Lambda = -0.5 + 1j * w[: N // 2]
    Vh = V.conj().T
    return Lambda, Vh @ P.to(V.dtype), Vh @ B.to(V.dtype), V


class SSMLayer(nn.Module):
    """kernel -> FFT conv + D u -> GELU -> Conv1d(H, 2H, 1) -> GLU over channels."""

    def __init__(self, kernel, H):
        super().__init__()
        self.kernel = kernel
        self.D = nn.Parameter(torch.randn(H))  # (H)
        self.output_linear = nn.Conv1d(H, 2 * H, kernel_size=1)

    def forward(self, u):  # (B, H, L) -> (B, H, L)
        k = self.kernel(u.size(-1))  # (H, L)
        y = fft_conv(u, k) + self.D[:, None] * u
        return F.glu(self.output_linear(F.gelu(y)), dim=-2)


# ---------------------------------------------------------------------------
# S4D: diagonal, ZOH, Vandermonde


class S4DKernel(nn.Module):
    """K_l = 2 Re sum_n C_n B_n (exp(dt A_n) - 1) / A_n exp(dt A_n l)   (S4D, ZOH);
    A_n = -exp(log_A_real) + i A_imag (S4D-Lin init: -1/2 + i pi n)."""

    def __init__(self, H, N):
        super().__init__()
        self.log_dt = nn.Parameter(init_log_dt(H))  # (H)
        self.log_A_real = nn.Parameter(torch.full((H, N // 2), math.log(0.5)))  # (H, N/2)
        self.A_imag = nn.Parameter(math.pi * torch.arange(N // 2).float().repeat(H, 1))
        self.B = nn.Parameter(torch.view_as_real(torch.ones(H, N // 2, dtype=torch.cfloat)))
        self.C = nn.Parameter(torch.view_as_real(torch.randn(H, N // 2, dtype=torch.cfloat)))

    def forward(self, L):
        dt = torch.exp(self.log_dt)  # (H)
        A = -torch.exp(self.log_A_real) + 1j * self.A_imag  # (H, N/2)
        dtA = A * dt[:, None]
        B, C = torch.view_as_complex(self.B), torch.view_as_complex(self.C)
        CB = C * B * (torch.exp(dtA) - 1.0) / A  # (H, N/2)
        pos = torch.arange(L, dtype=dtA.real.dtype, device=dtA.device)
        V = torch.exp(dtA[..., None] * pos)  # (H, N/2, L)
        return 2 * torch.einsum("hn,hnl->hl", CB, V).real  # (H, L)


# ---------------------------------------------------------------------------
# S4: DPLR, bilinear, Cauchy + Woodbury


def rfft_nodes(L, cdtype):
    """omega_k = exp(-2 pi i k / L), k = 0..L/2, and z_k = 2 (1 - omega_k) / (1 + omega_k),
    computed in float64 (at k = L/2, 1 + omega is 1e-16 i, not 0, so z stays finite)."""
    omega = torch.exp(-2j * math.pi / L * torch.arange(L // 2 + 1, dtype=torch.float64))
    z = 2 * (1 - omega) / (1 + omega)
    return omega.to(cdtype), z.to(cdtype)


def cauchy_naive(v, z, w):
    """r(z) = sum_n v_n / (z - w_n) + conj(v_n) / (z - conj(w_n)) over the N/2 kept
    states and their conjugates: the reference's cauchy_naive, with the division
    factored as v * (1 / (z - w)) so that the materialised Cauchy matrices are
    (H, N/2, M) whatever the batch of v. v (..., H, N/2), z (M), w (H, N/2) ->
    (..., H, M)."""
    w = w[..., None]
    return (torch.einsum("...hn,hnm->...hm", v, 1 / (z - w))
            + torch.einsum("...hn,hnm->...hm", v.conj(), 1 / (z - w.conj())))


class S4Kernel(nn.Module):
    """S4 (Algorithm 1, bilinear): on the nodes z_k, with dt folded into Lambda and v,
    r_ab = sum_n dt a_n b_n / (z - dt Lambda_n) for a in {C~, Q = conj P}, b in {B, P},
    K^(omega) = 2 / (1 + omega) [r(C~,B) - r(C~,P) r(Q,B) / (1 + r(Q,P))],
    K = irfft(K^, L). Exact for the first L taps when C~ = C (I - A-bar^L)."""

    def __init__(self, H, N):
        super().__init__()
        Lambda, P, B, _ = nplr_legs(N)

        def per_channel(x):  # (N/2) complex128 -> (H, N/2, 2) float32
            return nn.Parameter(torch.view_as_real(x.to(torch.cfloat)).repeat(H, 1, 1))

        self.log_dt = nn.Parameter(init_log_dt(H))  # (H)
        self.Lambda = per_channel(Lambda)  # (H, N/2, 2)
        self.P = per_channel(P)
        self.B = per_channel(B)
        self.C = nn.Parameter(torch.view_as_real(torch.randn(H, N // 2, dtype=torch.cfloat)))  # C~
        self._nodes = {}

    def forward(self, L):
        Lambda, P, B, C = (torch.view_as_complex(p) for p in (self.Lambda, self.P, self.B, self.C))
        key = (L, Lambda.dtype, Lambda.device)
        if key not in self._nodes:
            self._nodes[key] = tuple(x.to(Lambda.device) for x in rfft_nodes(L, Lambda.dtype))
        omega, z = self._nodes[key]
        dt = torch.exp(self.log_dt)[:, None]  # (H, 1)
        v = torch.stack([B, P])[:, None] * torch.stack([C, P.conj()])[None] * dt  # (2, 2, H, N/2)
        r = cauchy_naive(v, z, Lambda * dt)  # (2, 2, H, L/2+1)
        k_f = r[0, 0] - r[0, 1] * r[1, 0] / (1 + r[1, 1])
        return torch.fft.irfft(k_f * (2 / (1 + omega)), n=L)  # (H, L)


# ---------------------------------------------------------------------------
# RTF: rational transfer function


class RTFKernel(nn.Module):
    """H(z) = h0 + (b_1 z^-1 + ... + b_n z^-n) / (1 + a_1 z^-1 + ... + a_n z^-n) on the
    L-point grid: K = irfft(rfft([0, b], L) / rfft([1, a], L) + h0, L) (RTF paper)."""

    def __init__(self, H, n):
        super().__init__()
        self.a = nn.Parameter((torch.rand(H, n) * 2 - 1) / n)  # (H, n)
        self.b = nn.Parameter(torch.randn(H, n) / math.sqrt(n))  # (H, n)
        self.h0 = nn.Parameter(torch.randn(H))  # (H)

    def forward(self, L):
        H, n = self.a.shape
        if L <= n:
            raise ValueError(f"rtf: L must exceed the state size, got L={L}, n={n}")
        one = torch.ones(H, 1, dtype=self.a.dtype, device=self.a.device)
        a = F.pad(torch.cat([one, self.a], dim=-1), (0, L - n - 1))  # (H, L)
        b = F.pad(self.b, (1, L - n - 1))  # (H, L)
        return torch.fft.irfft(torch.fft.rfft(b) / torch.fft.rfft(a) + self.h0[:, None], n=L)


# ---------------------------------------------------------------------------
# LSSL: dense A, bilinear, Krylov by squaring


def krylov(L, A, b):
    """[b, A b, A^2 b, ..., A^{L-1} b] by doubling (LSSL code): with x holding the
    first l columns, append A^l x, then square A^l. A (..., N, N), b (..., N) ->
    (..., N, L)."""
    x = b[..., None]
    Al = A
    while x.size(-1) < L:
        l = x.size(-1)
        x = torch.cat([x, Al @ x[..., : min(l, L - l)]], dim=-1)
        if x.size(-1) < L:
            Al = Al @ Al
    return x


class LSSLKernel(nn.Module):
    """GBT(1/2): A-bar = (I - dt/2 A)^-1 (I + dt/2 A), B-bar = (I - dt/2 A)^-1 dt B per
    channel; K_l = C_h A-bar^l B-bar (LSSL)."""

    def __init__(self, H, N):
        super().__init__()
        A, B = hippo_legs(N)
        self.A = nn.Parameter(A.float())  # (N, N), shared
        self.B = nn.Parameter(B.float())  # (N)
        self.log_dt = nn.Parameter(init_log_dt(H))  # (H)
        self.C = nn.Parameter(torch.randn(H, self.A.size(0)))  # (H, N)

    def discretize(self):
        N = self.A.size(0)
        dt = torch.exp(self.log_dt)[:, None, None]  # (H, 1, 1)
        I = torch.eye(N, dtype=self.A.dtype, device=self.A.device)
        lhs = I - dt / 2 * self.A  # (H, N, N)
        rhs = torch.cat([I + dt / 2 * self.A, dt * self.B[:, None]], dim=-1)  # (H, N, N+1)
        sol = torch.linalg.solve(lhs, rhs)
        return sol[..., :N], sol[..., N]  # (H, N, N), (H, N)

    def forward(self, L):
        dA, dB = self.discretize()
        return torch.einsum("hn,hnl->hl", self.C, krylov(L, dA, dB))  # (H, L)


KERNELS = {"s4d": S4DKernel, "s4": S4Kernel, "rtf": RTFKernel, "lssl": LSSLKernel}


def make_layer(name, H, N):
    return SSMLayer(KERNELS[name](H, N), H)


# ---------------------------------------------------------------------------
# Measurement


def make_case(args, what, dev):
    """(step, leaves) of one case: step runs one forward and the backward of sum(y * g);
    leaves are the tensors whose gradients it fills. Everything is drawn on the CPU
    (seed 0: the same layer parameters for layer and kernel), then moved to dev."""
    torch.manual_seed(0)
    if what == "fftconv":
        u = torch.randn(args.B, args.H, args.L).to(dev).requires_grad_()
        k = torch.randn(args.H, args.L).to(dev).requires_grad_()
        D = torch.randn(args.H).to(dev).requires_grad_()
        g = torch.randn(args.B, args.H, args.L).to(dev)
        leaves = [u, k, D]

        def forward():
            return fft_conv(u, k) + D[:, None] * u
    else:
        layer = make_layer(args.layer, args.H, args.N).to(dev)
        if what == "layer":
            u = torch.randn(args.B, args.H, args.L).to(dev).requires_grad_()
            g = torch.randn(args.B, args.H, args.L).to(dev)
            leaves = [u] + list(layer.parameters())

            def forward():
                return layer(u)
        else:
            g = torch.randn(args.H, args.L).to(dev)
            leaves = list(layer.kernel.parameters())

            def forward():
                return layer.kernel(args.L)

    def step():
        forward().backward(g)

    return step, leaves


def time_step(step, leaves, runs, warmup, inner=1, sync=lambda: None):
    """(per-step milliseconds of runs timed runs, inner): warmup untimed steps first,
    then runs runs of inner steps each followed by sync(). inner 0: chosen from the
    last warmup step (at least one), ceil(20 ms / its time) clamped to [1, 32].
    Gradients are dropped between steps (outside the clock after a run's last)."""
    def zero():
        for t in leaves:
            t.grad = None
    last = 0.0
    for _ in range(max(warmup, 1) if inner == 0 else warmup):
        sync()
        t0 = time.perf_counter()
        step()
        sync()
        last = (time.perf_counter() - t0) * 1e3
        zero()
    if inner == 0:
        inner = int(min(32, max(1, math.ceil(20 / max(last, 1e-3)))))

    def one():
        sync()
        t0 = time.perf_counter()
        for i in range(inner):
            if i:
                zero()
            step()
        sync()
        t = (time.perf_counter() - t0) * 1e3 / inner
        zero()
        return t
    return [one() for _ in range(runs)], inner


def read_status_kib(field):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status")


def rss_peak_delta(step):
    """(peak - baseline in bytes, method) across one call of step."""
    gc.collect()
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")  # reset VmHWM to the current RSS
        base = read_status_kib("VmRSS")
        step()
        return (read_status_kib("VmHWM") - base) * 1024, "VmHWM after clear_refs 5, minus VmRSS"
    except OSError:
        base = read_status_kib("VmRSS")
        step()
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
        return (peak - base) * 1024, "ru_maxrss minus VmRSS (upper bound: clear_refs refused)"


def allocator_peak(step):
    """Peak of the running sum of the CPU allocator's allocations and frees reported to
    the profiler during one call of step, in bytes above the level at its start."""
    from torch.profiler import ProfilerActivity, profile
    gc.collect()
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        step()
    events = [e for e in prof.profiler.kineto_results.events()
              if e.device_type() == torch.autograd.DeviceType.CPU and e.nbytes() != 0]
    if not events:
        raise RuntimeError("profiler recorded no memory events")
    # Stable sort keeps record order among events of the same microsecond.
    events.sort(key=lambda e: e.start_us())
    cur = peak = 0
    for e in events:
        cur += e.nbytes()
        peak = max(peak, cur)
    return peak, cur


def is_oom(e):
    oom = getattr(torch.cuda, "OutOfMemoryError", None)
    return (oom is not None and isinstance(e, oom)) or "out of memory" in str(e)


def run_bench(args):
    torch.set_num_threads(args.threads)
    cuda = args.device == "cuda"
    dev = torch.device(args.device)
    sync = torch.cuda.synchronize if cuda else (lambda: None)
    gpu = torch.cuda.get_device_name() if cuda else ""
    tf32 = None
    if cuda:  # exact float32, as ssmkit (cuDNN's convolutions default to TF32)
        try:
            torch.backends.cuda.matmul.allow_tf32 = False
            torch.backends.cudnn.allow_tf32 = False
            tf32 = bool(torch.backends.cuda.matmul.allow_tf32 or torch.backends.cudnn.allow_tf32)
        except Exception as e:  # a torch that refuses the flags: say so in the JSON
            tf32 = f"could not turn TF32 off: {e}"[:200]
    for what in args.whats:
        out = {"what": what, "device": args.device, "gpu": gpu, "H": args.H, "L": args.L,
               "B": args.B, "threads": args.threads, "dtype": "float32", "impl": "pytorch",
               "torch_version": torch.__version__}
        if what != "fftconv":
            out.update({"layer": args.layer, "N": args.N})
        if cuda:
            out["tf32"] = tf32
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats()
        try:
            step, leaves = make_case(args, what, dev)
            if args.memory and cuda:
                step()  # first call: cuFFT plans, allocator growth
                for t in leaves:
                    t.grad = None
                sync()
                torch.cuda.reset_peak_memory_stats()
                before = torch.cuda.memory_allocated()
                step()
                sync()
                out.update({"peak_bytes": torch.cuda.max_memory_allocated() - before,
                            "method": "torch.cuda.max_memory_allocated during the second "
                                      "step minus memory_allocated before it"})
            elif args.memory:
                def step_and_drop():  # gradients dropped inside the measured window
                    step()
                    for t in leaves:
                        t.grad = None
                # first forward+backward of the process
                rss, rss_method = rss_peak_delta(step_and_drop)
                peak, end = allocator_peak(step_and_drop)
                out.update({"peak_bytes": peak, "end_bytes": end, "peak_rss_bytes": rss,
                            "method": "torch.profiler profile_memory: peak of allocations "
                                      "minus frees",
                            "rss_method": rss_method})
            else:
                load_before = os.getloadavg()[0]
                times, inner = time_step(step, leaves, args.runs, args.warmup, args.inner, sync)
                out.update({"inner": inner, "runs_ms": [round(t, 4) for t in times],
                            "median_ms": sorted(times)[len(times) // 2], "min_ms": min(times),
                            "runs": args.runs, "warmup": args.warmup,
                            "loadavg_1min": [round(load_before, 2),
                                             round(os.getloadavg()[0], 2)]})
                if cuda:
                    out["peak_gpu_memory_gib"] = round(
                        torch.cuda.max_memory_allocated() / 2**30, 3)
        except RuntimeError as e:
            if not (cuda and is_oom(e)):
                raise
            print(json.dumps(dict(out, error=f"CUDA out of memory: {str(e)[:300]}")),
                  flush=True)
            sys.exit(3)
        print(json.dumps(out), flush=True)
        step = leaves = None  # the next case starts from an empty cache


# ---------------------------------------------------------------------------
# Self-test (float64): each fast path against an independent slow one


def causal_conv_direct(u, k):  # (B, H, L), (H, L): y_t = sum_{j <= t} k_j u_{t-j}
    L = u.size(-1)
    y = torch.zeros_like(u)
    for t in range(L):
        y[..., t] = (k[:, : t + 1].flip(-1) * u[..., : t + 1]).sum(-1)
    return y


def selftest():
    torch.manual_seed(0)
    dt64 = torch.float64
    failures = []

    def check(name, got, want, tol):
        err = (got - want).abs().max().item()
        scale = want.abs().max().item()
        ok = err <= tol * max(1.0, scale)
        print(f"{'ok  ' if ok else 'FAIL'} {name:44s} max err {err:.2e} (scale {scale:.2e})")
        if not ok:
            failures.append(name)

    # 1. FFT convolution = direct causal convolution.
    u, k = torch.randn(2, 3, 50, dtype=dt64), torch.randn(3, 50, dtype=dt64)
    check("fft_conv == direct causal conv", fft_conv(u, k), causal_conv_direct(u, k), 1e-12)

    # 2. S4D kernel = 2 Re of the ZOH recurrence's impulse response.
    H, N, L = 3, 8, 40
    ker = S4DKernel(H, N).double()
    with torch.no_grad():
        dt = torch.exp(ker.log_dt)[:, None]
        A = -torch.exp(ker.log_A_real) + 1j * ker.A_imag
        dA, dB = torch.exp(dt * A), torch.view_as_complex(ker.B) * (torch.exp(dt * A) - 1) / A
        C, x, want = torch.view_as_complex(ker.C), dB, []
        for _ in range(L):
            want.append(2 * (C * x).sum(-1).real)
            x = dA * x
        check("s4d kernel == ZOH recurrence", ker(L), torch.stack(want, -1), 1e-12)

    # 3. S4 DPLR kernel (Cauchy + Woodbury + irfft) = C A-bar^k B-bar with dense
    #    matrices in the conjugate-doubled basis; C~ = C (I - A-bar^L).
    for H, N, L in ((2, 8, 32), (2, 16, 64)):
        ker = S4Kernel(H, N).double()
        with torch.no_grad():
            ker.Lambda.add_(torch.randn_like(ker.Lambda) * 0.1)
            ker.P.add_(torch.randn_like(ker.P) * 0.1)
            Lam, P, B = (torch.view_as_complex(p) for p in (ker.Lambda, ker.P, ker.B))
            C = torch.randn(H, N // 2, dtype=torch.complex128)
            dbl = lambda x: torch.cat([x, x.conj()], -1)  # (H, N/2) -> (H, N)
            p = dbl(P)[..., None]  # (H, N, 1)
            Afull = torch.diag_embed(dbl(Lam)) - p @ p.conj().transpose(-1, -2)  # (H, N, N)
            dt = torch.exp(ker.log_dt)[:, None, None].to(Afull.dtype)
            I = torch.eye(N, dtype=Afull.dtype)
            dA = torch.linalg.solve(I - dt / 2 * Afull, I + dt / 2 * Afull)
            dB = torch.linalg.solve(I - dt / 2 * Afull, dt * dbl(B)[..., None])[..., 0]  # (H, N)
            c = dbl(C)
            Ct = ((I - torch.linalg.matrix_power(dA, L)).transpose(-1, -2) @ c[..., None])[..., 0]
            check(f"s4 C~ keeps conjugate pairs (N={N})", Ct[:, N // 2:], Ct[:, : N // 2].conj(),
                  1e-10)
            ker.C.copy_(torch.view_as_real(Ct[:, : N // 2]))
            x, want = dB, []
            for _ in range(L):
                want.append((c * x).sum(-1))
                x = (dA @ x[..., None])[..., 0]
            want = torch.stack(want, -1)
            check(f"s4 naive kernel is real (N={N})", want.imag, torch.zeros_like(want.real), 1e-10)
            check(f"s4 DPLR kernel == C A^k B (N={N}, L={L})", ker(L), want.real, 1e-9)

    # 4. RTF kernel = the IIR impulse response aliased onto L taps:
    #    irfft_L(H(omega_k)) = sum_m h[t + m L].
    H, n, L, M = 3, 4, 16, 60
    ker = RTFKernel(H, n).double()
    with torch.no_grad():
        ker.a.mul_(0.5)  # sum |a| <= 1/2: poles well inside the unit circle
        a, b, h0 = ker.a, ker.b, ker.h0
        h = torch.zeros(H, M * L, dtype=dt64)  # y_t = -sum_i a_i y_{t-i} + b_t (+ h0 at t=0)
        for t in range(M * L):
            acc = b[:, t - 1].clone() if 1 <= t <= n else torch.zeros(H, dtype=dt64)
            for i in range(1, min(n, t) + 1):
                acc -= a[:, i - 1] * h[:, t - i]
            h[:, t] = acc
        h[:, 0] += h0
        check("rtf kernel == aliased IIR impulse response", ker(L), h.view(H, M, L).sum(1), 1e-12)

    # 5. Krylov doubling = repeated products; LSSL kernel = C A-bar^k B-bar.
    for L in (1, 2, 7, 16, 37):
        A, b = torch.randn(3, 5, 5, dtype=dt64) / 3, torch.randn(3, 5, dtype=dt64)
        x, want = b, []
        for _ in range(L):
            want.append(x)
            x = (A @ x[..., None])[..., 0]
        check(f"krylov == repeated products (L={L})", krylov(L, A, b), torch.stack(want, -1), 1e-12)
    H, N, L = 3, 8, 50
    ker = LSSLKernel(H, N).double()
    with torch.no_grad():
        dt = torch.exp(ker.log_dt)[:, None, None]
        I = torch.eye(N, dtype=dt64)
        Ainv = torch.linalg.inv(I - dt / 2 * ker.A)
        dA, x, want = Ainv @ (I + dt / 2 * ker.A), (Ainv @ (dt * ker.B[:, None]))[..., 0], []
        for _ in range(L):
            want.append((ker.C * x).sum(-1))
            x = (dA @ x[..., None])[..., 0]
        check("lssl kernel == C A-bar^k B-bar", ker(L), torch.stack(want, -1), 1e-10)

    # 6. Every layer: shapes, finite output, gradients reach every parameter.
    for name in LAYERS:
        layer = make_layer(name, 4, 8).double()
        u = torch.randn(2, 4, 32, dtype=dt64, requires_grad=True)
        y = layer(u)
        y.backward(torch.randn_like(y))
        grads = [u.grad] + [p.grad for p in layer.parameters()]
        ok = (y.shape == u.shape and torch.isfinite(y).all().item()
              and all(gr is not None and torch.isfinite(gr).all().item() for gr in grads))
        print(f"{'ok  ' if ok else 'FAIL'} {name} layer: (B, H, L) -> (B, H, L), finite gradients")
        if not ok:
            failures.append(name + " layer")

    if failures:
        print(f"{len(failures)} check(s) failed: {', '.join(failures)}")
        return 1
    print("all checks passed")
    return 0


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--layer", choices=LAYERS)
    p.add_argument("--what", default="layer",
                   help="layer, kernel, fftconv, or a comma-separated list of them")
    p.add_argument("--H", type=int, default=128)
    p.add_argument("--N", type=int, default=64)
    p.add_argument("--L", type=int, default=1024)
    p.add_argument("--B", type=int, default=16)
    p.add_argument("--runs", type=int, default=10)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    p.add_argument("--inner", type=int, default=1,
                   help="steps per timed run, one synchronize per run (0: auto)")
    p.add_argument("--memory", action="store_true",
                   help="peak memory of one forward+backward instead of timings")
    p.add_argument("--selftest", action="store_true")
    args = p.parse_args()
    if args.selftest:
        sys.exit(selftest())
    args.whats = [w for w in args.what.split(",") if w]
    if not args.whats or any(w not in WHATS for w in args.whats):
        p.error(f"--what takes {', '.join(WHATS)} or a comma-separated list, got {args.what!r}")
    if args.layer is None and any(w != "fftconv" for w in args.whats):
        p.error("--layer is required (or --selftest, or --what fftconv)")
    if args.memory and len(args.whats) > 1:
        p.error("--memory measures one --what per process")
    if args.N % 2 or args.N < 2:
        p.error(f"--N must be even and positive, got {args.N}")
    bad = [f"--{k} {getattr(args, k)}" for k in ("H", "L", "B", "runs", "threads")
           if getattr(args, k) < 1]
    if bad or args.warmup < 0 or args.inner < 0:
        p.error(f"sizes, --runs and --threads must be positive, --warmup and --inner >= 0; "
                f"got {' '.join(bad)} --warmup {args.warmup} --inner {args.inner}")
    if args.device == "cuda" and not torch.cuda.is_available():
        print(f"ssm_torch.py: --device cuda, but torch {torch.__version__} sees no CUDA GPU",
              file=sys.stderr)
        sys.exit(2)
    run_bench(args)


if __name__ == "__main__":
    main()
