#!/usr/bin/python3
"""Loads an ssmkit `s4d_example` checkpoint into a PyTorch S4D classifier with
the structure and parameter names of the reference S4 repository's
standalone example (state-spaces/s4: example.py's S4Model over
models/s4/s4d.py's S4D), runs it on the inputs an `evaluate --dump` file
holds, and checks that its logits equal the dumped ones.

    build/bin/evaluate --config CFG --checkpoint RUN/best.h5 --dump dump.h5
    /usr/bin/python3 scripts/reference/s4d_example_check.py RUN/best.h5 dump.h5 [--prenorm]

Prints the largest absolute difference and exits 0 when it is at most --tol
(default 1e-4, relative to max(1, max |logit|)), 1 otherwise, 2 on bad input.
Needs Debian's python3-torch and python3-h5py. The load is strict: every
parameter of the PyTorch model must be in the checkpoint with its shape, and
the checkpoint must hold no other model parameter.

The PyTorch side is written from the S4D paper and the reference code's
semantics (not copied): per layer, with H features and N/2 complex modes,
    dt = exp(log_dt); A = -exp(log_A_real) + i A_imag; C complex (view_as_real)
    K[h, l] = 2 Re sum_n C[h, n] (exp(dt A) - 1) / A exp(dt A l)   (ZOH, B = 1)
    y = irfft(rfft(u, 2L) rfft(K, 2L))[:L] + D u;  y = GELU(y)
    y = GLU over channels of Conv1d(H, 2H, 1)(y)
and the model: encoder Linear, then per layer z = layer(norm?(x)) added to x
(postnorm: x = norm(x) after), mean over positions, decoder Linear.
"""
import argparse
import math
import sys

import h5py
import numpy as np
import torch
import torch.nn as nn


class S4DKernel(nn.Module):
    def __init__(self, H, N):
        super().__init__()
        self.log_dt = nn.Parameter(torch.zeros(H))
        self.C = nn.Parameter(torch.zeros(H, N // 2, 2))
        self.log_A_real = nn.Parameter(torch.zeros(H, N // 2))
        self.A_imag = nn.Parameter(torch.zeros(H, N // 2))

    def forward(self, L):
        dt = torch.exp(self.log_dt)                                 # (H)
        C = torch.view_as_complex(self.C)                           # (H, N2)
        A = -torch.exp(self.log_A_real) + 1j * self.A_imag          # (H, N2)
        dtA = A * dt.unsqueeze(-1)                                  # (H, N2)
        powers = dtA.unsqueeze(-1) * torch.arange(L, device=A.device)  # (H, N2, L)
        C = C * (torch.exp(dtA) - 1.0) / A
        return 2 * torch.einsum("hn,hnl->hl", C, torch.exp(powers)).real  # (H, L)


class S4D(nn.Module):
    def __init__(self, H, N):
        super().__init__()
        self.kernel = S4DKernel(H, N)
        self.D = nn.Parameter(torch.zeros(H))
        self.output_linear = nn.Sequential(nn.Conv1d(H, 2 * H, kernel_size=1), nn.GLU(dim=-2))

    def forward(self, u):  # (B, H, L)
        L = u.size(-1)
        k = self.kernel(L)
        y = torch.fft.irfft(torch.fft.rfft(u, n=2 * L) * torch.fft.rfft(k, n=2 * L), n=2 * L)
        y = y[..., :L] + u * self.D.unsqueeze(-1)
        y = nn.functional.gelu(y)
        return self.output_linear(y)


class S4Model(nn.Module):
    def __init__(self, d_input, d_output, d_model, n_layers, N, prenorm):
        super().__init__()
        self.prenorm = prenorm
        self.encoder = nn.Linear(d_input, d_model)
        self.s4_layers = nn.ModuleList([S4D(d_model, N) for _ in range(n_layers)])
        self.norms = nn.ModuleList([nn.LayerNorm(d_model) for _ in range(n_layers)])
        self.decoder = nn.Linear(d_model, d_output)

    def forward(self, x, lengths):  # (B, L, d_input), (B)
        x = self.encoder(x).transpose(-1, -2)  # (B, H, L)
        for layer, norm in zip(self.s4_layers, self.norms):
            z = x
            if self.prenorm:
                z = norm(z.transpose(-1, -2)).transpose(-1, -2)
            x = layer(z) + x
            if not self.prenorm:
                x = norm(x.transpose(-1, -2)).transpose(-1, -2)
        x = x.transpose(-1, -2)  # (B, L, H)
        L = x.size(1)
        mask = (torch.arange(L).unsqueeze(0) < lengths.unsqueeze(1)).to(x.dtype)  # (B, L)
        x = (x * mask.unsqueeze(-1)).sum(1) / lengths.to(x.dtype).unsqueeze(-1)
        return self.decoder(x)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("checkpoint")
    p.add_argument("dump")
    p.add_argument("--prenorm", action="store_true", help="the model was trained with prenorm")
    p.add_argument("--tol", type=float, default=1e-4)
    a = p.parse_args()
    try:
        with h5py.File(a.checkpoint, "r") as f:
            params = {k: torch.from_numpy(np.array(v)) for k, v in f["model"].items()}
        with h5py.File(a.dump, "r") as f:
            x = torch.from_numpy(np.array(f["x"]))
            lengths = torch.from_numpy(np.array(f["lengths"])).long()
            want = torch.from_numpy(np.array(f["logits"])).double()
    except (OSError, KeyError) as e:
        print(f"s4d_example_check: {e}", file=sys.stderr)
        return 2
    try:
        H, d_input = params["encoder.weight"].shape
        n_layers = len([k for k in params if k.startswith("norms.") and k.endswith(".weight")])
        N = 2 * params["s4_layers.0.kernel.C"].shape[1]
        d_output = params["decoder.weight"].shape[0]
    except KeyError as e:
        print(f"s4d_example_check: not an s4d_example checkpoint (missing {e})", file=sys.stderr)
        return 2
    model = S4Model(d_input, d_output, H, n_layers, N, a.prenorm).double()
    state = {k: v.double() for k, v in params.items()}
    missing, unexpected = model.load_state_dict(state, strict=False)
    if missing or unexpected:
        print(f"s4d_example_check: missing {missing}, unexpected {unexpected}", file=sys.stderr)
        return 1
    model.eval()
    with torch.no_grad():
        got = model(x.double(), lengths)
    err = (got - want).abs().max().item()
    scale = max(1.0, want.abs().max().item())
    ok = err <= a.tol * scale
    print(f"s4d_example_check: {got.shape[0]} examples, {H} features, {n_layers} layers, N {N}: "
          f"max |torch - ssmkit| = {err:.3g} (scale {scale:.3g}) -> {'ok' if ok else 'MISMATCH'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
