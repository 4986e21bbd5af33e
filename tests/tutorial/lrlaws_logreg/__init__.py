"""A plug-in for lrlaws: logistic regression in numpy (trainer `logreg`) on two Gaussian blobs (data set `blobs`)."""
from __future__ import annotations

import time
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np

from harness.extensions import DatasetArrays, get_dataset
from harness.recipe import Recipe
from harness.trainers import RunResult, TrainContext, Trainer


class Blobs:
    name = "blobs"
    salt = "blobs-v1"  # change it whenever load() would return different arrays

    def check(self, data_dir: Path | None, download: bool) -> None:
        return None  # generated: nothing to download

    def load(self, data_dir: Path | None, download: bool) -> DatasetArrays:
        rng = np.random.default_rng(1234)  # the data set is fixed; only training depends on the seed

        def draw(n: int) -> tuple[np.ndarray, np.ndarray]:
            y = rng.integers(0, 2, n)
            return rng.normal(size=(n, 2)) + np.where(y[:, None] == 1, 0.7, -0.7), y

        (x_train, y_train), (x_test, y_test) = draw(512), draw(512)
        return DatasetArrays(x_train, y_train, x_test, y_test)


class LogReg(Trainer):
    name = "logreg"
    salt = "logreg-v1"  # change it whenever train() would produce different runs

    def rules(self, recipe: Recipe, o: dict) -> list[tuple[bool, str]]:
        # (violated, message): validate() also rejects any option, as this trainer declares none
        return [(recipe.optimizer != "sgd" or bool(recipe.momentum or recipe.weight_decay),
                 "plain SGD only (no momentum or weight decay)")]

    def check_data(self, recipe: Recipe, ctx: TrainContext) -> None:
        get_dataset(recipe.dataset).check(ctx.data_dir, ctx.download)

    def estimate_seconds(self, recipe: Recipe, device: str) -> float:
        return 1e-5 * recipe.steps

    def train(self, recipe: Recipe, seeds: Sequence[int], ctx: TrainContext) -> Iterator[RunResult]:
        data = get_dataset(recipe.dataset).load(ctx.data_dir, ctx.download)
        for seed in seeds:
            t0 = time.perf_counter()
            rng = np.random.default_rng(seed)  # init and batch order: the same seed at every LR
            w, b = rng.normal(scale=0.1, size=data.x_train.shape[1]), 0.0
            for _ in range(recipe.steps):
                i = rng.integers(0, len(data.y_train), recipe.batch_size)
                err = 1 / (1 + np.exp(-(data.x_train[i] @ w + b))) - data.y_train[i]
                w, b = w - recipe.lr * data.x_train[i].T @ err / len(i), b - recipe.lr * err.mean()
            logits = data.x_test @ w + b
            metrics = {"test_acc": float(np.mean((logits > 0) == data.y_test)),
                       "test_loss": float(np.mean(np.logaddexp(0, logits) - data.y_test * logits))}
            yield RunResult(seed, {"logits": logits}, metrics, seconds=time.perf_counter() - t0)
