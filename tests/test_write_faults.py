"""A file size limit (EFBIG) and damaged data: one clear line each, no retry, no traceback, no orphan artifact."""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np

from harness.execute.tasks import make_tasks
from harness.execute.local import train_in_process
from harness.execute.plan import make_plan
from harness.recipe import Ensemble, Recipe
from harness.store.index import Store
from harness.trainers import TRAINERS, DataUnavailable, TrainContext
from harness.trainers.base import RunResult

from conftest import FakeTrainer, fake_recipe

TESTS = os.path.dirname(__file__)

EFBIG = textwrap.dedent(
    """
    import resource, sys
    sys.path.insert(0, {tests!r})
    import numpy as np
    from conftest import FakeTrainer, fake_recipe
    from harness.trainers import TRAINERS
    from harness.trainers.base import RunResult

    class Counting(FakeTrainer):
        def train(self, recipe, seeds, ctx):
            print("train", list(seeds), flush=True)
            for s in seeds:
                yield RunResult(s, {{"out": np.random.default_rng(s).normal(size=1000)}}, {{"a": 1.0}})

    TRAINERS["fake"] = Counting()
    from harness.execute.tasks import make_tasks
    from harness.execute.local import train_in_process
    from harness.execute.plan import make_plan
    from harness.recipe import Ensemble
    from harness.store.index import Store
    from harness.trainers import TrainContext
    store = Store({root!r})
    resource.setrlimit(resource.RLIMIT_FSIZE, ({limit}, resource.RLIM_INFINITY))
    out = train_in_process(store, make_tasks(make_plan([Ensemble(fake_recipe(), 8)], store, "cpu"), "cpu"),
                           TrainContext(), lambda *a: None)
    for line in out.failure_lines():
        print(line, flush=True)
    """
)


def test_a_file_size_limit_is_one_clear_line_not_retried_and_leaves_no_orphan(tmp_path):
    root = tmp_path / "st"
    script = EFBIG.format(tests=TESTS, root=str(root), limit=40_000)  # an artifact fits, the index's journal not
    r = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120,
                       env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    assert r.returncode == 0, r.stderr[-2000:]
    lines = r.stdout.splitlines()
    assert sum(line.startswith("train") for line in lines) == 2  # two blocks of 4, each tried once
    failures = [line for line in lines if line.startswith("lrlaws: training failed")]
    assert len(failures) == 1 and "file size limit" in failures[0] and "ulimit -f" in failures[0], r.stdout
    assert list(root.glob("runs/*/*/*.npz")) == []  # no artifact without its index row


class DamagedData(FakeTrainer):
    name = "damaged"
    calls = 0

    def train(self, recipe: Recipe, seeds: Sequence[int], ctx: TrainContext) -> Iterator[RunResult]:
        DamagedData.calls += 1
        raise DataUnavailable("/data/cifar-10-batches-py/data_batch_1: not a readable CIFAR-10 batch (truncated); "
                              "delete it to download it again")
        yield RunResult(0, {})


def test_damaged_data_fails_every_task_once_with_one_line_and_no_traceback(tmp_path, monkeypatch, fake_trainer):
    monkeypatch.setitem(TRAINERS, "damaged", DamagedData())
    DamagedData.calls = 0
    store = Store(tmp_path / "st")
    damaged = [Ensemble(Recipe(trainer="damaged", dataset="cifar10", model="none", lr=lr, options={"chunk": 2}), 6)
               for lr in (0.1, 0.2)]
    fine = Ensemble(fake_recipe(lr=0.3), 4)
    out = train_in_process(store, make_tasks(make_plan([*damaged, fine], store, "cpu"), "cpu"), TrainContext(),
                           lambda *a: None)
    assert DamagedData.calls == 1  # the first task met the damage; no other task of that data set tried again
    assert len(out.failed) == 6 and out.trained == 4  # another data set still trains
    lines = out.failure_lines()
    assert len(lines) == 1 and "Traceback" not in lines[0] and "not a readable CIFAR-10 batch" in lines[0]
    assert "12 run(s)" in lines[0]


def test_a_read_only_index_whose_rows_are_only_in_its_wal_is_not_read_stale(tmp_path, monkeypatch):
    import shutil
    import sqlite3

    from harness.store import index as store_mod

    st = Store(tmp_path / "a")
    recipe = fake_recipe()
    key = recipe.key("fake-v1")
    st.register(key, recipe, "fake-v1")
    for s in range(3):
        st.put(key, RunResult(s, {"o": np.zeros(2)}), "cpu")
    b = tmp_path / "b"  # the store as a read-only disk holds it: index and -wal, no -shm
    shutil.copytree(tmp_path / "a" / "runs", b / "runs")
    for name in ("index.sqlite", "index.sqlite-wal"):
        shutil.copyfile(tmp_path / "a" / name, b / name)
    assert (b / "index.sqlite-wal").stat().st_size > 0 and not (b / "index.sqlite-shm").exists()
    real = sqlite3.connect

    def no_shm_possible(target, *a, **kw):  # what a read-only disk does to mode=ro without a -shm
        if "mode=ro" in str(target):
            raise sqlite3.OperationalError("unable to open database file")
        return real(target, *a, **kw)
    monkeypatch.setattr(store_mod.sqlite3, "connect", no_shm_possible)
    ro = Store(b, readonly=True)
    assert ro.count() == 3 and ro.missing(key, range(4)) == [3]
    assert not (b / "index.sqlite-shm").exists()  # nothing written beside the read-only index
