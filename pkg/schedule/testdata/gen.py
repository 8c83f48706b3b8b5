#!/usr/bin/env python3
"""Writes torch_fixture.json: learning rates produced by PyTorch's schedulers.

Run from the repository root:  /usr/bin/python3 pkg/schedule/testdata/gen.py

Each case records the PyTorch scheduler's own values ("torch", read from
get_last_lr() after each step, i.e. PyTorch's chainable/recursive form) and,
where PyTorch has one, its closed form ("closed", the formula of
_get_closed_form_lr evaluated here in float64). The Go test compares its
schedule with both to 1e-9 relative.
"""
import json
import math
import os
import warnings

import torch
from torch.optim.lr_scheduler import (CosineAnnealingLR, ExponentialLR,
                                      LinearLR, ReduceLROnPlateau,
                                      SequentialLR, StepLR)

STEPS = 50

# SequentialLR calls step(0) on the scheduler after a milestone, which warns
# about the deprecated epoch argument; that call is the documented behaviour.
warnings.filterwarnings("ignore", category=UserWarning)


def optimizer(lr):
    return torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=lr)


def run(opt, sched, steps=STEPS):
    """lr used at steps 0..steps-1 (the value in effect before each step())."""
    out = []
    for _ in range(steps):
        out.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    return out


def warmup_closed(base, start, warmup, step, main):
    if step < warmup:
        return base * (start + (1.0 - start) * step / warmup)
    return main(step - warmup)


def step_closed(base, size, gamma):
    return lambda s: base * gamma ** (s // size)


def exp_closed(base, gamma):
    return lambda s: base * gamma ** s


def cos_closed(base, eta_min, t_max):
    return lambda s: eta_min + (base - eta_min) * (1 + math.cos(math.pi * s / t_max)) / 2


cases = []


def case(name, cfg, world, torch_lrs, closed):
    cases.append({"name": name, "config": cfg, "world": world,
                  "torch": torch_lrs,
                  "closed": [closed(s) for s in range(len(torch_lrs))] if closed else None})


# StepLR
o = optimizer(0.1)
case("step", {"kind": "step", "base_lr": 0.1, "step_size": 7, "gamma": 0.5}, 1,
     run(o, StepLR(o, step_size=7, gamma=0.5)), step_closed(0.1, 7, 0.5))

# ExponentialLR
o = optimizer(0.05)
case("exponential", {"kind": "exponential", "base_lr": 0.05, "gamma": 0.93}, 1,
     run(o, ExponentialLR(o, gamma=0.93)), exp_closed(0.05, 0.93))

# CosineAnnealingLR, run past T_max (PyTorch's schedule is periodic with period 2*T_max)
o = optimizer(0.1)
case("cosine", {"kind": "cosine", "base_lr": 0.1, "t_max": 20, "eta_min": 0.001}, 1,
     run(o, CosineAnnealingLR(o, T_max=20, eta_min=0.001)), cos_closed(0.1, 0.001, 20))

# LinearLR alone: warmup in front of a constant schedule
o = optimizer(0.2)
case("warmup_constant", {"kind": "constant", "base_lr": 0.2, "warmup": 10, "warmup_start": 0.25}, 1,
     run(o, LinearLR(o, start_factor=0.25, end_factor=1.0, total_iters=10)),
     lambda s: warmup_closed(0.2, 0.25, 10, s, lambda _: 0.2))

# SequentialLR(LinearLR -> CosineAnnealingLR)
o = optimizer(0.1)
w = LinearLR(o, start_factor=0.1, end_factor=1.0, total_iters=5)
c = CosineAnnealingLR(o, T_max=30, eta_min=0.0)
case("warmup_cosine", {"kind": "cosine", "base_lr": 0.1, "warmup": 5, "warmup_start": 0.1,
                       "t_max": 30, "eta_min": 0.0}, 1,
     run(o, SequentialLR(o, [w, c], milestones=[5])),
     lambda s: warmup_closed(0.1, 0.1, 5, s, cos_closed(0.1, 0.0, 30)))

# SequentialLR(LinearLR -> StepLR)
o = optimizer(0.4)
w = LinearLR(o, start_factor=0.5, end_factor=1.0, total_iters=8)
st = StepLR(o, step_size=10, gamma=0.3)
case("warmup_step", {"kind": "step", "base_lr": 0.4, "warmup": 8, "warmup_start": 0.5,
                     "step_size": 10, "gamma": 0.3}, 1,
     run(o, SequentialLR(o, [w, st], milestones=[8])),
     lambda s: warmup_closed(0.4, 0.5, 8, s, step_closed(0.4, 10, 0.3)))

# Linear scaling rule: base_lr 0.025 tuned at world 2, run at world 8 = torch with lr 0.1
o = optimizer(0.1)
w = LinearLR(o, start_factor=0.2, end_factor=1.0, total_iters=4)
c = CosineAnnealingLR(o, T_max=40, eta_min=0.002)
case("scaled_warmup_cosine", {"kind": "cosine", "base_lr": 0.025, "warmup": 4, "warmup_start": 0.2,
                              "t_max": 40, "eta_min": 0.002, "scale_by_world": True,
                              "base_world": 2}, 8,
     run(o, SequentialLR(o, [w, c], milestones=[4])),
     lambda s: warmup_closed(0.1, 0.2, 4, s, cos_closed(0.1, 0.002, 40)))


# ReduceLROnPlateau fed a fixed loss sequence: improvements, plateaus,
# improvements below the relative threshold, cooldown and the min_lr floor.
def plateau(name, base, kw, losses):
    o = optimizer(base)
    sched = ReduceLROnPlateau(o, mode="min", threshold_mode="rel", **kw)
    after = []
    for loss in losses:
        sched.step(loss)
        after.append(o.param_groups[0]["lr"])
    cfg = {"kind": "plateau", "base_lr": base,
           "plateau": {"factor": kw["factor"], "patience": kw["patience"],
                       "threshold": kw["threshold"], "cooldown": kw["cooldown"],
                       "min_lr": kw["min_lr"], "eps": kw["eps"]}}
    cases.append({"name": name, "config": cfg, "world": 1, "losses": losses, "torch": after,
                  "closed": None})


losses = [1.0, 0.9, 0.8, 0.8, 0.8, 0.8, 0.7999, 0.79, 0.79, 0.79, 0.79,
          0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.49, 0.6, 0.6, 0.6, 0.6,
          0.6, 0.6, 0.6, 0.6, 0.6, 0.6, 0.6, 0.6, 0.3, 0.3, 0.3, 0.3,
          0.3, 0.3, 0.3, 0.3, 0.3]
plateau("plateau", 1.0, dict(factor=0.5, patience=2, threshold=1e-2, cooldown=1,
                             min_lr=0.05, eps=1e-8), losses)
plateau("plateau_defaults", 0.01, dict(factor=0.1, patience=10, threshold=1e-4, cooldown=0,
                                       min_lr=0.0, eps=1e-8), losses + losses[:10])
# A tiny lr: PyTorch skips a reduction that changes the lr by no more than eps.
plateau("plateau_eps", 1e-7, dict(factor=0.1, patience=0, threshold=1e-4, cooldown=0,
                                  min_lr=0.0, eps=1e-8), [1.0] * 8)

out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "torch_fixture.json")
with open(out, "w") as f:
    json.dump({"torch_version": torch.__version__, "cases": cases}, f, indent=1)
    f.write("\n")
print("wrote", out)
