"""A session trains nothing it should not: not after a collection error, not for --collect-only, not with
more workers than cores; and what it says about failures counts what was lost."""
from __future__ import annotations

import os
import stat

import numpy as np

from harness.executor import usable_cores
from harness.plugin import _still_missing
from harness.store import Store
from harness.trainers.base import RunResult

from conftest import fake_recipe
from test_bad_inputs import one_line_error, session


def test_a_collection_error_trains_nothing(pytester):
    pytester.makepyfile(test_broken="def test_x(:\n    pass\n")
    res = session(pytester, "--store", "st", "--report-dir", "rep")
    out = res.stdout.str()
    assert res.ret == 2 and "error" in out.lower(), out[-2000:]
    assert not (pytester.path / "train_calls.txt").exists()  # the fake trainer was never called


def test_collect_only_creates_no_store_and_reads_a_read_only_one(pytester):
    res = session(pytester, "--store", "st", "--collect-only")
    assert res.ret == 0 and not (pytester.path / "st").exists(), res.stdout.str()[-2000:]
    session(pytester, "--store", "st").assert_outcomes(passed=1)
    st = pytester.path / "st"
    modes = {p: p.stat().st_mode for p in [st, *st.rglob("*")]}
    try:
        for p in modes:
            p.chmod(p.stat().st_mode & ~(stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH))
        res = session(pytester, "--store", "st", "--collect-only")
        assert res.ret == 0 and "test_fk" in res.stdout.str(), res.stdout.str()[-2000:]
    finally:
        for p, m in modes.items():
            p.chmod(m)


def test_more_workers_than_cores_is_one_line(pytester):
    n = usable_cores() + 1
    one_line_error(session(pytester, "--store", "st", "--gpus", "0", f"--workers={n}"), f"--workers {n}",
                   f"{n - 1} CPU core(s)")
    assert not (pytester.path / "st").exists()


def test_a_failed_task_counts_only_the_runs_it_did_not_store(tmp_path):
    store = Store(tmp_path / "st")
    recipe = fake_recipe(lr=0.1)
    key = recipe.key("fake-v1")
    store.register(key, recipe, "fake-v1")
    for s in range(5):
        store.put(key, RunResult(s, {"out": np.zeros(2)}), "cpu")
    assert _still_missing(store, [(key, tuple(range(8)), "boom")]) == [(key, (5, 6, 7), "boom")]
