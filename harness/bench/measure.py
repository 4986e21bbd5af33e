"""The measurement ``python -m harness bench`` and ``bench --acceptance`` share: harness vs bare loop, alternating."""
from __future__ import annotations

import time

import torch

from harness.execute.local import train_in_process
from harness.execute.tasks import make_tasks
from harness.execute.plan import make_plan
from harness.recipe import Ensemble, Recipe
from harness.store.index import Store
from harness.trainers import TrainContext, get_trainer
from harness.trainers.base import cpu_threads

#: the tiny configuration (``--tiny``): seconds per run on a CPU, for tests and a first look
TINY = dict(batch_size=32, steps=8, options=dict(widths=[8, 8, 8], tta=0))
TINY_SIZES = (512, 256)


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def device_problem(device: str) -> str | None:
    """Why ``device`` cannot be benchmarked here, in one line, or None."""
    try:
        dev = torch.device(device)
    except (RuntimeError, ValueError):
        return f"--device {device!r} is not a torch device: use cpu, cuda or cuda:N"
    if dev.type not in ("cpu", "cuda"):
        return f"--device {device}: only cpu and cuda devices are supported"
    if dev.type == "cuda" and (not torch.cuda.is_available() or (dev.index or 0) >= torch.cuda.device_count()):
        return f"--device {device}: no such CUDA device here ({torch.cuda.device_count()} visible); use --device cpu"
    return None


def device_name(device: str) -> str:
    return torch.cuda.get_device_name(torch.device(device)) if device.startswith("cuda") else "cpu"


def measure(recipe: Recipe, ctx: TrainContext, runs: int, store: Store) -> dict:
    """``runs`` seeds through the harness and through the bare loop, alternating; one untimed warm-up first."""
    trainer = get_trainer(recipe)
    device = ctx.device
    t0 = time.perf_counter()
    n_test_used = len(trainer.run(recipe, runs, ctx).labels)  # warm-up: data to device, autotune, compile
    warmup = time.perf_counter() - t0

    harness_s, bare_s, harness_acc, bare_acc = [], [], [], []

    def through_harness(seed: int) -> None:
        # planning happens once per session, not per run: it stays outside the timed part
        tasks = make_tasks(make_plan([Ensemble(recipe, seed + 1)], store, device, verify=False,
                                     compiled=ctx.compile), device)
        _sync(device)
        t = time.perf_counter()
        out = train_in_process(store, tasks, ctx, lambda *_: None)
        harness_s.append(time.perf_counter() - t)
        if out.failed:
            raise SystemExit(f"bench: a harness run failed:\n{out.failed[0][2]}")
        harness_acc.append(store.load(tasks[0].key, seed)[0].metrics["test_acc"])

    def bare(seed: int) -> None:
        _sync(device)
        t = time.perf_counter()
        with cpu_threads(device, 1):  # as the harness trains on a CPU: one thread per worker
            acc = trainer.run(recipe, seed, ctx).test_acc()  # .item() inside waits for the device
        bare_s.append(time.perf_counter() - t)
        bare_acc.append(acc)

    for seed in range(runs):
        first, second = (through_harness, bare) if seed % 2 == 0 else (bare, through_harness)
        first(seed)
        second(seed)

    return dict(harness_s=harness_s, bare_s=bare_s, harness_acc=harness_acc, bare_acc=bare_acc,
                n_test=n_test_used, warmup=warmup)
