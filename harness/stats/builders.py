"""Generic result builders: one value per seed in, one ``LawResult`` out.

Seeds are the independent replicates of every interval; paired builders pair
runs of the same seed (common random numbers). Every interval takes its level
from ``confidence=None`` → ``harness.stats.current_confidence()``, so a
sequential decision can lower it per look.
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np

from harness.stats.core import (
    CHECK,
    CLAIM,
    N_BOOT,
    MIN_MEAN_N,
    LawResult,
    bootstrap_interval,
    current_confidence,
    decide,
    mean_ci,
)


def proportion_ci(k: int, n: int, confidence: float | None = None) -> tuple[float, float]:
    """Clopper–Pearson (exact) interval for a proportion k/n, via scipy's binomial test."""
    from scipy import stats as sps  # lazy: scipy.stats costs ~0.6 s to import
    confidence = current_confidence() if confidence is None else confidence
    if n <= 0:
        return (0.0, 1.0)
    ci = sps.binomtest(int(k), int(n)).proportion_ci(confidence_level=confidence, method="exact")
    return (float(ci.low), float(ci.high))


def rate_result(statistic: str, flags: np.ndarray, threshold: float, direction: str,
                kind: str = CLAIM, **extra: Any) -> LawResult:
    """A proportion (e.g. of diverged runs) with its Clopper–Pearson interval against a threshold."""
    flags = np.asarray(flags, dtype=bool)
    k, n = int(flags.sum()), int(flags.size)
    ci = proportion_ci(k, n)
    return LawResult(statistic, k / n if n else math.nan, ci, threshold, direction,
                     decide(ci, threshold, direction), n=n, extra={"count": k, **extra}, kind=kind)


def mean_result(statistic: str, per_seed: np.ndarray, threshold: float | tuple[float, float],
                direction: str, kind: str = CLAIM, **extra: Any) -> LawResult:
    """Mean over seeds of a per-seed value (``mean_ci``'s interval) against a threshold or (``"in"``) a band.
    Every builder of a mean over seeds below is this one."""
    x = np.asarray(per_seed, dtype=float)
    m, ci = mean_ci(x)
    n = int(np.isfinite(x).sum())
    return LawResult(statistic, m, ci, threshold, direction, n=n,
                     extra=dict(extra), kind=kind, testable_at=MIN_MEAN_N if n < MIN_MEAN_N else 0)


def band_result(statistic: str, per_seed: np.ndarray, band: tuple[float, float], kind: str = CLAIM,
                **extra: Any) -> LawResult:
    """Mean over seeds of a per-seed value inside ``band``."""
    return mean_result(statistic, per_seed, band, "in", kind, **extra)


def noninferiority_result(statistic: str, treated: np.ndarray, baseline: np.ndarray, margin: float,
                          kind: str = CLAIM, **extra: Any) -> LawResult:
    """Paired non-inferiority: mean(treated − baseline) over seeds must exceed −margin.

    The decision uses the two-sided interval at the current level (95%: a
    one-sided test at 2.5%): the treated recipe is non-inferior only if even the
    lower bound of the mean paired difference lies above −margin.
    """
    d = np.asarray(treated, dtype=float) - np.asarray(baseline, dtype=float)
    return mean_result(statistic, d, -margin, ">", kind, **{"margin": margin, **extra})


def paired_difference_result(statistic: str, a: np.ndarray, b: np.ndarray, threshold: float,
                             direction: str, kind: str = CLAIM, **extra: Any) -> LawResult:
    """mean(a − b) over seeds (seeds paired: common random numbers) against ``threshold``."""
    return mean_result(statistic, np.asarray(a, dtype=float) - np.asarray(b, dtype=float), threshold,
                       direction, kind, **extra)


def ratio_of_means_ci(num: np.ndarray, den: np.ndarray, n_boot: int = N_BOOT, confidence: float | None = None,
                      rng: np.random.Generator | int = 0) -> tuple[float, tuple[float, float]]:
    """mean(num)/mean(den) over seeds with a basic bootstrap interval (seeds resampled in pairs).

    A resample whose denominator is ≤ 0 has no ratio; if more than 10% are like
    that the interval is (−inf, inf).
    """
    num, den = np.asarray(num, dtype=float), np.asarray(den, dtype=float)
    ok = np.isfinite(num) & np.isfinite(den)
    num, den = num[ok], den[ok]
    if num.size < 2 or den.mean() <= 0:
        return math.nan, (-math.inf, math.inf)
    theta = float(num.mean() / den.mean())
    idx = np.random.default_rng(rng).integers(0, num.size, size=(n_boot, num.size))
    bn, bd = num[idx].mean(1), den[idx].mean(1)
    with np.errstate(divide="ignore", invalid="ignore"):
        reps = np.where(bd > 0, bn / bd, np.nan)
    return theta, bootstrap_interval(theta, reps, confidence, expected=n_boot)


def ratio_result(statistic: str, num: np.ndarray, den: np.ndarray, threshold: float | tuple[float, float],
                 direction: str, kind: str = CLAIM, **extra: Any) -> LawResult:
    """Ratio of seed means against a threshold or band, with a bootstrap interval over seeds."""
    value, ci = ratio_of_means_ci(num, den)
    n = int(np.isfinite(np.asarray(num, dtype=float)).sum())
    return LawResult(statistic, value, ci, threshold, direction, decide(ci, threshold, direction),
                     n=n, extra=dict(extra), kind=kind)


def exact_result(statistic: str, value: float, threshold: float | tuple[float, float], direction: str,
                 n: int, kind: str = CLAIM, **extra: Any) -> LawResult:
    """A value with no sampling interval (a worst case over ``n`` seeds, an identity's error): its CI is the
    point. A claim unless ``kind=CHECK``, like every builder."""
    value = float(value)
    return LawResult(statistic, value, (value, value), threshold, direction, n=n, extra=dict(extra), kind=kind)
