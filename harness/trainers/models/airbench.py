"""A fast CIFAR-10 net of the airbench94 kind (Keller Jordan's CIFAR-10 speed benchmark).

Layout: a frozen 2×2 patch-whitening conv (weights from the eigenvectors of the
training patches' covariance, ± each, so 2·C·k² channels) with a trainable
bias → GELU → three conv groups (conv3×3 → maxpool2 → BN → GELU → conv3×3 → BN
→ GELU) of widths 64/256/256 → global max pool → linear (no bias) × 1/9.
BN weights are fixed at 1 (only biases train); convs start with a Dirac
(identity) block so the net starts close to a shallow one.

Initialisation takes an explicit ``torch.Generator`` and writes into the
existing parameters, so one module (and its compiled graph) serves every run.

Packed seeds (``NetSpec.pack`` = P): P independent nets in one module, stacked on the
channel axis. Every convolution is grouped (``groups=P``), so seed p's channels only
ever meet seed p's weights; batch norm is per channel, so its statistics are per seed
for free; the head is a batched matmul. Input: seed p's images in channels
p·C .. (p+1)·C − 1; output: seed p's logits in columns p·K .. (p+1)·K − 1.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

#: added to the patch-covariance eigenvalues before 1/sqrt (airbench94's value)
WHITEN_EPS = 5e-4
#: how many training images the whitening covariance is estimated from (airbench94's value)
WHITEN_IMAGES = 5000


@dataclass(frozen=True)
class NetSpec:
    widths: tuple[int, int, int] = (64, 256, 256)
    in_channels: int = 3
    num_classes: int = 10
    whiten_kernel: int = 2
    #: airbench's BN momentum convention: running = 0.6·running + 0.4·batch
    bn_momentum: float = 0.6
    #: the logits are scaled by this (airbench94: 1/9)
    scaling: float = 1 / 9
    #: seeds packed into one module (see the module docstring)
    pack: int = 1

    @property
    def whiten_width(self) -> int:
        return 2 * self.in_channels * self.whiten_kernel**2


def _bn(channels: int, momentum: float) -> nn.BatchNorm2d:
    bn = nn.BatchNorm2d(channels, eps=1e-12, momentum=1 - momentum)
    bn.weight.requires_grad_(False)
    return bn


def _conv(c_in: int, c_out: int, pack: int = 1) -> nn.Conv2d:
    return nn.Conv2d(c_in * pack, c_out * pack, kernel_size=3, padding="same", bias=False, groups=pack)


class ConvGroup(nn.Module):
    def __init__(self, c_in: int, c_out: int, bn_momentum: float, pack: int = 1) -> None:
        super().__init__()
        self.conv1 = _conv(c_in, c_out, pack)
        self.norm1 = _bn(c_out * pack, bn_momentum)
        self.conv2 = _conv(c_out, c_out, pack)
        self.norm2 = _bn(c_out * pack, bn_momentum)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.gelu(self.norm1(F.max_pool2d(self.conv1(x), 2)))
        return F.gelu(self.norm2(self.conv2(x)))


class AirbenchNet(nn.Module):
    def __init__(self, spec: NetSpec) -> None:
        super().__init__()
        self.spec = spec
        k, p = spec.whiten_kernel, spec.pack
        self.whiten = nn.Conv2d(spec.in_channels * p, spec.whiten_width * p, kernel_size=k, padding=0, bias=True,
                                groups=p)
        self.whiten.weight.requires_grad_(False)
        w = spec.widths
        self.groups = nn.Sequential(
            ConvGroup(spec.whiten_width, w[0], spec.bn_momentum, p),
            ConvGroup(w[0], w[1], spec.bn_momentum, p),
            ConvGroup(w[1], w[2], spec.bn_momentum, p),
        )
        self.head = nn.Linear(w[2], spec.num_classes * p, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.groups(F.gelu(self.whiten(x))).amax(dim=(2, 3))
        p = self.spec.pack
        if p == 1:
            return self.head(x) * self.spec.scaling
        b, k = len(x), self.spec.num_classes
        per_seed = torch.bmm(x.reshape(b, p, -1).transpose(0, 1), self.head.weight.view(p, k, -1).transpose(1, 2))
        return per_seed.transpose(0, 1).reshape(b, p * k) * self.spec.scaling

    @torch.no_grad()
    def reset(self, generators: torch.Generator | list[torch.Generator], whiten_weight: torch.Tensor) -> None:
        """Seeded init in a fixed order, one generator per packed seed (drawn on the CPU, so a seed means
        the same net on every device and in every pack)."""
        gens = [generators] if isinstance(generators, torch.Generator) else list(generators)
        assert len(gens) == self.spec.pack, (len(gens), self.spec.pack)

        def uniform(t: torch.Tensor, fan_in: int, dirac_in: int = 0) -> None:
            bound = 1 / math.sqrt(fan_in)  # PyTorch's default conv/linear init bound
            for g, part in zip(gens, t.chunk(len(gens))):
                w = (torch.rand(part.shape, generator=g) * 2 - 1) * bound
                if dirac_in:
                    torch.nn.init.dirac_(w[:dirac_in])
                part.copy_(w)

        self.whiten.weight.copy_(whiten_weight.repeat(len(gens), 1, 1, 1))
        uniform(self.whiten.bias, self.whiten.weight[0].numel())
        for m in self.modules():
            if isinstance(m, nn.Conv2d) and m is not self.whiten:
                uniform(m.weight, m.weight[0].numel(), m.in_channels // m.groups)
            elif isinstance(m, nn.BatchNorm2d):
                m.reset_parameters()  # weight 1, bias 0, running mean 0 / var 1: no randomness
        uniform(self.head.weight, self.head.in_features)

    def param_groups(self) -> tuple[list[nn.Parameter], list[nn.Parameter]]:
        """(BN biases, every other parameter that trains): airbench scales the LR of the first."""
        norm = [p for m in self.modules() if isinstance(m, nn.BatchNorm2d) for p in m.parameters() if p.requires_grad]
        ids = {id(p) for p in norm}
        other = [p for p in self.parameters() if id(p) not in ids and p is not self.whiten.weight]
        return norm, other


def whitening_weight(images: torch.Tensor, kernel: int, eps: float = WHITEN_EPS) -> torch.Tensor:
    """± the eigenvectors of the k×k patch covariance, each divided by sqrt(eigenvalue + eps).

    ``images`` are normalised float images N×C×H×W; the result is the frozen
    first layer's weight, 2·C·k² × C × k × k, largest eigenvalue first.
    """
    n, c = images.shape[:2]
    patches = images.float().unfold(2, kernel, 1).unfold(3, kernel, 1)      # N,C,H',W',k,k
    patches = patches.permute(0, 2, 3, 1, 4, 5).reshape(-1, c * kernel * kernel)
    cov = patches.T @ patches / len(patches)
    eigenvalues, eigenvectors = torch.linalg.eigh(cov)
    eigenvalues, eigenvectors = eigenvalues.flip(0), eigenvectors.flip(1)
    scaled = (eigenvectors / torch.sqrt(eigenvalues + eps)).T.reshape(-1, c, kernel, kernel)
    return torch.cat([scaled, -scaled])


def forward_flops(spec: NetSpec, image_hw: tuple[int, int]) -> tuple[int, int]:
    """(FLOPs of one image's forward pass, of which in the frozen first layer), counting a multiply-add as 2.

    Convolutions and the linear head only, as ``torch.utils.flop_counter`` counts.
    """
    h, w = image_hw
    k = spec.whiten_kernel
    h, w = h - k + 1, w - k + 1
    first = 2 * h * w * spec.whiten_width * spec.in_channels * k * k
    total = first
    c_in = spec.whiten_width
    for c_out in spec.widths:
        total += 2 * h * w * c_out * c_in * 9
        h, w = h // 2, w // 2
        total += 2 * h * w * c_out * c_out * 9
        c_in = c_out
    total += 2 * c_in * spec.num_classes
    return total, first
