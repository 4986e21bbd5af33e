"""Coverage controls: each claim interval covers its known truth in >= coverage_bound() of 200 trials.

An interval with only 85% coverage fails each of these with probability >= 0.95
(tests/coverage.py). The generators differ from the calibration's on purpose.
"""
from __future__ import annotations

import numpy as np

from harness.stats import band_result, paired_difference_result, proportion_ci
from harness.stats.scale_invariance import excess_disagreement, spike_rate_ci
from harness.stats.schedules import transferability_drop
from tests.coverage import COVERAGE_TRIALS, coverage_bound


def _covered(truth: float, interval) -> int:
    hits = 0
    for i in range(COVERAGE_TRIALS):
        lo, hi = interval(np.random.default_rng(5000 + i))
        hits += lo <= truth <= hi
    return hits


def test_t_interval_of_a_band_covers():
    k = _covered(1.1, lambda r: band_result("v", 1.1 + 0.05 * r.gamma(2.0, 1.0, 12) - 0.1, (0.8, 1.25)).ci)
    assert k >= coverage_bound(), k


def test_paired_t_interval_covers_under_common_random_numbers():
    def ci(r):
        z = r.standard_normal(10) * 3
        return paired_difference_result("d", z + 0.2 + r.standard_normal(10), z, 0.0, ">").ci
    assert _covered(0.2, ci) >= coverage_bound()


def test_clopper_pearson_covers():
    assert _covered(0.3, lambda r: proportion_ci(int((r.random(20) < 0.3).sum()), 20)) >= coverage_bound()


def test_spike_rate_interval_covers_over_dispersed_counts():
    # runs of two kinds (rates 0.5 and 2.5, equally likely): mean 1.5 spikes per run
    def ci(r):
        return spike_rate_ci(r.poisson(np.where(r.random(24) < 0.5, 0.5, 2.5)))
    assert _covered(1.5, ci) >= coverage_bound()


def test_transferability_drop_interval_covers():
    acc_m, tacc_m = np.array([0.4, 0.6, 0.75]), np.array([0.2, 0.3, 0.36])
    truth = (0.06 / 0.15) - (0.1 / 0.2)

    def ci(r):
        return transferability_drop(tacc_m + 0.02 * r.standard_normal((12, 3)),
                                    acc_m + 0.02 * r.standard_normal((12, 3)), n_boot=500, rng=int(r.integers(1 << 30)))[1]
    assert _covered(truth, ci) >= coverage_bound()


def test_function_space_distance_interval_covers():
    base = np.random.default_rng(3).dirichlet(np.full(3, 0.5), 150)
    other = np.roll(base, 1, axis=1)
    shifted = 0.8 * base + 0.2 * other
    truth = float(np.sqrt(((base - shifted) ** 2).sum(1).mean()))

    def draw(r, p):
        return (r.random((12, 150))[..., None] > np.cumsum(p, -1)).sum(-1).clip(0, 2)

    def ci(r):
        return excess_disagreement(draw(r, base), draw(r, shifted), 3, n_boot=500, rng=int(r.integers(1 << 30))).ci()
    assert _covered(truth, ci) >= coverage_bound()


def test_the_control_rejects_an_interval_that_covers_only_80_percent():
    # At 0.85 these 200 fixed trials happen to cover 179 times: the ~4% chance coverage_bound
    # leaves an 85% interval (measured once, so this demo uses 0.80, which passes with probability 2e-4).
    from harness.stats import confidence_level, t_interval

    # the bare interval at 80%: band_result would build it at the stricter level of 12 seeds
    with confidence_level(0.80):
        k = _covered(1.1, lambda r: t_interval(1.1 + 0.05 * r.standard_normal(12), 0.80))
    assert k < coverage_bound(), k
