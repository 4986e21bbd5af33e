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

from harness.stats import CONFIDENCE, N_BOOT, LawResult, decide, mean_ci
from harness.stats.scale_invariance import proportion_ci


def rate_result(law: str, statistic: str, flags: np.ndarray, threshold: float, direction: str,
                **extra) -> LawResult:
    """A proportion (e.g. of diverged runs) with its Clopper–Pearson interval against a threshold."""
    flags = np.asarray(flags, dtype=bool)
    k, n = int(flags.sum()), int(flags.size)
    ci = proportion_ci(k, n)
    return LawResult(law, statistic, k / n if n else math.nan, ci, threshold, direction,
                     decide(ci, threshold, direction), n=n, seeds=(0, n), extra={"count": k, **extra})


def late_window(steps: np.ndarray, total: int, fraction: float) -> np.ndarray:
    """Mask of recorded steps in the last ``fraction`` of training."""
    return np.asarray(steps) >= (1.0 - fraction) * total


def normalized_sharpness(sharpness: np.ndarray, eta: np.ndarray) -> np.ndarray:
    """η·λ_max/2 per recorded step and seed ([N, S] from [N, S] and [N]): 1 is the GD stability edge."""
    return np.asarray(sharpness, dtype=float) * np.asarray(eta, dtype=float)[:, None] / 2.0


def band_result(law: str, statistic: str, per_seed: np.ndarray, band: tuple[float, float], **extra) -> LawResult:
    """Mean over seeds of a per-seed value, Student-t interval, inside ``band``."""
    x = np.asarray(per_seed, dtype=float)
    m, ci = mean_ci(x)
    n = int(np.isfinite(x).sum())
    return LawResult(law, statistic, m, ci, band, "in", decide(ci, band, "in"), n=n, seeds=(0, len(x)),
                     extra=dict(extra))


def noninferiority_result(law: str, statistic: str, treated: np.ndarray, baseline: np.ndarray, margin: float,
                          **extra) -> LawResult:
    """Paired non-inferiority: mean(treated − baseline) over seeds must exceed −margin.

    The decision uses the two-sided 95% interval, i.e. a one-sided test at level
    2.5%: the treated recipe is declared non-inferior only if even the lower
    bound of the mean paired difference lies above −margin.
    """
    d = np.asarray(treated, dtype=float) - np.asarray(baseline, dtype=float)
    m, ci = mean_ci(d)
    return LawResult(law, statistic, m, ci, -margin, ">", decide(ci, -margin, ">"), n=int(np.isfinite(d).sum()),
                     seeds=(0, len(d)), extra={"margin": margin, **extra})


def paired_difference_result(law: str, statistic: str, a: np.ndarray, b: np.ndarray, threshold: float,
                             direction: str, **extra) -> LawResult:
    """mean(a − b) over seeds with a Student-t interval against ``threshold``."""
    d = np.asarray(a, dtype=float) - np.asarray(b, dtype=float)
    m, ci = mean_ci(d)
    return LawResult(law, statistic, m, ci, threshold, direction, decide(ci, threshold, direction),
                     n=int(np.isfinite(d).sum()), seeds=(0, len(d)), extra=dict(extra))


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
                         confidence: float = CONFIDENCE, rng: int = 0) -> tuple[float, tuple[float, float], np.ndarray]:
    """T_3 − T_2 (last stage minus the one before) with a basic bootstrap interval over seeds.

    Returns (value, CI, per-stage transferabilities). A resample whose source
    gain of a stage is ≤ 0 has no defined transferability; if more than 10% of
    resamples are like that the interval is (−inf, inf): inconclusive.
    """
    tacc, acc = np.asarray(tacc, dtype=float), np.asarray(acc, dtype=float)
    t = transferability(tacc, acc)
    theta = float(t[-1] - t[-2])
    r = np.random.default_rng(rng)
    n = len(acc)
    idx = r.integers(0, n, size=(n_boot, n))
    reps = []
    for i in idx:
        da = np.diff(acc[i], axis=1).mean(0)
        if (da[-2:] <= 0).any():
            continue
        ti = transferability(tacc[i], acc[i])
        reps.append(ti[-1] - ti[-2])
    reps = np.asarray(reps)
    if not math.isfinite(theta) or reps.size < 0.9 * n_boot:
        return theta, (-math.inf, math.inf), t
    alpha = (1 - confidence) / 2
    qlo, qhi = np.quantile(reps, [alpha, 1 - alpha])
    return theta, (2 * theta - qhi, 2 * theta - qlo), t


def drop_result(law: str, statistic: str, tacc: np.ndarray, acc: np.ndarray, **extra) -> LawResult:
    """The transferability assertion: T_last − T_previous < 0."""
    value, ci, t = transferability_drop(tacc, acc)
    return LawResult(law, statistic, value, ci, 0.0, "<", decide(ci, 0.0, "<"), n=len(acc), seeds=(0, len(acc)),
                     extra={"transferability": [float(v) for v in t], **extra})


def curve_band(curves: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mean and 10–90% quantile band over seeds of [N, T] curves (NaNs ignored), for plots."""
    c = np.asarray(curves, dtype=float)
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN columns after every seed diverged
        return np.nanmean(c, 0), np.nanquantile(c, 0.1, 0), np.nanquantile(c, 0.9, 0)
