"""Fault injection: SIGKILL, a concurrent session, each kind of index damage, a full disk, a read-only store.

Each fault must be survived with nothing lost and nothing trained twice, or
refused with one line that says what to do.
"""
from __future__ import annotations

import contextlib
import errno
import os
import random
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from harness.store import artifacts
from harness.execute.local import WorkerSpec, train_in_process, train_pool
from harness.execute.tasks import make_tasks
from harness.execute.plan import make_plan
from harness.recipe import Ensemble
from harness.store.index import IndexDamaged, Store, StoreError, StoreWriteError, open_store
from harness.store.cli import check, main as store_main, rebuild
from harness.identity import recipe_key
from harness.trainers import TrainContext
from harness.trainers.base import RunResult

from conftest import fake_recipe

TESTS = os.path.dirname(__file__)


def _train(store: Store, ens: list[Ensemble]):
    seen: list[tuple[str, int]] = []
    out = train_in_process(store, make_tasks(make_plan(ens, store, "cpu"), "cpu"), TrainContext(),
                           lambda k, s, st: seen.append((k, s)))
    return out, seen


# ------------------------------------------------------------------- SIGKILL --

SESSION = textwrap.dedent(
    """
    import sys
    sys.path.insert(0, {tests!r})
    from conftest import FakeTrainer, fake_recipe
    from harness.trainers import TRAINERS
    TRAINERS["fake"] = FakeTrainer()
    from harness.execute.local import train_in_process
    from harness.execute.tasks import make_tasks
    from harness.execute.plan import make_plan
    from harness.recipe import Ensemble
    from harness.store.index import Store
    from harness.trainers import TrainContext
    store = Store({root!r})
    ens = [Ensemble(fake_recipe(options={{"sleep": {sleep}, "chunk": 2}}), {n})]
    out = train_in_process(store, make_tasks(make_plan(ens, store, "cpu"), "cpu"), TrainContext(),
                           lambda k, s, st: print("run", s, flush=True))
    print("done", out.trained, len(out.failed), flush=True)
    """
)


def _session(root: Path, n: int, sleep: float) -> subprocess.Popen:
    script = SESSION.format(tests=TESTS, root=str(root), n=n, sleep=sleep)
    return subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})


def test_sigkill_loses_only_runs_in_flight_and_nothing_is_trained_twice(fake_trainer, tmp_path):
    root = tmp_path / "st"
    p = _session(root, n=40, sleep=0.05)
    stored = 0
    for line in p.stdout:  # type: ignore[union-attr]
        stored += line.startswith("run")
        if stored >= 5:
            break
    p.send_signal(signal.SIGKILL)
    p.wait(30)
    store = Store(root)
    ens = [Ensemble(fake_recipe(options={"sleep": 0.05, "chunk": 2}), 40)]
    kept = 40 - make_plan(ens, store, "cpu").runs_missing
    assert kept >= 5  # every run reported stored survived the kill
    out, seen = _train(store, ens)
    assert out.trained == 40 - kept and not out.failed
    assert len(set(seen)) == len(seen)  # the rerun trained each missing run once, and no stored one
    assert store.count() == 40


def test_a_tmp_file_left_by_a_killed_writer_is_removed_under_the_lock(fake_trainer, tmp_path):
    store = Store(tmp_path)
    r = fake_recipe(options={"chunk": 4})
    key = recipe_key(r)
    folder = store._artifact_path(key, 0).parent
    folder.mkdir(parents=True)
    orphan = folder / ".2.abc123.tmp"  # what mkstemp leaves when its writer is SIGKILLed mid-write
    orphan.write_bytes(b"half a run")
    assert any("temp file" in p for p in check(tmp_path).problems)
    out, _ = _train(store, [Ensemble(r, 4)])
    assert out.trained == 4 and not orphan.exists()
    assert check(tmp_path).problems == []


# -------------------------------------------------------- concurrent sessions --

def test_two_concurrent_sessions_train_each_run_exactly_once(fake_trainer, tmp_path):
    root = tmp_path / "st"
    procs = [_session(root, n=24, sleep=0.02) for _ in range(2)]
    outs = [p.communicate(timeout=120)[0] for p in procs]
    runs = [int(line.split()[1]) for out in outs for line in out.splitlines() if line.startswith("run")]
    assert sorted(runs) == list(range(24))  # together: every seed once, none twice
    assert all("done" in out and out.strip().endswith(" 0") for out in outs)  # no failed task
    assert Store(root).count() == 24


# ------------------------------------------------------------- index damage --

def _stored(tmp_path: Path, n: int = 12) -> tuple[Path, list[Ensemble]]:
    root = tmp_path / "st"
    ens = [Ensemble(fake_recipe(lr=lr, options={"chunk": 4}), n) for lr in (0.1, 0.2)]
    store = Store(root)
    _train(store, ens)
    store.close()
    return root, ens


def _scramble_page(db: Path) -> None:
    data = bytearray(db.read_bytes())
    page = int.from_bytes(data[16:18], "big") or 65536
    rng = random.Random(0)
    for i in range(page, min(len(data), 2 * page)):  # page 2: the first table's b-tree
        data[i] = rng.randrange(256)
    db.write_bytes(bytes(data))


DAMAGE = {
    "random_bytes": lambda db: db.write_bytes(random.Random(1).randbytes(db.stat().st_size)),
    "scrambled_page": _scramble_page,
    "half_truncated": lambda db: db.write_bytes(db.read_bytes()[: db.stat().st_size // 2]),
    "zero_length": lambda db: db.write_bytes(b""),
    "deleted": lambda db: db.unlink(),
}


@pytest.mark.parametrize("damage", sorted(DAMAGE))
def test_damaged_index_is_one_line_and_rebuild_restores_every_run(fake_trainer, tmp_path, damage):
    root, ens = _stored(tmp_path)
    db = root / "index.sqlite"
    for extra in ("index.sqlite-wal", "index.sqlite-shm"):
        with contextlib.suppress(FileNotFoundError):
            (root / extra).unlink()
    DAMAGE[damage](db)
    for opener in (lambda: Store(root), lambda: Store(root, readonly=True)):
        with pytest.raises(IndexDamaged) as e:
            opener()
        msg = str(e.value)
        assert "\n" not in msg and str(db) in msg and f"python -m harness store rebuild --store {root}" in msg
    assert store_main(["check", "--store", str(root)]) == 1
    scan = rebuild(root)
    assert scan.indexed == 24 and scan.problems == []
    store = Store(root)
    out, _ = _train(store, ens)
    assert out.trained == 0  # nothing retrained: metrics and status came back from the artifacts
    for e in ens:
        key = recipe_key(e.recipe)
        rec, arrays = store.load(key, 3)
        assert rec.status == "ok" and rec.metrics["pid"] > 0 and set(arrays) == {"out"}
    assert store_main(["check", "--store", str(root)]) == 0


def test_rebuild_skips_a_corrupt_artifact_so_only_that_run_is_retrained(fake_trainer, tmp_path):
    root, ens = _stored(tmp_path)
    victim = Store(root)._artifact_path(recipe_key(ens[0].recipe), 5)
    data = bytearray(victim.read_bytes())
    data[len(data) // 3] ^= 0xFF
    victim.write_bytes(bytes(data))
    (root / "index.sqlite").write_bytes(b"")
    scan = rebuild(root)
    assert scan.indexed == 23 and len(scan.problems) == 1 and str(victim) in scan.problems[0]
    out, seen = _train(Store(root), ens)
    assert out.trained == 1 and seen == [(recipe_key(ens[0].recipe), 5)]


def test_artifacts_describe_their_run(fake_trainer, tmp_path):
    root, ens = _stored(tmp_path, n=2)
    store = Store(root)
    key = recipe_key(ens[0].recipe)
    rec = store.records(key)[1]
    meta = artifacts.verified_meta((root / rec.file).read_bytes())
    assert (meta["key"], meta["seed"], meta["status"], meta["metrics"], meta["device"]) == (
        key, 1, rec.status, rec.metrics, rec.device)
    assert meta["recipe"] == ens[0].recipe.canonical_json() and meta["trainer"] == "fake"


# ---------------------------------------------------------------- full disk --

def test_full_disk_fails_each_task_once_without_retry_and_says_disk_full(fake_trainer, tmp_path, monkeypatch):
    store = Store(tmp_path / "st")
    calls = []
    real_train = fake_trainer.train

    def counting(recipe, seeds, ctx):
        calls.append(tuple(seeds))
        return real_train(recipe, seeds, ctx)

    monkeypatch.setattr(fake_trainer, "train", counting)

    def full(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    r = fake_recipe(options={"chunk": 4})
    with pytest.MonkeyPatch.context() as disk:
        disk.setattr(os, "fsync", full)
        out, seen = _train(store, [Ensemble(r, 12)])
    assert seen == [] and out.trained == 0
    assert len(out.failed) == 3 and len(calls) == 3  # one attempt per task: ENOSPC is not retried
    assert all(why.startswith("disk full at ") for _, _, why in out.failed)
    assert not list((tmp_path / "st").rglob("*.tmp"))  # the half-written temp files are gone
    lines = out.failure_lines()
    assert len(lines) == 1 and "12 run(s)" in lines[0] and "disk full at" in lines[0]
    out, _ = _train(store, [Ensemble(r, 12)])
    assert out.trained == 12  # space is back: everything trains


def test_an_io_error_that_is_not_deterministic_is_still_retried(fake_trainer, tmp_path, monkeypatch):
    store = Store(tmp_path / "st")
    failures = iter([True, False, False, False])

    def flaky(fd, real=os.fsync):
        if next(failures, False):
            raise OSError(errno.EIO, "Input/output error")
        return real(fd)

    monkeypatch.setattr(os, "fsync", flaky)
    out, _ = _train(store, [Ensemble(fake_recipe(options={"chunk": 4}), 4)])
    assert not out.failed and out.trained == 4


# ------------------------------------------------------------ read-only store --

@contextlib.contextmanager
def read_only(path: Path):
    """``path`` made read-only for this process: a read-only bind mount for root (who ignores modes), else chmod."""
    if os.geteuid() != 0:
        modes = {p: p.stat().st_mode for p in [path, *path.rglob("*")]}
        for p in modes:
            p.chmod(modes[p] & ~0o222)
        try:
            yield
        finally:
            for p, m in modes.items():
                p.chmod(m)
        return
    for cmd in (["mount", "--bind", str(path), str(path)], ["mount", "-o", "remount,bind,ro", str(path)]):
        r = subprocess.run(cmd, capture_output=True, text=True)
        if r.returncode != 0:
            subprocess.run(["umount", str(path)], capture_output=True)
            pytest.fail(f"cannot make a read-only store here as root ({r.stderr.strip()}); run the tests as a normal user")
    try:
        yield
    finally:
        if subprocess.run(["umount", str(path)], capture_output=True).returncode != 0:
            subprocess.run(["umount", "--lazy", str(path)], check=True)  # a file still open in it


def test_read_only_store_can_be_planned_and_read_but_not_trained_into(fake_trainer, tmp_path):
    root, ens = _stored(tmp_path, n=8)
    bigger = [Ensemble(e.recipe, 10) for e in ens]
    with read_only(root):
        with pytest.raises(StoreError) as e:
            open_store(root)
        assert "read-only store can be used with --no-train or --plan" in str(e.value)
        for store in (open_store(root, plan_only=True), open_store(root, no_train=True)):
            assert store.readonly
            assert make_plan(bigger, store, "cpu").runs_missing == 4
            rec, arrays = store.load(recipe_key(ens[0].recipe), 7)
            assert rec.status == "ok" and arrays["out"].shape == (6,)
            with pytest.raises(StoreWriteError):
                store.put(recipe_key(ens[0].recipe), RunResult(9, {"out": np.zeros(1)}), "cpu")
            store.close()
        assert check(root).problems == []


def test_training_into_a_read_only_store_fails_each_task_once_with_one_line(fake_trainer, tmp_path):
    root, ens = _stored(tmp_path, n=4)
    bigger = [Ensemble(ens[0].recipe, 8)]
    with read_only(root):
        store = Store(root, readonly=True)
        out, _ = _train(store, bigger)
        store.close()
    assert out.trained == 0 and len(out.failed) == 1 and "\n" not in out.failed[0][2]


# ------------------------------------------------------------ worker deaths --

def test_pool_whose_workers_all_die_before_a_task_reports_every_run_failed(fake_trainer, tmp_path, monkeypatch):
    import harness.execute.local as ex

    def die_at_once(*args, **kwargs):
        os._exit(3)

    monkeypatch.setattr(ex, "_worker_main", die_at_once)
    store = Store(tmp_path / "st")
    tasks = make_tasks(make_plan([Ensemble(fake_recipe(options={"chunk": 4}), 16)], store, "cpu"), "cpu")
    t0 = time.time()
    out = train_pool(store, tasks, [WorkerSpec("cpu"), WorkerSpec("cpu")], TrainContext(), lambda *a: None,
                     start_method="fork")
    assert time.time() - t0 < 30
    assert out.trained == 0 and sum(len(seeds) for _, seeds, _ in out.failed) == 16
    assert all("died" in why for _, _, why in out.failed)


# ------------------------------------------------------------- confinement --

@pytest.mark.parametrize("file", ["/etc/hostname", "../../outside.npz", "runs/xx/other/0.npz"])
def test_an_index_row_naming_another_file_is_never_followed(fake_trainer, tmp_path, file):
    root, ens = _stored(tmp_path, n=2)
    outside = tmp_path / "outside.npz"
    outside.write_bytes(b"secret")
    key = recipe_key(ens[0].recipe)
    store = Store(root)
    with store._db() as db:
        db.execute("UPDATE runs SET file = ? WHERE key = ? AND seed = 0", (file, key))
    read = []
    real = Path.read_bytes
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(Path, "read_bytes", lambda self: read.append(self.resolve()) or real(self))
        assert store.missing(key, [0, 1]) == [0]  # the row is dropped, the run will be retrained
    assert all(p.is_relative_to(root.resolve()) for p in read)


def test_a_read_only_index_file_fails_each_task_once_with_one_line(fake_trainer, tmp_path):
    root, ens = _stored(tmp_path, n=4)
    bigger = [Ensemble(e.recipe, 8) for e in ens]
    db = root / "index.sqlite"
    with read_only(db):
        store = Store(root)
        out, seen = _train(store, bigger)
        store.close()
    assert seen == [] and len(out.failed) == 2  # one per missing block, no retries
    assert all(why == f"store index {db} is read-only: make it writable, or pass --no-train to only read it"
               for _, _, why in out.failed)
    assert not list(root.rglob("*.tmp"))
