from __future__ import annotations

import multiprocessing as mp
import errno
import os
import sqlite3

import numpy as np
import pytest

from harness.store.index import CorruptArtifact, Store, StoreError, check_writable
from harness.trainers.base import RunResult


def _result(seed: int, value: float = 1.0) -> RunResult:
    return RunResult(seed, {"out": np.full(5, value + seed)}, {"acc": 0.5}, "ok", 0.1)


def test_roundtrip_and_missing(tmp_path):
    s = Store(tmp_path / "st")
    assert s.missing("k", range(3)) == [0, 1, 2]
    s.put("k", _result(1), "cpu")
    assert s.missing("k", range(3)) == [0, 2]
    rec, arrays = s.load("k", 1)
    assert rec.metrics == {"acc": 0.5} and rec.device == "cpu"
    np.testing.assert_array_equal(arrays["out"], np.full(5, 2.0))


def test_index_is_wal(tmp_path):
    Store(tmp_path)
    mode = sqlite3.connect(tmp_path / "index.sqlite").execute("PRAGMA journal_mode").fetchone()[0]
    assert mode == "wal"


def test_corrupt_artifact_is_detected_and_dropped(tmp_path):
    s = Store(tmp_path)
    rec = s.put("k", _result(0), "cpu")
    path = tmp_path / rec.file
    data = bytearray(path.read_bytes())
    data[-10] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(CorruptArtifact):
        s.load("k", 0)
    assert s.missing("k", [0]) == [0]          # verified: dropped, so it will be retrained
    assert s.records("k") == {}


def test_deleted_artifact_counts_as_missing(tmp_path):
    s = Store(tmp_path)
    rec = s.put("k", _result(0), "cpu")
    os.unlink(tmp_path / rec.file)
    assert s.missing("k", [0]) == [0]


def test_crash_before_index_leaves_no_row(tmp_path, monkeypatch):
    """A crash after the artifact is renamed but before the row commits: the run is missing, not half-there."""
    s = Store(tmp_path)

    def boom(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(s, "_db", boom)
    with pytest.raises(KeyboardInterrupt):
        s.put("k", _result(0), "cpu")
    monkeypatch.undo()
    assert s.missing("k", [0]) == [0]
    assert not list(tmp_path.glob("runs/**/*.tmp"))


def test_crash_mid_write_leaves_no_artifact(tmp_path, monkeypatch):
    s = Store(tmp_path)

    def boom(fd):
        raise OSError(errno.EIO, "I/O error")

    monkeypatch.setattr(os, "fsync", boom)
    with pytest.raises(StoreError, match="cannot write"):
        s.put("k", _result(0), "cpu")
    monkeypatch.undo()
    assert s.missing("k", [0]) == [0]
    assert not [p for p in tmp_path.glob("runs/**/*") if p.is_file()]


def _writer(root, worker, n):
    s = Store(root)
    for seed in range(n):
        # every worker writes every seed: last writer wins, the index stays consistent
        s.put("shared", _result(seed, value=seed), f"w{worker}")
        s.put(f"own{worker}", _result(seed), f"w{worker}")


def test_concurrent_writers(tmp_path):
    ctx = mp.get_context("fork")
    procs = [ctx.Process(target=_writer, args=(str(tmp_path), w, 25)) for w in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    s = Store(tmp_path)
    assert s.missing("shared", range(25)) == []
    for w in range(4):
        assert s.missing(f"own{w}", range(25)) == []
    for seed in range(25):
        np.testing.assert_array_equal(s.load("shared", seed)[1]["out"], np.full(5, 2.0 * seed))
    assert s.count() == 125


def _hold(root, ready, release):
    s = Store(root)
    with s.lock("k.0"):
        ready.set()
        release.wait(30)


def test_lock_excludes_other_processes_and_dies_with_its_holder(tmp_path):
    ctx = mp.get_context("fork")
    ready, release = ctx.Event(), ctx.Event()
    p = ctx.Process(target=_hold, args=(str(tmp_path), ready, release))
    p.start()
    assert ready.wait(30)
    s = Store(tmp_path)
    with s.lock("k.0", blocking=False) as held:
        assert not held
    p.kill()  # SIGKILL: the OS must release the lock
    p.join()
    with s.lock("k.0", blocking=False) as held:
        assert held


def test_unwritable_store_is_reported_without_creating_anything(tmp_path):
    f = tmp_path / "file"
    f.write_text("x")
    with pytest.raises(StoreError, match="--store DIR"):
        check_writable(f / "store")
    with pytest.raises(StoreError):
        Store(f / "store")
    assert f.read_text() == "x"


def test_the_store_imports_no_torch():
    import subprocess
    import sys

    code = "import sys, harness.store.index, harness.store.cli; print('torch' in sys.modules)"
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                         env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    assert res.stdout.strip() == "False", res.stdout + res.stderr
