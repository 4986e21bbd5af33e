"""Trainer ``airbench``: the airbench94-kind CIFAR-10 net, one run at a time, data resident on the device.

The recipe's numbers are airbench94's, in its units (defaults in ``AIRBENCH94``):

* ``lr`` is per 1024 examples of a summed loss and ``weight_decay`` is
  *decoupled* from it (the decay per step does not change with ``lr``): with
  momentum μ, SGD gets lr/s and weight decay wd·B/s / (lr/s), where
  s = 1024·(1 + 1/(1−μ)) is how much larger a Nesterov step is than one
  gradient once momentum has built up;
* BN biases train with ``bias_scaler``× the LR (but the same decay);
* schedule ``airbench``: linear warm-up from 0.2× to 1× over the first 23% of
  steps, then linear decay to 0.07×;
* every 5 steps the weights jump to an EMA of themselves ("lookahead") with
  decay 0.95⁵·(t/T)³, and at the end they become that EMA;
* the whitening layer's bias trains for the first ``whiten_bias_epochs`` epochs;
* label smoothing 0.2, random flip and ±2 px reflect-translate, test-time
  augmentation level ``tta`` (0 none, 1 mirror, 2 mirror + 1 px translations).

Packs: ``train`` trains each block of seeds (``chunk_size`` = the device class's pack
size, ``harness.packing``) as one net of grouped convolutions (``NetSpec.pack``),
so batch-norm statistics, lookahead, augmentation draws and TTA stay per seed, and a
seed's run never depends on its pack-mates. Grouped convolutions rather than
``vmap(functional_call)``: vmap lowers a batched conv to the same grouped conv (one
conv layer, 8 seeds, fwd+bwd, one CPU thread: grouped 53-57 ms, vmap 60-62 ms), and
grouped channels give per-seed BN without batching BN's running buffers. On one CPU
core the gain is mixed (widths 8/8/8: pack 8 took 1.31× the time per run of 8 runs
alone at batch 64; pack 4 took 0.68× at batch 32, ``bench --acceptance --tiny``), so
the CPU packs 1; the gain is on a GPU, which one small net leaves idle.

A seed fixes the init and the data stream (order, flips, shifts), drawn on the
CPU, so seed *s* is the same run at every LR (common random numbers) and on
every device. Numerics: fp16 with channels-last on CUDA, as airbench; fp32 on
the CPU. GPU kernels (cuDNN autotuned) are not bitwise reproducible; the
randomness that a seed controls is.
"""
from __future__ import annotations

import contextlib
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Iterator, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from harness.data.augment import draw_epochs, epoch_images
from harness.data.images import ImageSet, load_images
from harness.data.catalog import data_root
from harness.trainers.models.airbench import WHITEN_IMAGES, AirbenchNet, NetSpec, forward_flops, whitening_weight
from harness.trainers.optim import lr_factor
from harness.recipe import Recipe, RecipeError
from harness.store.runs import DIVERGED, OK
from harness.trainers.base import RunResult, TrainContext, Trainer
from harness.packing import pack_size

#: lookahead: every this many steps, weights ← EMA with decay 0.95⁵·(t/T)³ (airbench94)
LOOKAHEAD_EVERY, LOOKAHEAD_BASE = 5, 0.95**5
#: test images per evaluation batch
EVAL_BATCH = 2000
#: effective speed used by ``--plan`` before the store has timings. CUDA: airbench94's
#: 0.359 PFLOP (``run_flops``) in the 1.96 s a run took through the harness on an H200 (one run at a time);
#: CPU: ~1.9e10 measured on one core of this project's 2-core box (widths 8/16/16, other jobs running), rounded down.
FLOPS_PER_SECOND = {"cuda": 0.359e15 / 1.96, "cpu": 1.5e10}

#: the compute dtype per device type (airbench94's float16 on CUDA; BN statistics stay float32); any other: float32
COMPUTE_DTYPES = {"cuda": torch.float16}

SCHEDULES = ("airbench", "linear_decay", "constant")
IMAGE_SHAPES = {"cifar10": (3, 32, 32), "mnist": (1, 28, 28)}
TEST_SIZES = {"cifar10": 10_000, "mnist": 10_000}
OPTIMIZERS = ("nesterov", "sgd")
#: ``torch.compile`` backend of ``--compile`` (tests on the CPU use ``aot_eager``: no C++ build)
COMPILE_BACKEND = "inductor"
#: Inductor options of ``--compile``. Without ``emulate_precision_casts`` every float16 run diverged (an
#: H200, and reproduced on the CPU): the global max pool's backward gives each input equal to the max
#: its share of the gradient, 1/count; Inductor recomputes the pooled float16 activations in float32
#: without rounding them back, so no element equals the stored float16 max, the count is 0 and the
#: gradient 0/0. Emulating the casts rounds as eager does (``tests/test_compile.py``).
COMPILE_OPTIONS = {"emulate_precision_casts": True}



@dataclass
class DeviceData:
    """One data set on one device, ready for many runs: decoded, normalised, whitening computed once."""

    x_train: torch.Tensor      # uint8 N×C×H×W, augmented per epoch
    y_train: torch.Tensor
    x_test: torch.Tensor       # normalised, compute dtype
    y_test: torch.Tensor
    mean: torch.Tensor         # 1×C×1×1 float32, of x/255
    std: torch.Tensor
    whiten: torch.Tensor       # the frozen first layer's weight
    num_classes: int
    dtype: torch.dtype
    channels_last: bool

    @classmethod
    def build(cls, images: ImageSet, device: torch.device, whiten_kernel: int) -> "DeviceData":
        cuda = device.type == "cuda"
        dtype = COMPUTE_DTYPES.get(device.type, torch.float32)
        x_train = images.x_train.to(device)
        scaled = x_train.float() / 255
        mean = scaled.mean(dim=(0, 2, 3), keepdim=True)
        std = scaled.std(dim=(0, 2, 3), keepdim=True)
        del scaled
        x_test = _normalize(images.x_test.to(device), mean, std, dtype, cuda)
        whiten = whitening_weight(_normalize(x_train[:WHITEN_IMAGES], mean, std, torch.float32, False), whiten_kernel)
        return cls(x_train, images.y_train.to(device), x_test, images.y_test.to(device), mean, std, whiten,
                   images.num_classes, dtype, cuda)

    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        return _normalize(x, self.mean, self.std, self.dtype, self.channels_last)


def _normalize(x: torch.Tensor, mean: torch.Tensor, std: torch.Tensor, dtype: torch.dtype,
               channels_last: bool) -> torch.Tensor:
    x = ((x.float() / 255 - mean) / std).to(dtype)
    return x.contiguous(memory_format=torch.channels_last) if channels_last else x


class AirbenchTrainer(Trainer):
    name = "airbench"
    options = {
        "widths": (64, 256, 256),
        "label_smoothing": 0.2,
        "bias_scaler": 64.0,
        "bn_momentum": 0.6,
        "whiten_bias_epochs": 3,
        "lookahead": True,
        "flip": True,
        "translate": 2,
        "tta": 2,
        "n_train": 0,            # 0 = the whole training set; smaller for tiny CPU configurations
        "n_test": 0,             # 0 = the whole test set
        "logits_dtype": "float16",
    }

    def __init__(self) -> None:
        # per-process caches: decoded data per (data set, device), a model (and its compiled
        # graph) per shape; a run re-initialises the cached model's tensors in place.
        self._data: dict[tuple, DeviceData] = {}
        self._nets: dict[tuple, tuple[AirbenchNet, Any]] = {}

    # ------------------------------------------------------------ recipe checks --
    def rules(self, recipe: Recipe, o: dict[str, Any]) -> Iterable[tuple[bool, str]]:
        yield recipe.dataset not in IMAGE_SHAPES, f"dataset must be one of {sorted(IMAGE_SHAPES)}, got {recipe.dataset!r}"
        yield recipe.model != "airbench94", f"model must be 'airbench94', got {recipe.model!r}"
        yield recipe.optimizer not in OPTIMIZERS, f"optimizer must be one of {OPTIMIZERS}, got {recipe.optimizer!r}"
        yield recipe.schedule not in SCHEDULES, f"schedule must be one of {SCHEDULES}, got {recipe.schedule!r}"
        yield bool(set(recipe.probes) - {"logits"}), f"supports probes ['logits'], got {list(recipe.probes)}"
        yield (recipe.lr <= 0 or not 0 <= recipe.momentum < 1 or recipe.weight_decay < 0,
               "needs lr > 0, 0 <= momentum < 1, weight_decay >= 0")
        yield recipe.optimizer == "nesterov" and recipe.momentum == 0, "nesterov needs momentum > 0"
        w = o["widths"]
        yield (not (isinstance(w, tuple) and len(w) == 3 and all(isinstance(v, int) and v > 0 for v in w)),
               f"widths must be three positive ints, got {w!r}")
        checks = {
            "label_smoothing": 0 <= o["label_smoothing"] < 1,
            "bias_scaler": o["bias_scaler"] > 0,
            "bn_momentum": 0 <= o["bn_momentum"] < 1,
            "whiten_bias_epochs": isinstance(o["whiten_bias_epochs"], int) and o["whiten_bias_epochs"] >= 0,
            "lookahead": isinstance(o["lookahead"], bool),
            "flip": isinstance(o["flip"], bool),
            "translate": isinstance(o["translate"], int) and 0 <= o["translate"] <= 8,
            "tta": o["tta"] in (0, 1, 2),
            "n_train": isinstance(o["n_train"], int) and o["n_train"] >= 0,
            "n_test": isinstance(o["n_test"], int) and o["n_test"] >= 0,
            "logits_dtype": o["logits_dtype"] in ("float16", "float32"),
        }
        bad = [k for k, ok in checks.items() if not ok]
        yield bool(bad), f"bad value for option(s) {bad}: {[o[k] for k in bad]}"
        yield bool(o["n_train"]) and o["n_train"] < recipe.batch_size, f"n_train {o['n_train']} < batch_size {recipe.batch_size}"

    def chunk_size(self, recipe: Recipe, device: str) -> int:
        return pack_size(device)  # one executor block = one pack, so packs are aligned blocks of seeds

    def estimate_seconds(self, recipe: Recipe, device: str) -> float:
        rate = FLOPS_PER_SECOND["cuda" if device.startswith("cuda") else "cpu"]
        return run_flops(recipe) / rate

    # ------------------------------------------------------------------ training --
    def train(self, recipe: Recipe, seeds: Sequence[int], ctx: TrainContext) -> Iterator[RunResult]:
        self.validate(recipe)
        dtype = np.dtype(self.opts(recipe)["logits_dtype"])
        size = ctx.pack or pack_size(ctx.device)
        seeds = [int(s) for s in seeds]
        for pack in (seeds[i:i + size] for i in range(0, len(seeds), size)):
            t0 = time.perf_counter()
            runs = self.run_pack(recipe, pack, ctx)
            seconds = (time.perf_counter() - t0) / len(pack)  # a packed run's share of the pack's time
            for seed, run in zip(pack, runs):
                arrays = {"logits": run.logits.cpu().numpy().astype(dtype)} if "logits" in recipe.probes else {}
                yield RunResult(seed=seed, arrays=arrays,
                                metrics={"test_acc": run.test_acc(), "train_loss": float(run.train_loss)},
                                status=DIVERGED if run.diverged() else OK, seconds=seconds, pack=len(pack))

    def data(self, recipe: Recipe, ctx: TrainContext) -> DeviceData:
        o = self.opts(recipe)
        device = torch.device(ctx.device)
        root = data_root(ctx.data_dir)
        key = (recipe.dataset, str(Path(root).resolve()), o["n_train"], o["n_test"], str(device))
        if key not in self._data:
            images = load_images(recipe.dataset, root, ctx.download).subset(o["n_train"] or None,
                                                                                o["n_test"] or None)
            self._data.clear()  # one data set resident at a time: device memory is the scarce thing
            self._data[key] = DeviceData.build(images, device, NetSpec().whiten_kernel)
        return self._data[key]

    def model(self, spec: NetSpec, data: DeviceData, device: torch.device, compile: bool) -> tuple[AirbenchNet, Any]:
        """The cached module for this shape and its (maybe compiled) forward, built once per process."""
        key = (spec, str(device), data.dtype, data.channels_last, compile)
        if key not in self._nets:
            net = AirbenchNet(spec).to(device=device, dtype=data.dtype)
            for m in net.modules():
                if isinstance(m, torch.nn.BatchNorm2d) and data.dtype in (torch.float16, torch.bfloat16):
                    m.float()  # BN statistics in fp32, as airbench
            if data.channels_last:
                net = net.to(memory_format=torch.channels_last)
            self._nets[key] = (net, compiled(net) if compile else net)
        return self._nets[key]

    def run(self, recipe: Recipe, seed: int, ctx: TrainContext) -> "Run":
        """Train one run; its test logits stay on the device (the bench's bare loop stops here)."""
        return self.run_pack(recipe, [seed], ctx)[0]

    def run_pack(self, recipe: Recipe, seeds: Sequence[int], ctx: TrainContext) -> "list[Run]":
        """Train the seeds as one packed net (``NetSpec.pack``); each run's logits stay on the device."""
        o = self.opts(recipe)
        device = torch.device(ctx.device)
        data = self.data(recipe, ctx)
        spec = NetSpec(widths=tuple(o["widths"]), in_channels=data.x_train.shape[1], num_classes=data.num_classes,
                       bn_momentum=o["bn_momentum"], pack=len(seeds))
        net, forward = self.model(spec, data, device, ctx.compile)
        gens = [torch.Generator().manual_seed(int(seed)) for seed in seeds]
        net.reset(gens, data.whiten)
        n, batch = len(data.y_train), recipe.batch_size
        per_epoch = n // batch
        if per_epoch == 0:
            raise RecipeError(f"airbench trainer: {n} training images < batch_size {batch}")
        draws = [draw_epochs(g, math.ceil(recipe.steps / per_epoch), n, o["flip"], o["translate"]).to(device)
                 for g in gens]
        flags = torch.backends.cudnn.flags(enabled=True, benchmark=True, deterministic=False) \
            if device.type == "cuda" else contextlib.nullcontext()
        with flags:
            bad, loss = _fit(net, forward, data, draws, recipe, o, per_epoch)
            logits = evaluate(net, data.x_test, o["tta"]).view(len(data.x_test), len(seeds), -1)
        return [Run(logits[:, p], data.y_test, bad[p], loss[p] / batch) for p in range(len(seeds))]


def compiled(net: torch.nn.Module) -> Any:
    """``torch.compile`` of ``net`` with ``COMPILE_BACKEND`` (and ``COMPILE_OPTIONS`` for Inductor)."""
    options = COMPILE_OPTIONS if COMPILE_BACKEND == "inductor" else None
    return torch.compile(net, backend=COMPILE_BACKEND, options=options)


@dataclass
class Run:
    """One finished run, still on the device."""

    logits: torch.Tensor
    labels: torch.Tensor
    bad: torch.Tensor          # non-finite loss at some step
    train_loss: torch.Tensor   # mean loss per example at the last step

    def diverged(self) -> bool:
        return bool(self.bad) or not bool(torch.isfinite(self.logits).all())

    def test_acc(self) -> float:
        return float((self.logits.argmax(1) == self.labels).float().mean())


def _fit(net: AirbenchNet, forward, data: DeviceData, draws, recipe: Recipe, o: dict[str, Any],
         per_epoch: int) -> tuple[torch.Tensor, torch.Tensor]:
    batch, total = recipe.batch_size, recipe.steps
    scale = 1024 * (1 + 1 / (1 - recipe.momentum))
    lr = recipe.lr / scale
    wd = recipe.weight_decay * batch / scale
    lr_bias = lr * o["bias_scaler"]
    norm_biases, others = net.param_groups()
    # the whitening bias stops training by a zero LR, not by toggling requires_grad: the
    # (maybe compiled) graph stays the same one for the whole run
    others = [p for p in others if p is not net.whiten.bias]
    groups = [dict(params=norm_biases, lr=lr_bias, weight_decay=wd / lr_bias),
              dict(params=others, lr=lr, weight_decay=wd / lr),
              dict(params=[net.whiten.bias], lr=lr, weight_decay=wd / lr)]
    base_lrs = [lr_bias, lr, lr]
    opt = torch.optim.SGD(groups, momentum=recipe.momentum, nesterov=recipe.optimizer == "nesterov")
    state = [t for t in net.state_dict().values() if t.is_floating_point()]
    ema = [t.clone() for t in state] if o["lookahead"] else []
    pack = len(draws)
    bad = torch.zeros(pack, dtype=torch.bool, device=data.x_train.device)
    loss = torch.zeros(pack, device=data.x_train.device)
    net.train()
    x_epoch = y_epoch = None
    for step in range(total):
        epoch, i = divmod(step, per_epoch)
        if i == 0:
            whiten_on = float(epoch < o["whiten_bias_epochs"])
            x_epoch, y_epoch = _pack_epoch(data, draws, epoch)
        factor = lr_factor(recipe.schedule, step, total)
        for g, base, on in zip(opt.param_groups, base_lrs, (1.0, 1.0, whiten_on)):
            g["lr"] = base * factor * on
        out = forward(x_epoch[i * batch:(i + 1) * batch])
        loss = _pack_loss(out, y_epoch[i * batch:(i + 1) * batch], o["label_smoothing"])
        opt.zero_grad(set_to_none=True)
        loss.sum().backward()
        opt.step()
        bad |= ~torch.isfinite(loss.detach())
        if ema and (step + 1) % LOOKAHEAD_EVERY == 0:
            _lookahead(ema, state, LOOKAHEAD_BASE * ((step + 1) / total) ** 3)
    if ema:
        _lookahead(ema, state, 1.0)
    return bad, loss.detach()


def _pack_epoch(data: DeviceData, draws: list, epoch: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The pack's epoch: seed p's augmented images in channels p·C .. (p+1)·C − 1, its labels in column p."""
    xs, ys = zip(*(epoch_images(data.x_train, data.y_train, d, epoch) for d in draws))
    if len(draws) == 1:
        return data.normalize(xs[0]), ys[0][:, None]
    x = torch.cat([data.normalize(x) for x in xs], dim=1)
    return (x.contiguous(memory_format=torch.channels_last) if data.channels_last else x), torch.stack(ys, dim=1)


def _pack_loss(out: torch.Tensor, y: torch.Tensor, smoothing: float) -> torch.Tensor:
    """Per seed: the summed label-smoothed cross-entropy of its batch (B×P·K logits, B×P labels)."""
    if y.shape[1] == 1:  # one seed: the unpacked loop's exact arithmetic
        return F.cross_entropy(out.float(), y[:, 0], label_smoothing=smoothing, reduction="sum")[None]
    b, pack = y.shape
    per = F.cross_entropy(out.float().view(b * pack, -1), y.reshape(-1), label_smoothing=smoothing, reduction="none")
    return per.view(b, pack).sum(0)


@torch.no_grad()
def _lookahead(ema: list[torch.Tensor], state: list[torch.Tensor], decay: float) -> None:
    torch._foreach_lerp_(ema, state, 1 - decay)
    torch._foreach_copy_(state, ema)


@torch.no_grad()
def evaluate(net: AirbenchNet, x: torch.Tensor, tta: int) -> torch.Tensor:
    """Test logits (float32, N×P·K for a pack of P) with test-time augmentation: 0 none, 1 mirror, 2 mirror + ±1 px translations."""
    net.eval()

    def mirror(v: torch.Tensor) -> torch.Tensor:
        return 0.5 * net(v) + 0.5 * net(v.flip(-1)) if tta >= 1 else net(v)

    outs = []
    pack = net.spec.pack
    for xb in x.split(EVAL_BATCH):
        xb = xb.repeat(1, pack, 1, 1) if pack > 1 else xb  # every packed seed sees the same test images
        logits = mirror(xb)
        if tta >= 2:
            h, w = xb.shape[-2:]
            padded = F.pad(xb, (1, 1, 1, 1), mode="reflect")
            logits = 0.5 * logits + 0.25 * (mirror(padded[..., :h, :w]) + mirror(padded[..., 2:, 2:]))
        outs.append(logits.float())
    return torch.cat(outs)


def run_flops(recipe: Recipe, n_test: int | None = None) -> float:
    """FLOPs of one run, counted analytically (convolutions and head; a multiply-add is 2).

    Training costs forward + backward = 3× forward, less the frozen first layer's
    weight and input gradients; evaluation costs 1, 2 or 6 forwards per test image
    (``n_test`` of them: default the recipe's subset or the real test set's size).
    """
    o = AirbenchTrainer().opts(recipe)
    shape, n_test = IMAGE_SHAPES[recipe.dataset], n_test or o["n_test"] or TEST_SIZES[recipe.dataset]
    fwd, first = forward_flops(NetSpec(widths=tuple(o["widths"]), in_channels=shape[0]), shape[1:])
    train = recipe.steps * recipe.batch_size * (3 * fwd - 2 * first)
    passes = {0: 1, 1: 2, 2: 6}[o["tta"]]
    return float(train + passes * n_test * fwd)
