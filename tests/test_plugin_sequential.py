"""Sequential looks end to end: fewer runs, the same decisions, runs used in report.json, --plan, --fixed-n."""
from __future__ import annotations

import json
import re

import pytest

from test_plugin import run, trained, write_law


def _report(path) -> dict:
    (p,) = sorted(path.glob("*/report.json"))[-1:]
    return json.loads(p.read_text())


def _session(pytester, name: str, *args: str):
    return run(pytester, "--store", str(pytester.path / "store"), "--report-dir", str(pytester.path / name),
               "--compare-to", "none", "--workers", "1", *args)


def test_a_clear_point_stops_at_the_first_look_and_matches_fixed_n(pytester):
    write_law(pytester, n=256, threshold=0.0)
    seq = _session(pytester, "seq")
    seq.assert_outcomes(passed=2)
    assert trained(seq) == 2 * 64  # 2 points x the first look of 64, not 2 x 256
    entries = _report(pytester.path / "seq")["entries"]
    assert [(e["runs_used"], e["runs_max"], e["looks"]) for e in entries] == [(64, 256, 3)] * 2
    assert all(e["results"][0]["n"] == 64 for e in entries)
    assert all(e["confidence"] == pytest.approx(1 - 0.05 / 3) for e in entries)  # Bonferroni over 3 looks
    again = _session(pytester, "seq")  # a rerun decides from the stored looks alone
    again.assert_outcomes(passed=2)
    assert trained(again) == 0
    fixed = _session(pytester, "fixed", "--fixed-n")
    fixed.assert_outcomes(passed=2)
    assert trained(fixed) == 2 * 192
    f_entries = _report(pytester.path / "fixed")["entries"]
    assert [e["decision"] for e in f_entries] == [e["decision"] for e in entries]
    assert [(e["runs_used"], e["runs_max"], e["looks"], e["confidence"]) for e in f_entries] == [(256, 256, 1, 0.95)] * 2


def test_an_undecidable_point_trains_to_the_maximum_and_stays_inconclusive(pytester):
    # the threshold is the point's own sample mean: its interval always straddles it
    write_law(pytester, n=128, threshold="float(np.mean(acc))")
    res = _session(pytester, "seq", "-rs")
    res.assert_outcomes(skipped=2)
    entries = _report(pytester.path / "seq")["entries"]
    assert [(e["decision"], e["runs_used"], e["runs_max"]) for e in entries] == [("inconclusive", 128, 128)] * 2
    assert trained(res) == 2 * 128
    assert "N=128" in res.stdout.str()


def test_plan_shows_the_maximum_and_the_expected_runs(pytester):
    write_law(pytester, n=256, threshold=0.0)
    first = _session(pytester, "r", "--plan")
    line = next(l for l in first.stdout.lines if "sequential looks" in l)
    assert "at most 512 runs to train, expected 512" in line and "no previous report" in line
    _session(pytester, "r").assert_outcomes(passed=2)
    write_law(pytester, n=512, threshold=0.0)  # the tier grows: the previous stops predict the next
    second = _session(pytester, "r", "--plan")
    line = next(l for l in second.stdout.lines if "sequential looks" in l)
    m = re.search(r"at most (\d+) runs to train, expected (\d+)", line)
    assert m and (int(m.group(1)), int(m.group(2))) == (2 * 512 - 128, 0)
    assert trained(second) == 0
