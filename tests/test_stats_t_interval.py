"""``harness.stats.t_interval`` (behind ``mean_ci`` and the sequential rule): Student-t joined with
Hall's skewness correction."""
from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as sps

from harness.stats import confidence_level, mean_ci, t_interval

N = 16


def _student(x: np.ndarray, confidence: float = 0.95) -> tuple[float, float]:
    h = float(sps.t.ppf(0.5 + confidence / 2, x.size - 1) * x.std(ddof=1) / math.sqrt(x.size))
    return x.mean() - h, x.mean() + h


def _left_lognormal(rng: np.random.Generator, sigma: float = 0.75) -> np.ndarray:
    """Mean 0, a long left tail (skewness −3.3 at sigma 0.75): a few seeds far below the rest."""
    v = rng.lognormal(0.0, sigma, N)
    return -(v - math.exp(sigma**2 / 2))


def test_it_contains_the_student_t_interval_and_equals_it_without_skew():
    rng = np.random.default_rng(0)
    for _ in range(50):
        x = rng.lognormal(0, 1, N)
        lo, hi = t_interval(x, 0.95)
        slo, shi = _student(x)
        assert lo <= slo + 1e-12 and hi >= shi - 1e-12
        assert (lo, hi) != pytest.approx((slo, shi))  # skewed data do move it
    sym = np.array([1.0, 2.0, 3.0, 4.0])
    assert t_interval(sym, 0.95) == pytest.approx(_student(sym))


def test_degenerate_and_level_in_force():
    assert t_interval(np.full(5, 2.0), 0.95) == (2.0, 2.0)
    x = np.random.default_rng(1).standard_normal(N)
    with confidence_level(0.99):
        wide = mean_ci(x)[1]
    narrow = mean_ci(x)[1]
    assert wide[0] < narrow[0] and wide[1] > narrow[1]


def test_it_covers_left_skewed_seeds_where_student_t_alone_does_not():
    """4000 trials of 16 strongly left-skewed seeds (fixed seed; Monte-Carlo sd of a rate ±0.35%).

    Measured at this seed: Student-t alone covers 89.4% and passes "mean > 0" falsely 10.2% of the
    time; the union covers 93.5% and passes falsely 6.1% (skew this strong at 16 seeds is beyond what
    the correction repairs fully: see docs/statistics.md). The control on Student-t makes the
    assertion able to fail.
    """
    rng = np.random.default_rng(2026)
    trials = 4000
    cov_t = cov_u = pass_t = pass_u = 0
    for _ in range(trials):
        x = _left_lognormal(rng)
        (lo, hi), (slo, shi) = t_interval(x, 0.95), _student(x)
        cov_u += lo <= 0 <= hi
        cov_t += slo <= 0 <= shi
        pass_u += lo > 0
        pass_t += slo > 0
    assert cov_u / trials >= 0.93 and pass_u < pass_t
    assert cov_t / trials < 0.92 and pass_t / trials > 0.07  # the negative control


def test_symmetric_heavy_tails_keep_their_coverage():
    # t3 noise: the skewness estimate is pure noise there, and the union must not lose coverage to it
    rng = np.random.default_rng(7)
    covered = sum(bool(lo <= 0 <= hi) for lo, hi in (t_interval(rng.standard_t(3, N), 0.95) for _ in range(2000)))
    assert covered / 2000 >= 0.94


def _rare_collapse(rng: np.random.Generator, n: int) -> np.ndarray:
    """Mean 0: 10% of seeds collapse 5 sd below the rest."""
    return 0.5 + rng.standard_normal(n) - 5.0 * (rng.random(n) < 0.1)


@pytest.mark.parametrize("n, covers, passes", [(16, (0.88, 0.93), (0.06, 0.11)), (64, (0.94, 1.0), (0.0, 0.05))])
def test_limit_a_rare_collapsing_minority_needs_more_seeds(n, covers, passes):
    """A documented limit, not a bar: 16 seeds miss a 10% minority entirely in 0.9**16 = 18.5% of
    samples, and no interval of the sample alone can see what is not in it. Measured (4000 trials,
    this seed): 16 seeds cover 90.9% and pass "mean > 0" falsely 8.7%; 64 seeds 96.0% and 2.9%."""
    rng = np.random.default_rng(11)
    cis = [t_interval(_rare_collapse(rng, n), 0.95) for _ in range(4000)]
    assert covers[0] <= np.mean([lo <= 0 <= hi for lo, hi in cis]) <= covers[1]
    assert passes[0] <= np.mean([lo > 0 for lo, _ in cis]) <= passes[1]
