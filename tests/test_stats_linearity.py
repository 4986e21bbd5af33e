"""The linearity estimator on synthetic ensembles whose ground truth is known.

Each synthetic 'run' at LR η is f̄(η) + noise, with f̄(η)_p = c_p + d_p·η + e_p·η² + χ·a·u_p(η)
over P output entries, u(η) independent across LRs (the "chaotic" alternative the
seed raises). With e = χ = 0 the law holds exactly (R²∞ = 1, slope = b/a); with
χ ~ 1 the response is genuinely nonlinear.
"""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from harness.stats import FAIL, PASS, decide
from harness.stats.linearity import linearity_estimate, paired_difference_ci, bootstrap_weights
from tests.coverage import COVERAGE_TRIALS, coverage_bound

from laws.test_lr_linearity import Point, results_of


def linearity_results(f0, fa, fb, point: Point, tier: str):
    """The law's two small-ratio rows on synthetic ensembles, and the estimate they come from."""
    est = linearity_estimate(f0, fa, fb, point.a, point.b)
    return results_of(est, point, tier), est


def ensembles(rng, n, p, eta, a, b, curvature, noise, shared=0.5, chaos=0.0):
    c, d, e = rng.normal(size=(3, p))
    e = curvature * e
    jumps = {lr: chaos * a * rng.normal(size=p) for lr in (eta, eta + a, eta + b)}
    mean = lambda lr: c + d * lr + e * lr**2 + jumps[lr]
    # part of the noise is shared across LRs within a seed (common random numbers)
    common = rng.normal(size=(n, p))
    def runs(lr):
        return mean(lr) + noise * (np.sqrt(shared) * common + np.sqrt(1 - shared) * rng.normal(size=(n, p)))
    f0, fa, fb = runs(eta), runs(eta + a), runs(eta + b)
    x, y = mean(eta + a) - mean(eta), mean(eta + b) - mean(eta)
    x, y = x - x.mean(), y - y.mean()
    true = {"r2": (x @ y) ** 2 / ((x @ x) * (y @ y)), "slope": (x @ y) / (x @ x)}
    return f0, fa, fb, true


def test_noise_deflates_raw_r2_but_not_the_estimate():
    rng = np.random.default_rng(0)
    f0, fa, fb, true = ensembles(rng, 400, 2000, 0.4, 0.1, 0.2, 0.0, noise=1.0)
    est = linearity_estimate(f0, fa, fb, 0.1, 0.2, n_boot=500)
    assert true["r2"] == pytest.approx(1.0)
    assert est.r2_raw < 0.95                      # finite-N noise, not a violation
    lo, hi = est.ci("r2")
    assert lo <= 1.0 <= hi + 1e-9 or lo > 0.99
    assert est.ci("slope")[0] < 2.0 < est.ci("slope")[1]


@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 10_000), noise=st.floats(0.02, 0.6), shared=st.floats(0.0, 0.9))
def test_linear_response_never_fails_and_passes_when_resolved(seed, noise, shared):
    """A true law is never failed; with enough signal per run it passes (else: inconclusive)."""
    rng = np.random.default_rng(seed)
    f0, fa, fb, _ = ensembles(rng, 256, 1000, 0.4, 0.1, 0.2, 0.0, noise, shared)
    results, _ = linearity_results(f0, fa, fb, Point(0.4, 0.1, 0.2), "smoke")
    assert FAIL not in [r.decision for r in results]
    if noise <= 0.15:  # per-run noise ≤ 1.5x the η→η+a signal: resolved at N=256
        assert [r.decision for r in results] == [PASS, PASS]


@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 10_000), noise=st.floats(0.02, 0.5), chaos=st.floats(0.5, 3.0))
def test_nonlinear_response_fails(seed, noise, chaos):
    """A response with an LR-specific component the first-order term cannot explain: R²∞ ≪ 0.99."""
    rng = np.random.default_rng(seed)
    f0, fa, fb, true = ensembles(rng, 256, 1000, 0.4, 0.1, 0.2, 0.0, noise, chaos=chaos)
    assert true["r2"] < 0.95
    results, _ = linearity_results(f0, fa, fb, Point(0.4, 0.1, 0.2), "smoke")
    assert results[0].decision == FAIL


def test_wrong_slope_fails_even_when_perfectly_correlated():
    """Y = 1.5·X exactly correlated but off the law's b/a = 2 by 25%: the slope assertion fails."""
    rng = np.random.default_rng(3)
    n, p = 256, 1000
    d = rng.normal(size=p)
    f0 = rng.normal(scale=0.1, size=(n, p))
    fa = 0.1 * d + rng.normal(scale=0.1, size=(n, p))
    fb = 0.15 * d + rng.normal(scale=0.1, size=(n, p))
    results, est = linearity_results(f0, fa, fb, Point(0.4, 0.1, 0.2), "smoke")
    assert results[0].decision == PASS and results[1].decision == FAIL
    assert est.slope == pytest.approx(1.5, rel=0.05)


def test_ci_covers_the_true_values_at_about_the_stated_rate():
    """95% intervals over COVERAGE_TRIALS independent synthetic experiments (fixed truth, fresh noise).

    The acceptance bound is chosen with scipy.stats.binom so that an interval
    with only 85% coverage passes with probability < 0.05 (see coverage_bound).
    """
    fixed = np.random.default_rng(7)
    c, d, e = fixed.normal(size=(3, 120))
    jumps = {lr: 0.05 * fixed.normal(size=120) for lr in (0.4, 0.5, 0.6)}
    mean = lambda lr: c + d * lr + 0.9 * e * lr**2 + jumps[lr]
    x, y = mean(0.5) - mean(0.4), mean(0.6) - mean(0.4)
    x, y = x - x.mean(), y - y.mean()
    true_r2, true_slope = (x @ y) ** 2 / ((x @ x) * (y @ y)), (x @ y) / (x @ x)
    covered = {"r2": 0, "slope": 0}
    for i in range(COVERAGE_TRIALS):
        rng = np.random.default_rng(1000 + i)
        runs = lambda lr: mean(lr) + 0.5 * rng.normal(size=(96, 120))
        est = linearity_estimate(runs(0.4), runs(0.5), runs(0.6), 0.1, 0.2, n_boot=400, rng=i)
        for name, truth in (("r2", true_r2), ("slope", true_slope)):
            lo, hi = est.ci(name)
            assert np.isfinite(lo) and np.isfinite(hi)
            covered[name] += lo <= truth <= hi
    assert 0.6 < true_r2 < 0.95
    for name, k in covered.items():
        assert k >= coverage_bound(), f"{name} coverage {k}/{COVERAGE_TRIALS}"


def test_paired_difference_detects_a_real_drop_and_not_a_fake_one():
    rng = np.random.default_rng(11)
    n, p = 256, 800
    c, d, e = rng.normal(size=(3, p))
    mean = lambda lr: c + d * lr + 0.5 * e * lr**2
    runs = {lr: mean(lr) + 0.3 * rng.normal(size=(n, p)) for lr in (0.4, 0.5, 0.6, 0.8, 1.2)}
    w = bootstrap_weights(n, 1000, 0)
    small = linearity_estimate(runs[0.4], runs[0.5], runs[0.6], 0.1, 0.2, boot_weights=w)
    large = linearity_estimate(runs[0.4], runs[0.8], runs[1.2], 0.4, 0.8, boot_weights=w)
    diff, ci = paired_difference_ci(small, large, "r2")
    assert decide(ci, 0.0, ">") == PASS
    # the same point on fresh runs (equal truth, different noise): no difference can be claimed
    fresh = {lr: mean(lr) + 0.3 * rng.normal(size=(n, p)) for lr in (0.4, 0.5, 0.6)}
    same = linearity_estimate(fresh[0.4], fresh[0.5], fresh[0.6], 0.1, 0.2, boot_weights=w)
    diff0, ci0 = paired_difference_ci(small, same, "r2")
    assert diff0 != 0.0 and decide(ci0, 0.0, ">") != PASS and decide(ci0, 0.0, "<") != PASS
    # reversed comparison: must fail
    _, ci_rev = paired_difference_ci(large, small, "r2")
    assert decide(ci_rev, 0.0, ">") == FAIL
