"""The linearity law's estimator: N→∞ R² and slope from cross-fitted second moments."""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterable

import numpy as np

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


class _Accumulator:
    """Group sums of the centred differences and per-LR sums, fed chunk by chunk of runs.

    Memory is G x p whatever N is: the statistics never need the stacked N x p outputs.
    """

    def __init__(self, n: int, groups: int, shape: tuple[int, ...]) -> None:
        self.n, self.g = n, max(2, min(groups, n))
        self.p = int(np.prod(shape))
        self.sx = np.zeros((self.g, self.p))
        self.sy = np.zeros((self.g, self.p))
        self.sums = np.zeros((3, self.p))  # Σ f0, Σ fa, Σ fb: the raw (finite-N) means
        self.seen = 0

    def add(self, f0: np.ndarray, fa: np.ndarray, fb: np.ndarray) -> None:
        labels = np.arange(self.seen, self.seen + len(f0)) % self.g
        # sub-chunked to bound the float64 temporaries at the gpu tier (100 000 entries per run)
        step = max(1, int(2**24 // max(self.p, 1)))
        for s in range(0, len(f0), step):
            base = f0[s : s + step].reshape(-1, self.p).astype(np.float64)
            a_ = fa[s : s + step].reshape(-1, self.p).astype(np.float64)
            b_ = fb[s : s + step].reshape(-1, self.p).astype(np.float64)
            self.sums += np.stack([base.sum(0), a_.sum(0), b_.sum(0)])
            x, y = a_ - base, b_ - base
            x -= x.mean(1, keepdims=True)
            y -= y.mean(1, keepdims=True)
            np.add.at(self.sx, labels[s : s + step], x)
            np.add.at(self.sy, labels[s : s + step], y)
        self.seen += len(f0)

    def moments(self) -> _Moments:
        if self.seen != self.n:
            raise ValueError(f"expected {self.n} runs per learning rate, got {self.seen}")
        counts = np.bincount(np.arange(self.n) % self.g, minlength=self.g).astype(np.float64)
        return _Moments(self.sx @ self.sx.T, self.sy @ self.sy.T, self.sx @ self.sy.T, counts, self.p)

    def mean_differences(self) -> tuple[np.ndarray, np.ndarray]:
        m0, ma, mb = self.sums / self.n
        return ma - m0, mb - m0


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
    #: f̄(η+a) − f̄(η) and f̄(η+b) − f̄(η) over the N runs (flattened): what a scatter plot shows
    mean_dx: np.ndarray | None = None
    mean_dy: np.ndarray | None = None

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
    return linearity_estimate_chunks([(f0, fa, fb)], f0.shape[0], a, b, groups=groups, n_boot=n_boot, rng=rng,
                                     boot_weights=boot_weights)


def linearity_estimate_chunks(
    chunks: Iterable[tuple[np.ndarray, np.ndarray, np.ndarray]],
    n: int,
    a: float,
    b: float,
    *,
    groups: int = MAX_GROUPS,
    n_boot: int = N_BOOT,
    rng: np.random.Generator | int = 0,
    boot_weights: np.ndarray | None = None,
) -> LinearityEstimate:
    """``linearity_estimate`` on ``n`` runs read as chunks of (f0, fa, fb) rows, in seed order.

    Same statistic, same numbers (up to float summation order); memory is flat in N.
    """
    if n < 4:
        raise ValueError(f"need at least 4 runs per learning rate, got {n}")
    acc: _Accumulator | None = None
    for f0, fa, fb in chunks:
        if not (f0.shape == fa.shape == fb.shape):
            raise ValueError(f"shapes differ: {f0.shape}, {fa.shape}, {fb.shape}")
        acc = acc or _Accumulator(n, groups, f0.shape[1:])
        acc.add(f0, fa, fb)
    if acc is None:
        raise ValueError("no runs were read")
    m = acc.moments()
    k = b / a
    point = _derived(_cross_stats(m, np.ones((1, len(m.counts)))), k)
    if boot_weights is None:
        boot_weights = bootstrap_weights(len(m.counts), n_boot, rng)
    boot = _derived(_cross_stats(m, boot_weights), k)
    x, y = acc.mean_differences()
    r2_raw = float(np.corrcoef(x, y)[0, 1] ** 2)
    return LinearityEstimate(
        r2=float(point["r2"][0]), slope=float(point["slope"][0]), r2_law=float(point["r2_law"][0]),
        r2_raw=r2_raw, boot=boot, n=n, mean_dx=x, mean_dy=y,
    )


def bootstrap_weights(groups: int, n_boot: int = N_BOOT, rng: np.random.Generator | int = 0) -> np.ndarray:
    rng = np.random.default_rng(rng)
    return rng.multinomial(groups, np.full(groups, 1.0 / groups), size=n_boot).astype(np.float64)


def paired_difference_ci(
    first: LinearityEstimate, second: LinearityEstimate, name: str, confidence: float | None = None
) -> tuple[float, tuple[float, float]]:
    """CI of first.name − second.name from bootstrap replicates drawn with shared weights."""
    confidence = current_confidence() if confidence is None else confidence
    d = getattr(first, name) - getattr(second, name)
    return d, bootstrap_interval(d, first.boot[name] - second.boot[name], confidence)


def one_sided_p_from_ci(value: float, ci: tuple[float, float], confidence: float | None = None) -> float:
    """Normal-approximation one-sided p-value for value > 0, from a two-sided CI."""
    from scipy import stats as sps  # lazy: scipy.stats costs ~0.6 s to import
    confidence = current_confidence() if confidence is None else confidence
    se = (ci[1] - ci[0]) / (2 * sps.norm.ppf(0.5 + confidence / 2))
    if not math.isfinite(se) or se <= 0:
        return float("nan")
    return float(sps.norm.sf(value / se))
