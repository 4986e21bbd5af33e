"""A rerun on the same runs and code reuses each point's stop (no dry looks) and reports the same rows.

Negative controls: an edited law file or a re-written run changes the digest, and the looks are made again.
"""
from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np

from harness.store.runs import RunResult
from harness.plugin.stops import previous_stops
from harness.store.index import Store
from test_plugin import run, trained, write_law

TIMINGS = ("started", "finished", "run_id", "train_seconds")


def _session(pytester, *args: str):
    return run(pytester, "--store", str(pytester.path / "store"), "--report-dir", str(pytester.path / "rep"),
               "--compare-to", "none", "--workers", "1", *args)


def _looks(result) -> tuple[int, int]:
    """(dry looks made, points started at an earlier stop) from the session's terminal line."""
    m = re.search(r"(\d+) dry, (\d+) point\(s\) at their stop", result.stdout.str())
    assert m, result.stdout.str()
    return int(m.group(1)), int(m.group(2))


def _reports(pytester) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted((pytester.path / "rep").glob("*/report.json"))]


def test_a_rerun_reuses_every_stop_and_reports_the_same_rows(pytester):
    write_law(pytester, n=256, threshold=0.0)  # 3 looks (64, 128, 256); both points decide at 64
    first = _session(pytester)
    first.assert_outcomes(passed=2)
    assert _looks(first) == (2, 0)
    again = _session(pytester)
    again.assert_outcomes(passed=2)
    assert _looks(again) == (0, 2) and trained(again) == 0
    a, b = _reports(pytester)
    assert all(e["stop_digest"] for e in a["entries"])
    assert a["entries"] == b["entries"]  # decisions, values, CIs, runs used, digests: all equal
    assert a["summary"] == b["summary"]


def test_an_undecided_point_is_reused_at_its_maximum(pytester):
    write_law(pytester, n=128, threshold="float(np.mean(acc))")  # never decided: looks 64, then 128
    first = _session(pytester)
    assert _looks(first) == (2, 0)
    again = _session(pytester)
    assert _looks(again) == (0, 2)
    a, b = _reports(pytester)
    assert [(e["decision"], e["runs_used"]) for e in b["entries"]] == [("inconclusive", 128)] * 2
    assert a["entries"] == b["entries"]


def test_an_edited_law_file_makes_the_looks_again(pytester):
    write_law(pytester, n=256, threshold=0.0)
    _session(pytester).assert_outcomes(passed=2)
    law = pytester.path / "test_tiny_law.py"
    law.write_text(law.read_text() + "\n# an edit that changes no verdict still changes the code\n")
    assert _looks(_session(pytester)) == (2, 0)


def test_a_rewritten_run_makes_its_point_look_again(pytester):
    write_law(pytester, n=256, threshold=0.0)
    _session(pytester).assert_outcomes(passed=2)
    key = _reports(pytester)[0]["entries"][0]["recipes"]["runs"]
    store = Store(pytester.path / "store")
    rec, arrays = store.load(key, 3)
    # the same arrays put again: a new artifact (new write time, new sha256) of one run of the first point
    store.put(key, RunResult(rec.seed, arrays, rec.metrics, rec.status, rec.seconds), rec.device)
    store.close()
    assert _looks(_session(pytester)) == (1, 1)


def _report(path: Path, tier: str, entries: list[dict], started: float) -> None:
    path.mkdir(parents=True)
    (path / "report.json").write_text(json.dumps({"tier": tier, "started": started, "entries": entries}))


def test_previous_stops_take_the_newest_report_of_the_tier_that_records_one(tmp_path):
    _report(tmp_path / "20260101-000000-smoke-1", "smoke", [{"nodeid": "a", "runs_used": 64, "stop_digest": "old"},
                                                            {"nodeid": "b", "runs_used": 128, "stop_digest": "b1"}], 1.0)
    _report(tmp_path / "20260102-000000-smoke-1", "smoke", [{"nodeid": "a", "runs_used": 128, "stop_digest": "new"},
                                                            {"nodeid": "b", "decision": "not run"}], 2.0)
    _report(tmp_path / "20260103-000000-gpu-1", "gpu", [{"nodeid": "a", "runs_used": 64, "stop_digest": "gpu"}], 3.0)
    (tmp_path / "20260104-000000-smoke-1").mkdir()
    (tmp_path / "20260104-000000-smoke-1" / "report.json").write_text("{not json")
    got = previous_stops(tmp_path, "smoke", {"a", "b", "c"})
    assert got == {"a": (128, "new"), "b": (128, "b1")}
    assert previous_stops(tmp_path / "absent", "smoke", {"a"}) == {}


def test_previous_stops_order_reports_by_start_time_not_by_directory_name(tmp_path):
    """``baseline/`` sorts after the dated run directories by name; its older digests must not shadow newer ones."""
    _report(tmp_path / "20260102-000000-smoke-1", "smoke", [{"nodeid": "a", "runs_used": 128, "stop_digest": "new"}], 2.0)
    _report(tmp_path / "baseline", "smoke", [{"nodeid": "a", "runs_used": 64, "stop_digest": "stale"}], 1.0)
    assert previous_stops(tmp_path, "smoke", {"a"}) == {"a": (128, "new")}
    # negative control: with the baseline started later, it is the newest and its digest is taken
    (tmp_path / "baseline" / "report.json").write_text(json.dumps(
        {"tier": "smoke", "started": 3.0, "entries": [{"nodeid": "a", "runs_used": 64, "stop_digest": "stale"}]}))
    assert previous_stops(tmp_path, "smoke", {"a"}) == {"a": (64, "stale")}


def test_loading_a_run_reads_its_own_index_row_only(tmp_path):
    # a rerun loads every artifact it reads: one row per load, not every row of the key each time
    store = Store(tmp_path / "s")
    for s in range(40):
        store.put("k", RunResult(s, {"logits": np.full(3, s, np.float32)}), "cpu")
    statements: list[str] = []
    store._connect().set_trace_callback(statements.append)
    rec, arrays = store.load("k", 7)
    assert rec.seed == 7 and arrays["logits"].tolist() == [7, 7, 7]
    (query,) = [q for q in statements if "FROM runs" in q]
    assert "seed = 7" in query
