"""Statistics of the schedule laws (seeds 002, 003): divergence rates, edge of stability,
non-inferiority of accuracies, and ratios of stage-wise gains (transferability).

Seeds are the independent replicates everywhere: one value per seed goes into
each interval, and paired comparisons pair runs of the same seed (common random
numbers: same init and data order under both recipes).
"""
from __future__ import annotations

import math
import warnings
from typing import Sequence

import numpy as np

from harness.stats import CLAIM, N_BOOT, LawResult, current_confidence, decide
from harness.stats.core import t_quantile


def late_window(steps: np.ndarray, total: int, fraction: float) -> np.ndarray:
    """Mask of recorded steps in the last ``fraction`` of training."""
    return np.asarray(steps) >= (1.0 - fraction) * total


def late_median(values: np.ndarray, steps: np.ndarray, total: int, fraction: float) -> np.ndarray:
    """[N, S] values recorded at ``steps`` → [N]: each seed's median over the last ``fraction`` of training."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # a diverged seed's window is all NaN
        return np.nanmedian(np.asarray(values, dtype=float)[:, late_window(steps, total, fraction)], axis=1)


def normalized_sharpness(sharpness: np.ndarray, eta: np.ndarray) -> np.ndarray:
    """η·λ_max/2 per recorded step and seed ([N, S] from [N, S] and [N]): 1 is the GD stability edge."""
    return np.asarray(sharpness, dtype=float) * np.asarray(eta, dtype=float)[:, None] / 2.0


def transferability(tacc: np.ndarray, acc: np.ndarray) -> np.ndarray:
    """Seed 003 §6: (tacc_i − tacc_{i−1}) / (acc_i − acc_{i−1}) for stages i = 2..S, as a ratio of seed means.

    ``tacc``, ``acc``: [N, S] per-seed accuracies at the end of each stage. The
    ratio of means (not the mean of per-seed ratios) keeps a seed whose source
    gain is near zero from dominating.
    """
    dt = np.diff(np.asarray(tacc, dtype=float), axis=1).mean(0)
    da = np.diff(np.asarray(acc, dtype=float), axis=1).mean(0)
    with np.errstate(divide="ignore", invalid="ignore"):
        return dt / da


def transferability_drop(tacc: np.ndarray, acc: np.ndarray, n_boot: int = N_BOOT,
                         confidence: float | None = None, rng: int = 0) -> tuple[float, tuple[float, float], np.ndarray]:
    """T_3 − T_2 (last stage minus the one before) with a basic bootstrap interval over seeds.

    Returns (value, CI, per-stage transferabilities). A resample whose source
    gain of a stage is ≤ 0 has no defined transferability; if more than 10% of
    resamples are like that the interval is (−inf, inf): inconclusive.
    """
    tacc, acc = np.asarray(tacc, dtype=float), np.asarray(acc, dtype=float)
    t = transferability(tacc, acc)
    theta = float(t[-1] - t[-2])
    n = len(acc)
    idx = np.random.default_rng(rng).integers(0, n, size=(n_boot, n))
    # all resamples at once: [B, S-1] mean stage gains of target and source
    dt = np.diff(tacc, axis=1)[idx].mean(1)
    da = np.diff(acc, axis=1)[idx].mean(1)
    with np.errstate(divide="ignore", invalid="ignore"):
        tb = dt / da
        reps = np.where((da[:, -2:] > 0).all(1), tb[:, -1] - tb[:, -2], np.nan)
    return theta, studentized_interval(theta, reps, n, confidence, expected=n_boot), t


def studentized_interval(theta: float, reps: np.ndarray, n: int, confidence: float | None = None,
                         expected: int | None = None) -> tuple[float, float]:
    """θ̂ ± t_{n−1} · SE, with SE the bootstrap standard deviation inflated by √(n/(n−1)).

    At 8 seeds the basic bootstrap interval of a ratio difference covers only
    ~90% (``python -m harness calibrate --only transfer_drop_bootstrap``): the
    plug-in bootstrap variance is biased low by (n−1)/n and its quantiles ignore
    that the spread itself is estimated. The Student quantile and the inflation
    correct both, as for a mean.
    """
    confidence = current_confidence() if confidence is None else confidence
    reps = np.asarray(reps, dtype=float)
    total = reps.size if expected is None else expected
    reps = reps[np.isfinite(reps)]
    if not math.isfinite(theta) or n < 3 or reps.size < 0.9 * total:
        return (-math.inf, math.inf)
    se = float(reps.std(ddof=1)) * math.sqrt(n / (n - 1))
    half = t_quantile(confidence, n - 1) * se
    return (theta - half, theta + half)


def drop_result(statistic: str, tacc: np.ndarray, acc: np.ndarray, kind: str = CLAIM,
                **extra) -> LawResult:
    """The transferability assertion: T_last − T_previous < 0."""
    value, ci, t = transferability_drop(tacc, acc)
    testable = denominator_testable_at(acc) if not all(map(math.isfinite, ci)) else 0
    return LawResult(statistic, value, ci, 0.0, "<", decide(ci, 0.0, "<"), n=len(acc),
                     extra={"transferability": [float(v) for v in t], **extra}, kind=kind, testable_at=testable)


#: a stage's mean source gain this many standard errors above 0 leaves ~1% of bootstrap resamples without a
#: ratio, well inside the 10% ``transferability_drop`` tolerates
DENOMINATOR_Z = 2.33


def denominator_testable_at(acc: np.ndarray) -> int:
    """The seeds at which the last two stages' mean source gains (the ratios' denominators) would stand
    ``DENOMINATOR_Z`` standard errors clear of zero at their observed mean and spread; 0 when they already
    do, or when a mean gain is ≤ 0 (no N makes that ratio defined: the row stays inconclusive)."""
    gains = np.diff(np.asarray(acc, dtype=float), axis=1)[:, -2:]
    n = gains.shape[0]
    m, sd = gains.mean(0), gains.std(0, ddof=1) if n > 1 else np.full(gains.shape[1], math.inf)
    if n < 2 or (m <= 0).any() or not np.isfinite(sd).all():
        return 0
    need = int(math.ceil(float(np.max((DENOMINATOR_Z * sd / m) ** 2))))
    return need if need > n else 0


def curve_band(curves: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mean and 10–90% quantile band over seeds of [N, T] curves (NaNs ignored), for plots."""
    c = np.asarray(curves, dtype=float)
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN columns after every seed diverged
        return np.nanmean(c, 0), np.nanquantile(c, 0.1, 0), np.nanquantile(c, 0.9, 0)
