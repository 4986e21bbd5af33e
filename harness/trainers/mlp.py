"""Small MLPs on the teacher task, MNIST-1D or digits (flattened), many seeds trained at once as one batched model.

The network is ``harness.trainers.models.small_nets.MLPSpec`` (the batched MLP every
MLP trainer shares: each seed a slice of stacked tensors, every matmul a
``bmm`` over the seed axis, so a chunk of M runs costs a few large kernels per
step instead of M small ones) and the step is ``harness.trainers.optim.sgd_step``, with
diverged runs frozen by its mask. The summed loss has a block-diagonal
gradient, so each run's update is exactly what it would be trained alone.
"""
from __future__ import annotations

import time
from typing import Any, Iterable, Iterator, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from harness.data.synthetic import teacher_task
from harness.data.vectors import VECTOR_SETS, vector_task
from harness.trainers.models.small_nets import MLPSpec, stack
from harness.trainers.optim import lr_at, sgd_step
from harness.recipe import Recipe
from harness.store.runs import DIVERGED, OK
from harness.trainers.base import RunResult, TrainContext, Trainer

#: a run counts as diverged once its loss is non-finite or this many times its start
DIVERGENCE_FACTOR = 10.0


class MLPTrainer(Trainer):
    name = "mlp"
    options = {
        "width": 64,
        "depth": 3,          # number of linear layers
        "dim": 32,
        "classes": 10,
        "n_train": 2048,     # mnist1d / digits: the first n_train / n_test examples, 0 = all
        "n_test": 512,
        "label_noise": 0.1,
        "data_seed": 0,
        "logits_dtype": "float32",
    }

    def rules(self, recipe: Recipe, o: dict[str, Any]) -> Iterable[tuple[bool, str]]:
        return [
            (recipe.dataset not in ("teacher",) + VECTOR_SETS,
             f"dataset must be one of {('teacher',) + VECTOR_SETS}, got {recipe.dataset!r}"),
            (recipe.model != "mlp", f"model must be 'mlp', got {recipe.model!r}"),
            (recipe.optimizer != "sgd", f"optimizer must be 'sgd', got {recipe.optimizer!r}"),
            (recipe.schedule not in ("constant", "linear_decay"),
             f"schedule must be constant or linear_decay, got {recipe.schedule!r}"),
            (bool(set(recipe.probes) - {"logits"}), f"supports probes ['logits'], got {list(recipe.probes)}"),
            (o["depth"] < 2, "depth must be >= 2"),
        ]

    def chunk_size(self, recipe: Recipe, device: str) -> int:
        # CPU, one thread, linearity's smoke recipe: 37.8 / 33.0 / 31.9 / 32.1 ms per run in blocks of
        # 16 / 32 / 64 / 128 seeds (the same runs bitwise); 64 splits a look's 192 or 384 new runs evenly
        # over two workers, where 128 left one idle for a block
        return 64 if device == "cpu" else 1024

    def estimate_seconds(self, recipe: Recipe, device: str) -> float:
        o = self.opts(recipe)
        dim = {"mnist1d": 40, "digits": 64}.get(recipe.dataset, o["dim"])
        flops = 6 * recipe.steps * recipe.batch_size * (dim * o["width"] + (o["depth"] - 2) * o["width"] ** 2 + o["width"] * o["classes"])
        # effective rates measured for the batched bmm path (2 CPU cores: ~0.026 s per default run)
        return flops / (4e10 if device == "cpu" else 1e12) + 1e-4

    def train(self, recipe: Recipe, seeds: Sequence[int], ctx: TrainContext) -> Iterator[RunResult]:
        t0 = time.perf_counter()
        o = self.opts(recipe)
        dev = torch.device(ctx.device)
        if recipe.dataset == "teacher":
            task = teacher_task(seed=o["data_seed"], n_train=o["n_train"], n_test=o["n_test"], dim=o["dim"],
                                classes=o["classes"], label_noise=o["label_noise"]).to(ctx.device)
        else:
            task = vector_task(recipe.dataset, o["n_train"], o["n_test"]).to(ctx.device)
        spec = MLPSpec((task.x_train.shape[1],) + (o["width"],) * (o["depth"] - 1) + (task.num_classes,))
        m = len(seeds)
        per_seed = [_init(int(s), spec, recipe, len(task.y_train)) for s in seeds]
        params = [p.requires_grad_() for p in stack([p for p, _ in per_seed], dev)]
        order = torch.stack([idx for _, idx in per_seed]).to(dev)  # [M, steps, B]
        bufs = [torch.zeros_like(p) for p in params] if recipe.momentum else None
        alive = torch.ones(m, dtype=torch.bool, device=dev)
        start_loss = None

        for step in range(recipe.steps):
            idx = order[:, step]                                  # [M, B]
            x, y = task.x_train[idx], task.y_train[idx]           # [M, B, d], [M, B]
            loss_m = F.cross_entropy(spec.forward(params, x).flatten(0, 1), y.flatten(),
                                     reduction="none").view(m, -1).mean(1)
            with torch.no_grad():
                if start_loss is None:
                    start_loss = loss_m.detach().clone()
                alive &= torch.isfinite(loss_m) & (loss_m <= DIVERGENCE_FACTOR * start_loss)
            grads = torch.autograd.grad(loss_m.nan_to_num(0.0).sum(), params)
            sgd_step(params, grads, bufs, lr=lr_at(recipe.schedule, recipe.lr, step, recipe.steps),
                     momentum=recipe.momentum, weight_decay=recipe.weight_decay, mask=alive)

        with torch.no_grad():
            test_logits = spec.forward(params, task.x_test.expand(m, -1, -1))
            acc = (test_logits.argmax(-1) == task.y_test).float().mean(1)
            train_loss = loss_m.detach()
        per_run = (time.perf_counter() - t0) / m
        dtype = np.dtype(o["logits_dtype"])
        for i, s in enumerate(seeds):
            yield RunResult(
                seed=int(s),
                arrays={"logits": test_logits[i].cpu().numpy().astype(dtype)},
                metrics={"test_acc": float(acc[i]), "train_loss": float(train_loss[i])},
                status=OK if bool(alive[i]) else DIVERGED,
                seconds=per_run,
            )


def _init(seed: int, spec: MLPSpec, recipe: Recipe, n_train: int) -> tuple[list[torch.Tensor], torch.Tensor]:
    """One seed's parameters and minibatch order [steps, B], from ``seed`` alone."""
    g = torch.Generator().manual_seed(seed)
    params = spec.draw(g)
    return params, torch.randint(n_train, (recipe.steps, recipe.batch_size), generator=g)
