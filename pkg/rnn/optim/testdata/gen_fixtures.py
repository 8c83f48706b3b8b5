#!/usr/bin/python3
"""Generate fixtures.json: reference trajectories from torch.optim.

Each case runs one optimizer config for a few steps from a fixed initial
parameter set and gradient sequence, in float64 and float32, with a
per-step learning rate (Recur's coordinator owns the schedule). The bias
"rnn.bias_ih_l0" sits in a param group with weight_decay=0, which is what
Param.NoDecay means on the Go side. Inputs are float32 values, so both
precisions start from identical numbers.

Run from this directory:  /usr/bin/python3 gen_fixtures.py  (writes fixtures.json)
"""
import json
import torch

STEPS = 5
GRAD_SCALE = [1.0, 0.1, 2.0, 0.5, 1.0]  # varying magnitudes exercise AMSGrad
PARAMS = [("rnn.weight_ih_l0", [3, 2], False), ("rnn.bias_ih_l0", [3], True)]

CASES = [
    ("sgd_plain", "sgd", {}, [0.1, 0.05, 0.02, 0.05, 0.1]),
    ("sgd_momentum_dampening_wd", "sgd",
     {"momentum": 0.9, "dampening": 0.1, "weight_decay": 0.01}, [0.1, 0.05, 0.02, 0.05, 0.1]),
    ("sgd_nesterov_wd", "sgd",
     {"momentum": 0.9, "nesterov": True, "weight_decay": 0.05}, [0.1, 0.05, 0.02, 0.05, 0.1]),
    ("adam_default", "adam", {}, [1e-2, 2e-2, 1e-2, 5e-3, 1e-2]),
    ("adam_wd_amsgrad", "adam",
     {"betas": [0.8, 0.99], "eps": 1e-6, "weight_decay": 0.1, "amsgrad": True},
     [1e-2, 2e-2, 1e-2, 5e-3, 1e-2]),
    ("adamw_default", "adamw", {}, [1e-2, 2e-2, 1e-2, 5e-3, 1e-2]),
    ("adamw_wd_amsgrad", "adamw", {"weight_decay": 0.1, "amsgrad": True}, [1e-2, 2e-2, 1e-2, 5e-3, 1e-2]),
    ("rmsprop_default", "rmsprop", {}, [1e-2, 2e-2, 1e-2, 5e-3, 1e-2]),
    ("rmsprop_momentum", "rmsprop", {"momentum": 0.9}, [1e-2, 2e-2, 1e-2, 5e-3, 1e-2]),
    ("rmsprop_centered_momentum_wd", "rmsprop",
     {"alpha": 0.9, "eps": 1e-6, "momentum": 0.5, "centered": True, "weight_decay": 0.01},
     [1e-2, 2e-2, 1e-2, 5e-3, 1e-2]),
]

OPT = {"sgd": torch.optim.SGD, "adam": torch.optim.Adam,
       "adamw": torch.optim.AdamW, "rmsprop": torch.optim.RMSprop}


def inputs():
    g = torch.Generator().manual_seed(20240601)
    init = {n: torch.randn(s, generator=g, dtype=torch.float32) for n, s, _ in PARAMS}
    grads = [{n: torch.randn(s, generator=g, dtype=torch.float32) * GRAD_SCALE[k]
              for n, s, _ in PARAMS} for k in range(STEPS)]
    return init, grads


def flat(t):
    return [float(x) for x in t.detach().reshape(-1).tolist()]


def run(kind, cfg, lrs, init, grads, dtype):
    ps = {n: torch.nn.Parameter(init[n].to(dtype).clone()) for n, _, _ in PARAMS}
    decay = [ps[n] for n, _, nd in PARAMS if not nd]
    nodecay = [ps[n] for n, _, nd in PARAMS if nd]
    kw = dict(cfg)
    if kind != "sgd":
        kw["foreach"] = False
    opt = OPT[kind]([{"params": decay}, {"params": nodecay, "weight_decay": 0.0}], lr=lrs[0], **kw)
    out = []
    for k in range(STEPS):
        for n, p in ps.items():
            p.grad = grads[k][n].to(dtype).clone()
        for group in opt.param_groups:
            group["lr"] = lrs[k]
        opt.step()
        out.append({n: flat(p) for n, p in ps.items()})
    return out


def clip_cases(grads):
    cases = []
    for max_norm in [1.0, 100.0, 0.5]:
        c = {"max_norm": max_norm, "grads": {n: flat(grads[0][n]) for n, _, _ in PARAMS}}
        for dtype, key in [(torch.float64, "f64"), (torch.float32, "f32")]:
            gs = [grads[0][n].to(dtype).clone() for n, _, _ in PARAMS]
            ps = [torch.nn.Parameter(torch.zeros_like(g)) for g in gs]
            for p, g in zip(ps, gs):
                p.grad = g
            norm = torch.nn.utils.clip_grad_norm_(ps, max_norm)
            c["norm_" + key] = float(norm)
            c["clipped_" + key] = {n: flat(p.grad) for (n, _, _), p in zip(PARAMS, ps)}
        cases.append(c)
    return cases


def main():
    torch.set_default_dtype(torch.float64)
    init, grads = inputs()
    fixture = {
        "torch_version": torch.__version__,
        "params": [{"name": n, "shape": s, "no_decay": nd, "init": flat(init[n])} for n, s, nd in PARAMS],
        "grads": [{n: flat(grads[k][n]) for n, _, _ in PARAMS} for k in range(STEPS)],
        "cases": [],
        "clip": clip_cases(grads),
    }
    for name, kind, cfg, lrs in CASES:
        fixture["cases"].append({
            "name": name, "kind": kind, "config": cfg, "lrs": lrs,
            "want_f64": run(kind, cfg, lrs, init, grads, torch.float64),
            "want_f32": run(kind, cfg, lrs, init, grads, torch.float32),
        })
    with open("fixtures.json", "w") as f:
        json.dump(fixture, f, indent=1)
        f.write("\n")


if __name__ == "__main__":
    main()
