"""Synthetic classification tasks that need no download (the smoke tier's data)."""
from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class TensorTask:
    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor

    @property
    def num_classes(self) -> int:
        return int(self.y_train.max().item()) + 1

    def to(self, device: str) -> "TensorTask":
        return TensorTask(*(t.to(device) for t in (self.x_train, self.y_train, self.x_test, self.y_test)))


def teacher_task(
    *,
    seed: int = 0,
    n_train: int = 2048,
    n_test: int = 512,
    dim: int = 32,
    classes: int = 10,
    teacher_width: int = 64,
    label_noise: float = 0.1,
) -> TensorTask:
    """Gaussian inputs labelled by a random two-layer teacher net, with label noise.

    A nonlinear teacher keeps the task from being solved by a linear probe, so
    the student's outputs depend on its training dynamics (and hence on the LR).
    """
    g = torch.Generator().manual_seed(10_000 + seed)
    n = n_train + n_test
    x = torch.randn(n, dim, generator=g)
    w1 = torch.randn(dim, teacher_width, generator=g) / dim**0.5
    w2 = torch.randn(teacher_width, classes, generator=g) / teacher_width**0.5
    y = (torch.tanh(x @ w1) @ w2).argmax(1)
    flip = torch.rand(n, generator=g) < label_noise
    y = torch.where(flip, torch.randint(classes, (n,), generator=g), y)
    return TensorTask(x[:n_train], y[:n_train], x[n_train:], y[n_train:])
