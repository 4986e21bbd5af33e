"""Batched, seeded augmentation of a whole epoch on the training device (airbench style).

A run draws every epoch's order, flips and shifts up front from its own CPU
``torch.Generator`` (so a seed means the same data stream on any device and in
any chunk), moves them to the device once, and each epoch applies them to the
resident uint8 images in two ``gather`` calls: no DataLoader, no per-step copy.
Translation reflects at the border (airbench pads with ``reflect``).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class EpochDraws:
    """Per epoch and position: which image (``order``), mirrored or not, shifted by (dy, dx)."""

    order: torch.Tensor   # E×n int64, a permutation per epoch
    flip: torch.Tensor    # E×n bool
    shift: torch.Tensor   # E×n×2 int64 in [-translate, translate]

    def to(self, device: torch.device | str) -> "EpochDraws":
        return EpochDraws(self.order.to(device), self.flip.to(device), self.shift.to(device))


def draw_epochs(generator: torch.Generator, epochs: int, n: int, flip: bool, translate: int) -> EpochDraws:
    if epochs < 1 or n < 1:
        raise ValueError(f"draw_epochs needs epochs >= 1 and n >= 1, got {epochs}, {n}")
    order = torch.stack([torch.randperm(n, generator=generator) for _ in range(epochs)])
    flips = (torch.randint(2, (epochs, n), generator=generator).bool() if flip
             else torch.zeros(epochs, n, dtype=torch.bool))
    shift = (torch.randint(-translate, translate + 1, (epochs, n, 2), generator=generator) if translate
             else torch.zeros(epochs, n, 2, dtype=torch.long))
    return EpochDraws(order, flips, shift)


def _reflect(i: torch.Tensor, size: int) -> torch.Tensor:
    i = i.abs()
    return torch.where(i > size - 1, 2 * (size - 1) - i, i)


def augment(images: torch.Tensor, flip: torch.Tensor, shift: torch.Tensor) -> torch.Tensor:
    """Mirror (where ``flip``) and translate each image by ``shift`` (dy, dx), reflecting at the border.

    ``images`` N×C×H×W (any dtype); ``flip`` N bool; ``shift`` N×2 with |shift| < H, W.
    Pixel (r, j) of the result is image[reflect(r + dy), reflect(j' + dx)] with
    j' = W−1−j when mirrored: a crop of the reflect-padded image, then a mirror.
    """
    n, c, h, w = images.shape
    rows = _reflect(torch.arange(h, device=images.device) + shift[:, :1], h)           # N×H
    cols = torch.arange(w, device=images.device).expand(n, w)
    cols = _reflect(torch.where(flip[:, None], w - 1 - cols, cols) + shift[:, 1:], w)  # N×W
    out = images.gather(2, rows[:, None, :, None].expand(n, c, h, w))
    return out.gather(3, cols[:, None, None, :].expand(n, c, h, w))


def epoch_images(images: torch.Tensor, labels: torch.Tensor, draws: EpochDraws, epoch: int) -> tuple[torch.Tensor, torch.Tensor]:
    """One epoch's training stream: images in the epoch's order, augmented; labels to match."""
    order = draws.order[epoch]
    return augment(images[order], draws.flip[epoch], draws.shift[epoch]), labels[order]
