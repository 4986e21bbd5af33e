"""Every write and delete stays inside its directory: store keys checked, symlinks and FIFOs never followed.

Each test plants what an attacker (or a damaged store) could leave behind and
checks that nothing outside the store, or outside ``results/baseline``, is read,
written or deleted, and that nothing hangs.
"""
from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from harness.report.baseline import main as baseline_main
from harness.store.index import Store, StoreError
from harness.store.cli import check, rebuild
from harness.store.prune import DAY, prune
from harness.trainers.base import RunResult

from conftest import fake_recipe

ROOT = Path(__file__).resolve().parents[1]


def _filled(tmp_path: Path, seeds: int = 2) -> tuple[Store, str]:
    store = Store(tmp_path / "store")
    recipe = fake_recipe(lr=0.1)
    key = recipe.key("fake-v1")
    store.register(key, recipe, "fake-v1")
    for s in range(seeds):
        store.put(key, RunResult(s, {"out": np.arange(3.0) + s}), "cpu")
    return store, key


def _victim(tmp_path: Path) -> Path:
    victim = tmp_path / "victim"
    (victim / "inner").mkdir(parents=True)
    (victim / "inner" / "keep.txt").write_text("keep")
    (victim / ".0.abc.tmp").write_text("keep")
    return victim


def _age(store: Store, key: str, days: float = 90) -> None:
    with sqlite3.connect(store.root / "index.sqlite") as conn:
        conn.execute("UPDATE runs SET created = ? WHERE key = ?", (time.time() - days * DAY, key))


@pytest.mark.parametrize("key", ["../victim", "{abs}"])
def test_prune_never_deletes_what_a_malformed_key_names(tmp_path, key):
    store, _ = _filled(tmp_path)
    victim = _victim(tmp_path)
    key = key.format(abs=victim)
    assert os.path.normpath(store.root / "runs" / key[:2] / key) == str(victim)  # the key names the victim
    with sqlite3.connect(store.root / "index.sqlite") as conn:
        conn.execute("INSERT INTO recipes VALUES (?, 'fake', 's', '{}')", (key,))
        conn.execute("INSERT INTO runs VALUES (?, 0, 'ok', 'x', 'h', 0, 'cpu', 0, '{}', '', 0, '')", (key,))
    out = prune(store.root, 30, now=time.time())
    assert key in out.pruned  # its index rows go; the folder it names is not the store's to delete
    assert (victim / "inner" / "keep.txt").read_text() == "keep"


def test_prune_never_deletes_through_a_planted_symlink(tmp_path):
    store, key = _filled(tmp_path)
    _age(store, key)
    victim = tmp_path / "victim"
    shard = store.root / "runs" / key[:2]
    (victim / key).mkdir(parents=True)
    (victim / key / "keep.txt").write_text("keep")
    for f in shard.joinpath(key).iterdir():
        f.unlink()
    shard.joinpath(key).rmdir()
    shard.rmdir()
    shard.symlink_to(victim)  # runs/<k[:2]> now leads out of the store
    prune(store.root, 30, now=time.time())
    assert (victim / key / "keep.txt").read_text() == "keep"


def test_rebuild_never_deletes_temp_files_through_a_symlink(tmp_path):
    store, key = _filled(tmp_path)
    victim = _victim(tmp_path)
    (victim / key).mkdir()
    (victim / key / ".0.abc.tmp").write_text("keep")
    (store.root / "runs" / "zz").symlink_to(victim)
    own = store.root / "runs" / key[:2] / key / ".1.abc.tmp"
    own.write_text("left by a killed writer")
    store.close()
    scan = rebuild(store.root)
    assert scan.indexed == 2
    assert (victim / key / ".0.abc.tmp").read_text() == "keep" and not own.exists()


FIFO_CHECK = """
import sys
from pathlib import Path
from harness.store.index import Store
from harness.store.cli import check
root = Path(sys.argv[1])
print(len(check(root).problems), Store(root).missing(sys.argv[2], [0, 1]), flush=True)
"""


def test_a_fifo_where_an_artifact_belongs_neither_hangs_check_nor_a_session(tmp_path):
    store, key = _filled(tmp_path)
    art = store.root / "runs" / key[:2] / key / "0.npz"
    art.unlink()
    os.mkfifo(art)
    store.close()
    r = subprocess.run([sys.executable, "-c", FIFO_CHECK, str(store.root), key], capture_output=True, text=True,
                       timeout=60, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert r.returncode == 0, r.stderr[-1500:]
    problems, missing = r.stdout.split(maxsplit=1)
    assert int(problems) == 1 and missing.strip() == "[0]"  # the FIFO's run is retrained, not waited on


def test_a_store_shard_linked_out_of_the_store_is_neither_read_nor_written(tmp_path):
    store, key = _filled(tmp_path)
    victim = tmp_path / "victim"
    victim.mkdir()
    shard = store.root / "runs" / key[:2]
    shard.rename(victim / "moved")
    shard.symlink_to(victim / "moved")
    with pytest.raises(StoreError, match="symlink out of the store"):
        store.put(key, RunResult(5, {"out": np.zeros(3)}), "cpu")
    assert not (victim / "moved" / key / "5.npz").exists()


def test_check_verifies_more_than_the_checksum(tmp_path):
    store, key = _filled(tmp_path)
    other = fake_recipe(lr=0.2).key("fake-v1")
    # a row whose checksum matches an artifact that describes another run
    from harness.store import artifacts
    data = artifacts.encode({"out": np.zeros(3)}, {"key": other, "seed": 0, "status": "ok", "metrics": {},
                                                     "seconds": 0.0, "device": "cpu"})
    import hashlib
    art = store.root / "runs" / key[:2] / key / "0.npz"
    art.write_bytes(data)
    with sqlite3.connect(store.root / "index.sqlite") as conn:
        conn.execute("UPDATE runs SET sha256 = ? WHERE key = ? AND seed = 0", (hashlib.sha256(data).hexdigest(), key))
    problems = check(store.root).problems
    assert len(problems) == 1 and "not a valid run" in problems[0] and "describes run" in problems[0]


def test_prune_says_one_line_for_a_damaged_index_and_refuses_an_empty_store(tmp_path):
    store, _ = _filled(tmp_path)
    store.close()
    (store.root / "index.sqlite").write_bytes(b"SQLite format 3\x00" + b"\x07" * 4000)
    for args, msg in [(["--store", str(store.root)], "is damaged"), (["--store", ""], "--store is empty")]:
        r = subprocess.run([sys.executable, "-m", "harness", "store", "prune", "--keep-days", "1", *args],
                           capture_output=True, text=True, timeout=120, cwd=tmp_path,
                           env={**os.environ, "PYTHONPATH": str(ROOT)})
        assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1 and msg in r.stderr, r.stderr


# ------------------------------------------------------------------ baseline --

def _run_dir(tmp_path: Path) -> Path:
    run = tmp_path / "results" / "run1"
    (run / "plots").mkdir(parents=True)
    (run / "report.json").write_text(json.dumps({"version": 1, "run_id": "r1", "tier": "gpu", "started": 1.0,
                                                 "entries": []}))
    return run


@pytest.mark.parametrize("link", ["results", "results/baseline"])
def test_baseline_does_not_follow_a_linked_results_folder(tmp_path, capsys, link):
    run = _run_dir(tmp_path)
    outside = tmp_path / "outside"
    (outside / "gpu" / "plots").mkdir(parents=True)
    (outside / "baseline" / "gpu" / "plots").mkdir(parents=True)
    (outside / "gpu" / "plots" / "keep.png").write_text("x")
    (outside / "baseline" / "gpu" / "plots" / "keep.png").write_text("x")
    repo = tmp_path / "repo"
    (repo / link).parent.mkdir(parents=True, exist_ok=True)
    (repo / link).symlink_to(outside)
    assert baseline_main([str(run), "--root", str(repo)]) == 2
    assert "link" in capsys.readouterr().err
    assert (outside / "gpu" / "plots" / "keep.png").exists()
    assert (outside / "baseline" / "gpu" / "plots" / "keep.png").exists()
    assert not list(outside.rglob("report.json"))
