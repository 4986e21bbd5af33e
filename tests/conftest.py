"""Shared fixtures for the harness's own tests: a fast fake trainer and tiny recipes."""
from __future__ import annotations

import contextlib
import os
import time
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np
import pytest

from harness.recipe import Recipe, RecipeError
from harness.trainers import TRAINERS
from harness.store.runs import DIVERGED, OK
from harness.trainers.base import RunResult, TrainContext

pytest_plugins = ["pytester"]


@pytest.fixture
def one_torch_thread() -> Iterator[None]:
    """One intra-op thread, as the executor trains on the CPU: bitwise comparisons assume it, and the
    2-core CI box is not oversubscribed."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


class FakeTrainer:
    """Instant 'training': arrays are a pure function of (lr, seed), so results can be checked exactly.

    Options: ``sleep`` (seconds per run), ``crash_seed`` + ``crash_marker`` (the first
    process to train that seed dies hard, leaving the marker file; without a marker
    every attempt dies), ``raise_seed`` (training that seed raises), ``diverge_above``
    (runs with lr above it report status diverged).
    """

    name = "fake"
    salt = "fake-v1"

    def validate(self, recipe: Recipe) -> None:
        unknown = set(dict(recipe.options)) - {"sleep", "crash_seed", "crash_marker", "raise_seed", "diverge_above", "chunk"}
        if unknown:
            raise RecipeError(f"fake trainer: unknown options {sorted(unknown)}")

    def check_data(self, recipe: Recipe, ctx: TrainContext) -> None:
        return None

    def chunk_size(self, recipe: Recipe, device: str) -> int:
        return int(recipe.option("chunk", 4))

    def estimate_seconds(self, recipe: Recipe, device: str) -> float:
        return float(recipe.option("sleep", 0.0))

    def train(self, recipe: Recipe, seeds: Sequence[int], ctx: TrainContext) -> Iterator[RunResult]:
        for s in seeds:
            if recipe.option("crash_seed") == s:
                marker = recipe.option("crash_marker")
                if marker is None:
                    os._exit(17)
                if not Path(marker).exists():
                    Path(marker).write_text(str(os.getpid()))
                    os._exit(17)
            if recipe.option("raise_seed") == s:
                raise RuntimeError(f"fake failure at seed {s}")
            time.sleep(float(recipe.option("sleep", 0.0)))
            rng = np.random.default_rng(s)
            out = recipe.lr * np.arange(6.0) + rng.normal(size=6)
            div = recipe.option("diverge_above") is not None and recipe.lr > recipe.option("diverge_above")
            metrics = {"pid": os.getpid(), "cuda_visible": os.environ.get("CUDA_VISIBLE_DEVICES", "")}
            yield RunResult(s, {"out": out}, metrics, DIVERGED if div else OK, 0.001)


@pytest.fixture
def fake_trainer(monkeypatch: pytest.MonkeyPatch) -> FakeTrainer:
    t = FakeTrainer()
    monkeypatch.setitem(TRAINERS, "fake", t)
    return t


def fake_recipe(**kw) -> Recipe:
    return Recipe(trainer="fake", dataset="none", model="none", **kw)


@contextlib.contextmanager
def loopback_ray_cluster() -> Iterator[object]:
    """A 2-CPU Ray test cluster whose processes listen on 127.0.0.1 only, shut down on exit."""
    os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"  # else Ray binds the machine's network address
    import ray
    from ray.cluster_utils import Cluster

    c = Cluster(initialize_head=True, head_node_args={
        "num_cpus": 2, "object_store_memory": 100 * 2**20, "include_dashboard": False,
        "node_ip_address": "127.0.0.1"})
    try:
        yield c
    finally:
        if ray.is_initialized():
            ray.shutdown()
        c.shutdown()


@pytest.fixture(scope="module")
def cifar_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A learnable CIFAR-10 stand-in (2048 training, 512 test images) in the real on-disk format."""
    from harness.data.formats import write_cifar10
    from harness.data.standin import learnable_images

    root = tmp_path_factory.mktemp("cifar")
    write_cifar10(root, learnable_images(2048, 512))
    return root
