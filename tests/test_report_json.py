"""``report.json`` is standard JSON: non-finite floats written as strings and read back; integers no float
can hold refused with one line."""
from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

from harness.report.history import ReportError, find_previous
from harness.report.history import load_report
from harness.store.jsonfile import dumps, loads

ROOT = Path(__file__).resolve().parents[1]


def _strict(text: str):
    def refuse(token: str):
        raise ValueError(f"non-standard JSON token {token}")
    return json.loads(text, parse_constant=refuse)


def _report(value, started: float = 1.0) -> dict:
    return {"version": 1, "run_id": "r", "tier": "smoke", "started": started, "entries": [
        {"nodeid": "t::a", "law": "l", "decision": "inconclusive",
         "results": [{"statistic": "s", "value": value, "ci": [-math.inf, math.inf], "threshold": 0.5}]}]}


def test_non_finite_floats_are_standard_json_and_read_back(tmp_path):
    text = dumps(_report(math.nan))
    _strict(text)  # a browser's JSON.parse accepts it
    (tmp_path / "report.json").write_text(text)
    r = load_report(tmp_path)["entries"][0]["results"][0]
    assert math.isnan(r["value"]) and r["ci"] == [-math.inf, math.inf]


def test_an_older_report_with_nan_tokens_still_reads():
    old = json.dumps(_report(math.nan))
    assert "NaN" in old and math.isnan(loads(old)["entries"][0]["results"][0]["value"])


def test_a_session_writes_standard_json(pytester):
    from test_bad_inputs import FAKE_LAW

    unbounded = FAKE_LAW.replace("(1.0, 1.0), 0.5", '(float("-inf"), float("inf")), 0.5')
    assert unbounded != FAKE_LAW
    pytester.makepyfile(test_fake_law=unbounded)
    pytester.runpytest_subprocess("-p", "no:cacheprovider", "--workers=1", "--store", "st", "--report-dir", "rep")
    text = next((pytester.path / "rep").glob("*/report.json")).read_text()
    assert '"Infinity"' in text
    _strict(text)


def test_the_committed_baseline_is_standard_json():
    _strict((ROOT / "results" / "baseline" / "report.json").read_text())


HUGE = '{"version": 1, "tier": "smoke", "started": 5.0, "entries": [{"nodeid": "t::a", "law": "l", ' \
       '"decision": "pass", "results": [{"statistic": "s", "value": 1%s, "ci": [0, 1]}]}]}' % ("0" * 400)


def test_an_integer_beyond_float_is_one_line_not_a_crash(tmp_path):
    (tmp_path / "huge").mkdir()
    (tmp_path / "huge" / "report.json").write_text(HUGE)
    with pytest.raises(ReportError, match="beyond the range of a float"):
        load_report(tmp_path / "huge")
    (tmp_path / "ok").mkdir()
    (tmp_path / "ok" / "report.json").write_text(dumps(_report(0.7)))
    assert find_previous(tmp_path, "smoke", 10.0) == tmp_path / "ok" / "report.json"  # passed over
    r = subprocess.run([sys.executable, "-m", "harness", "compare", str(tmp_path / "ok"), str(tmp_path / "huge")],
                       capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1 and "beyond" in r.stderr, r.stderr
