from __future__ import annotations

from harness.execute.plan import make_plan, merge
from harness.recipe import Ensemble
from harness.store.index import Store
from harness.identity import recipe_key
from harness.trainers.base import RunResult

from conftest import fake_recipe


def test_merge_dedups_by_key_keeping_largest_n(fake_trainer):
    a, b = fake_recipe(lr=0.1), fake_recipe(lr=0.2)
    merged = merge([Ensemble(a, 64), Ensemble(b, 8), Ensemble(a, 256), Ensemble(fake_recipe(lr=0.1), 16)])
    assert {recipe_key(a): 256, recipe_key(b): 8} == {k: e.n for k, e in merged.items()}


def test_plan_subtracts_the_store_and_grows(fake_trainer, tmp_path):
    store = Store(tmp_path)
    r = fake_recipe(lr=0.3)
    key = recipe_key(r)
    for s in range(64):
        store.put(key, RunResult(s, {"x": [s]}), "cpu")
    plan = make_plan([Ensemble(r, 64)], store, "cpu")
    assert plan.runs_missing == 0 and plan.runs_total == 64
    plan = make_plan([Ensemble(r, 256), Ensemble(r, 128)], store, "cpu")
    assert plan.runs_missing == 192
    assert plan.needs[0].missing == list(range(64, 256))
    assert "192" in plan.table() and "192 runs to train" in plan.summary()


def test_plan_estimates_from_store_timings(fake_trainer, tmp_path):
    store = Store(tmp_path)
    r = fake_recipe(lr=0.3, options={"sleep": 5.0})
    assert make_plan([Ensemble(r, 2)], store, "cpu").est_seconds == 10.0  # a-priori estimate
    store.put(recipe_key(r), RunResult(0, {"x": [0]}, seconds=1.5), "cpu")
    assert make_plan([Ensemble(r, 3)], store, "cpu").est_seconds == 3.0   # measured median
