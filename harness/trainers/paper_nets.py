"""The MNIST-1D paper's MLP and 1-D CNN, trained as the paper trains them, many seeds at once.

Greydanus & Kobak, "Scaling Down Deep Learning" (2020/2024), repository
``greydanus/mnist1d`` (``notebooks/models.py``, ``notebooks/train.py``):

* ``mnist1d_logreg``: Linear(40→10), the table's logistic regression;
* ``mnist1d_mlp``: Linear(40→h), ReLU; h + ReLU(Linear(h→h)) (a residual
  block); Linear(h→10) — ``MLPBase`` with h = ``hidden`` (100, the notebooks' default; the paper's
  table used 256, ``get_model_args``);
* ``mnist1d_cnn``: Conv1d(1→25, k5, s2, p1), Conv1d(25→25, k3, s2, p1) twice,
  ReLU after each, then Linear(125→10) on the flattened features — ``ConvBase``;
* Adam (``optimizer="adam"``, PyTorch's defaults besides the LR), cross-entropy,
  batches taken in order through the (already shuffled) training set, batch
  ``batch_size``; PyTorch's default initialisation (uniform ±1/√fan_in for
  weights and biases), drawn from the seed's own generator.

The seeds of a chunk train as one model: their parameters are stacked, the
MLP's layers are batched matmuls and the CNN's convolutions batched
matmuls of patches (one kernel per seed). Adam acts element-wise, so every seed's
update is the one it would get alone. Arrays: ``logits`` (final test logits);
metrics ``test_acc`` (percent) and ``train_loss``.
"""
from __future__ import annotations

import math
import time
from typing import Any, Iterable, Iterator, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from harness.data.vectors import vector_task
from harness.recipe import Recipe
from harness.store.runs import OK
from harness.trainers.base import RunResult, TrainContext, Trainer, cpu_threads

MODELS = ("mnist1d_logreg", "mnist1d_mlp", "mnist1d_cnn")
#: effective FLOP rate per seed for ``--plan`` before the store has timings (an a-priori guess)
FLOPS_PER_SECOND = {"cpu": 5e9, "cuda": 1e12}


def _uniform(g: torch.Generator, fan_in: int, *shape: int) -> torch.Tensor:
    return (torch.rand(*shape, generator=g) * 2 - 1) / math.sqrt(fan_in)


def init_params(model: str, seed: int, o: dict[str, Any]) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(int(seed))
    if model == "mnist1d_logreg":
        return [_uniform(g, 40, 40, 10), _uniform(g, 40, 10)]
    if model == "mnist1d_mlp":
        h = o["hidden"]
        shapes = [(40, h), (h, h), (h, 10)]
        return [t for fi, fo in shapes for t in (_uniform(g, fi, fi, fo), _uniform(g, fi, fo))]
    c = o["channels"]
    convs = [(1, 5), (c, 3), (c, 3)]
    out = [t for cin, k in convs for t in (_uniform(g, cin * k, c, cin, k), _uniform(g, cin * k, c))]
    return out + [_uniform(g, 5 * c, 5 * c, 10), _uniform(g, 5 * c, 10)]


def forward(model: str, p: Sequence[torch.Tensor], x: torch.Tensor) -> torch.Tensor:
    """Logits [M, B, 10] of the M stacked seeds on inputs ``x`` [B, 40] (shared by all seeds)."""
    m = p[0].shape[0]
    if model == "mnist1d_logreg":
        return torch.matmul(x, p[0]) + p[1][:, None]
    if model == "mnist1d_mlp":
        h = F.relu(torch.matmul(x, p[0]) + p[1][:, None])
        h = h + F.relu(torch.bmm(h, p[2]) + p[3][:, None])
        return torch.bmm(h, p[4]) + p[5][:, None]
    h = x[None, :, :, None].expand(m, -1, -1, -1)  # [M, B, 40, 1]: length × channels, per seed
    for i in range(3):
        h = F.relu(_conv(h, p[2 * i], p[2 * i + 1]))
    feats = h.transpose(2, 3).flatten(2)  # [M, B, C·5], channel-major like ConvBase's .view(B, -1)
    return torch.bmm(feats, p[6]) + p[7][:, None]


def _conv(h: torch.Tensor, w: torch.Tensor, b: torch.Tensor, stride: int = 2, pad: int = 1) -> torch.Tensor:
    """Conv1d of each seed's [B, L, C] signals with its own kernel w [Cout, C, k], as one batched matmul.

    Patches times kernels (``bmm``) instead of a grouped convolution: on the CPU, oneDNN's
    grouped 1-D convolutions of this size were several times slower. The patches are k strided
    slices stacked, not ``unfold``: ``unfold``'s backward took a quarter of a CPU step. Where
    k ≤ 2·stride (the k = 3 layers; the k = 5 layer's input needs no gradient) an input gets at
    most two terms, whose sum no order changes, so the gradients are bitwise ``unfold``'s
    (``tests/test_paper_nets.py``).
    """
    m, bsz, length, c = h.shape
    k = w.shape[-1]
    padded = F.pad(h, (0, 0, pad, pad))
    lout = (length + 2 * pad - k) // stride + 1
    patches = torch.stack([padded[:, :, j:j + stride * (lout - 1) + 1:stride] for j in range(k)], dim=-1)  # [M, B, Lout, C, k]
    out = torch.bmm(patches.reshape(m, bsz * lout, c * k), w.flatten(2).transpose(1, 2)) + b[:, None]
    return out.view(m, bsz, lout, -1)


class PaperNetsTrainer(Trainer):
    name = "paper_nets"
    options = {"hidden": 100, "channels": 25}

    def rules(self, recipe: Recipe, o: dict[str, Any]) -> Iterable[tuple[bool, str]]:
        return [
            (recipe.dataset != "mnist1d", f"dataset must be 'mnist1d', got {recipe.dataset!r}"),
            (recipe.model not in MODELS, f"model must be one of {MODELS}, got {recipe.model!r}"),
            (recipe.optimizer != "adam", f"optimizer must be 'adam' (the paper's), got {recipe.optimizer!r}"),
            (recipe.schedule != "constant" or recipe.momentum != 0, "schedule must be constant, momentum 0"),
            (bool(recipe.probes), "takes no probes"),
            (recipe.batch_size > 4000, "batch_size must be <= 4000 (the training set)"),
            (o["hidden"] < 1 or o["channels"] < 1, "options hidden and channels must be >= 1"),
        ]

    def chunk_size(self, recipe: Recipe, device: str) -> int:
        return 8 if str(device).startswith("cpu") else 64

    def estimate_seconds(self, recipe: Recipe, device: str) -> float:
        o = self.opts(recipe)
        h, c = o["hidden"], o["channels"]
        macs = {"mnist1d_logreg": 400, "mnist1d_mlp": 40 * h + h * h + 10 * h}.get(
            recipe.model, 19 * 5 * c + 10 * 3 * c * c + 5 * 3 * c * c + 50 * c)
        return 6 * macs * recipe.batch_size * recipe.steps / FLOPS_PER_SECOND["cpu" if str(device).startswith("cpu") else "cuda"]

    def train(self, recipe: Recipe, seeds: Sequence[int], ctx: TrainContext) -> Iterator[RunResult]:
        t0 = time.perf_counter()
        o = self.opts(recipe)
        task = vector_task("mnist1d").to(ctx.device)
        per_seed = [init_params(recipe.model, s, o) for s in seeds]
        params = [torch.stack([q[i] for q in per_seed]).to(ctx.device).requires_grad_() for i in range(len(per_seed[0]))]
        # foreach: the same arithmetic as the single-tensor loop PyTorch picks on the CPU (bitwise, checked
        # in tests/test_paper_nets.py) at 0.92x its step time for the 256-wide MLP
        opt = torch.optim.Adam(params, lr=recipe.lr, weight_decay=recipe.weight_decay, foreach=True)
        n, bs, m = len(task.y_train), recipe.batch_size, len(seeds)
        with cpu_threads(ctx.device):
            for step in range(recipe.steps):
                start = (step * bs) % n
                x, y = task.x_train[start:start + bs], task.y_train[start:start + bs]
                logits = forward(recipe.model, params, x)
                loss_m = F.cross_entropy(logits.flatten(0, 1), y.repeat(m), reduction="none").view(m, -1).mean(1)
                opt.zero_grad(set_to_none=True)
                loss_m.sum().backward()
                opt.step()
            with torch.no_grad():
                test_logits = forward(recipe.model, params, task.x_test)
        acc = (test_logits.argmax(-1) == task.y_test).float().mean(1) * 100
        per_run = (time.perf_counter() - t0) / m
        for i, s in enumerate(seeds):
            yield RunResult(int(s), {"logits": test_logits[i].cpu().numpy().astype(np.float32)},
                            {"test_acc": float(acc[i]), "train_loss": float(loss_m[i].detach())}, OK, per_run)
