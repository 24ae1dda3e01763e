"""The PyTorch half of bench/run_ops.py: the same cases as bench_ops.cpp,
forward + backward, printing one JSON object per case."""
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
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)

    def leaf(*shape):
        return torch.randn(*shape, requires_grad=True)

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
        target = torch.randint(0, 1000, (4096,))

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
    for op, shape, make in cases:
        step = make()
        for _ in range(args.warmup):
            step()
        times = []
        for _ in range(args.runs):
            t0 = time.perf_counter()
            step()
            times.append((time.perf_counter() - t0) * 1e3)
        times.sort()
        print(json.dumps({"op": op, "shape": shape, "median_ms": times[len(times) // 2],
                          "min_ms": times[0], "runs": args.runs, "threads": args.threads}),
              flush=True)


if __name__ == "__main__":
    main()
