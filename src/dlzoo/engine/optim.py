"""Optimizers and learning-rate schedules built from `OptimConfig`.

Schedules are stepped once per training batch, so their length is `epochs * batches_per_epoch` whatever the recipe
does inside a batch (a GAN may step its generator only every few batches: its LR still follows training progress).
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import torch
from torch import nn
from torch.optim.lr_scheduler import LambdaLR, LRScheduler, OneCycleLR, StepLR

from dlzoo.config import OptimConfig


def param_groups(modules: Iterable[nn.Module], weight_decay: float, faster: Iterable[nn.Parameter] = (),
                 faster_by: float = 1.0) -> list[dict]:
    """No weight decay on biases and normalisation parameters, as modern recipes do: 1-d tensors, and every
    parameter of a module that says `no_weight_decay = True` (a class-conditional norm's per-class scales and
    shifts are 2-d tables, which decay would pull toward 0 where they mean 1). The `faster` parameters (a
    pretrained network's new head) get groups of their own whose learning rate is `faster_by` times the others'
    (each group's "lr_scale")."""
    fast = {id(param) for param in faster}
    groups: dict[tuple[bool, bool], list[nn.Parameter]] = {}  # (decayed, fast) -> parameters, in this order
    for module in modules:
        exempt = {id(param) for part in module.modules() if getattr(part, "no_weight_decay", False)
                  for param in part.parameters()}
        for param in module.parameters():
            if param.requires_grad:
                decayed = not (param.ndim <= 1 or id(param) in exempt)
                groups.setdefault((decayed, id(param) in fast), []).append(param)
    # The groups of runs without `faster` as earlier checkpoints hold them: decayed (always), then the others.
    keys = [(True, False), *(key for key in ((False, False), (True, True), (False, True)) if key in groups)]
    return [{"params": groups.get(key, []), "weight_decay": weight_decay if key[0] else 0.0,
             "lr_scale": faster_by if key[1] else 1.0} for key in keys]


def build_optimizer(config: OptimConfig, modules: Iterable[nn.Module], faster: Iterable[nn.Parameter] = (),
                    faster_by: float = 1.0) -> torch.optim.Optimizer:
    """The configured optimizer over `modules`' parameters; `faster` ones learn at `faster_by` times optim.lr."""
    groups = [{**group, "lr": config.lr * group.pop("lr_scale")}
              for group in param_groups(modules, config.weight_decay, faster, faster_by)]
    # torch's fused update is one kernel over all parameters where the default loops over them (CPU) or runs
    # several multi-tensor kernels (CUDA): a small network's step is bound by such per-operator costs.
    fused = all(p.device.type in ("cpu", "cuda") and p.is_floating_point() for g in groups for p in g["params"])
    if config.name == "sgd":
        return torch.optim.SGD(groups, lr=config.lr, momentum=config.momentum,
                               nesterov=config.nesterov and config.momentum > 0, fused=fused)
    betas = (config.beta1, config.beta2)
    if config.name == "adamw":
        return torch.optim.AdamW(groups, lr=config.lr, betas=betas, fused=fused)
    return torch.optim.Adam(groups, lr=config.lr, betas=betas, fused=fused)


class _WarmupCosine:
    """Linear warm-up to the base LR, then cosine decay to zero. A class, not a lambda: its state pickles."""

    def __init__(self, total_steps: int, warmup_steps: int):
        self.total_steps, self.warmup_steps = total_steps, warmup_steps

    def __call__(self, step: int) -> float:
        if step < self.warmup_steps:
            return (step + 1) / self.warmup_steps
        progress = (step - self.warmup_steps) / max(1, self.total_steps - self.warmup_steps)
        return 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))


class _Constant:
    def __call__(self, step: int) -> float:
        return 1.0


def momentum_cycle(momentum: float) -> tuple[float, float]:
    """One-cycle moves SGD's momentum (Adam's beta1) against the LR, part of why it trains fast: here from
    `momentum` + 0.05 down to `momentum` - 0.05 at the peak LR and back (Smith's 0.95-0.85 at the usual 0.9), kept
    within [0, 1)."""
    return max(0.0, momentum - 0.05), min(momentum + 0.05, (1 + momentum) / 2)


def build_scheduler(config: OptimConfig, optimizer: torch.optim.Optimizer, epochs: int,
                    steps_per_epoch: int) -> LRScheduler:
    total = max(1, epochs * steps_per_epoch)
    if config.schedule == "onecycle":
        # total + 1: the engine steps the scheduler after every batch, the last time past the final batch.
        steps, warmup = total + 1, max(config.warmup, 1e-3)
        if math.isclose(warmup * steps, 1.0):
            # OneCycleLR divides by its warm-up's length in steps minus one: a warm-up of exactly one step (a tiny
            # run, e.g. 5 steps at warmup=0.2) raises ZeroDivisionError; one and a half steps still start low.
            warmup = 1.5 / steps
        momentum = config.momentum if config.name == "sgd" else config.beta1
        low, high = momentum_cycle(momentum)
        return OneCycleLR(optimizer, max_lr=[group["lr"] for group in optimizer.param_groups], total_steps=steps,
                          pct_start=warmup, anneal_strategy="linear",
                          cycle_momentum=momentum > 0,  # a momentum of 0 is not cycled: plain SGD stays plain
                          base_momentum=low, max_momentum=high, div_factor=25.0, final_div_factor=1e3)
    if config.schedule == "cosine":
        return LambdaLR(optimizer, _WarmupCosine(total, round(config.warmup * total)))
    if config.schedule == "step":
        # The engine steps every scheduler after each batch: a decay every `step_epochs` epochs is one that often.
        return StepLR(optimizer, step_size=max(1, steps_per_epoch * config.step_epochs), gamma=config.gamma)
    return LambdaLR(optimizer, _Constant())
