"""The PyTorch half of bench/run_ops.py: the same cases as bench_ops.cpp
(presets core and mamba130m), forward + backward, printing one JSON object per
case. On CUDA every timed step ends with torch.cuda.synchronize()."""
import argparse
import json
import time

import torch
import torch.nn.functional as F


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--runs", type=int, default=20)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--threads", type=int, required=True)
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    p.add_argument("--preset", default="core", choices=["core", "mamba130m"])
    p.add_argument("--rows", type=int, default=16 * 2048)
    p.add_argument("--vocab", type=int, default=50280)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    dev = torch.device(args.device)

    def sync():
        if dev.type == "cuda":
            torch.cuda.synchronize()

    def leaf(*shape):
        return torch.randn(*shape, device=dev, requires_grad=True)

    def const(*shape):
        return torch.randn(*shape, device=dev)

    def matmul_case():
        a, b = leaf(1024, 1024), leaf(1024, 1024)

        def step():
            (a @ b).sum().backward()
            a.grad = None
            b.grad = None
        return step

    def layer_norm_case():
        x, w, bias = leaf(8192, 512), leaf(512), leaf(512)

        def step():
            F.layer_norm(x, (512,), w, bias).sum().backward()
            x.grad = w.grad = bias.grad = None
        return step

    def ce_case():
        x = leaf(4096, 1000)
        target = torch.randint(0, 1000, (4096,), device=dev)

        def step():
            F.cross_entropy(x, target).backward()
            x.grad = None
        return step

    def causal_conv1d_case():
        x, w, bias = leaf(8, 512, 1024), leaf(512, 1, 4), leaf(512)

        def step():
            y = F.conv1d(x, w, bias, padding=3, groups=512)[..., :1024]
            F.silu(y).sum().backward()
            x.grad = w.grad = bias.grad = None
        return step

    def conv2d_case():
        x, w, bias = leaf(16, 32, 32, 32), leaf(64, 32, 3, 3), leaf(64)

        def step():
            F.conv2d(x, w, bias, padding=1).sum().backward()
            x.grad = w.grad = bias.grad = None
        return step

    def gelu_case():
        x = leaf(8192, 512)

        def step():
            F.gelu(x).sum().backward()
            x.grad = None
        return step

    cases = [("matmul", "1024x1024 @ 1024x1024", matmul_case),
             ("layer_norm", "(8192, 512)", layer_norm_case),
             ("softmax_cross_entropy", "(4096, 1000)", ce_case),
             ("causal_conv1d_silu", "x (8, 512, 1024), w (512, 4)", causal_conv1d_case),
             ("conv2d", "x (16, 32, 32, 32), w (64, 32, 3, 3), pad 1", conv2d_case),
             ("gelu", "(8192, 512)", gelu_case)]
    R, D, V = args.rows, 768, args.vocab

    def norm_case(rms):
        x, w, b, g = leaf(R, D), leaf(D), leaf(D), const(R, D)

        def step():
            if rms:  # as the reference Mamba RMSNorm (no fused kernel in torch <= 2.3)
                y = x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + 1e-5) * w
            else:
                y = F.layer_norm(x, (D,), w, b)
            y.backward(g)
            x.grad = w.grad = b.grad = None
        return step

    def ce_big_case():
        x = leaf(R, V)
        target = torch.randint(0, V, (R,), device=dev)

        def step():
            F.cross_entropy(x, target).backward()
            x.grad = None
        return step

    def chain_case():
        x, z, g = leaf(R, 2 * D), leaf(R, 2 * D), const(R, 2 * D)

        def step():
            (F.silu(x) * z + x).backward(g)
            x.grad = z.grad = None
        return step

    def embedding_case():
        w, g = leaf(V, D), const(R, D)
        idx = torch.randint(0, V, (R,), device=dev)

        def step():
            F.embedding(idx, w).backward(g)
            w.grad = None
        return step

    def mamba130m_shapes():
        s = [(V, D), (D,)]
        for _ in range(24):
            s += [(3072, 768), (1536, 1, 4), (1536,), (80, 1536), (1536, 48), (1536,),
                  (1536, 16), (1536,), (768, 1536), (768,)]
        return s

    def adamw_case():
        ps = [leaf(*s) for s in mamba130m_shapes()]
        for p in ps:
            p.grad = const(*p.shape)
        kw = {}
        if dev.type == "cuda":
            kw = {"fused": True}  # PyTorch's fastest AdamW on the GPU (torch >= 2.0)
        else:
            kw = {"foreach": True}
        try:
            opt = torch.optim.AdamW(ps, lr=1e-3, weight_decay=0.1, **kw)
        except (TypeError, RuntimeError):
            opt = torch.optim.AdamW(ps, lr=1e-3, weight_decay=0.1)

        def step():
            opt.step()
        return step

    n_params = sum(torch.Size(s).numel() for s in mamba130m_shapes())
    mamba = [("layer_norm", f"({R}, 768)", lambda: norm_case(False)),
             ("rms_norm", f"({R}, 768)", lambda: norm_case(True)),
             ("softmax_cross_entropy", f"({R}, {V})", ce_big_case),
             ("elementwise_chain", f"silu(x) * z + x, ({R}, 1536)", chain_case),
             ("embedding", f"weight ({V}, 768), {R} tokens", embedding_case),
             ("adamw", f"{n_params} parameters (Mamba-130M)", adamw_case)]
    if args.preset == "mamba130m":
        cases = mamba
    for op, shape, make in cases:
        step = make()
        for _ in range(args.warmup):
            step()
        sync()
        times = []
        for _ in range(args.runs):
            t0 = time.perf_counter()
            step()
            sync()
            times.append((time.perf_counter() - t0) * 1e3)
        times.sort()
        print(json.dumps({"op": op, "shape": shape, "device": args.device,
                          "median_ms": times[len(times) // 2],
                          "min_ms": times[0], "runs": args.runs, "threads": args.threads}),
              flush=True)
        del step


if __name__ == "__main__":
    main()
