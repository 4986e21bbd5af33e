"""Full-batch GD + weight decay on seed 002's toy scale-invariant loss L(x, y) = x²/(x² + y²) (trainer ``toy2d``)."""
from __future__ import annotations

import math
import time
from typing import Any, Iterable, Iterator, Sequence

import numpy as np
import torch

from harness.recipe import Recipe
from harness.store.runs import DIVERGED, OK
from harness.trainers.base import RunResult, TrainContext, Trainer


class Toy2DTrainer(Trainer):
    """Full-batch GD + WD on seed 002's L(x, y) = x²/(x² + y²), in float64, all seeds as one vector.

    Seed s starts at radius ``init_radius`` and an angle from the minimum
    (the y axis) drawn uniformly in [min_angle, π/2 − min_angle]. The gradient
    (2xy², −2x²y)/r⁴ is orthogonal to (x, y) and shrinks as 1/r, so the
    effective step grows as weight decay shrinks r.
    """

    name = "toy2d"
    options = {"init_radius": 1.0, "min_angle": 0.2}

    def rules(self, recipe: Recipe, o: dict[str, Any]) -> Iterable[tuple[bool, str]]:
        return [
            (recipe.dataset != "none" or recipe.model != "x2_over_r2", "dataset must be 'none', model 'x2_over_r2'"),
            (recipe.optimizer != "gd" or recipe.momentum != 0, "optimizer must be gd without momentum"),
            (recipe.schedule != "constant", "schedule must be constant"),
            (set(recipe.probes) != {"loss"}, "probes must be ['loss']"),
        ]

    def chunk_size(self, recipe: Recipe, device: str) -> int:
        return 1024

    def estimate_seconds(self, recipe: Recipe, device: str) -> float:
        return 2e-5 * recipe.steps / 64 + 1e-4

    def train(self, recipe: Recipe, seeds: Sequence[int], ctx: TrainContext) -> Iterator[RunResult]:
        t0 = time.perf_counter()
        o = self.opts(recipe)
        r0, lo = o["init_radius"], o["min_angle"]
        phi = torch.tensor([lo + (math.pi / 2 - 2 * lo) * torch.rand(1, generator=torch.Generator().manual_seed(int(s))).item()
                            for s in seeds], dtype=torch.float64)
        x, y = r0 * torch.sin(phi), r0 * torch.cos(phi)
        losses = torch.empty(recipe.steps, len(seeds), dtype=torch.float64)
        decay = 1.0 - recipe.lr * recipe.weight_decay
        for t in range(recipe.steps):
            r2 = x * x + y * y
            losses[t] = x * x / r2
            gx, gy = 2 * x * y * y / r2**2, -2 * x * x * y / r2**2
            x, y = decay * x - recipe.lr * gx, decay * y - recipe.lr * gy
        per_run = (time.perf_counter() - t0) / len(seeds)
        steps = np.arange(recipe.steps, dtype=np.int64)
        for i, s in enumerate(seeds):
            ok = bool(torch.isfinite(losses[:, i]).all())
            yield RunResult(seed=int(s), arrays={"loss": losses[:, i].numpy().copy(), "loss_steps": steps},
                            metrics={"train_loss": float(losses[-1, i])}, status=OK if ok else DIVERGED,
                            seconds=per_run)
