"""Small MLPs on the teacher task, MNIST-1D or digits (flattened), many seeds trained at once as one batched model.

Each seed's parameters are a slice of stacked tensors and every matmul is a
``bmm`` over the seed axis, so a chunk of M runs costs a few large kernels per
step instead of M small ones. The summed loss has a block-diagonal gradient, so
each run's update is exactly what it would be trained alone.
"""
from __future__ import annotations

import math
import time
from typing import Iterator, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from harness.data.synthetic import teacher_task
from harness.optim import lr_at
from harness.data.vectors import VECTOR_SETS, vector_task
from harness.recipe import Recipe, RecipeError
from harness.trainers.base import DIVERGED, OK, RunResult, TrainContext, resolve_options, derived_salt

#: a run counts as diverged once its loss is non-finite or this many times its start
DIVERGENCE_FACTOR = 10.0

_OPTIONS = {
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


class MLPTrainer:
    name = "mlp"
    salt = derived_salt

    def validate(self, recipe: Recipe) -> None:
        resolve_options(self.name, recipe, _OPTIONS)  # unknown options are an error
        if recipe.dataset not in ("teacher",) + VECTOR_SETS:
            raise RecipeError(f"mlp trainer: dataset must be one of {('teacher',) + VECTOR_SETS}, got {recipe.dataset!r}")
        if recipe.model != "mlp":
            raise RecipeError(f"mlp trainer: model must be 'mlp', got {recipe.model!r}")
        if recipe.optimizer != "sgd":
            raise RecipeError(f"mlp trainer: optimizer must be 'sgd', got {recipe.optimizer!r}")
        if recipe.schedule not in ("constant", "linear_decay"):
            raise RecipeError(f"mlp trainer: schedule must be constant or linear_decay, got {recipe.schedule!r}")
        if set(recipe.probes) - {"logits"}:
            raise RecipeError(f"mlp trainer: supports probes ['logits'], got {list(recipe.probes)}")
        if self._opt(recipe, "depth") < 2:
            raise RecipeError("mlp trainer: depth must be >= 2")

    def check_data(self, recipe: Recipe, ctx: TrainContext) -> None:
        return None  # synthetic: always available

    def chunk_size(self, recipe: Recipe, device: str) -> int:
        return 128 if device == "cpu" else 1024

    def estimate_seconds(self, recipe: Recipe, device: str) -> float:
        o = {k: self._opt(recipe, k) for k in _OPTIONS}
        dim = {"mnist1d": 40, "digits": 64}.get(recipe.dataset, o["dim"])
        flops = 6 * recipe.steps * recipe.batch_size * (dim * o["width"] + (o["depth"] - 2) * o["width"] ** 2 + o["width"] * o["classes"])
        # effective rates measured for the batched bmm path (2 CPU cores: ~0.026 s per default run)
        return flops / (4e10 if device == "cpu" else 1e12) + 1e-4

    @staticmethod
    def _opt(recipe: Recipe, name: str):
        return recipe.option(name, _OPTIONS[name])

    def train(self, recipe: Recipe, seeds: Sequence[int], ctx: TrainContext) -> Iterator[RunResult]:
        t0 = time.perf_counter()
        o = {k: self._opt(recipe, k) for k in _OPTIONS}
        dev = torch.device(ctx.device)
        if recipe.dataset == "teacher":
            task = teacher_task(seed=o["data_seed"], n_train=o["n_train"], n_test=o["n_test"], dim=o["dim"],
                                classes=o["classes"], label_noise=o["label_noise"]).to(ctx.device)
        else:
            task = vector_task(recipe.dataset, o["n_train"], o["n_test"]).to(ctx.device)
        n_train = len(task.y_train)
        sizes = [task.x_train.shape[1]] + [o["width"]] * (o["depth"] - 1) + [task.num_classes]
        m = len(seeds)
        weights, biases, order = [], [], []
        per_seed = [self._init(int(s), sizes, recipe, n_train) for s in seeds]
        for layer in range(len(sizes) - 1):
            weights.append(torch.stack([p[0][layer] for p in per_seed]).to(dev).requires_grad_())
            biases.append(torch.stack([p[1][layer] for p in per_seed]).to(dev).requires_grad_())
        order = torch.stack([p[2] for p in per_seed]).to(dev)  # [M, steps, B]
        params = weights + biases
        bufs = [torch.zeros_like(p) for p in params]
        alive = torch.ones(m, dtype=torch.bool, device=dev)
        start_loss = None

        for step in range(recipe.steps):
            lr = lr_at(recipe.schedule, recipe.lr, step, recipe.steps)
            idx = order[:, step]                                  # [M, B]
            x, y = task.x_train[idx], task.y_train[idx]           # [M, B, d], [M, B]
            logits = self._forward(weights, biases, x)
            loss_m = F.cross_entropy(logits.flatten(0, 1), y.flatten(), reduction="none").view(m, -1).mean(1)
            with torch.no_grad():
                if start_loss is None:
                    start_loss = loss_m.detach().clone()
                bad = ~torch.isfinite(loss_m) | (loss_m > DIVERGENCE_FACTOR * start_loss)
                alive &= ~bad
            grads = torch.autograd.grad(loss_m.nan_to_num(0.0).sum(), params)
            with torch.no_grad():
                keep = alive.float()
                for p, g, buf in zip(params, grads, bufs):
                    g = g + recipe.weight_decay * p
                    if recipe.momentum:
                        buf.mul_(recipe.momentum).add_(g)
                        g = buf
                    shape = (m,) + (1,) * (p.dim() - 1)
                    p.sub_(lr * g * keep.view(shape))

        with torch.no_grad():
            test_logits = self._forward(weights, biases, task.x_test.expand(m, -1, -1))
            acc = (test_logits.argmax(-1) == task.y_test).float().mean(1)
            train_loss = loss_m.detach()
        per_run = (time.perf_counter() - t0) / m
        dtype = np.dtype(o["logits_dtype"])
        for i, s in enumerate(seeds):
            ok = bool(alive[i])
            yield RunResult(
                seed=int(s),
                arrays={"logits": test_logits[i].cpu().numpy().astype(dtype)},
                metrics={"test_acc": float(acc[i]), "train_loss": float(train_loss[i])},
                status=OK if ok else DIVERGED,
                seconds=per_run,
            )

    @staticmethod
    def _forward(weights, biases, x):
        h = x
        for i, (w, b) in enumerate(zip(weights, biases)):
            h = torch.baddbmm(b.unsqueeze(1), h, w)
            if i < len(weights) - 1:
                h = F.relu(h)
        return h

    @staticmethod
    def _init(seed: int, sizes: list[int], recipe: Recipe, n_train: int):
        """Init and data order drawn from the seed alone, so a run is the same in any chunk."""
        g = torch.Generator().manual_seed(seed)
        ws, bs = [], []
        for fan_in, fan_out in zip(sizes[:-1], sizes[1:]):
            bound = 1.0 / math.sqrt(fan_in)
            ws.append((torch.rand(fan_in, fan_out, generator=g) * 2 - 1) * bound * math.sqrt(3))
            bs.append((torch.rand(fan_out, generator=g) * 2 - 1) * bound)
        order = torch.randint(n_train, (recipe.steps, recipe.batch_size), generator=g)
        return ws, bs, order
