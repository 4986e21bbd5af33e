"""Rows undecidable at their N: untestable (not undecided, not a claim), and the mean interval's stricter
level on few seeds."""
from __future__ import annotations

import math

import numpy as np
import pytest

from harness.report.summary import law_summary, law_summary_lines
from harness.stats import (
    FAIL, INCONCLUSIVE, MIN_MEAN_N, PASS, UNTESTABLE, LawResult, combine, mean_level, mean_result, t_interval,
)
from harness.stats.fragility import is_fragile, possible_point_decisions
from harness.stats.scale_invariance import Disagreement


def test_a_mean_over_too_few_seeds_is_untestable_with_the_n_that_would_decide_it():
    r = mean_result("m", np.array([1.0, 1.1]), 0.0, ">")
    assert r.decision == UNTESTABLE and r.testable_at == MIN_MEAN_N
    assert "untestable at N=2" in r.summary() and f"testable from N={MIN_MEAN_N}" in r.summary()
    assert r.to_dict()["testable_at"] == MIN_MEAN_N
    ok = mean_result("m", np.array([1.0, 1.1, 1.05]), 0.0, ">")
    assert ok.decision == PASS and ok.testable_at == 0


def test_untestable_rows_take_no_part_in_the_point():
    assert combine([PASS, UNTESTABLE]) == PASS
    assert combine([FAIL, UNTESTABLE]) == FAIL
    assert combine([UNTESTABLE]) == INCONCLUSIVE
    # negative control: an untestable row counted as undecided would hold the point back
    assert combine([PASS, INCONCLUSIVE]) == INCONCLUSIVE
    row = LawResult("s", 0.2, (0.0, 0.3), 0.1, "<", n=16, testable_at=51)
    assert row.decision == UNTESTABLE and not is_fragile(row)
    assert possible_point_decisions([row]) == frozenset()


def test_the_summary_counts_untestable_rows_apart_from_claims():
    entries = [{"law": "a", "decision": "pass", "results": [
        {"kind": "claim", "decision": "pass"}, {"kind": "claim", "decision": "untestable", "testable_at": 51}]}]
    s = law_summary(entries)["a"]
    assert (s["holding"], s["undecided"], s["untestable"]) == (1, 0, 1)
    assert "1 row(s) untestable at this N" in law_summary_lines({"a": s})[0]


@pytest.mark.parametrize("n, need", [(16, 51), (50, 51), (51, 0), (64, 0)])
def test_same_distribution_is_untestable_below_51_seeds(n, need):
    d = Disagreement(0.0, 0.0, 0.0, 0.0, np.zeros(3), n)
    assert d.testable_at(0.1, 0.95) == need
    # the floor is why: at the N it names, the unseen-minority bound lies below the threshold
    assert (math.sqrt(d.unseen_minority_bound(0.95)) >= 0.1) == bool(need)


def _false_pass(level_of, n: int, trials: int = 3000) -> float:
    """lognormal σ = 1 with its long tail below, mean at the threshold 0: how often "mean > 0" passes."""
    rng = np.random.default_rng(3)
    mu, sd = math.exp(0.5), math.sqrt((math.e - 1) * math.e)
    hits = 0
    for _ in range(trials):
        x = -(rng.lognormal(0.0, 1.0, n) - mu) / sd
        hits += t_interval(x, level_of(n))[0] > 0
    return hits / trials


def test_the_stricter_level_on_few_seeds_holds_where_the_nominal_one_does_not():
    assert mean_level(0.95, 4) == pytest.approx(0.9975) and mean_level(0.95, 8) == pytest.approx(0.995) and mean_level(0.95, 128) == 0.95
    assert _false_pass(lambda n: mean_level(0.95, n), 8) <= 0.05
    # negative control: at the nominal level 8 seeds pass falsely ~10% of the time
    assert _false_pass(lambda n: 0.95, 8) > 0.07


def test_a_transfer_ratio_with_a_near_zero_denominator_is_untestable_with_the_n_that_would_decide_it():
    from harness.stats.schedules import drop_result

    rng = np.random.default_rng(0)
    z = rng.standard_normal(8)
    gain = 0.01 + 0.05 * (z - z.mean()) / z.std(ddof=1)  # the last stage's source gain: mean 0.01, sd 0.05
    acc = np.cumsum(np.stack([np.full(8, 0.5), np.full(8, 0.2), gain], 1), 1)
    tacc = acc * 0.5 + 0.01 * rng.standard_normal((8, 3))
    r = drop_result("T3_minus_T2", tacc, acc)
    assert r.decision == UNTESTABLE and r.testable_at == math.ceil((2.33 * 0.05 / 0.01) ** 2)
    # negative control: a clear source gain at the last stage is decided as usual
    acc[:, 2] = acc[:, 1] + 0.1 + 0.01 * rng.standard_normal(8)
    assert drop_result("T3_minus_T2", acc * 0.5, acc).testable_at == 0
