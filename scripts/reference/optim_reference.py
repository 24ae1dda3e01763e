#!/usr/bin/python3
"""Golden values of the optimizers from torch.optim, for tests/cpu/test_optim.cpp.

Regenerate (Debian's python3-torch, PyTorch 1.13; from the source root):

    /usr/bin/python3 scripts/reference/optim_reference.py > tests/data/optim_golden.json

Every case builds a few tiny parameters with fixed values, puts them in
parameter groups the way ssm::build_param_groups does ("default",
"no_decay", "ssm"), and runs a few steps of one torch.optim optimizer with
gradients given by a formula of (parameter, step, element) that the C++ test
computes too. Some cases clip the gradients first
(torch.nn.utils.clip_grad_norm_), scale the learning rate per step (what
Optimizer::set_lr_factor does) or leave a parameter without a gradient at
some step (its state, step count included, must not move). The output holds
the inputs, the gradients and the parameters after every step.

The inputs (initial values, gradients) are small multiples of powers of
two: exact in float32 and float64 and the same on both sides. The float32
cases expect ssmkit to reproduce PyTorch's bits, which holds for a PyTorch
whose CPU kernels use AVX2 + FMA (as on the machine that made the committed
file; `torch.__config__.show()` says "CPU capability usage: AVX2").
"""
import json
import re
import sys

import torch

FORMAT = "ssmkit-optim-golden"
VERSION = 1

# name, shape, tags; the group follows from build_param_groups' rule.
PARAMS = [
    ("layer.weight", [3, 4], []),       # 2-d: default
    ("layer.bias", [4], []),            # 1-d: no_decay
    ("mixer.A_log", [2, 3], ["ssm"]),   # tagged ssm: ssm group
]
# A float32 case needs enough elements for PyTorch's vectorized loop (16
# floats at a time with AVX2) as well as its scalar tail.
PARAMS_F32 = [
    ("layer.weight", [5, 7], []),
    ("norm.weight", [2, 3], ["no_decay"]),
    ("mixer.A_log", [19], ["ssm"]),
]


def init_value(k, i):
    """Initial value of element i of parameter k."""
    return ((i * 5 + k * 11) % 17 - 8) / 16.0


def grad_value(k, t, i):
    """Gradient of element i of parameter k at step t (0-based)."""
    return ((i * 7 + t * 5 + k * 3) % 13 - 6) / 8.0 + t / 32.0


def group_of(shape, tags):
    if "ssm" in tags:
        return "ssm"
    if "no_decay" in tags or len(shape) <= 1:
        return "no_decay"
    return "default"


def numel(shape):
    n = 1
    for s in shape:
        n *= s
    return n


def run_case(name, dtype, params_spec, opt, steps=5, max_norm=0.0, lr_factors=None,
             skip=()):
    """Runs one case; skip holds (step, parameter name) pairs without a gradient."""
    torch_dtype = {"float32": torch.float32, "float64": torch.float64}[dtype]
    params = []
    for k, (pname, shape, tags) in enumerate(params_spec):
        values = [init_value(k, i) for i in range(numel(shape))]
        params.append({
            "name": pname, "shape": shape, "tags": tags, "group": group_of(shape, tags),
            "init": values,
            "tensor": torch.tensor(values, dtype=torch_dtype).reshape(shape).requires_grad_(True),
        })

    lr = opt["lr"]
    ssm_lr = opt.get("ssm_lr", lr)
    settings = {
        "default": (lr, opt["weight_decay"]),
        "no_decay": (lr, 0.0),
        "ssm": (ssm_lr, opt["ssm_weight_decay"]),
    }
    groups = []
    for gname in ("default", "no_decay", "ssm"):
        members = [p["tensor"] for p in params if p["group"] == gname]
        if members:
            glr, gwd = settings[gname]
            groups.append({"params": members, "lr": glr, "weight_decay": gwd, "name": gname})
    base_lrs = [g["lr"] for g in groups]
    torch_groups = [{k: v for k, v in g.items() if k != "name"} for g in groups]

    if opt["name"] == "adamw":
        o = torch.optim.AdamW(torch_groups, lr=lr, betas=(opt["beta1"], opt["beta2"]),
                              eps=opt["eps"], foreach=False)
    elif opt["name"] == "adam":
        o = torch.optim.Adam(torch_groups, lr=lr, betas=(opt["beta1"], opt["beta2"]),
                             eps=opt["eps"], foreach=False)
    elif opt["name"] == "sgd":
        o = torch.optim.SGD(torch_groups, lr=lr, momentum=opt["momentum"],
                            nesterov=opt["nesterov"], foreach=False)
    else:
        raise ValueError(opt["name"])

    records = []
    for t in range(steps):
        grads = {}
        for k, p in enumerate(params):
            if (t, p["name"]) in skip:
                p["tensor"].grad = None
                continue
            g = [grad_value(k, t, i) for i in range(numel(p["shape"]))]
            grads[p["name"]] = g
            p["tensor"].grad = torch.tensor(g, dtype=torch_dtype).reshape(p["shape"])
        record = {"grads": grads}
        if max_norm > 0:
            with_grad = [p["tensor"] for p in params if p["tensor"].grad is not None]
            norm = torch.nn.utils.clip_grad_norm_(with_grad, max_norm)
            record["grad_norm"] = float(norm)
        if lr_factors is not None:
            for g, base in zip(o.param_groups, base_lrs):
                g["lr"] = base * lr_factors[t]
        o.step()
        record["params"] = {p["name"]: p["tensor"].detach().reshape(-1).tolist() for p in params}
        if opt["name"] != "sgd":  # torch.optim.SGD keeps no step count
            record["step_counts"] = {p["name"]: int(o.state[p["tensor"]].get("step", 0))
                                     for p in params}
        records.append(record)

    full_opt = {"name": opt["name"], "lr": lr, "weight_decay": opt["weight_decay"],
                "beta1": opt.get("beta1", 0.9), "beta2": opt.get("beta2", 0.999),
                "eps": opt.get("eps", 1e-8), "momentum": opt.get("momentum", 0.0),
                "nesterov": opt.get("nesterov", False), "ssm_weight_decay": opt["ssm_weight_decay"]}
    if "ssm_lr" in opt:
        full_opt["ssm_lr"] = opt["ssm_lr"]
    return {
        "name": name,
        "dtype": dtype,
        "optimizer": full_opt,
        "max_norm": max_norm,
        "lr_factors": lr_factors if lr_factors is not None else [1.0] * steps,
        "skip": [[t, n] for (t, n) in sorted(skip)],
        "params": [{k: v for k, v in p.items() if k != "tensor"} for p in params],
        "steps": records,
    }


def main():
    adam_like = {"beta1": 0.9, "beta2": 0.999, "eps": 1e-8}
    cases = [
        run_case("adamw", "float64", PARAMS,
                 dict(name="adamw", lr=0.01, weight_decay=0.1, ssm_lr=0.005,
                      ssm_weight_decay=0.0, **adam_like),
                 lr_factors=[0.25, 0.5, 0.75, 1.0, 0.5],
                 skip={(2, "layer.bias")}),
        run_case("adam_l2", "float64", PARAMS,
                 dict(name="adam", lr=0.02, weight_decay=0.05, ssm_lr=0.004,
                      ssm_weight_decay=0.0, beta1=0.8, beta2=0.99, eps=1e-6)),
        run_case("sgd_momentum_clipped", "float64", PARAMS,
                 dict(name="sgd", lr=0.1, weight_decay=0.01, ssm_lr=0.05,
                      ssm_weight_decay=0.0, momentum=0.9, nesterov=False),
                 max_norm=2.0, skip={(1, "mixer.A_log")}),
        run_case("sgd_nesterov", "float64", PARAMS,
                 dict(name="sgd", lr=0.05, weight_decay=0.02, ssm_lr=0.02,
                      ssm_weight_decay=0.0, momentum=0.9, nesterov=True)),
        run_case("sgd_plain", "float64", PARAMS,
                 dict(name="sgd", lr=0.1, weight_decay=0.1, ssm_weight_decay=0.0,
                      momentum=0.0, nesterov=False)),
        run_case("adamw_float32", "float32", PARAMS_F32,
                 dict(name="adamw", lr=0.01, weight_decay=0.1, ssm_lr=0.005,
                      ssm_weight_decay=0.0, **adam_like)),
        run_case("sgd_nesterov_float32", "float32", PARAMS_F32,
                 dict(name="sgd", lr=0.05, weight_decay=0.02, ssm_lr=0.02,
                      ssm_weight_decay=0.0, momentum=0.9, nesterov=True)),
    ]
    out = {
        "format": FORMAT,
        "version": VERSION,
        "generator": "scripts/reference/optim_reference.py",
        "torch_version": torch.__version__,
        "formulas": {
            "init": "((i * 5 + k * 11) % 17 - 8) / 16",
            "grad": "((i * 7 + t * 5 + k * 3) % 13 - 6) / 8 + t / 32",
            "where": "k: parameter index in the case, t: step (0-based), i: flat element index",
        },
        "cases": cases,
    }
    text = json.dumps(out, indent=1)
    # One line per list of numbers keeps the file short and readable.
    text = re.sub(r"\[\s*([-+0-9.e,\s]+?)\s*\]",
                  lambda m: "[" + ", ".join(x.strip() for x in m.group(1).split(",")) + "]", text)
    sys.stdout.write(text + "\n")


if __name__ == "__main__":
    main()
