"""``python -m harness store prune``: drops recipes unused for N days, keeps recent and reported ones and busy ones."""
from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from harness.store.index import Store
from harness.store.prune import DAY, prune
from harness.trainers.base import RunResult

from conftest import fake_recipe

ROOT = Path(__file__).resolve().parents[1]
NOW = time.time()


def fill(store: Store, lr: float, age_days: float, seeds: int = 2) -> str:
    recipe = fake_recipe(lr=lr)
    key = recipe.key("fake-v1")
    store.register(key, recipe, "fake-v1")
    for s in range(seeds):
        store.put(key, RunResult(s, {"out": np.arange(3.0) * lr}), "cpu")
    conn = sqlite3.connect(store.root / "index.sqlite")
    with conn:
        conn.execute("UPDATE runs SET created = ? WHERE key = ?", (NOW - age_days * DAY, key))
    conn.close()
    return key


def report(dir_: Path, started: float, keys: list[str]) -> None:
    dir_.mkdir(parents=True)
    (dir_ / "report.json").write_text(json.dumps({"started": started, "entries": [{"recipes": {"a": k} for k in keys}]}))


@pytest.fixture
def store(tmp_path) -> Store:
    return Store(tmp_path / "store")


def test_prune_drops_only_what_no_one_used(store, tmp_path):
    old, recent, reported, reported_long_ago = (fill(store, lr, age) for lr, age in
                                               ((0.1, 40), (0.2, 3), (0.3, 90), (0.4, 90)))
    report(tmp_path / "rep" / "night1", NOW - 2 * DAY, [reported])
    report(tmp_path / "rep" / "night0", NOW - 60 * DAY, [reported_long_ago])
    dry = prune(store.root, 30, tmp_path / "rep", now=NOW, dry_run=True)
    assert sorted(dry.pruned) == sorted([old, reported_long_ago]) and store.count() == 8
    out = prune(store.root, 30, tmp_path / "rep", now=NOW)
    assert sorted(out.pruned) == sorted([old, reported_long_ago]) and out.runs == 4 and out.kept == 2
    assert store.missing(old, range(2)) == [0, 1] and store.missing(reported_long_ago, range(2)) == [0, 1]
    assert store.missing(recent, range(2)) == [] and store.missing(reported, range(2)) == []
    assert not (store.root / "runs" / old[:2] / old).exists()
    assert (store.root / "runs" / recent[:2] / recent).is_dir()


def test_keep_days_zero_without_reports_prunes_everything_not_in_training(store):
    keys = [fill(store, lr, 1) for lr in (0.1, 0.2)]
    with store.lock(f"{keys[0]}.b0"):
        out = prune(store.root, 0, now=NOW + 1)
    assert out.busy == [keys[0]] and out.pruned == [keys[1]]
    assert store.missing(keys[0], range(2)) == []


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "harness", "store", *args], capture_output=True, text=True,
                          timeout=120, cwd=ROOT)


def test_command_line(store, tmp_path):
    fill(store, 0.1, 40)
    r = run("prune", "--keep-days", "30", "--store", str(store.root))
    assert r.returncode == 0 and r.stdout.startswith("store prune: pruned 1 recipes (2 runs,")
    for args, message in [
        (("prune", "--keep-days", "x", "--store", str(store.root)), "invalid float value: 'x'"),
        (("prune", "--keep-days", "-1", "--store", str(store.root)), "--keep-days must be a number of days >= 0"),
        (("prune", "--keep-days", "3", "--store", str(tmp_path / "nowhere")), "no store at"),
        (("prune", "--keep-days", "3", "--store", str(store.root), "--reports", str(tmp_path / "no")), "is not a directory"),
        (("prune",), "the following arguments are required: --keep-days"),
        (("gc",), "invalid choice: 'gc'"),
    ]:
        r = run(*args)
        assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1 and message in r.stderr, (args, r.stderr)
