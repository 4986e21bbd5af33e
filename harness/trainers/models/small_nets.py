"""Small MLPs as pure functions of parameters stacked over seeds (leading axis M).

A chunk of M seeds is one set of tensors and every layer a ``baddbmm`` over the
seed axis (conv nets batched the same way live in ``harness.trainers.models.convnets``).
The summed loss over seeds then has a block-diagonal gradient *and Hessian*, so
every run trains — and has its sharpness measured — exactly as if it were
alone. Parameters are plain tensors, not modules, so Hessian-vector products,
snapshots and head swaps need no module surgery.

Initialisation draws from ``torch.Generator(seed)`` only, so a seed gives the
same network in any chunk and under every recipe that shares the architecture.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import torch
import torch.nn.functional as F

ACTIVATIONS = ("relu", "tanh")


#: He gain for ReLU: unit-norm (weight-normalised) layers would otherwise shrink activations layer by layer
_GAIN = {"relu": math.sqrt(2.0), "tanh": 1.0}


@dataclass(frozen=True)
class MLPSpec:
    """A fully connected net ``sizes[0] → … → sizes[-1]``; parameters ``[W1, b1, W2, b2, …]``.

    ``scale_invariant``: the hidden layers have no bias and use each unit's
    weight vector normalised to unit length (weight normalisation without a
    gain, one of the normalisation schemes seed 002 names), so the loss is
    invariant to rescaling any hidden unit's weights; the parameters are then
    ``[W1, …, W_{L-1}, W_L, b_L]`` and the top layer is meant to stay frozen at
    its initialisation (``trainable``) — the seed's condition for the whole
    loss to be scale invariant.
    """

    sizes: tuple[int, ...]
    activation: str = "relu"
    scale_invariant: bool = False

    def __post_init__(self) -> None:
        if len(self.sizes) < 2:
            raise ValueError("an MLP needs at least input and output sizes")
        if self.activation not in ACTIVATIONS:
            raise ValueError(f"activation must be one of {ACTIVATIONS}, got {self.activation!r}")

    @property
    def layers(self) -> int:
        return len(self.sizes) - 1

    def init(self, seed: int, dtype: torch.dtype = torch.float32) -> list[torch.Tensor]:
        """One seed's parameters: uniform with unit-variance pre-activations for unit-variance inputs."""
        return self.draw(torch.Generator().manual_seed(int(seed)), dtype)

    def draw(self, g: torch.Generator, dtype: torch.dtype = torch.float32) -> list[torch.Tensor]:
        """``init`` from a generator the caller seeded, which can then go on to draw e.g. a data order."""
        out: list[torch.Tensor] = []
        for i, (fan_in, fan_out) in enumerate(zip(self.sizes[:-1], self.sizes[1:])):
            bound = math.sqrt(3.0 / fan_in)
            out.append(((torch.rand(fan_in, fan_out, generator=g, dtype=torch.float64) * 2 - 1) * bound).to(dtype))
            b = ((torch.rand(fan_out, generator=g, dtype=torch.float64) * 2 - 1) / math.sqrt(fan_in)).to(dtype)
            if not (self.scale_invariant and i < self.layers - 1):
                out.append(b)
        return out

    def trainable(self, params: Sequence[torch.Tensor]) -> list[bool]:
        """Which parameters train: all, or all but the frozen top layer when scale-invariant."""
        return [True] * (len(params) - 2) + [not self.scale_invariant] * 2

    def features(self, params: Sequence[torch.Tensor], x: torch.Tensor) -> torch.Tensor:
        """Penultimate activations: ``x`` [M, B, d] → [M, B, sizes[-2]]."""
        h = x
        step = 1 if self.scale_invariant else 2
        for i in range(self.layers - 1):
            w = params[step * i]
            if self.scale_invariant:
                h = torch.bmm(h, w / w.norm(dim=1, keepdim=True)) * _GAIN[self.activation]
            else:
                h = torch.baddbmm(params[2 * i + 1].unsqueeze(1), h, w)
            h = F.relu(h) if self.activation == "relu" else torch.tanh(h)
        return h

    @staticmethod
    def head(params: Sequence[torch.Tensor], feats: torch.Tensor) -> torch.Tensor:
        return torch.baddbmm(params[-1].unsqueeze(1), feats, params[-2])

    def forward(self, params: Sequence[torch.Tensor], x: torch.Tensor) -> torch.Tensor:
        return self.head(params, self.features(params, x))


def stack(per_seed: Sequence[Sequence[torch.Tensor]], device: torch.device | str = "cpu") -> list[torch.Tensor]:
    """Per-seed parameter lists → one list of tensors with a leading seed axis."""
    return [torch.stack([p[i] for p in per_seed]).to(device) for i in range(len(per_seed[0]))]


