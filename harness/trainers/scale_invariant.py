"""Trainers for the scale-invariance laws (seeds 001, 002): BN nets with SGD / LARS / full-batch GD, and the toy loss.

``scale_invariant`` trains the nets of ``harness.trainers.models.convnets`` (the recipe's
``model``: ``bn_convnet``, ``plain_convnet``, ``si_convnet``, ``cnn4``,
``bn_mlp``, ``plain_mlp``), many seeds at once as grouped convolutions, on

* ``templates``: synthetic images (``harness.data.standin.learnable_images``,
  ``channels``×``image_size``² — the smoke tier's data, no download);
* ``teacher``: synthetic vectors (``harness.data.synthetic.teacher_task``) for the MLPs;
* ``mnist1d`` (vectors, for the MLPs), ``digits`` (1×8×8 images), ``mnist`` /
  ``cifar10``: the real sets, the first ``n_train`` / ``n_test`` examples.

Recipe fields, in seed 001's notation (λ = ``lr``, α = ``weight_decay``,
ρ = ``momentum``; seed 002 calls the LR η and the weight decay λ):

* ``optimizer``: ``sgd`` (coupled L2 decay through heavy-ball momentum),
  ``gd`` (full batch: ``batch_size`` must equal the training-set size,
  momentum 0), or ``lars`` (seed 001's LARS on the conv weights with
  λ_LARS = ``lr``, no decay on them unless ``lars_weight_decay``; every other
  parameter takes SGD steps with LR ``sgd_lr`` and the recipe's decay);
* ``schedule``: ``constant``, ``linear_decay`` or ``piecewise`` with option
  ``lr_points`` = ((start_step, factor), …);
* ``probes``: ``layer_stats`` (``harness.trainers.probes.LayerStats`` on every conv
  weight, every ``probe_every`` steps), ``snapshots`` (test-set predicted
  labels every ``snapshot_every`` steps and at the end: ``snap_pred`` [S, n_test]
  uint8, ``snap_steps`` [S]), ``loss`` (the training loss and error rate of the
  step's batch every ``loss_every`` steps: ``loss``, ``train_err``, ``loss_steps``
  — over the full training set under ``gd``),
  ``logits`` (final test logits), ``final_weights`` (every trained parameter
  flattened into one float64 vector).

Options ``init_scale`` (multiplies every conv weight at init, same draw),
``bn_eps`` (0: exact normalisation), ``affine`` / ``train_head`` (override the
model's preset), ``dtype`` (``float64`` for exactness checks), ``wd_on`` (``all``
parameters or only the ``invariant`` ones) and the model's ``widths`` /
``strides`` complete a run. A run diverges (status ``diverged``) when its loss
becomes non-finite; loss *spikes* are data here (seed 002's GD never settles),
so no threshold on the loss's size is used.

``toy2d`` (``harness.trainers.toy2d``) runs full-batch GD with weight decay on seed 002's
toy loss L(x, y) = x²/(x² + y²) from a seed-drawn angle (probe ``loss``).

Seeds give init and data order from their own generators, so seed *s* is the
same run in any chunk and at every LR / decay / init scale (common random numbers).
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Iterable, Iterator, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from harness.trainers.models.convnets import MODELS, ConvNetSpec, model_spec, stack_params
from harness.trainers.optim import check_points, gd_step, lars_step, lr_at, sgd_step, SCHEDULES
from harness.trainers.probes import LayerStats
from harness.recipe import Recipe, RecipeError
from harness.data.images import load_images
from harness.store.runs import DIVERGED, OK
from harness.data.catalog import DataUnavailable
from harness.trainers.base import RunResult, TrainContext, Trainer, cpu_threads

OPTIMIZERS = ("sgd", "gd", "lars")
PROBES = ("layer_stats", "snapshots", "loss", "logits", "final_weights")
DATASETS = ("templates", "teacher", "mnist1d", "digits", "mnist", "cifar10")
#: data sets of vectors, for the mlp models; every other one is images, for the conv nets
VECTOR_DATA = ("teacher", "mnist1d")
#: data stream generator of seed s: its own stream, apart from the init generator (seeded with s)
_ORDER_STREAM = 7_919
#: seeds trained together on the CPU. Every CPU chunk has exactly this many (a short one is padded
#: with copies of its last seed): oneDNN picks its convolution kernel by the number of groups, and
#: a seed trained in a chunk of 1 or 2 differed in the last bits — which chaotic training amplifies
#: to O(1) — from the same seed in a chunk of 16. With a fixed count a seed is the same run in any
#: chunk (``tests/test_probes.py``). On CUDA, kernels are not bitwise reproducible anyway.
CPU_CHUNK = 8
#: effective FLOP rate per seed for ``--plan`` before the store has timings. CPU: measured on the shared
#: 2-core box (one thread, load ≈ 4): 11.7e9 for the smoke conv nets, 17e9 for the full-batch MLP.
#: CUDA: an a-priori guess for grouped fp32 convs this small (not measured: no GPU was lent).
FLOPS_PER_SECOND = {"cpu": 1.2e10, "cuda": 1e13}


@dataclass
class Data:
    x_train: torch.Tensor  # float [N, C, H, W] on the device, standardised per channel
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    classes: int


def _standardise(x_train: torch.Tensor, x_test: torch.Tensor, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
    xt = x_train.to(torch.float64)
    dims = (0, 2, 3)
    mean, std = xt.mean(dims, keepdim=True), xt.std(dims, keepdim=True).clamp_min(1e-8)
    return ((xt - mean) / std).to(dtype), ((x_test.to(torch.float64) - mean) / std).to(dtype)


class ScaleInvariantTrainer(Trainer):
    name = "scale_invariant"
    options = {
        "widths": None,          # None: the model's default (harness.trainers.models.convnets.MODELS)
        "strides": None,
        "bn_eps": 1e-5,
        "affine": None,          # None: the model's default; else BN γ, β trained (True) or absent (False)
        "train_head": None,      # None: the model's default; False freezes the head at its initialisation
        "init_scale": 1.0,
        "dtype": "float32",
        "wd_on": "all",          # "all" | "invariant": which parameters weight decay acts on
        "n_train": 2048,         # 0 = the whole set (mnist / cifar10)
        "n_test": 512,
        "image_size": 8,         # templates
        "channels": 1,           # templates
        "classes": 10,           # templates / teacher
        "dim": 32,               # teacher
        "label_noise": 0.1,      # teacher
        "data_seed": 0,
        "probe_every": 10,
        "snapshot_every": 0,     # 0: one snapshot, at the end
        "loss_every": 1,
        "lr_points": (),
        "sgd_lr": 0.0,           # lars: LR of the parameters LARS does not drive
        "lars_weight_decay": 0.0,
        "lars_eps": 0.0,
    }

    # -- validation -------------------------------------------------------------
    def rules(self, recipe: Recipe, o: dict[str, Any]) -> Iterable[tuple[bool, str]]:
        return [
            (recipe.dataset not in DATASETS, f"dataset must be one of {DATASETS}, got {recipe.dataset!r}"),
            (recipe.model not in MODELS, f"model must be one of {sorted(MODELS)}, got {recipe.model!r}"),
            (recipe.optimizer not in OPTIMIZERS, f"optimizer must be one of {OPTIMIZERS}, got {recipe.optimizer!r}"),
            (recipe.schedule not in SCHEDULES, f"schedule must be one of {SCHEDULES}, got {recipe.schedule!r}"),
            (bool(set(recipe.probes) - set(PROBES)), f"probes must be among {PROBES}, got {list(recipe.probes)}"),
            (recipe.optimizer == "gd" and recipe.momentum != 0, "optimizer gd is plain full-batch GD: momentum must be 0"),
            (not 0 <= recipe.momentum < 1, f"momentum must be in [0, 1), got {recipe.momentum}"),
            (o["dtype"] not in ("float32", "float64"), f"option dtype must be float32 or float64, got {o['dtype']!r}"),
            (o["wd_on"] not in ("all", "invariant"), f"option wd_on must be 'all' or 'invariant', got {o['wd_on']!r}"),
            (not (o["bn_eps"] >= 0 and o["init_scale"] > 0), "options bn_eps must be >= 0 and init_scale > 0"),
            (recipe.model.endswith("mlp") != (recipe.dataset in VECTOR_DATA),
             f"the mlp models train on {VECTOR_DATA}, the conv nets on image sets"),
            (recipe.optimizer == "lars" and not (o["sgd_lr"] > 0 and recipe.lr > 0),
             "optimizer lars needs lr > 0 and option sgd_lr > 0"),
            (min(o["probe_every"], o["loss_every"]) <= 0 or o["snapshot_every"] < 0,
             "options probe_every and loss_every must be positive, snapshot_every >= 0"),
            (recipe.optimizer == "gd" and recipe.batch_size != o["n_train"],
             f"optimizer gd is full batch: batch_size must equal option n_train ({o['n_train']})"),
        ]

    def validate(self, recipe: Recipe) -> None:
        super().validate(recipe)
        o = self.opts(recipe)
        try:  # the schedule's points and the model's shape check themselves
            check_points(o["lr_points"])
            self._spec(recipe, o, 1, 2)
        except ValueError as e:
            raise RecipeError(f"{self.name} trainer: {e}") from None

    @staticmethod
    def _spec(recipe: Recipe, o: dict[str, Any], in_channels: int, classes: int) -> ConvNetSpec:
        return model_spec(recipe.model, in_channels, classes, o["widths"], o["strides"], o["bn_eps"],
                          o["affine"], o["train_head"])

    # -- data -----------------------------------------------------------------------
    def _data(self, recipe: Recipe, o: dict[str, Any], ctx: TrainContext, dtype: torch.dtype) -> Data:
        n_train, n_test = o["n_train"], o["n_test"]
        if recipe.dataset == "teacher":
            from harness.data.synthetic import teacher_task

            t = teacher_task(seed=o["data_seed"], n_train=n_train, n_test=n_test, dim=o["dim"],
                             classes=o["classes"], label_noise=o["label_noise"])
            xtr, xte = t.x_train[:, :, None, None].to(dtype), t.x_test[:, :, None, None].to(dtype)
            ytr, yte, classes = t.y_train, t.y_test, o["classes"]
        elif recipe.dataset == "mnist1d":
            from harness.data.vectors import vector_task

            t = vector_task("mnist1d", n_train, n_test)
            xtr, xte = t.x_train[:, :, None, None].to(dtype), t.x_test[:, :, None, None].to(dtype)
            ytr, yte, classes = t.y_train, t.y_test, t.num_classes
        else:
            if recipe.dataset == "templates":
                from harness.data.standin import learnable_images

                s = o["image_size"]
                imgs = learnable_images(n_train, n_test, (o["channels"], s, s), o["classes"], seed=o["data_seed"])
            else:
                imgs = load_images(recipe.dataset, ctx.data_dir, ctx.download).subset(n_train or None, n_test or None)
            xtr, xte = _standardise(imgs.x_train, imgs.x_test, dtype)
            ytr, yte, classes = imgs.y_train, imgs.y_test, imgs.num_classes
        if recipe.optimizer == "gd" and recipe.batch_size != len(ytr):
            raise DataUnavailable(f"full-batch gd needs batch_size = {len(ytr)} training examples, got {recipe.batch_size}")
        dev = ctx.device
        return Data(xtr.to(dev), ytr.to(dev), xte.to(dev), yte.to(dev), classes)

    # -- scheduling -------------------------------------------------------------------
    def chunk_size(self, recipe: Recipe, device: str) -> int:
        return CPU_CHUNK if str(device).startswith("cpu") else 32

    def estimate_seconds(self, recipe: Recipe, device: str) -> float:
        o = self.opts(recipe)
        size = {"mnist": (1, 28), "cifar10": (3, 32), "digits": (1, 8), "mnist1d": (40, 1), "teacher": (o["dim"], 1)}.get(
            recipe.dataset, (o["channels"], o["image_size"]))
        spec = self._spec(recipe, o, size[0], 10)
        flops = 3 * spec.forward_flops(size[1], size[1]) * recipe.batch_size * recipe.steps
        rate = FLOPS_PER_SECOND["cpu" if str(device).startswith("cpu") else "cuda"]
        return flops / rate * (2.0 if o["dtype"] == "float64" else 1.0) + 1e-3

    # -- training -------------------------------------------------------------------------
    def train(self, recipe: Recipe, seeds: Sequence[int], ctx: TrainContext) -> Iterator[RunResult]:
        t0 = time.perf_counter()
        o = self.opts(recipe)
        dtype = getattr(torch, o["dtype"])
        data = self._data(recipe, o, ctx, dtype)
        spec = self._spec(recipe, o, data.x_train.shape[1], data.classes)
        seeds = [int(s) for s in seeds]
        on_cpu = str(ctx.device).startswith("cpu")
        size = CPU_CHUNK if on_cpu else len(seeds)
        for start in range(0, len(seeds), size):
            block = seeds[start:start + size]
            # pad with copies of the last seed (trained, then dropped): see CPU_CHUNK
            padded = block + [block[-1]] * (size - len(block)) if on_cpu else block
            with cpu_threads(ctx.device):
                run = _Run(recipe, o, spec, data, padded, ctx.device, dtype)
                run.fit()
            per_run = (time.perf_counter() - t0) / len(block)
            t0 = time.perf_counter()
            for i, s in enumerate(block):
                yield RunResult(seed=s, arrays=run.arrays(i), metrics=run.metrics(i),
                                status=OK if bool(run.alive[i]) else DIVERGED, seconds=per_run)


class _Run:
    """One chunk of seeds trained together: parameters, optimiser state, probes."""

    def __init__(self, recipe: Recipe, o: dict[str, Any], spec: ConvNetSpec, data: Data, seeds: list[int],
                 device: str, dtype: torch.dtype) -> None:
        self.recipe, self.o, self.spec, self.data, self.seeds = recipe, o, spec, data, seeds
        self.m = len(seeds)
        self.params = stack_params([spec.init(s, dtype, o["init_scale"]) for s in seeds], device)
        self.trainable = spec.trainable_names
        for n in self.trainable:
            self.params[n].requires_grad_()
        self.tracked = spec.conv_names
        self.bufs = {n: torch.zeros_like(self.params[n]) for n in self.trainable} if recipe.momentum else None
        self.alive = torch.ones(self.m, dtype=torch.bool, device=device)
        self.gens = [torch.Generator().manual_seed(_ORDER_STREAM * (s + 1)) for s in seeds]
        self.perms: list[torch.Tensor] = [torch.empty(0, dtype=torch.long)] * self.m
        self.pos = 0
        probes = set(recipe.probes)
        self.stats = LayerStats(self.tracked, o["probe_every"], recipe.weight_decay) if "layer_stats" in probes else None
        self.loss_rows: list[tuple[int, torch.Tensor, torch.Tensor]] = []
        self.snaps: list[tuple[int, torch.Tensor]] = []
        self.last_loss = torch.full((self.m,), float("nan"), device=device)
        self._stats_arrays: list[dict[str, np.ndarray]] | None = None

    # -- data order: per-seed epochs of a seed-drawn permutation --------------------------
    def _batch_indices(self) -> torch.Tensor:
        n, b = len(self.data.y_train), self.recipe.batch_size
        if b > n:
            raise DataUnavailable(f"batch_size {b} exceeds the {n} training examples")
        if self.pos == 0 or self.pos + b > n:
            self.perms = [torch.randperm(n, generator=g) for g in self.gens]
            self.pos = 0
        idx = torch.stack([p[self.pos:self.pos + b] for p in self.perms])
        self.pos += b
        return idx.to(self.data.y_train.device)

    # -- one step -------------------------------------------------------------------------------
    def _losses(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-seed mean loss of this step's batch, and the logits' error rate on it (no grad)."""
        if self.recipe.optimizer == "gd":
            x, y = self.data.x_train, self.data.y_train.expand(self.m, -1)
        else:
            idx = self._batch_indices()
            x, y = self.data.x_train[idx], self.data.y_train[idx]
        logits = self.spec.forward(self.params, x)
        with torch.no_grad():
            err = (logits.argmax(-1) != y).to(logits.dtype).mean(1)
        loss = F.cross_entropy(logits.flatten(0, 1), y.flatten(), reduction="none").view(self.m, -1).mean(1)
        return loss, err

    def _decay(self, name: str) -> float:
        if self.o["wd_on"] == "invariant" and name not in self.spec.invariant_names:
            return 0.0
        return self.recipe.weight_decay

    def _update(self, lr: float, grads: dict[str, torch.Tensor]) -> None:
        r, mask = self.recipe, self.alive
        groups: dict[tuple[str, float], list[str]] = {}
        for n in self.trainable:
            kind = "lars" if r.optimizer == "lars" and n in self.spec.conv_names else "sgd"
            groups.setdefault((kind, self._decay(n)), []).append(n)
        for (kind, wd), names in groups.items():
            ps, gs = [self.params[n] for n in names], [grads[n] for n in names]
            bufs = [self.bufs[n] for n in names] if self.bufs is not None else None
            if kind == "lars":
                lars_step(ps, gs, bufs, lr=lr, momentum=r.momentum, weight_decay=self.o["lars_weight_decay"],
                          eps=self.o["lars_eps"], mask=mask)
            elif r.optimizer == "gd":
                gd_step(ps, gs, lr=lr, weight_decay=wd, mask=mask)
            else:
                sgd_lr = self.o["sgd_lr"] * lr / r.lr if r.optimizer == "lars" else lr
                sgd_step(ps, gs, bufs, lr=sgd_lr, momentum=r.momentum, weight_decay=wd, mask=mask)

    def fit(self) -> None:
        r, o = self.recipe, self.o
        snap_every = o["snapshot_every"] if "snapshots" in r.probes else 0
        for step in range(r.steps):
            lr = lr_at(r.schedule, r.lr, step, r.steps, o["lr_points"])
            if snap_every and step % snap_every == 0:
                self._snapshot(step)
            loss, err = self._losses()
            with torch.no_grad():  # stays on the device: no host sync per step
                self.alive &= torch.isfinite(loss)
                self.last_loss = loss.detach()
            if "loss" in r.probes and step % o["loss_every"] == 0:
                self.loss_rows.append((step, self.last_loss, err))
            params = [self.params[n] for n in self.trainable]
            grads = dict(zip(self.trainable, torch.autograd.grad(loss.nan_to_num(0.0).sum(), params)))
            if self.stats is not None:
                self.stats.observe(step, lr, [self.params[n] for n in self.tracked], [grads[n] for n in self.tracked])
            self._update(lr, grads)
        if "snapshots" in r.probes:
            self._snapshot(r.steps)
        self.test_logits = self._eval()

    @torch.no_grad()
    def _eval(self) -> torch.Tensor:
        return self.spec.forward(self.params, self.data.x_test)  # [M, n_test, K], population BN

    def _snapshot(self, step: int) -> None:
        self.snaps.append((step, self._eval().argmax(-1).to(torch.uint8).cpu()))

    # -- results ------------------------------------------------------------------------------------
    def arrays(self, i: int) -> dict[str, np.ndarray]:
        r, out = self.recipe, {}
        if "logits" in r.probes:
            out["logits"] = self.test_logits[i].cpu().numpy()  # float64 runs keep float64: exactness checks need it
        if self.stats is not None:
            if self._stats_arrays is None:
                self._stats_arrays = self.stats.arrays()
            out.update(self._stats_arrays[i])
        if self.loss_rows:
            out["loss_steps"] = np.array([row[0] for row in self.loss_rows], dtype=np.int64)
            out["loss"] = torch.stack([row[1][i] for row in self.loss_rows]).double().cpu().numpy()
            out["train_err"] = torch.stack([row[2][i] for row in self.loss_rows]).double().cpu().numpy()
        if self.snaps:
            out["snap_steps"] = np.array([s for s, _ in self.snaps], dtype=np.int64)
            out["snap_pred"] = np.stack([p[i].numpy() for _, p in self.snaps])
        if "final_weights" in r.probes:
            out["final_weights"] = torch.cat([self.params[n][i].detach().double().flatten().cpu()
                                              for n in self.trainable]).numpy()
        return out

    def metrics(self, i: int) -> dict[str, float]:
        acc = (self.test_logits[i].argmax(-1) == self.data.y_test).double().mean()
        return {"test_acc": float(acc), "train_loss": float(self.last_loss[i])}
