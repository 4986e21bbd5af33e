"""A trainer's yield is checked against what was asked: seeds, count, arrays, finite values where the status says ok.

A violation fails its task once (no retry), names the trainer, stores nothing
wrong, and fails the session: never a silent "not run" or "inconclusive".
"""
from __future__ import annotations

from typing import Iterator, Sequence

import numpy as np
import pytest

from harness.execute.tasks import make_tasks
from harness.execute.local import train_in_process
from harness.execute.plan import make_plan
from harness.recipe import Ensemble, Recipe
from harness.store.index import Store
from harness.trainers import TRAINERS, TrainContext
from harness.store.runs import DIVERGED, OK
from harness.trainers.base import RunResult
from harness.trainers.output import TrainerOutputError, YieldCheck

from conftest import FakeTrainer, fake_recipe


class Misbehaving(FakeTrainer):
    """The fake trainer, broken in one way chosen by the recipe's ``lr`` (see ``FAULTS``)."""

    name = "bad"
    calls = 0

    def train(self, recipe: Recipe, seeds: Sequence[int], ctx: TrainContext) -> Iterator[RunResult]:
        Misbehaving.calls += 1
        fault = FAULTS[int(recipe.lr * 10) - 1]
        for i, s in enumerate(seeds):
            arrays, status, metrics = {"out": np.arange(4.0) + s}, OK, {"loss": 0.1}
            if fault == "fewer" and i == len(seeds) - 1:
                return
            if fault == "other seeds":
                s += 1000
            if fault == "nan ok":
                arrays = {"out": np.full(4, np.nan)}
            if fault == "nan metric":
                metrics = {"loss": float("nan")}
            if fault == "shape" and i == 1:
                arrays = {"out": np.zeros(5)}
            if fault == "duplicate" and i == 1:
                s = seeds[0]
            yield RunResult(s, arrays, metrics, status)


FAULTS = ["fewer", "other seeds", "nan ok", "nan metric", "shape", "duplicate"]
WHY = ["no run for seeds 7", "seed 1000, which was not asked", "holding no finite value", "non-finite metrics",
       "where the runs before had", "twice"]


@pytest.mark.parametrize("i", range(len(FAULTS)), ids=FAULTS)
def test_a_trainer_that_breaks_its_contract_fails_once_by_name(tmp_path, monkeypatch, i):
    monkeypatch.setitem(TRAINERS, "bad", Misbehaving())
    Misbehaving.calls = 0
    store = Store(tmp_path / "st")
    recipe = Recipe(trainer="bad", dataset="none", model="none", lr=(i + 1) / 10, options={"chunk": 8})
    plan = make_plan([Ensemble(recipe, 8)], store, "cpu")
    out = train_in_process(store, make_tasks(plan, "cpu"), TrainContext(), lambda *a: None)
    assert len(out.failed) == 1 and Misbehaving.calls == 1  # not retried: it would break the same way
    line = out.failure_lines()[0]
    assert "trainer 'bad'" in line and WHY[i] in line, line
    key = plan.needs[0].key
    assert all(0 <= s < 8 for s in store.records(key))  # nothing stored for a seed that was not asked
    if FAULTS[i] in ("nan ok", "nan metric"):
        assert store.records(key) == {}


def test_a_diverged_run_may_be_nan_and_an_ok_run_partly_nan():
    check = YieldCheck("t", (0, 1))
    check.run(RunResult(0, {"x": np.full(3, np.nan)}, {"loss": float("nan")}, DIVERGED))
    check.run(RunResult(1, {"x": np.array([np.nan, 1.0, 2.0])}, {"loss": 1.0}, OK))  # a probe's first step
    check.done()


def test_a_well_behaved_trainer_passes(tmp_path, fake_trainer):
    store = Store(tmp_path / "st")
    plan = make_plan([Ensemble(fake_recipe(lr=0.1), 8)], store, "cpu")
    out = train_in_process(store, make_tasks(plan, "cpu"), TrainContext(), lambda *a: None)
    assert out.failed == [] and out.trained == 8


@pytest.mark.parametrize("bad", [None, "x", RunResult(True, {}), RunResult(0, {"a": [1.0]}), RunResult(0, {}, status="fine"),
                                 RunResult(0, {"s": np.array(["a"])})])
def test_what_is_not_a_run_of_an_asked_seed_is_refused(bad):
    with pytest.raises(TrainerOutputError, match="trainer 't'"):
        YieldCheck("t", (0,)).run(bad)
