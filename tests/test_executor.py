"""Executors: in-process and the per-device worker pool, tested with CPU workers standing in for GPUs."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np

from harness.execute.local import WorkerSpec, train_in_process, train_pool
from harness.execute.tasks import make_tasks
from harness.execute.plan import make_plan
from harness.recipe import Ensemble
from harness.store.index import Store
from harness.identity import recipe_key
from harness.trainers import TrainContext

from conftest import fake_recipe


def _collect():
    seen = []
    return seen, lambda key, seed, status: seen.append((key, seed, status))


def test_tasks_are_aligned_blocks_of_missing_seeds(fake_trainer, tmp_path):
    store = Store(tmp_path)
    r = fake_recipe(options={"chunk": 4})
    key = recipe_key(r)
    from harness.trainers.base import RunResult
    for s in (0, 1, 5):
        store.put(key, RunResult(s, {"out": np.zeros(1)}), "cpu")
    tasks = make_tasks(make_plan([Ensemble(r, 10)], store, "cpu"), "cpu")
    assert [t.seeds for t in tasks] == [(2, 3), (4, 6, 7), (8, 9)]


def test_a_claim_holds_the_block_and_keeps_only_what_is_missing(fake_trainer, tmp_path):
    from harness.execute.tasks import claim
    from harness.store.runs import RunResult

    store = Store(tmp_path)
    r = fake_recipe(options={"chunk": 4})
    key = recipe_key(r)
    store.put(key, RunResult(1, {"out": np.zeros(1)}), "cpu")
    task = make_tasks(make_plan([Ensemble(r, 4)], store, "cpu"), "cpu")[0]
    held = claim(store, task, blocking=False)
    assert held is not None and held.todo == [0, 2, 3]
    # negative control: while the block is held, a second claim of it gets nothing
    assert claim(store, task, blocking=False) is None
    held.release()
    again = claim(store, task, blocking=False)
    assert again is not None
    again.release()


def test_a_task_is_retried_until_its_retries_are_spent():
    from collections import deque

    from harness.execute.tasks import Outcome, Task

    out, queue, task = Outcome(), deque(), Task("k", "{}", (4, 5), 1)
    out.retry(task, queue, "boom", max_retries=1)
    assert list(queue) == [task] and not out.failed
    queue.clear()
    out.retry(task, queue, "boom again", max_retries=1, seeds=(5,))
    assert not queue and out.failed == [("k", (5,), "boom again")]


def test_in_process_trains_each_missing_run_once(fake_trainer, tmp_path):
    store = Store(tmp_path)
    ens = [Ensemble(fake_recipe(lr=lr), 10) for lr in (0.1, 0.2)]
    seen, on_run = _collect()
    out = train_in_process(store, make_tasks(make_plan(ens, store, "cpu"), "cpu"), TrainContext(), on_run)
    assert out.trained == 20 and not out.failed
    assert len(set(seen)) == 20
    assert make_plan(ens, store, "cpu").runs_missing == 0
    out = train_in_process(store, make_tasks(make_plan(ens, store, "cpu"), "cpu"), TrainContext(), on_run)
    assert out.trained == 0


def test_diverged_runs_are_stored_as_data(fake_trainer, tmp_path):
    store = Store(tmp_path)
    r = fake_recipe(lr=2.0, options={"diverge_above": 1.0})
    out = train_in_process(store, make_tasks(make_plan([Ensemble(r, 3)], store, "cpu"), "cpu"), TrainContext(), lambda *a: None)
    assert out.trained == 3
    assert {rec.status for rec in store.records(recipe_key(r)).values()} == {"diverged"}


def test_pool_spreads_work_and_matches_in_process(fake_trainer, tmp_path):
    ens = [Ensemble(fake_recipe(lr=lr, options={"sleep": 0.02}), 12) for lr in (0.1, 0.2, 0.3)]
    pool_store, local_store = Store(tmp_path / "pool"), Store(tmp_path / "local")
    seen, on_run = _collect()
    out = train_pool(pool_store, make_tasks(make_plan(ens, pool_store, "cpu"), "cpu"),
                     [WorkerSpec("cpu"), WorkerSpec("cpu"), WorkerSpec("cpu")], TrainContext(), on_run, start_method="fork")
    assert out.trained == 36 and not out.failed and len(set(seen)) == 36
    pids = {rec.metrics["pid"] for e in ens for rec in pool_store.records(recipe_key(e.recipe)).values()}
    assert len(pids) >= 2, "work should be spread over the workers"
    train_in_process(local_store, make_tasks(make_plan(ens, local_store, "cpu"), "cpu"), TrainContext(), lambda *a: None)
    for e in ens:
        k = recipe_key(e.recipe)
        for s in e.seeds:
            np.testing.assert_array_equal(pool_store.load(k, s)[1]["out"], local_store.load(k, s)[1]["out"])


def test_pool_survives_a_worker_crash(fake_trainer, tmp_path):
    marker = tmp_path / "crashed"
    r = fake_recipe(options={"crash_seed": 5, "crash_marker": str(marker), "chunk": 4})
    other = fake_recipe(lr=0.7)
    store = Store(tmp_path / "st")
    ens = [Ensemble(r, 12), Ensemble(other, 12)]
    out = train_pool(store, make_tasks(make_plan(ens, store, "cpu"), "cpu"),
                     [WorkerSpec("cpu"), WorkerSpec("cpu")], TrainContext(), lambda *a: None, start_method="fork")
    assert marker.exists(), "the crash must have happened"
    assert not out.failed
    assert make_plan(ens, store, "cpu").runs_missing == 0
    # the crashed block (seeds 4..7) was retried; seed 4 finished before the crash and was kept
    assert out.trained == 24


def test_pool_records_a_task_that_always_crashes_as_failed(fake_trainer, tmp_path):
    r = fake_recipe(options={"crash_seed": 1, "chunk": 2})
    store = Store(tmp_path / "st")
    tasks = make_tasks(make_plan([Ensemble(r, 4)], store, "cpu"), "cpu")
    out = train_pool(store, tasks, [WorkerSpec("cpu")], TrainContext(), lambda *a: None, start_method="fork")
    assert len(out.failed) == 1 and out.failed[0][1] == (0, 1) and "died" in out.failed[0][2]
    assert store.missing(recipe_key(r), range(4)) == [1]  # seed 0 finished before each crash


def test_in_process_failure_is_retried_then_recorded(fake_trainer, tmp_path):
    r = fake_recipe(options={"raise_seed": 2, "chunk": 2})
    store = Store(tmp_path)
    out = train_in_process(store, make_tasks(make_plan([Ensemble(r, 6)], store, "cpu"), "cpu"), TrainContext(), lambda *a: None)
    assert len(out.failed) == 1 and "fake failure at seed 2" in out.failed[0][2]
    assert store.missing(recipe_key(r), range(6)) == [2, 3]


POOL_SCRIPT = textwrap.dedent(
    """
    import sys
    sys.path.insert(0, {tests!r})
    from conftest import FakeTrainer, fake_recipe
    from harness.trainers import TRAINERS
    TRAINERS["fake"] = FakeTrainer()
    from harness.execute.local import WorkerSpec, train_pool
    from harness.execute.tasks import make_tasks
    from harness.execute.plan import make_plan
    from harness.recipe import Ensemble
    from harness.store.index import Store
    from harness.trainers import TrainContext
    store = Store({root!r})
    ens = [Ensemble(fake_recipe(options={{"sleep": 0.2, "chunk": 1}}), 200)]
    print("started", flush=True)
    out = train_pool(store, make_tasks(make_plan(ens, store, "cpu"), "cpu"),
                     [WorkerSpec("cpu"), WorkerSpec("cpu")], TrainContext(), lambda *a: None, start_method="fork")
    print("interrupted" if out.interrupted else "finished", out.trained, flush=True)
    """
)


def test_pool_ctrl_c_stops_workers_and_keeps_finished_runs(fake_trainer, tmp_path):
    root = tmp_path / "st"
    script = POOL_SCRIPT.format(tests=os.path.dirname(__file__), root=str(root))
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True, start_new_session=True)
    assert proc.stdout.readline().strip() == "started"
    deadline = time.time() + 60
    store = Store(root)
    while store.count() < 6 and time.time() < deadline:
        time.sleep(0.1)
    os.killpg(proc.pid, signal.SIGINT)  # what a terminal's Ctrl-C does: the whole group
    out, _ = proc.communicate(timeout=60)
    assert out.startswith("interrupted"), out
    kept = store.count()
    assert 6 <= kept < 200
    assert int(out.split()[1]) <= kept
    # no worker left behind
    time.sleep(0.5)
    ps = subprocess.run(["pgrep", "-f", str(root)], capture_output=True, text=True).stdout.split()
    assert ps == []


def test_pool_pins_each_worker_to_its_device(fake_trainer, tmp_path):
    """Each worker sets CUDA_VISIBLE_DEVICES to its physical id before anything touches CUDA."""
    store = Store(tmp_path)
    ens = [Ensemble(fake_recipe(lr=0.1, options={"sleep": 0.05, "chunk": 1}), 12)]
    workers = [WorkerSpec("cpu", physical="3"), WorkerSpec("cpu", physical="5")]
    train_pool(store, make_tasks(make_plan(ens, store, "cpu"), "cpu"), workers, TrainContext(), lambda *a: None,
               start_method="fork")
    by_pid = {}
    for rec in store.records(recipe_key(ens[0].recipe)).values():
        by_pid.setdefault(rec.metrics["pid"], set()).add(rec.metrics["cuda_visible"])
    assert sorted(v for vals in by_pid.values() for v in vals) == ["3", "5"]
    assert all(len(v) == 1 for v in by_pid.values())


def test_visible_devices_honour_cuda_visible_devices(monkeypatch):
    import torch

    from harness.execute.local import visible_cuda_devices

    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "3,5")
    assert visible_cuda_devices() == ["3", "5"]
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES")
    assert visible_cuda_devices() == ["0", "1"]
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 0)
    assert visible_cuda_devices() == []
