"""The sequential rule: its looks and levels, its false-pass rate at the threshold, and the rounds loop."""
from __future__ import annotations

import math

import pytest

from harness.stats.sequential import (
    Cell, PointState, calibration_cells, decided, false_pass_rate, look_level, looks, run_rounds, scaled,
)
from harness.stats import FAIL, INCONCLUSIVE, PASS, LawResult


def test_looks_double_from_n0_and_end_at_the_maximum():
    assert looks(512) == [64, 128, 256, 512]
    assert looks(40_000)[-2:] == [32_768, 40_000]
    assert looks(64) == [64] and looks(16) == [16]
    assert look_level(4) == pytest.approx(1 - 0.05 / 4)
    assert scaled(512, 64, 512) == 64 and scaled(8, 64, 512) == 1 and scaled(100, 512, 512) == 100


@pytest.mark.parametrize("cell", calibration_cells(), ids=lambda c: c.name)
def test_false_pass_rate_at_the_threshold_is_at_most_5_percent(cell):
    rate, used = false_pass_rate(cell)
    assert rate <= 0.05, f"{cell.name}: false pass {rate:.3f}"
    assert used > cell.n_max * 0.9  # at the threshold the rule rarely stops early


def test_negative_control_naive_95_percent_at_every_look_passes_falsely_too_often():
    """Without spending the error over the looks, peeking inflates the false-pass rate past 5%."""
    rate, _ = false_pass_rate(Cell("naive", 0.0, 0.0, 4096, "normal"), level=0.95)
    assert rate > 0.05


def test_a_clear_truth_stops_at_the_first_look():
    rate, used = false_pass_rate(Cell("above", 1.0, 0.0, 512, "normal", trials=200))
    assert rate == 1.0 and used == 64


def _result(decision: str) -> LawResult:
    ci = {PASS: (0.9, 1.0), FAIL: (0.0, 0.1), INCONCLUSIVE: (0.0, 1.0)}[decision]
    return LawResult("s", sum(ci) / 2, ci, 0.5, ">", decision, n=1)


def test_decided_needs_every_claim_pass_or_fail():
    assert decided([_result(PASS), _result(FAIL)])
    assert not decided([_result(PASS), _result(INCONCLUSIVE)])
    assert not decided([])
    # a pass within the machine spread of its threshold does not stop the looks
    assert not decided([LawResult("s", 0.55, (0.51, 0.6), 0.5, ">")])


def test_rounds_stop_each_point_at_its_own_look():
    points = {"early": PointState.new(512), "never": PointState.new(512), "blind": PointState.new(512),
              "fixed": PointState.new(512, fixed=True)}
    trained: list[dict[str, int]] = []
    verdicts = {"early": lambda p: p.n >= 128, "never": lambda p: False, "blind": lambda p: None,
                "fixed": lambda p: False}
    looked: list[tuple[str, int]] = []

    def look(k: str, p: PointState) -> bool | None:
        looked.append((k, p.n))
        return verdicts[k](p)

    rounds = run_rounds(points, lambda: trained.append({k: p.n for k, p in points.items()}), look)
    assert points["early"].n == 128 and points["never"].n == 512 and points["blind"].n == 512
    assert points["fixed"].plan == [512] and points["fixed"].level == 0.95
    assert rounds == 4 and trained[0] == {"early": 64, "never": 64, "blind": 64, "fixed": 512}
    assert trained[1]["blind"] == 512  # no verdict: straight to the maximum, decided once there
    assert all(p.done for p in points.values())
    assert not any(n == 512 for _, n in looked)  # the maximum is decided by the real test, not a dry look


def _open_ended_false_pass(levels, trials: int = 2000) -> float:
    import numpy as np

    from harness.stats.sequential import sequential_decision

    plan = looks(4096)
    rng = np.random.default_rng(7)
    return sum(sequential_decision(rng.standard_normal(4096), 0.0, plan, levels)[0] == PASS
               for _ in range(trials)) / trials


def test_open_ended_spending_keeps_the_false_pass_rate_at_5_percent_and_peeking_does_not():
    from harness.stats.sequential import spending_level

    levels = [spending_level(k) for k in range(1, len(looks(4096)) + 1)]
    assert levels[0] == pytest.approx(0.975) and levels[3] == pytest.approx(1 - 0.05 / 16)
    assert _open_ended_false_pass(levels) <= 0.05
    assert _open_ended_false_pass([0.95] * len(levels)) > 0.05  # the negative control: peeking at 95%


def test_an_open_ended_point_extends_by_doubling_with_its_own_levels():
    p = PointState.new(512, open_ended=True)
    assert p.level == pytest.approx(0.975)
    p.k, p.done = 3, True
    p.extend()
    assert p.plan[-1] == 1024 and p.k == 4 and not p.done and p.level == pytest.approx(1 - 0.05 / 32)
    with pytest.raises(ValueError, match="open-ended"):
        PointState.new(512).extend()


def test_budget_extensions_go_to_the_cheapest_points_and_overshoot_by_one_look_at_most():
    from harness.stats.sequential import choose_extensions

    cands = {"a": (100.0, 40.0), "b": (10.0, 30.0), "c": (50.0, 50.0), "never": (math.inf, 1.0)}
    assert choose_extensions(cands, 85.0) == ["b", "c"]  # by cost to decide; a's 40 s no longer fits
    assert choose_extensions(cands, 20.0) == ["b"]       # nothing fits: the cheapest alone
    assert choose_extensions(cands, 0.0) == [] and choose_extensions({"never": (math.inf, 1.0)}, 99.0) == []


def test_open_ended_rounds_look_at_the_last_look_and_extend_what_the_budget_chooses():
    points = {"p": PointState.new(128, open_ended=True), "q": PointState.new(128)}
    seen: list[tuple[str, int]] = []

    def look(nodeid, p):
        seen.append((nodeid, p.n))
        return nodeid == "p" and p.n >= 512  # p decides at 512 runs; q never

    offered: list[list[str]] = []

    def extend(undecided):
        offered.append(list(undecided))
        return [n for n in undecided if points[n].n < 1024]

    rounds = run_rounds(points, lambda: None, look, extend)
    assert points["p"].plan == [64, 128, 256, 512] and points["p"].done
    assert ("q", 128) not in seen  # a closed point's last look is the real test's, not a dry one
    assert offered == [["p"], ["p"]] and rounds == 4
