"""Where a run was trained: recorded per run (index and artifact), migrated into old stores, checked, compared."""
from __future__ import annotations

import platform
import sqlite3

import numpy as np
import pytest

from harness.store import cli as store_cli, provenance
from harness.report.compare import compare
from harness.store.index import Store
from harness.trainers.base import RunResult

KEY = "k" * 64


def put(store: Store, seed: int, key: str = KEY, pack: int = 1) -> None:
    store.put(key, RunResult(seed, {"x": np.zeros(2)}, {"acc": 0.5}, pack=pack), "cpu")


def test_run_records_device_class_pack_and_torch(tmp_path) -> None:
    import torch

    s = Store(tmp_path)
    put(s, 0, pack=4)
    rec = s.record(KEY, 0)
    assert (rec.device_class, rec.pack, rec.torch) == (f"cpu:{platform.machine()}", 4, torch.__version__)
    s.close()
    assert store_cli.rebuild(tmp_path).indexed == 1  # the artifact carries it too
    assert Store(tmp_path).record(KEY, 0) == rec


OLD_RUNS = """CREATE TABLE runs (key TEXT NOT NULL, seed INTEGER NOT NULL, status TEXT NOT NULL,
    file TEXT NOT NULL, sha256 TEXT NOT NULL, seconds REAL NOT NULL, device TEXT NOT NULL,
    created REAL NOT NULL, metrics TEXT NOT NULL, PRIMARY KEY (key, seed))"""


def test_old_store_is_migrated_and_read_only_reads_it(tmp_path) -> None:
    db = sqlite3.connect(tmp_path / "index.sqlite")
    db.execute(OLD_RUNS)
    db.execute("INSERT INTO runs VALUES (?,?,?,?,?,?,?,?,?)", (KEY, 7, "ok", "f", "h", 1.0, "cpu", 0.0, "{}"))
    db.commit()
    db.close()
    ro = Store(tmp_path, readonly=True)  # not migrated: the columns read as their defaults
    assert (ro.record(KEY, 7).device_class, ro.record(KEY, 7).pack) == ("", 0)
    ro.close()
    s = Store(tmp_path)
    put(s, 1)
    assert s.record(KEY, 7).device_class == "" and s.record(KEY, 1).device_class.startswith("cpu:")
    cols = {r[1] for r in sqlite3.connect(tmp_path / "index.sqlite").execute("PRAGMA table_info(runs)")}
    assert {"device_class", "pack", "torch"} <= cols


def test_store_check_reports_mixed_device_classes(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    s = Store(tmp_path)
    put(s, 0)
    put(s, 0, key="j" * 64)
    assert store_cli.check(tmp_path).problems == []  # control: one class per ensemble
    monkeypatch.setattr(provenance, "describe", lambda device: ("cuda:NVIDIA H200", "2.11"))
    put(s, 1)
    problems = store_cli.check(tmp_path).problems
    assert len(problems) == 1 and "mixes device classes" in problems[0] and "cuda:NVIDIA H200" in problems[0]


def _report(decision: str, value: float, classes: list[str]) -> dict:
    r = {"statistic": "s", "value": value, "ci": [value - 0.01, value + 0.01], "decision": decision}
    return {"tier": "smoke", "entries": [{"nodeid": "t::a", "law": "l", "decision": decision, "results": [r],
                                          "device_classes": classes}]}


@pytest.mark.parametrize("old,new", [("pass", "fail"), ("pass", "pass")])
def test_compare_names_a_change_of_device_class(old: str, new: str) -> None:
    value = 0.5 if new == "fail" else 0.9  # the pass/pass case drifts
    cpu, gpu = ["cpu:x86_64"], ["cuda:NVIDIA H200"]
    moved = compare(_report(old, 0.3, cpu), _report(new, value, gpu))
    assert [p.cls for p in moved.points] == ["device_changed"] and "another device class" in moved.headline()
    assert moved.exit_code("drift") == 0
    same = compare(_report(old, 0.3, cpu), _report(new, value, cpu))  # control: same class, the real class
    assert [p.cls for p in same.points] == ["regressed" if new == "fail" else "drifted"]
