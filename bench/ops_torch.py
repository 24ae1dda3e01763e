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

    cases = [("matmul", "1024x1024 @ 1024x1024", matmul_case),
             ("layer_norm", "(8192, 512)", layer_norm_case),
             ("softmax_cross_entropy", "(4096, 1000)", ce_case)]
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
