"""Ensemble statistics from streamed chunks: memory flat in N, identical numbers, runs read once per session."""
from __future__ import annotations

import gc
import tracemalloc

import numpy as np
import pytest

from harness.law.runs import EnsembleRuns
from harness.store.cache import RunCache
from harness.recipe import Ensemble, Recipe
from harness.stats.linearity import linearity_estimate, linearity_estimate_chunks
from harness.store.index import RunRecord, Store
from harness.trainers.base import RunResult

SHAPE = (200, 10)  # one run's outputs: the same at every N
LRS = {"eta": 0.0, "a": 1.0, "b": 2.0}


class SyntheticStore:
    """Runs made on demand, a pure function of (key, seed): no disk, so only the statistics' memory counts."""

    def __init__(self, n: int) -> None:
        self.n = n
        self.truth = np.random.default_rng(0).normal(size=SHAPE)

    def records(self, key, seeds=None):
        return {s: RunRecord(key, s, "ok", "", "", 0.0, "cpu", {}) for s in range(self.n)}

    def load(self, key, seed):
        noise = np.random.default_rng([seed, int(LRS[key])]).normal(size=SHAPE)
        return RunRecord(key, seed, "ok", "", "", 0.0, "cpu", {}), {"logits": (LRS[key] * self.truth + 0.3 * noise).astype(np.float16)}


def _runs(store, name: str, n: int, cache=None) -> EnsembleRuns:
    return EnsembleRuns(name, name, Ensemble(Recipe(trainer="mlp", dataset="teacher", model="mlp"), n), store, cache)


def _streamed_peak(n: int) -> tuple[int, float]:
    store = SyntheticStore(n)
    runs = [_runs(store, k, n) for k in LRS]
    gc.collect()
    tracemalloc.start()
    est = linearity_estimate_chunks(zip(*(r.chunks("logits") for r in runs)), n, 0.1, 0.2)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return peak, est.r2


def _stacked_peak(n: int) -> int:
    store = SyntheticStore(n)
    runs = [_runs(store, k, n) for k in LRS]
    gc.collect()
    tracemalloc.start()
    linearity_estimate(*(r.array("logits") for r in runs), 0.1, 0.2)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return peak


def test_peak_memory_is_flat_in_n():
    small, r2_small = _streamed_peak(512)
    large, r2_large = _streamed_peak(4096)
    assert large <= 1.2 * small, f"peak {large / 2**20:.1f} MiB at N=4096 vs {small / 2**20:.1f} MiB at N=512"
    assert r2_small > 0.99 and r2_large > 0.99  # the statistic saw the runs (linear by construction)


def test_negative_control_stacking_the_ensemble_grows_with_n():
    assert _stacked_peak(4096) > 3 * _stacked_peak(512)


def test_chunked_estimate_equals_the_stacked_one():
    store = SyntheticStore(300)
    runs = [_runs(store, k, 300) for k in LRS]
    whole = linearity_estimate(*(r.array("logits") for r in runs), 0.1, 0.2)
    parts = linearity_estimate_chunks(zip(*(r.chunks("logits", size=37) for r in runs)), 300, 0.1, 0.2)
    for name in ("r2", "slope", "r2_law"):
        assert getattr(parts, name) == pytest.approx(getattr(whole, name), rel=1e-9)
        assert parts.ci(name) == pytest.approx(whole.ci(name), rel=1e-9)


def test_chunks_honour_the_seed_mask():
    runs = _runs(SyntheticStore(10), "a", 10)
    mask = np.arange(10) % 3 == 0
    got = np.concatenate(list(runs.chunks("logits", mask=mask, size=2)))
    assert np.array_equal(got, runs.array("logits")[mask])


def test_a_session_reads_an_ensemble_once_for_several_tests(tmp_path):
    store = Store(tmp_path / "s")
    for s in range(6):
        store.put("k", RunResult(s, {"logits": np.full(3, s, np.float32)}, {"acc": s / 10}), "cpu")
    cache = RunCache(store)
    first, second = _runs(store, "k", 6, cache), _runs(store, "k", 6, cache)
    assert first.array("logits")[:, 0].tolist() == list(range(6))
    assert np.array_equal(second.array("logits"), first.array("logits"))
    assert cache.loads == 6
    assert second.metric("acc").tolist() == [s / 10 for s in range(6)]
    # a zero budget (the negative control) streams from the store on every read
    nocache = RunCache(store, budget=0)
    _runs(store, "k", 6, nocache).array("logits")
    _runs(store, "k", 6, nocache).array("logits")
    assert nocache.loads == 12
