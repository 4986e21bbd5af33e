"""Conv nets whose convolutions are scale invariant (each is followed by batch norm), stacked over seeds.

The subject of seeds 001 and 002: a convolution followed by batch norm computes
the same function for ``w`` and ``c·w`` (c > 0), so the loss gradient is
orthogonal to ``w`` and the weight norm only sets the effective step size.

* ``norm="bn"``: every conv is followed by BN (no conv bias), so every conv
  weight is scale invariant;
* ``norm="none"``: the same net without normalisation — the negative control,
  whose conv weights are *not* scale invariant;
* ``affine=False`` and ``train_head=False``: every *trained* weight is scale
  invariant (BN without γ, β; the head frozen at its initialisation, as seed 002
  assumes), so the whole loss is scale invariant;
* kernel 1 on 1×1 "images" is an MLP with BN after every hidden linear layer.

Parameters are plain tensors with a leading seed axis M: convolutions are
grouped convolutions with one group per seed and BN statistics are per channel,
hence per seed, so the summed loss over seeds has a block-diagonal gradient and
every run trains exactly as if it were alone. BN always normalises with the
statistics of the batch it is given; evaluation passes the whole evaluation set
as one batch ("population" statistics), so predictions depend on the current
weights only, not on running averages that lag differently under different LRs.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

NORMS = ("bn", "none")


@dataclass(frozen=True)
class ConvNetSpec:
    """conv(k×k, stride) → [BN] → ReLU per width, global average pool, linear head."""

    in_channels: int
    classes: int
    widths: tuple[int, ...] = (8, 16, 16)
    strides: tuple[int, ...] = (1, 2, 1)
    kernel: int = 3
    norm: str = "bn"
    affine: bool = True
    train_head: bool = True
    bn_eps: float = 1e-5

    def __post_init__(self) -> None:
        if self.norm not in NORMS:
            raise ValueError(f"norm must be one of {NORMS}, got {self.norm!r}")
        if len(self.widths) != len(self.strides) or not self.widths:
            raise ValueError(f"widths {self.widths} and strides {self.strides} must be non-empty and of equal length")

    # -- parameter layout -----------------------------------------------------
    @property
    def conv_names(self) -> list[str]:
        return [f"conv{i}" for i in range(len(self.widths))]

    @property
    def invariant_names(self) -> list[str]:
        """Weights the loss is invariant to rescaling: every conv when followed by BN, none otherwise."""
        return self.conv_names if self.norm == "bn" else []

    @property
    def names(self) -> list[str]:
        out = []
        for i, name in enumerate(self.conv_names):
            out.append(name)
            if self.norm == "bn" and self.affine:
                out += [f"bn{i}.weight", f"bn{i}.bias"]
        return out + ["head.weight", "head.bias"]

    @property
    def trainable_names(self) -> list[str]:
        return [n for n in self.names if self.train_head or not n.startswith("head.")]

    def init(self, seed: int, dtype: torch.dtype = torch.float32, conv_scale: float = 1.0) -> dict[str, torch.Tensor]:
        """One seed's parameters, drawn from ``torch.Generator(seed)`` only.

        Convs get He-uniform weights (unit-scale activations without BN) times
        ``conv_scale``; the scale multiplies an unchanged draw, so recipes that
        differ only in it share their init direction (common random numbers).
        """
        g = torch.Generator().manual_seed(int(seed))
        p: dict[str, torch.Tensor] = {}
        cin = self.in_channels
        for i, c in enumerate(self.widths):
            fan_in = cin * self.kernel**2
            w = (torch.rand(c, cin, self.kernel, self.kernel, generator=g, dtype=torch.float64) * 2 - 1)
            p[f"conv{i}"] = (w * math.sqrt(6.0 / fan_in) * conv_scale).to(dtype)
            if self.norm == "bn" and self.affine:
                p[f"bn{i}.weight"] = torch.ones(c, dtype=dtype)
                p[f"bn{i}.bias"] = torch.zeros(c, dtype=dtype)
            cin = c
        bound = 1.0 / math.sqrt(cin)
        p["head.weight"] = ((torch.rand(cin, self.classes, generator=g, dtype=torch.float64) * 2 - 1) * bound).to(dtype)
        p["head.bias"] = ((torch.rand(self.classes, generator=g, dtype=torch.float64) * 2 - 1) * bound).to(dtype)
        return p

    # -- computation ----------------------------------------------------------
    def forward(self, params: dict[str, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
        """Logits [M, B, classes] for ``x`` [M, B, C, H, W] (one batch per seed) or [B, C, H, W] (shared)."""
        m = params["head.weight"].shape[0]
        if self.kernel == 1 and x.shape[-2:] == (1, 1):
            return self._forward_dense(params, x.flatten(-3), m)
        if x.dim() == 4:
            b = x.shape[0]
            h = x.repeat(1, m, 1, 1)
        else:
            b = x.shape[1]
            h = x.transpose(0, 1).reshape(b, m * x.shape[2], *x.shape[3:])
        pad = self.kernel // 2
        for i, stride in enumerate(self.strides):
            w = params[f"conv{i}"]  # [M, c_out, c_in, k, k]
            h = F.conv2d(h, w.reshape(-1, *w.shape[2:]), stride=stride, padding=pad, groups=m)
            if self.norm == "bn":
                h = self._bn(params, i, h)
            h = F.relu(h)
        feats = h.mean((2, 3)).view(b, m, -1).transpose(0, 1)  # [M, B, c]
        return torch.baddbmm(params["head.bias"].unsqueeze(1), feats, params["head.weight"])

    def _bn(self, params: dict[str, torch.Tensor], i: int, h: torch.Tensor) -> torch.Tensor:
        """Batch norm over every axis but 1 (channels of all seeds), with this layer's γ, β if affine.

        ``bn_eps = 0`` normalises exactly (no ε under the root), which keeps
        BN(c·x) = BN(x) bitwise for c a power of two; ``F.batch_norm`` refuses ε = 0.
        """
        gamma = params[f"bn{i}.weight"].reshape(-1) if self.affine else None
        beta = params[f"bn{i}.bias"].reshape(-1) if self.affine else None
        if self.bn_eps > 0:
            return F.batch_norm(h, None, None, gamma, beta, training=True, eps=self.bn_eps)
        dims = [0] + list(range(2, h.dim()))
        shape = [1, -1] + [1] * (h.dim() - 2)
        mean = h.mean(dims, keepdim=True)
        out = (h - mean) / (h - mean).square().mean(dims, keepdim=True).sqrt()
        if gamma is not None:
            out = out * gamma.view(shape) + beta.view(shape)
        return out

    def _forward_dense(self, params: dict[str, torch.Tensor], x: torch.Tensor, m: int) -> torch.Tensor:
        """Kernel-1 convs on 1×1 inputs are linear layers: ``bmm`` over seeds, twice as fast as grouped convs."""
        h = x.expand(m, *x.shape) if x.dim() == 2 else x  # [M, B, d]
        b = h.shape[1]
        for i in range(len(self.widths)):
            w = params[f"conv{i}"]  # [M, c_out, c_in, 1, 1]
            h = torch.bmm(h, w.flatten(2).transpose(1, 2))
            if self.norm == "bn":
                h = self._bn(params, i, h.transpose(0, 1).reshape(b, -1)).view(b, m, -1).transpose(0, 1)
            h = F.relu(h)
        return torch.baddbmm(params["head.bias"].unsqueeze(1), h, params["head.weight"])

    def forward_flops(self, height: int, width: int) -> float:
        """Multiply-adds ×2 of one forward pass on one example (for time estimates)."""
        flops, cin, h, w = 0.0, self.in_channels, height, width
        for c, s in zip(self.widths, self.strides):
            h, w = -(-h // s), -(-w // s)
            flops += 2.0 * h * w * c * cin * self.kernel**2
            cin = c
        return flops + 2.0 * cin * self.classes


def stack_params(per_seed: list[dict[str, torch.Tensor]], device: torch.device | str) -> dict[str, torch.Tensor]:
    """Per-seed parameter dicts → one dict of tensors with a leading seed axis."""
    return {k: torch.stack([p[k] for p in per_seed]).to(device) for k in per_seed[0]}


# -- the named models recipes use ------------------------------------------------

def model_spec(name: str, in_channels: int, classes: int, widths: tuple[int, ...] | None = None,
               strides: tuple[int, ...] | None = None, bn_eps: float = 1e-5, affine: bool | None = None,
               train_head: bool | None = None) -> ConvNetSpec:
    """The spec behind a recipe's ``model`` name (see ``MODELS``); arguments given override the preset."""
    try:
        kind = MODELS[name]
    except KeyError:
        raise ValueError(f"unknown model {name!r}; known: {sorted(MODELS)}") from None
    base = dict(kind)
    if widths is not None:
        base["widths"] = tuple(widths)
    if strides is not None:
        base["strides"] = tuple(strides)
    for key, value in (("affine", affine), ("train_head", train_head)):
        if value is not None:
            base[key] = bool(value)
    if len(base["strides"]) != len(base["widths"]):
        raise ValueError(f"model {name}: {len(base['widths'])} widths need as many strides, got {base['strides']}")
    return ConvNetSpec(in_channels=in_channels, classes=classes, bn_eps=bn_eps, **base)


#: name → ConvNetSpec fields. ``cnn4`` is seed 002's "simple 4-layer normalized CNN" for MNIST:
#: four conv → BN → ReLU blocks (the seed does not give its widths; these are ours).
MODELS: dict[str, dict] = {
    "bn_convnet": dict(widths=(8, 16, 16), strides=(1, 2, 1), norm="bn"),
    "plain_convnet": dict(widths=(8, 16, 16), strides=(1, 2, 1), norm="none"),
    "normalized_convnet": dict(widths=(8, 16, 16), strides=(1, 2, 1), norm="bn", train_head=False),
    "si_convnet": dict(widths=(8, 16, 16), strides=(1, 2, 1), norm="bn", affine=False, train_head=False),
    "cnn4": dict(widths=(32, 64, 64, 128), strides=(1, 2, 2, 2), norm="bn"),
    "bn_mlp": dict(widths=(64, 64), strides=(1, 1), kernel=1, norm="bn"),
    "plain_mlp": dict(widths=(64, 64), strides=(1, 1), kernel=1, norm="none"),
}
