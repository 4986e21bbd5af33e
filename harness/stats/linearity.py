"""The linearity law's estimator: N→∞ R² and slope from cross-fitted second moments."""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import stats as sps

from harness.stats import MAX_GROUPS, N_BOOT, bootstrap_interval, current_confidence


# ---------------------------------------------------------------- linearity --

@dataclass(frozen=True)
class _Moments:
    """Group-level sufficient statistics for cross-fitted second moments.

    For per-run difference vectors X_i, Y_i (centred over entries), the
    unbiased estimate of <E X, E Y> is the U-statistic over pairs of runs from
    *different* groups: sum_{g != h} <SX_g, SY_h> / sum_{g != h} n_g n_h. Pairs
    inside a group share no term with each other's noise only if they are
    different runs, so excluding whole groups is conservative and cheap.
    """

    gxx: np.ndarray  # G x G Gram matrices of group sums
    gyy: np.ndarray
    gxy: np.ndarray
    counts: np.ndarray  # runs per group
    p: int  # entries per run


def _group_moments(f0: np.ndarray, fa: np.ndarray, fb: np.ndarray, groups: int) -> _Moments:
    n = f0.shape[0]
    g = max(2, min(groups, n))
    labels = np.arange(n) % g
    counts = np.bincount(labels, minlength=g).astype(np.float64)
    p = int(np.prod(f0.shape[1:]))
    sx = np.zeros((g, p))
    sy = np.zeros((g, p))
    # Chunked to bound memory at the gpu tier (N x 100 000 entries per LR).
    step = max(1, int(2**24 // max(p, 1)))
    for s in range(0, n, step):
        base = f0[s : s + step].reshape(-1, p).astype(np.float64)
        x = fa[s : s + step].reshape(-1, p).astype(np.float64) - base
        y = fb[s : s + step].reshape(-1, p).astype(np.float64) - base
        x -= x.mean(1, keepdims=True)
        y -= y.mean(1, keepdims=True)
        np.add.at(sx, labels[s : s + step], x)
        np.add.at(sy, labels[s : s + step], y)
    return _Moments(sx @ sx.T, sy @ sy.T, sx @ sy.T, counts, p)


def _cross_stats(m: _Moments, w: np.ndarray) -> np.ndarray:
    """(V_X, V_Y, C_XY) for group weights w (shape B x G), off-diagonal pairs only."""
    def off(gram: np.ndarray) -> np.ndarray:
        return np.einsum("bg,gh,bh->b", w, gram, w) - np.einsum("bg,g->b", w * w, np.diag(gram))
    wc = w * m.counts
    pairs = wc.sum(1) ** 2 - (wc * wc).sum(1)
    denom = pairs * m.p
    return np.stack([off(m.gxx) / denom, off(m.gyy) / denom, off(m.gxy) / denom], axis=1)


def _derived(v: np.ndarray, k: float) -> dict[str, np.ndarray]:
    vx, vy, cxy = v[..., 0], v[..., 1], v[..., 2]
    with np.errstate(divide="ignore", invalid="ignore"):
        return {
            "r2": cxy**2 / (vx * vy),
            "slope": cxy / vx,
            # fraction of the response explained by the law's prescribed slope b/a
            "r2_law": 1.0 - (vy - 2 * k * cxy + k * k * vx) / vy,
        }


@dataclass(frozen=True)
class LinearityEstimate:
    r2: float
    slope: float
    r2_law: float
    r2_raw: float
    boot: dict[str, np.ndarray]  # bootstrap replicates, for paired comparisons
    n: int

    def ci(self, name: str, confidence: float | None = None) -> tuple[float, float]:
        """Basic (pivotal) bootstrap interval: 2θ̂ − q_hi, 2θ̂ − q_lo."""
        return bootstrap_interval(getattr(self, name), self.boot[name], confidence)


def linearity_estimate(
    f0: np.ndarray,
    fa: np.ndarray,
    fb: np.ndarray,
    a: float,
    b: float,
    *,
    groups: int = MAX_GROUPS,
    n_boot: int = N_BOOT,
    rng: np.random.Generator | int = 0,
    boot_weights: np.ndarray | None = None,
) -> LinearityEstimate:
    """N→∞ estimates of R², slope and law-R² for the linearity law.

    ``f0, fa, fb`` are per-run outputs at η, η+a, η+b with a common leading run
    axis of length N (row i of each is one tuple; seed-paired or independent,
    either is valid because only pairs of *different* tuples are multiplied).
    Note out(η) appears in both differences, so X and Y noise is correlated
    within a run; the cross-fit removes that bias too.

    ``boot_weights`` (B x G multinomial counts over groups) lets two estimates
    on the same runs be bootstrapped jointly, for paired comparisons.
    """
    if not (f0.shape == fa.shape == fb.shape):
        raise ValueError(f"shapes differ: {f0.shape}, {fa.shape}, {fb.shape}")
    n = f0.shape[0]
    if n < 4:
        raise ValueError(f"need at least 4 runs per learning rate, got {n}")
    m = _group_moments(f0, fa, fb, groups)
    k = b / a
    point = _derived(_cross_stats(m, np.ones((1, len(m.counts)))), k)
    if boot_weights is None:
        boot_weights = bootstrap_weights(len(m.counts), n_boot, rng)
    boot = _derived(_cross_stats(m, boot_weights), k)
    x = (fa.mean(0) - f0.mean(0)).ravel()
    y = (fb.mean(0) - f0.mean(0)).ravel()
    r2_raw = float(np.corrcoef(x, y)[0, 1] ** 2)
    return LinearityEstimate(
        r2=float(point["r2"][0]), slope=float(point["slope"][0]), r2_law=float(point["r2_law"][0]),
        r2_raw=r2_raw, boot=boot, n=n,
    )


def bootstrap_weights(groups: int, n_boot: int = N_BOOT, rng: np.random.Generator | int = 0) -> np.ndarray:
    rng = np.random.default_rng(rng)
    return rng.multinomial(groups, np.full(groups, 1.0 / groups), size=n_boot).astype(np.float64)


def paired_difference_ci(
    first: LinearityEstimate, second: LinearityEstimate, name: str, confidence: float | None = None
) -> tuple[float, tuple[float, float]]:
    """CI of first.name − second.name from bootstrap replicates drawn with shared weights."""
    d = getattr(first, name) - getattr(second, name)
    return d, bootstrap_interval(d, first.boot[name] - second.boot[name], confidence)


def one_sided_p_from_ci(value: float, ci: tuple[float, float], confidence: float | None = None) -> float:
    """Normal-approximation one-sided p-value for value > 0, from a two-sided CI."""
    confidence = current_confidence() if confidence is None else confidence
    se = (ci[1] - ci[0]) / (2 * sps.norm.ppf(0.5 + confidence / 2))
    if not math.isfinite(se) or se <= 0:
        return float("nan")
    return float(sps.norm.sf(value / se))
