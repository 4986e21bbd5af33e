"""--workers K on the CPU: K processes, and a seed is the same run whatever worker or chunk trains it."""
from __future__ import annotations

import json

import numpy as np

from harness.execute.local import WorkerSpec, train_in_process, train_pool, usable_cores
from harness.execute.tasks import make_tasks
from harness.execute.plan import make_plan
from harness.recipe import Ensemble, Recipe
from harness.store.index import Store
from harness.identity import recipe_key
from harness.trainers import TrainContext
from test_plugin import run, write_law

SMALL = Recipe(trainer="mlp", dataset="teacher", model="mlp", lr=0.3, batch_size=16, steps=30, probes=("logits",),
               options={"n_train": 128, "n_test": 32, "width": 16, "dim": 8})
SEEDS = 24


def _train(store: Store, seeds: range, workers: int) -> None:
    ens = [Ensemble(SMALL.replace(lr=lr), seeds.stop) for lr in (0.3, 0.6)]
    tasks = make_tasks(make_plan(ens, store, "cpu"), "cpu")
    tasks = [t for t in tasks if set(t.seeds) & set(seeds)]
    for t in tasks:
        t.seeds = tuple(s for s in t.seeds if s in seeds)
    if workers == 1:
        out = train_in_process(store, tasks, TrainContext(), lambda *a: None)
    else:
        out = train_pool(store, tasks, [WorkerSpec("cpu")] * workers, TrainContext(), lambda *a: None)
    assert not out.failed


def _logits(store: Store) -> dict[tuple[str, int], np.ndarray]:
    return {(recipe_key(SMALL.replace(lr=lr)), s): store.load(recipe_key(SMALL.replace(lr=lr)), s)[1]["logits"]
            for lr in (0.3, 0.6) for s in range(SEEDS)}


def test_results_do_not_depend_on_workers_or_chunks(tmp_path):
    one, two, rounds = Store(tmp_path / "k1"), Store(tmp_path / "k2"), Store(tmp_path / "rounds")
    _train(one, range(SEEDS), 1)
    _train(two, range(SEEDS), 2)
    # sequential rounds split a chunk: seeds 0..6 first, the rest later
    _train(rounds, range(7), 1)
    _train(rounds, range(SEEDS), 1)
    a, b, c = _logits(one), _logits(two), _logits(rounds)
    assert all(np.array_equal(a[k], b[k]) and np.array_equal(a[k], c[k]) for k in a)
    devices = {r.device for r in two.records(recipe_key(SMALL)).values()}
    assert devices == {"cpu"}


def test_default_workers_are_the_usable_cores():
    import os

    assert usable_cores() == len(os.sched_getaffinity(0))


def test_workers_2_session_decides_as_workers_1(pytester):
    write_law(pytester, n=16)
    reports = []
    for k in ("1", "2"):
        res = run(pytester, "--store", str(pytester.path / f"s{k}"), "--workers", k, "--fixed-n",
                  "--report-dir", str(pytester.path / f"r{k}"), "--compare-to", "none")
        res.assert_outcomes(passed=2)
        (path,) = (pytester.path / f"r{k}").glob("*/report.json")
        reports.append(json.loads(path.read_text()))
    values = [[(e["nodeid"], e["decision"], [r["value"] for r in e["results"]]) for e in rep["entries"]] for rep in reports]
    assert values[0] == values[1]
