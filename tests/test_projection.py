"""Projections for undecided claims (``harness.stats.projection``) and how often they decide."""
from __future__ import annotations

import math

import pytest

from harness.calibrate.projection import run_cell
from harness.stats import LawResult
from harness.stats.fragility import MACHINE_SPREAD
from harness.stats.projection import facing_side, fitted_exponent, point_projection, runs_to_decide


def test_a_mean_whose_side_is_twice_the_distance_needs_about_four_times_the_runs_more():
    r = LawResult("m", 0.1, (-0.1, 0.3), 0.0, ">")  # side 0.2 facing 0, distance 0.1
    assert facing_side(r) == pytest.approx((0.1, 0.2))
    p = runs_to_decide(r, 16, power=0.5)  # power ½: the interval edge lands a machine spread past the threshold
    assert p.runs == pytest.approx(16 * (2 * (1 + MACHINE_SPREAD)) ** 2) and p.exponent == 0.5 and not p.measured
    assert runs_to_decide(r, 16).runs > p.runs  # room for the estimate's own noise


def test_band_rows_face_their_nearest_edge_and_a_value_on_the_threshold_never_decides():
    r = LawResult("m", 0.95, (0.9, 1.0), (0.0, 0.96), "in")
    assert facing_side(r) == pytest.approx((0.01, 0.05))
    on = LawResult("m", 0.0, (-0.1, 0.1), 0.0, ">")
    assert math.isinf(runs_to_decide(on, 16).runs) and not runs_to_decide(on, 16).reachable


def test_the_exponent_is_measured_across_looks():
    assert fitted_exponent([(64, 0.2), (256, 0.1)]) == pytest.approx(0.5)
    assert fitted_exponent([(64, 0.2)]) is None
    assert fitted_exponent([(64, 0.1), (128, 0.2)]) is None  # a widening side says nothing
    r = LawResult("m", 0.1, (-0.1, 0.3), 0.0, ">")
    slow = runs_to_decide(r, 64, history=[(16, 0.2 * 2 ** 0.5), (64, 0.2)], power=0.5)  # side ∝ N^-1/4
    assert slow.measured and slow.exponent == pytest.approx(0.25)
    assert slow.runs == pytest.approx(64 * (2 * (1 + MACHINE_SPREAD)) ** 4)


def test_a_point_projects_its_slowest_undecided_claim():
    fast = LawResult("a", 0.5, (0.4, 0.6), 0.0, ">")   # decided beyond the spread: left out
    slow = LawResult("b", 0.05, (-0.1, 0.2), 0.0, ">")
    mid = LawResult("c", 0.1, (-0.05, 0.25), 0.0, ">")
    p = point_projection([fast, slow, mid], 16, {})
    assert p is not None and p.runs == runs_to_decide(slow, 16).runs
    assert point_projection([fast], 16, {}) is None


def test_projection_power_is_what_makes_it_decide_three_times_in_four():
    aimed = run_cell("normal", 1.5, 300, seed=3)
    coin = run_cell("normal", 1.5, 300, seed=3, power=0.5)  # negative control: aimed at the edge
    assert aimed.rate >= 0.75 and aimed.rate > coin.rate
