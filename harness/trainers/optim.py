"""Optimiser steps and LR schedules as plain functions on lists of tensors.

Every step function updates ``params`` in place from ``grads`` (loss gradients
only: weight decay is applied here, never folded into the loss). Parameters
may be *stacked*: a leading axis of independent models (seeds), as the batched
trainers use. Then ``mask`` ([M], bool or 0/1) freezes models that diverged,
and LARS takes its norms per model. Notation as seed 001: λ = ``lr``,
α = ``weight_decay``, ρ = ``momentum``; g is the loss gradient.

* ``sgd_step`` — SGD with coupled L2 weight decay and heavy-ball momentum, the
  form seed 001 analyses: v ← ρv + g + αw, w ← w − λv (ρ = 0: eqs. (1), (2)).
* ``lars_step`` — LARS as written in seed 001: v ← ρv + (|w|/|g|)·g,
  w ← w − λ_LARS·v (ρ = 0: eq. (4)). The trust ratio |w|/|g| is taken per
  tensor (per layer) and per model.
* ``gd_step`` — full-batch gradient descent with weight decay (seed 002's
  w ← (1 − ηλ)w − η∇L): ``sgd_step`` without momentum; "full batch" is the
  caller's business (pass the gradient of the loss over the whole training set).
"""
from __future__ import annotations

from typing import Sequence

import torch

#: the schedules taking ``points`` (the scale-invariance trainers'); ``lr_factor`` knows ``step`` and ``airbench`` too
SCHEDULES = ("constant", "linear_decay", "piecewise")


def _per_model(t: torch.Tensor, stacked: bool) -> torch.Tensor:
    """Norm over all axes but the model axis, shaped to broadcast against ``t``."""
    if not stacked:
        return t.norm()
    return t.flatten(1).norm(dim=1).view(-1, *([1] * (t.dim() - 1)))


def _gate(update: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    if mask is None:
        return update
    return update * mask.to(update.dtype).view(-1, *([1] * (update.dim() - 1)))


@torch.no_grad()
def sgd_step(params: Sequence[torch.Tensor], grads: Sequence[torch.Tensor], bufs: Sequence[torch.Tensor] | None, *,
             lr: float, momentum: float = 0.0, weight_decay: float = 0.0,
             mask: torch.Tensor | None = None) -> None:
    """v ← ρv + g + αw; w ← w − λv (``bufs`` hold v; may be None when ρ = 0).

    Weight decay is coupled (it goes through the momentum buffer), which is
    what seed 001's resummation argument assumes ("weight decay terms are
    summed in the same way") and what PyTorch's SGD does.
    """
    if momentum and bufs is None:
        raise ValueError("sgd_step with momentum needs momentum buffers")
    for i, (p, g) in enumerate(zip(params, grads)):
        d = g + weight_decay * p if weight_decay else g
        if momentum:
            buf = bufs[i]  # type: ignore[index]
            buf.mul_(momentum).add_(_gate(d, mask))
            d = buf
        p.sub_(_gate(lr * d, mask))


def gd_step(params: Sequence[torch.Tensor], grads: Sequence[torch.Tensor], *, lr: float,
            weight_decay: float = 0.0, mask: torch.Tensor | None = None) -> None:
    """Full-batch GD with weight decay: w ← (1 − λα)w − λ∇L(w) (grads over the whole training set)."""
    sgd_step(params, grads, None, lr=lr, momentum=0.0, weight_decay=weight_decay, mask=mask)


@torch.no_grad()
def lars_step(params: Sequence[torch.Tensor], grads: Sequence[torch.Tensor], bufs: Sequence[torch.Tensor] | None, *,
              lr: float, momentum: float = 0.0, weight_decay: float = 0.0, eps: float = 0.0,
              stacked: bool = True, mask: torch.Tensor | None = None) -> None:
    """Seed 001's LARS: v ← ρv + (|w|/|g|)·g; w ← w − λ_LARS·v, with ``lr`` = λ_LARS.

    Decoupled choices, each off by default so the step is the seed's:

    * ``weight_decay`` α adds α·w to the *rescaled* gradient, i.e.
      v ← ρv + (|w|/|g|)g + αw, so decay is not renormalised by the trust
      ratio (seed 001 writes LARS without decay);
    * ``eps`` is added to |g| in the trust ratio (guards a zero gradient;
      0 keeps the step exactly scale invariant: w → cw gives the same
      direction and a c-times larger step, i.e. the same angular update);
    * ``stacked``: norms per model along the leading axis (per seed), else
      over the whole tensor.

    A zero gradient gives a zero step (the trust ratio is set to 0 there).
    """
    if momentum and bufs is None:
        raise ValueError("lars_step with momentum needs momentum buffers")
    for i, (p, g) in enumerate(zip(params, grads)):
        gn = _per_model(g, stacked) + eps
        ratio = torch.where(gn > 0, _per_model(p, stacked) / gn.clamp_min(torch.finfo(g.dtype).tiny),
                            torch.zeros_like(gn))
        d = ratio * g
        if weight_decay:
            d = d + weight_decay * p
        if momentum:
            buf = bufs[i]  # type: ignore[index]
            buf.mul_(momentum).add_(_gate(d, mask))
            d = buf
        p.sub_(_gate(lr * d, mask))


#: airbench94's schedule: warm up from 0.2× over the first 23% of steps, then decay linearly to 0.07×
WARMUP_FRAC, WARMUP_START, FINAL_FACTOR = 0.23, 0.2, 0.07


def lr_factor(schedule: str, step: int, total: int, points: Sequence[Sequence[float]] = (),
              milestones: Sequence[float] = (), gamma: float = 0.1) -> float:
    """The LR multiplier at ``step`` (0-based) of ``total``: the one implementation of every trainer's schedule.

    * ``constant``: 1;
    * ``linear_decay``: ``1 − step/total``;
    * ``piecewise``: ``factor`` where ``points`` = ((start_step, factor), …)
      sorted by start; before the first start the factor is 1. E.g.
      ((0, 4), (100, 1)) trains at 4× the LR for 100 steps, then at the LR;
    * ``step``: ``gamma`` to the number of ``milestones`` (fractions of
      ``total``) passed, e.g. ÷10 at 1/2 and 3/4 of training;
    * ``airbench``: airbench94's warm-up then linear decay (``WARMUP_FRAC``, …).
    """
    if schedule == "constant":
        return 1.0
    if schedule == "linear_decay":
        return 1.0 - step / total
    if schedule == "piecewise":
        factor = 1.0
        for start, f in points:
            if step >= start:
                factor = float(f)
        return factor
    if schedule == "step":
        return gamma ** sum(step >= round(f * total) for f in milestones)
    if schedule == "airbench":
        warm = int(total * WARMUP_FRAC)
        if step < warm:
            f = step / warm
            return WARMUP_START * (1 - f) + f
        f = (step - warm) / max(1, total - warm)
        return (1 - f) + f * FINAL_FACTOR
    raise ValueError(f"unknown schedule {schedule!r}; known: {SCHEDULES + ('step', 'airbench')}")


def lr_at(schedule: str, base: float, step: int, total: int, points: Sequence[Sequence[float]] = (),
          milestones: Sequence[float] = (), gamma: float = 0.1) -> float:
    """The LR at ``step`` of ``total``: ``base`` × ``lr_factor(...)``."""
    return base * lr_factor(schedule, step, total, points, milestones, gamma)


def check_points(points: Sequence[Sequence[float]]) -> None:
    """Raise ValueError unless ``points`` is ((start_step ≥ 0, factor ≥ 0), …) with increasing starts."""
    starts = []
    for pt in points:
        if len(pt) != 2 or pt[0] < 0 or pt[1] < 0:
            raise ValueError(f"piecewise schedule points must be (start_step >= 0, factor >= 0), got {pt!r}")
        starts.append(pt[0])
    if starts != sorted(starts) or len(set(starts)) != len(starts):
        raise ValueError(f"piecewise schedule starts must increase strictly, got {starts}")
