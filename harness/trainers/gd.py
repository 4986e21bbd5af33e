"""Full-batch gradient descent with a sharpness probe (seed 003 §3.1/§4.1, Cohen et al. 2021).

Every step uses the gradient of the loss over the *whole* training subset. The
top Hessian eigenvalue λ_max (``harness.trainers.hessian.lanczos`` on Hessian-vector
products) is measured at the start point, and optionally every
``sharpness_every`` steps along the way (warm-started from the last top
vector). With option ``lr_unit="2/lambda0"`` the recipe's ``lr`` is a factor f
and seed s trains at η_s = f·2/λ_max(θ_s, start): the divergence threshold of
seed 003 sits at f = 1 for every seed.

Problems (``dataset`` / ``model``):

* ``quadratic`` / ``linear``: least squares ½·mean (x·w − y)² on seed-drawn
  data with an anisotropic design, so the Hessian XᵀX/n is constant and known
  exactly (metric ``lambda_exact``); GD on it is stable iff η < 2/λ_max.
* ``teacher`` / ``mlp``: an MLP (``activation``, default tanh) on a fixed
  subset of the synthetic teacher task, square loss on one-hot targets by
  default (the setting in which Cohen et al. observe progressive sharpening and
  the edge of stability), or cross-entropy with ``loss="ce"``.
* ``mnist1d`` / ``mlp`` and ``digits`` / ``mlp``: the same on the first
  ``n_train`` examples of MNIST-1D or of digits' training split (flattened);
* ``cifar10`` / ``mlp``: the same on the first ``n_train`` CIFAR-10 training
  images, flattened and standardised (the gpu tier; Cohen et al. use a 5k subset).

A run *diverges* once its loss is non-finite or above ``DIVERGENCE_FACTOR``×
its start; it is then frozen and recorded with status ``diverged`` — data, not
an error. Arrays: ``loss`` [steps+1] (NaN after divergence), ``sharp_steps``,
``sharpness`` (NaN after divergence), ``eta``; metrics ``lambda0``, ``eta``,
``final_loss``, ``lambda_final`` and for the quadratic ``lambda_exact``.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Iterator, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from harness.trainers.hessian import flat_hvp, lanczos
from harness.data.images import load_images
from harness.trainers.models.small_nets import ACTIVATIONS, MLPSpec, stack
from harness.recipe import Recipe
from harness.store.runs import DIVERGED, OK
from harness.trainers.base import RunResult, TrainContext, Trainer, cpu_threads

#: seed 003 §4.1 / issue 6: "loss above k× its start or non-finite"; 10× is far above any
#: transient bump of a stable run and is reached within a few dozen steps once |1 − ηλ| > 1
DIVERGENCE_FACTOR = 10.0
#: effective rate for ``--plan`` estimates (batched bmm on the 2-core CI box, one thread busy)
FLOPS_PER_SECOND = {"cpu": 2e10, "cuda": 2e12}

PROBLEMS = {("quadratic", "linear"), ("teacher", "mlp"), ("mnist1d", "mlp"), ("digits", "mlp"), ("cifar10", "mlp")}


@dataclass
class Problem:
    """A batched full-batch loss: ``losses()`` → [M] at the current ``params``."""

    params: list[torch.Tensor]
    losses: Callable[[], torch.Tensor]
    lambda_exact: torch.Tensor | None = None


class GDTrainer(Trainer):
    name = "gd"
    options = {
        "n_train": 256,
        "dim": 32,            # quadratic / teacher input dimension
        "classes": 10,        # teacher
        "label_noise": 0.0,   # teacher
        "data_seed": 0,       # teacher / cifar10 subset (the quadratic is drawn from the run seed)
        "spread": 10.0,       # quadratic: ratio of the largest to the smallest design column scale
        "width": 64,
        "depth": 3,           # linear layers of the MLP
        "activation": "tanh",
        "loss": "mse",        # mlp: "mse" (½‖f − onehot‖², Cohen et al.) or "ce"
        "lr_unit": "absolute",  # or "2/lambda0": lr is the factor f of η = f·2/λ_max(start)
        "lanczos_iters": 20,
        "sharpness_every": 0,  # 0: λ_max at the start only
        "dtype": "float32",
    }

    def rules(self, recipe: Recipe, o: dict[str, Any]) -> Iterable[tuple[bool, str]]:
        return [
            ((recipe.dataset, recipe.model) not in PROBLEMS,
             f"dataset/model must be one of {sorted(PROBLEMS)}, got {(recipe.dataset, recipe.model)}"),
            (recipe.optimizer != "gd" or recipe.momentum != 0 or recipe.weight_decay != 0,
             "optimizer must be 'gd' (plain full-batch GD: no momentum, no weight decay)"),
            (recipe.schedule != "constant", "schedule must be 'constant'"),
            (bool(recipe.probes), "takes no probes (loss and sharpness are always recorded)"),
            (recipe.batch_size != o["n_train"], f"full batch: batch_size must equal option n_train ({o['n_train']})"),
            (o["n_train"] > {"mnist1d": 4000, "digits": 1500}.get(recipe.dataset, o["n_train"]),
             "option n_train exceeds the training set (mnist1d: 4000, digits: 1500)"),
            (o["lr_unit"] not in ("absolute", "2/lambda0"), "option lr_unit must be 'absolute' or '2/lambda0'"),
            (o["activation"] not in ACTIVATIONS, f"option activation must be one of {ACTIVATIONS}"),
            (o["loss"] not in ("mse", "ce"), "option loss must be 'mse' or 'ce'"),
            (o["dtype"] not in ("float32", "float64"), "option dtype must be float32 or float64"),
            (o["depth"] < 2 or o["lanczos_iters"] < 2 or o["sharpness_every"] < 0,
             "options depth and lanczos_iters must be >= 2, sharpness_every >= 0"),
        ]

    def chunk_size(self, recipe: Recipe, device: str) -> int:
        return 32 if device == "cpu" else 64

    def estimate_seconds(self, recipe: Recipe, device: str) -> float:
        o = self.opts(recipe)
        d = {"cifar10": 3072, "mnist1d": 40, "digits": 64}.get(recipe.dataset, o["dim"])
        per_example = d * (1 if recipe.model == "linear" else o["width"]) + (o["depth"] - 2) * o["width"] ** 2 + o["width"] * o["classes"]
        flops = 6 * recipe.steps * o["n_train"] * per_example
        measures = 1 + (recipe.steps // o["sharpness_every"] if o["sharpness_every"] else 0)
        flops += measures * o["lanczos_iters"] * 4 * 6 * o["n_train"] * per_example
        return flops / FLOPS_PER_SECOND["cpu" if device == "cpu" else "cuda"] + 1e-3

    # -- problems -----------------------------------------------------------------------
    def _problem(self, recipe: Recipe, o: dict[str, Any], seeds: list[int], ctx: TrainContext, dtype) -> Problem:
        dev = torch.device(ctx.device)
        m = len(seeds)
        if recipe.dataset == "quadratic":
            return _quadratic(seeds, o["n_train"], o["dim"], o["spread"], dev, dtype)
        if recipe.dataset == "teacher":
            from harness.data.synthetic import teacher_task

            t = teacher_task(seed=o["data_seed"], n_train=o["n_train"], n_test=2, dim=o["dim"],
                             classes=o["classes"], label_noise=o["label_noise"])
            x, y, classes = t.x_train, t.y_train, o["classes"]
        elif recipe.dataset in ("mnist1d", "digits"):
            from harness.data.vectors import vector_task

            t = vector_task(recipe.dataset, o["n_train"], 1)
            x, y, classes = t.x_train, t.y_train, t.num_classes
        else:
            imgs = load_images("cifar10", ctx.data_dir, ctx.download)
            g = torch.Generator().manual_seed(o["data_seed"])
            idx = torch.randperm(len(imgs.y_train), generator=g)[: o["n_train"]]
            x = imgs.x_train[idx].flatten(1).to(torch.float64)
            x = (x - x.mean(0)) / x.std(0).clamp_min(1e-8)
            y, classes = imgs.y_train[idx], imgs.num_classes
        spec = MLPSpec((x.shape[1],) + (o["width"],) * (o["depth"] - 1) + (classes,), o["activation"])
        params = [p.requires_grad_() for p in stack([spec.init(s, dtype) for s in seeds], dev)]
        xb = x.to(dev, dtype).expand(m, -1, -1)
        y = y.to(dev)
        target = F.one_hot(y, classes).to(dtype)

        def losses() -> torch.Tensor:
            out = spec.forward(params, xb)
            if o["loss"] == "mse":
                return 0.5 * ((out - target) ** 2).sum(-1).mean(-1)
            return F.cross_entropy(out.flatten(0, 1), y.repeat(m), reduction="none").view(m, -1).mean(1)

        return Problem(params, losses)

    # -- training -------------------------------------------------------------------------
    def train(self, recipe: Recipe, seeds: Sequence[int], ctx: TrainContext) -> Iterator[RunResult]:
        t0 = time.perf_counter()
        o = self.opts(recipe)
        dtype = getattr(torch, o["dtype"])
        seeds = [int(s) for s in seeds]
        with cpu_threads(ctx.device):
            prob = self._problem(recipe, o, seeds, ctx, dtype)
            run = gd_run(prob, seeds, recipe.lr, recipe.steps, relative=o["lr_unit"] == "2/lambda0",
                         lanczos_iters=o["lanczos_iters"], sharpness_every=o["sharpness_every"])
        per_run = (time.perf_counter() - t0) / len(seeds)
        for i, s in enumerate(seeds):
            metrics = {"lambda0": float(run.lambda0[i]), "eta": float(run.eta[i]),
                       "final_loss": float(run.loss[-1, i]), "lambda_final": float(run.sharpness[-1, i])}
            if prob.lambda_exact is not None:
                metrics["lambda_exact"] = float(prob.lambda_exact[i])
            yield RunResult(
                seed=s,
                arrays={"loss": run.loss[:, i].copy(), "sharp_steps": run.sharp_steps,
                        "sharpness": run.sharpness[:, i].copy(), "eta": np.array(run.eta[i])},
                metrics=metrics, status=OK if run.alive[i] else DIVERGED, seconds=per_run,
            )


def _quadratic(seeds: list[int], n: int, d: int, spread: float, dev, dtype) -> Problem:
    """Per-seed least squares with design columns scaled over ``spread``: a known, well-separated top eigenvalue."""
    xs, ys, ws = [], [], []
    scales = torch.logspace(0, -math.log10(spread), d, dtype=torch.float64)
    for s in seeds:
        g = torch.Generator().manual_seed(30_000 + s)
        x = torch.randn(n, d, generator=g, dtype=torch.float64) * scales
        w_star = torch.randn(d, generator=g, dtype=torch.float64)
        ys.append(x @ w_star + 0.1 * torch.randn(n, generator=g, dtype=torch.float64))
        xs.append(x)
        ws.append(torch.randn(d, generator=g, dtype=torch.float64))
    x = torch.stack(xs)
    exact = torch.linalg.eigvalsh(x.transpose(1, 2) @ x / n)[:, -1]
    x, y = x.to(dev, dtype), torch.stack(ys).to(dev, dtype)
    w = torch.stack(ws).to(dev, dtype).requires_grad_()

    def losses() -> torch.Tensor:
        r = torch.bmm(x, w.unsqueeze(-1)).squeeze(-1) - y
        return 0.5 * (r * r).mean(1)

    return Problem([w], losses, exact)


@dataclass
class GDRun:
    loss: np.ndarray         # [steps+1, M]
    sharp_steps: np.ndarray  # [S]
    sharpness: np.ndarray    # [S, M]
    lambda0: np.ndarray      # [M]
    eta: np.ndarray          # [M]
    alive: np.ndarray        # [M] bool


def gd_run(prob: Problem, seeds: list[int], lr: float, steps: int, *, relative: bool, lanczos_iters: int = 20,
           sharpness_every: int = 0, lambda_scale: float | torch.Tensor = 1.0) -> GDRun:
    """Full-batch GD on ``prob`` from its current parameters.

    ``relative``: η_s = lr·2/(λ̂_s·lambda_scale) from the measured λ̂_s. ``lambda_scale``
    ≠ 1 deliberately mis-states the sharpness (a negative control of the divergence
    law: an estimate off by 2× must be caught). Parameters are updated in place.
    """
    params = prob.params
    m = params[0].shape[0]
    p_total = sum(p[0].numel() for p in params)
    dev = params[0].device
    alive = torch.ones(m, dtype=torch.bool, device=dev)
    vec: torch.Tensor | None = None

    def sharpness() -> torch.Tensor:
        nonlocal vec
        base = flat_hvp(lambda: prob.losses().sum(), params)
        top, ritz = lanczos(lambda v: torch.where(alive[:, None], base(v), 0.0), m, p_total, iters=lanczos_iters,
                            dtype=torch.float64, device=dev, seeds=seeds, start=vec)
        vec = ritz[:, 0]
        return torch.where(alive, top[:, 0], float("nan"))

    lam0 = sharpness()
    eta = (lr * 2.0 / (lam0 * lambda_scale)) if relative else torch.full((m,), float(lr), dtype=torch.float64, device=dev)
    sharp_steps, sharp_rows = [0], [lam0.cpu()]
    loss_rows = []
    start = None
    for t in range(steps + 1):
        loss = prob.losses()
        with torch.no_grad():
            if start is None:
                start = loss.detach().clone()
            alive &= torch.isfinite(loss) & (loss <= DIVERGENCE_FACTOR * start)
            loss_rows.append(torch.where(alive, loss.detach(), float("nan")).double().cpu())
        if t == steps:
            break
        grads = torch.autograd.grad(loss.nan_to_num(0.0).sum(), params)
        with torch.no_grad():
            step = (eta * alive).to(params[0].dtype)
            for p, g in zip(params, grads):
                p.sub_(step.view(-1, *([1] * (p.dim() - 1))) * g)
        if sharpness_every and (t + 1) % sharpness_every == 0:
            sharp_steps.append(t + 1)
            sharp_rows.append(sharpness().cpu())
    return GDRun(
        loss=torch.stack(loss_rows).numpy(), sharp_steps=np.array(sharp_steps, dtype=np.int64),
        sharpness=torch.stack(sharp_rows).numpy(), lambda0=lam0.cpu().numpy(), eta=eta.cpu().numpy(),
        alive=alive.cpu().numpy(),
    )
