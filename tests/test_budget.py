"""--budget: open-ended looks past the tier's N, cheapest points first, and the budget in the report."""
from __future__ import annotations

import json

import pytest

from harness.plugin.options import parse_duration
from test_plugin import run, trained, write_law


def _report(path) -> dict:
    return json.loads(sorted(path.glob("*/report.json"))[-1].read_text())


def _session(pytester, name: str, *args: str):
    return run(pytester, "--store", str(pytester.path / "store"), "--report-dir", str(pytester.path / name),
               "--compare-to", "none", "--workers", "1", "-k", "lr0.1", *args)


def test_durations():
    assert parse_duration("90s") == 90 and parse_duration("30m") == 1800 and parse_duration("1h30m") == 5400
    assert parse_duration("2.5h") == 9000
    for bad in ("", "10", "10x", "m", "-5m", "0s", "5m garbage"):
        with pytest.raises(pytest.UsageError, match="--budget must be"):
            parse_duration(bad)


def test_a_point_undecided_at_the_tier_maximum_is_decided_within_the_budget(pytester):
    write_law(pytester, n=16)
    probe = _report_of(_session(pytester, "probe"), pytester, "probe")
    m, (lo, _) = probe["value"], probe["ci"]
    write_law(pytester, n=16, threshold=round(m - 0.8 * (m - lo), 6))  # inside the 16-run interval
    plain = _session(pytester, "plain")
    plain.assert_outcomes(skipped=1)  # the negative control: without a budget it stays undecided
    assert _report(pytester.path / "plain")["entries"][0]["decision"] == "inconclusive"
    res = _session(pytester, "budget", "--budget", "10m")
    res.assert_outcomes(passed=1)
    data = _report(pytester.path / "budget")
    e = data["entries"][0]
    assert e["decision"] == "pass" and e["runs_used"] > e["runs_max"] == 16 and trained(res) > 0
    assert data["budget"]["seconds"] == 600 and 0 < data["budget"]["spent"] < 600 and data["budget"]["undecided"] == {}
    assert "budget 10.0 min of training" in res.stdout.str()


def _report_of(res, pytester, name):
    res.assert_outcomes(passed=1)
    return _report(pytester.path / name)["entries"][0]["results"][0]


def test_a_spent_budget_starts_no_look_and_reports_what_is_left(pytester):
    # 0.01 s is spent by the tier's own look: nothing looks past it, and the point keeps its projection
    write_law(pytester, n=16, threshold="float(np.mean(acc)) + 0.01")
    res = _session(pytester, "spent", "--budget", "0.01s")
    res.assert_outcomes(skipped=1)
    data = _report(pytester.path / "spent")
    e = data["entries"][0]
    assert e["runs_used"] == 16 and e["decision"] == "inconclusive"
    left = data["budget"]["undecided"][e["nodeid"]]
    assert left["runs"] > 16 and left["runs_to_train"] > 0 and left["seconds"] > 0
    assert "decides at ~" in res.stdout.str()
    plan = _session(pytester, "spent", "--plan")  # --plan shows each point's next look and that projection
    line = next(l for l in plan.stdout.lines if "test_tiny[tiny-lr0.1]: next look" in l)
    assert "at 16 runs/ensemble (0 to train); last inconclusive at 16 runs, decides at ~" in line


def test_bad_budgets_are_one_line(pytester):
    write_law(pytester)
    for args, msg in ((("--budget", "10x"), "--budget must be a duration"),
                      (("--budget", "5m", "--fixed-n"), "--budget and --fixed-n exclude each other")):
        res = _session(pytester, "bad", *args)
        assert res.ret == 4 and msg in res.stderr.str() and "Traceback" not in res.stderr.str()
