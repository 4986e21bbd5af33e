"""SGD under step-decay LR schedules, with per-pattern accuracy curves and stage-wise transfer (seed 003).

``sched`` trains many seeds at once (stacked parameters) with SGD + momentum +
weight decay (``harness.trainers.optim.sgd_step``) under ``schedule``:

* ``constant``;
* ``step``: the LR is multiplied by ``gamma`` at each fraction of training in
  ``milestones`` — seed 003's lrDecay, whose stages are the intervals between
  decays. Fractions (not step numbers) keep a schedule's shape when ``steps``
  changes.

Data (``dataset``) and model (``model``):

* ``ps10`` (``harness.data.ps10``) with ``mlp`` on the 6-vector (``spatial``
  1) or a conv net of ``harness.trainers.models.convnets`` (``bn_convnet``, ``cnn4``, …)
  on the images (``spatial`` > 1, 32 = CIFAR size). Accuracy is reported on
  the simple and complex test patterns separately, and on the noisy training
  subset (memorisation), as curves every ``eval_every`` steps.
* ``teacher`` (``harness.data.synthetic.teacher_task``) with ``mlp``.
* ``mnist1d`` with the MLPs, ``digits`` with the MLPs (flattened) or a conv net
  (1×8×8): the first ``n_train`` / ``n_test`` examples of the fixed splits.
* ``cifar10`` with a conv net (the gpu tier; ``harness.data.cifar10``).

``mlp`` may see its input through a fixed random Fourier embedding
[sin(xB), cos(xB)], B ~ N(0, ``fourier``²) of ``fourier_dim`` columns drawn
from ``data_seed`` (shared by all seeds, like the data): it lets a small
ReLU MLP resolve PS10's 1000 complex patterns in R³ within a CPU budget.

Transfer (option ``transfer="halves"``): the classes are split in two; the net
trains on the first half (the source task, e.g. CIFAR-10 classes 0–4) and at
the end of every stage a snapshot is taken. Each snapshot is transferred to the
second half (the target task, relabelled 0..): "fix" — a ridge-regression
linear probe on its frozen, standardised penultimate features; "finetune" —
all weights trained from the snapshot with a fresh head for
``finetune_steps`` at ``finetune_lr`` (same data order for every snapshot).
Arrays ``stage_acc`` (source test accuracy), ``tacc_fix``, ``tacc_finetune``
([stages]) feed seed 003's transferability (tacc_i − tacc_{i−1})/(acc_i − acc_{i−1}).

A run diverges when its loss is non-finite or above 10× its start; it is frozen
and recorded with status ``diverged``.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Iterator, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from harness.data.images import load_images
from harness.trainers.models.small_nets import MLPSpec, stack
from harness.trainers.optim import lr_at, sgd_step
from harness.recipe import Recipe
from harness.store.runs import DIVERGED, OK
from harness.trainers.base import RunResult, TrainContext, Trainer, cpu_threads
from harness.trainers.linear_probe import ridge_probe

#: a run counts as diverged once its loss is non-finite or this many times its start
DIVERGENCE_FACTOR = 10.0
#: stream offsets: a seed's data order, and its fine-tuning order, apart from its init
_ORDER_STREAM, _FINETUNE_STREAM = 7_919, 15_485
#: effective rates for ``--plan`` estimates (batched bmm on the 2-core CI box, one thread)
FLOPS_PER_SECOND = {"cpu": 1.5e10, "cuda": 2e12}

DATASETS = ("ps10", "teacher", "mnist1d", "digits", "cifar10")
#: ``si_mlp``: the scale-invariant (weight-normalised, top layer frozen) MLP of ``harness.trainers.models.small_nets``
MLP_MODELS = ("mlp", "si_mlp")
SCHEDULES = ("constant", "step")


@dataclass
class Task:
    """Tensors on the device, inputs already in the form the model takes."""

    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    classes: int
    kind_test: torch.Tensor | None = None    # ps10: SIMPLE / COMPLEX per test example
    noisy_train: torch.Tensor | None = None  # ps10: label replaced


class ScheduleTrainer(Trainer):
    name = "sched"
    options = {
        "n_train": 10_000,      # 0 = the whole set (cifar10)
        "n_test": 2_000,
        "data_seed": 0,
        "noise": 0.0,           # ps10: fraction of training labels replaced
        "jitter": 0.01,         # ps10
        "spatial": 1,           # ps10 image side
        "dim": 32,              # teacher
        "classes": 10,          # teacher
        "label_noise": 0.0,     # teacher
        "width": 128,           # mlp
        "depth": 3,             # mlp linear layers
        "fourier": 0.0,         # mlp input embedding scale; 0 = raw input
        "fourier_dim": 64,
        "widths": None,         # conv nets: None = the model's default
        "milestones": (1 / 3, 2 / 3),
        "gamma": 0.1,
        "eval_every": 0,        # 0: evaluate at the end only
        "transfer": "none",     # "halves"
        "finetune_steps": 0,
        "finetune_lr": 0.01,
    }

    def rules(self, recipe: Recipe, o: dict[str, Any]) -> Iterable[tuple[bool, str]]:
        from harness.trainers.models.convnets import MODELS

        conv = recipe.model in MODELS
        ms = list(o["milestones"])
        return [
            (recipe.dataset not in DATASETS, f"dataset must be one of {DATASETS}, got {recipe.dataset!r}"),
            (recipe.model not in MLP_MODELS and not conv,
             f"model must be one of {MLP_MODELS + tuple(sorted(MODELS))}, got {recipe.model!r}"),
            (recipe.model in MLP_MODELS and (recipe.dataset == "cifar10" or (recipe.dataset == "ps10" and o["spatial"] != 1)),
             "the MLPs take vectors: teacher, mnist1d, digits (flattened), or ps10 with spatial=1"),
            (conv and recipe.dataset in ("teacher", "mnist1d"), "the conv nets need images: ps10 (spatial > 1), digits or cifar10"),
            (recipe.optimizer != "sgd", f"optimizer must be 'sgd', got {recipe.optimizer!r}"),
            (not 0 <= recipe.momentum < 1, f"momentum must be in [0, 1), got {recipe.momentum}"),
            (recipe.schedule not in SCHEDULES, f"schedule must be one of {SCHEDULES}, got {recipe.schedule!r}"),
            (bool(recipe.probes), "takes no probes (curves are options: eval_every)"),
            (ms != sorted(ms) or any(not 0 < m < 1 for m in ms), f"milestones must be increasing fractions in (0, 1), got {ms}"),
            (o["transfer"] not in ("none", "halves"), "option transfer must be 'none' or 'halves'"),
            (o["transfer"] == "halves" and (recipe.schedule != "step" or o["finetune_steps"] <= 0),
             "transfer needs schedule 'step' (its stages) and finetune_steps > 0"),
            (o["eval_every"] < 0 or o["depth"] < 2, "eval_every must be >= 0 and depth >= 2"),
        ]

    def chunk_size(self, recipe: Recipe, device: str) -> int:
        return 16 if device == "cpu" else 32

    def estimate_seconds(self, recipe: Recipe, device: str) -> float:
        o = self.opts(recipe)
        if recipe.model in MLP_MODELS:
            d = o["fourier_dim"] if o["fourier"] else {"ps10": 6, "mnist1d": 40, "digits": 64}.get(recipe.dataset, o["dim"])
            per_example = 6 * (d * o["width"] + (o["depth"] - 2) * o["width"] ** 2 + o["width"] * 10)
        else:
            from harness.trainers.models.convnets import model_spec

            side = {"cifar10": 32, "digits": 8}.get(recipe.dataset, o["spatial"])
            spec = model_spec(recipe.model, {"cifar10": 3, "digits": 1}.get(recipe.dataset, 6), 10, o["widths"])
            per_example = 3 * spec.forward_flops(side, side)
        steps = recipe.steps + (3 * o["finetune_steps"] if o["transfer"] == "halves" else 0)
        return per_example * recipe.batch_size * steps / FLOPS_PER_SECOND["cpu" if device == "cpu" else "cuda"] + 1e-3

    # -- data ----------------------------------------------------------------------------
    def _tasks(self, recipe: Recipe, o: dict[str, Any], ctx: TrainContext) -> tuple[Task, Task | None]:
        dev = torch.device(ctx.device)
        kind = noisy = None
        if recipe.dataset == "ps10":
            from harness.data.ps10 import ps10

            d = ps10(seed=o["data_seed"], n_train=o["n_train"], n_test=o["n_test"], noise=o["noise"],
                     jitter=o["jitter"], spatial=o["spatial"])
            xtr, xte = (d.x_train, d.x_test) if recipe.model in MLP_MODELS else (d.images(d.x_train), d.images(d.x_test))
            ytr, yte, classes, kind, noisy = d.y_train, d.y_test, d.num_classes, d.kind_test, d.noisy_train
        elif recipe.dataset == "teacher":
            from harness.data.synthetic import teacher_task

            t = teacher_task(seed=o["data_seed"], n_train=o["n_train"], n_test=o["n_test"], dim=o["dim"],
                             classes=o["classes"], label_noise=o["label_noise"])
            xtr, ytr, xte, yte, classes = t.x_train, t.y_train, t.x_test, t.y_test, o["classes"]
        elif recipe.model in MLP_MODELS:  # mnist1d, digits: flattened
            from harness.data.vectors import vector_task

            t = vector_task(recipe.dataset, o["n_train"], o["n_test"])
            xtr, ytr, xte, yte, classes = t.x_train, t.y_train, t.x_test, t.y_test, t.num_classes
        else:
            imgs = load_images(recipe.dataset, ctx.data_dir, ctx.download).subset(o["n_train"] or None, o["n_test"] or None)
            mean = imgs.x_train.double().mean((0, 2, 3), keepdim=True)
            std = imgs.x_train.double().std((0, 2, 3), keepdim=True)
            xtr, xte = ((imgs.x_train - mean) / std).float(), ((imgs.x_test - mean) / std).float()
            ytr, yte, classes = imgs.y_train, imgs.y_test, imgs.num_classes
        if recipe.model in MLP_MODELS and o["fourier"]:
            g = torch.Generator().manual_seed(40_000 + o["data_seed"])
            b = torch.randn(xtr.shape[1], o["fourier_dim"] // 2, generator=g) * o["fourier"]
            xtr, xte = (torch.cat([torch.sin(x @ b), torch.cos(x @ b)], 1) for x in (xtr, xte))
        if o["transfer"] == "none":
            return Task(xtr.to(dev), ytr.to(dev), xte.to(dev), yte.to(dev), classes,
                        None if kind is None else kind.to(dev), None if noisy is None else noisy.to(dev)), None
        half = classes // 2

        def split(lo: int, hi: int) -> Task:
            a, b = (ytr >= lo) & (ytr < hi), (yte >= lo) & (yte < hi)
            return Task(xtr[a].to(dev), (ytr[a] - lo).to(dev), xte[b].to(dev), (yte[b] - lo).to(dev), hi - lo)

        return split(0, half), split(half, classes)

    # -- training ----------------------------------------------------------------------------
    def train(self, recipe: Recipe, seeds: Sequence[int], ctx: TrainContext) -> Iterator[RunResult]:
        t0 = time.perf_counter()
        o = self.opts(recipe)
        seeds = [int(s) for s in seeds]
        with cpu_threads(ctx.device):
            source, target = self._tasks(recipe, o, ctx)
            net = _net(recipe, o, source, seeds, ctx.device)
            run = _Run(recipe, o, net, source, seeds)
            run.fit()
            transfer = _transfer(recipe, o, net, run.snapshots, target, seeds) if target is not None else {}
        per_run = (time.perf_counter() - t0) / len(seeds)
        for i, s in enumerate(seeds):
            arrays = {k: v[i] for k, v in run.arrays().items()}
            arrays.update({k: v[i] for k, v in transfer.items()})
            metrics = {k: float(v[i]) for k, v in run.metrics().items()}
            yield RunResult(seed=s, arrays=arrays, metrics=metrics,
                            status=OK if bool(run.alive[i]) else DIVERGED, seconds=per_run)


# ------------------------------------------------------------------------------ the network --

@dataclass
class _Net:
    """Stacked parameters and the functions of them a run needs, for an MLP or a conv net."""

    params: list[torch.Tensor]
    trainable: list[bool]
    features: Callable[[list[torch.Tensor], torch.Tensor], torch.Tensor]  # [M, B, ...] or shared [B, ...] → [M, B, F]
    fresh_head: Callable[[list[torch.Tensor], int, list[int]], list[torch.Tensor]]

    def logits(self, params: list[torch.Tensor], x: torch.Tensor) -> torch.Tensor:
        return torch.baddbmm(params[-1].unsqueeze(1), self.features(params, x), params[-2])


def _net(recipe: Recipe, o: dict[str, Any], task: Task, seeds: list[int], device: str) -> _Net:
    m = len(seeds)
    if recipe.model in MLP_MODELS:
        spec = MLPSpec((task.x_train.shape[1],) + (o["width"],) * (o["depth"] - 1) + (task.classes,),
                       scale_invariant=recipe.model == "si_mlp")
        params = stack([spec.init(s) for s in seeds], device)

        def feats(ps, x):
            return spec.features(ps, x if x.dim() == 3 else x.expand(m, -1, -1))

        def head(ps, classes, ss):
            new = MLPSpec(spec.sizes[:-1] + (classes,), scale_invariant=spec.scale_invariant)
            return ps[:-2] + stack([new.init(s + 1_000_003)[-2:] for s in ss], device)

        return _Net(params, spec.trainable(params), feats, head)

    from harness.trainers.models.convnets import model_spec, stack_params

    spec = model_spec(recipe.model, task.x_train.shape[1], task.classes, o["widths"])
    names = spec.names
    stacked = stack_params([spec.init(s) for s in seeds], device)
    params = [stacked[n] for n in names]
    eye = torch.eye(spec.widths[-1], device=device).expand(m, -1, -1)
    zero = torch.zeros(m, spec.widths[-1], device=device)

    def conv_feats(ps, x):
        # the head with W = I, b = 0 returns the pooled features: no copy of the conv net's forward
        d = dict(zip(names, ps))
        d["head.weight"], d["head.bias"] = eye, zero
        return spec.forward(d, x)

    def conv_head(ps, classes, ss):
        new = model_spec(recipe.model, task.x_train.shape[1], classes, o["widths"])
        fresh = stack_params([new.init(s + 1_000_003) for s in ss], device)
        return ps[:-2] + [fresh["head.weight"], fresh["head.bias"]]

    return _Net(params, [n in spec.trainable_names for n in names], conv_feats, conv_head)


def _batches(seeds: list[int], stream: int, n: int, batch: int, steps: int, device) -> Iterator[torch.Tensor]:
    """Per-seed uniform minibatch indices [M, B], drawn in blocks from each seed's own generator."""
    gens = [torch.Generator().manual_seed(stream * (s + 1)) for s in seeds]
    block = 256
    for start in range(0, steps, block):
        k = min(block, steps - start)
        idx = torch.stack([torch.randint(n, (k, batch), generator=g) for g in gens], 1).to(device)  # [k, M, B]
        yield from idx


def _lr(recipe: Recipe, o: dict[str, Any], step: int) -> float:
    return lr_at(recipe.schedule, recipe.lr, step, recipe.steps, milestones=o["milestones"], gamma=o["gamma"])


def _sgd(net: _Net, params: list[torch.Tensor], task: Task, seeds: list[int], stream: int, steps: int,
         lr_of: Callable[[int], float], recipe: Recipe, alive: torch.Tensor,
         on_step: Callable[[int, list[torch.Tensor]], None] | None = None) -> torch.Tensor:
    """Minibatch SGD in place on ``params``; returns the last batch losses [M]. ``alive`` is updated."""
    m = len(seeds)
    train = [p.requires_grad_(t) for p, t in zip(params, net.trainable)]
    idx_of = [i for i, t in enumerate(net.trainable) if t]
    bufs = [torch.zeros_like(params[i]) for i in idx_of] if recipe.momentum else None
    start = None
    loss = torch.full((m,), float("nan"))
    for step, idx in enumerate(_batches(seeds, stream, len(task.y_train), recipe.batch_size, steps,
                                        task.y_train.device)):
        if on_step is not None:
            on_step(step, params)
        out = net.logits(train, task.x_train[idx])
        loss = F.cross_entropy(out.flatten(0, 1), task.y_train[idx].flatten(), reduction="none").view(m, -1).mean(1)
        with torch.no_grad():
            start = loss.detach().clone() if start is None else start
            alive &= torch.isfinite(loss) & (loss <= DIVERGENCE_FACTOR * start)
        grads = torch.autograd.grad(loss.nan_to_num(0.0).sum(), [params[i] for i in idx_of])
        sgd_step([params[i] for i in idx_of], grads, bufs, lr=lr_of(step), momentum=recipe.momentum,
                 weight_decay=recipe.weight_decay, mask=alive)
    if on_step is not None:
        on_step(steps, params)
    for p in params:
        p.requires_grad_(False)
    return loss.detach()


@torch.no_grad()
def _predict(net: _Net, params: list[torch.Tensor], x: torch.Tensor, chunk: int = 2048) -> torch.Tensor:
    """Predicted labels [M, N] (chunks of examples; conv nets see each chunk as one BN batch)."""
    return torch.cat([net.logits(params, x[i:i + chunk]).argmax(-1) for i in range(0, len(x), chunk)], 1)


class _Run:
    """The source training of one chunk: curves, stage snapshots, final metrics."""

    def __init__(self, recipe: Recipe, o: dict[str, Any], net: _Net, task: Task, seeds: list[int]) -> None:
        self.recipe, self.o, self.net, self.task, self.seeds = recipe, o, net, task, seeds
        self.alive = torch.ones(len(seeds), dtype=torch.bool, device=task.y_train.device)
        self.curve_steps: list[int] = []
        self.curves: dict[str, list[torch.Tensor]] = {}
        self.snapshots: list[list[torch.Tensor]] = []
        r = recipe
        self.stage_ends = ({round(f * r.steps) for f in o["milestones"]} | {r.steps}) if r.schedule == "step" else {r.steps}

    def _observe(self, step: int, params: list[torch.Tensor]) -> None:
        every = self.o["eval_every"]
        if (every and step % every == 0) or step == self.recipe.steps:
            self.curve_steps.append(step)
            for k, v in self._accuracies(params).items():
                self.curves.setdefault(k, []).append(v.cpu())
        if step in self.stage_ends and self.o["transfer"] != "none":
            self.snapshots.append([p.detach().clone() for p in params])

    def _accuracies(self, params: list[torch.Tensor]) -> dict[str, torch.Tensor]:
        t = self.task
        pred = _predict(self.net, params, t.x_test)
        out = {"acc": (pred == t.y_test).float().mean(1)}
        if t.kind_test is not None:
            from harness.data.ps10 import accuracy_by_kind

            out.update(accuracy_by_kind(pred, t.y_test, t.kind_test))
        if t.noisy_train is not None and bool(t.noisy_train.any()):
            sel = t.noisy_train
            out["noisy"] = (_predict(self.net, params, t.x_train[sel]) == t.y_train[sel]).float().mean(1)
        return out

    def fit(self) -> None:
        r = self.recipe
        self.last_loss = _sgd(self.net, self.net.params, self.task, self.seeds, _ORDER_STREAM, r.steps,
                              lambda step: _lr(r, self.o, step), r, self.alive, self._observe)

    def arrays(self) -> dict[str, np.ndarray]:
        out = {"curve_steps": np.broadcast_to(np.array(self.curve_steps), (len(self.seeds), len(self.curve_steps)))}
        for k, rows in self.curves.items():
            out[f"curve_{k}"] = torch.stack(rows, 1).numpy()
        if self.snapshots:
            accs = [(_predict(self.net, s, self.task.x_test) == self.task.y_test).float().mean(1) for s in self.snapshots]
            out["stage_acc"] = torch.stack(accs, 1).cpu().numpy()
        return out

    def metrics(self) -> dict[str, np.ndarray]:
        final = {k: rows[-1].numpy() for k, rows in self.curves.items()}
        out = {"test_acc": final.pop("acc"), "train_loss": self.last_loss.cpu().numpy()}
        out.update({f"acc_{k}": v for k, v in final.items()})
        return out


# ------------------------------------------------------------------------------ transfer --

def _transfer(recipe: Recipe, o: dict[str, Any], net: _Net, snapshots: list[list[torch.Tensor]], target: Task,
              seeds: list[int]) -> dict[str, np.ndarray]:
    fix, fine = [], []
    for snap in snapshots:
        with torch.no_grad():
            ftr = torch.cat([net.features(snap, target.x_train[i:i + 2048]) for i in range(0, len(target.y_train), 2048)], 1)
            fte = torch.cat([net.features(snap, target.x_test[i:i + 2048]) for i in range(0, len(target.y_test), 2048)], 1)
        fix.append((ridge_probe(ftr, target.y_train, fte, target.classes) == target.y_test).float().mean(1))
        params = [p.clone() for p in net.fresh_head(snap, target.classes, seeds)]
        alive = torch.ones(len(seeds), dtype=torch.bool, device=target.y_train.device)
        _sgd(net, params, target, seeds, _FINETUNE_STREAM, o["finetune_steps"], lambda step: o["finetune_lr"],
             recipe, alive)
        acc = (_predict(net, params, target.x_test) == target.y_test).float().mean(1)
        fine.append(torch.where(alive, acc, float("nan")))
    return {"tacc_fix": torch.stack(fix, 1).cpu().numpy(), "tacc_finetune": torch.stack(fine, 1).cpu().numpy()}
