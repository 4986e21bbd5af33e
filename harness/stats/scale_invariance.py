"""Statistics of the scale-invariance laws (seeds 001, 002).

* window summaries of ``harness.trainers.probes.LayerStats`` series (one value per seed
  and layer, so seeds are the independent replicates of every interval);
* function-space distances between two ensembles from their test-set predicted
  labels: the *excess disagreement* (an unbiased two-sample statistic with a
  bootstrap interval) and seed 002's l1 distance between mean predicted-label
  distributions with its permutation null;
* spike counting for loss curves that never settle.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from harness.stats import N_BOOT, bootstrap_interval, current_confidence, mean_ci

#: largest possible E_x|p_A(x) − p_B(x)|²₂ between two predicted-label distributions (disjoint one-hots)
MAX_EXCESS = 2.0
#: the upper bound (what "same" passes on) is a bootstrap bound at this share of the level's α. Why: at 64
#: seeds with 15% of B's seeds in another basin at a distance equal to the threshold, the bound at the
#: level itself passed "same" falsely 6-13% (100-150 trials); at 0.04·α, 0.7% (150 trials)
SAME_UPPER_SHARE = 0.04


# ------------------------------------------------------------------ windows --

def window_mask(steps: np.ndarray, start: float, stop: float | None = None) -> np.ndarray:
    """Recorded steps in [start, stop) (stop None: to the end)."""
    steps = np.asarray(steps)
    return (steps >= start) & (steps < (np.inf if stop is None else stop))


def per_seed(series: np.ndarray, mask: np.ndarray, how: str = "median") -> np.ndarray:
    """[N, T, L] series → [N, L]: the median (or mean) over the masked steps, NaNs ignored."""
    sel = np.asarray(series, dtype=float)[:, mask]
    if sel.shape[1] == 0:
        raise ValueError("the window holds no recorded step")
    return np.nanmedian(sel, axis=1) if how == "median" else np.nanmean(sel, axis=1)


# ----------------------------------------------------------- function space --

def agreement_gram(a: np.ndarray, b: np.ndarray, classes: int | None = None) -> np.ndarray:
    """K[i, j] = fraction of test points where run i of ``a`` and run j of ``b`` predict the same label.

    ``a`` [N_a, P], ``b`` [N_b, P]: integer predicted labels on the same P test points.
    """
    a, b = np.asarray(a, dtype=np.int64), np.asarray(b, dtype=np.int64)
    k = int(classes if classes is not None else max(a.max(), b.max()) + 1)
    oa = np.zeros((a.shape[0], a.shape[1] * k), dtype=np.float32)
    ob = np.zeros((b.shape[0], b.shape[1] * k), dtype=np.float32)
    cols = np.arange(a.shape[1]) * k
    oa[np.arange(a.shape[0])[:, None], cols + a] = 1.0
    ob[np.arange(b.shape[0])[:, None], cols + b] = 1.0
    return (oa.astype(np.float64) @ ob.T.astype(np.float64)) / a.shape[1]


def _off_diagonal_mean(gram: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Weighted mean of gram[i, j] over pairs of *different* seeds i ≠ j, for weights w [B, N]."""
    num = np.einsum("bi,ij,bj->b", w, gram, w) - np.einsum("bi,i->b", w * w, np.diag(gram))
    den = w.sum(1) ** 2 - (w * w).sum(1)
    return num / den


@dataclass(frozen=True)
class Disagreement:
    """Function-space distance between ensembles A and B from their predicted labels.

    With p_A(x), p_B(x) the two ensembles' predicted-label distributions on a
    test point x, ``excess`` = E_x |p_A(x) − p_B(x)|²₂ (squared l2, a kernel
    MMD² with the kernel "two runs predict the same label"). It equals
    2·d_AB − d_AA − d_BB, where d_XY is the probability that a run of X and a
    run of Y — different seeds — disagree on a random test point; pairs that
    share a seed are excluded everywhere, so common random numbers (shared init
    and data order) bias nothing and the estimate is unbiased.

    ``distance`` = √excess is the rms l2 distance between the distributions.
    It bounds the difference of the ensembles' mean accuracies under *any*
    labelling of the test set (|Δacc| ≤ E_x|Δp_y(x)| ≤ distance), which gives
    a threshold on it a meaning independent of the task.
    """

    excess: float
    d_ab: float
    d_aa: float
    d_bb: float
    boot: np.ndarray  # bootstrap replicates of ``excess`` (seeds resampled, pairs kept)
    n: int

    @property
    def distance(self) -> float:
        return math.sqrt(max(self.excess, 0.0))

    @property
    def relative(self) -> float:
        """excess / (d_AA + d_BB): cross-ensemble disagreement beyond within-ensemble disagreement."""
        return self.excess / (self.d_aa + self.d_bb) if self.d_aa + self.d_bb > 0 else math.nan

    def unseen_minority_bound(self, confidence: float | None = None) -> float:
        """The excess a minority of seeds could carry without any of the N seeds showing it.

        If a fraction q of B's seeds lands in another basin, excess = q²·D with
        D ≤ ``MAX_EXCESS``; with no such seed among N, q can still be as large as
        the exact one-sided bound 1 − (α/2)^(1/N). A bootstrap over the N seeds
        cannot see that minority, so the upper bound never goes below this.
        """
        confidence = current_confidence() if confidence is None else confidence
        q_hi = 1.0 - ((1.0 - confidence) / 2) ** (1.0 / self.n)
        return MAX_EXCESS * q_hi * q_hi

    def testable_at(self, threshold: float, confidence: float | None = None) -> int:
        """0 if "distance < ``threshold``" can pass on these N seeds, else the fewest seeds at which the
        unseen-minority floor lies below the threshold (the claim is untestable below it)."""
        confidence = current_confidence() if confidence is None else confidence
        q_max = math.sqrt(threshold**2 / MAX_EXCESS)  # the floor is MAX_EXCESS·q², q = 1 − (α/2)^(1/N)
        if q_max >= 1:
            return 0
        need = math.floor(math.log((1.0 - confidence) / 2) / math.log(1.0 - q_max)) + 1
        return 0 if self.n >= need else need

    def excess_ci(self, confidence: float | None = None) -> tuple[float, float]:
        """Bootstrap interval of ``excess`` over seeds, widened to both the basic and percentile bounds
        (the excess of a minority basin is right-skewed), with the unseen-minority floor on its upper end."""
        confidence = current_confidence() if confidence is None else confidence
        basic = bootstrap_interval(self.excess, self.boot, confidence)
        perc = bootstrap_interval(self.excess, self.boot, confidence, method="percentile")
        upper = 1.0 - (1.0 - confidence) * SAME_UPPER_SHARE
        hi = max(bootstrap_interval(self.excess, self.boot, upper)[1],
                 bootstrap_interval(self.excess, self.boot, upper, method="percentile")[1],
                 self.unseen_minority_bound(confidence))
        return (min(basic[0], perc[0]), max(hi, basic[1], perc[1]))

    def ci(self, confidence: float | None = None) -> tuple[float, float]:
        """Interval of ``distance``: the excess interval mapped through √max(·, 0)."""
        lo, hi = self.excess_ci(confidence)
        return (math.sqrt(max(lo, 0.0)), math.sqrt(max(hi, 0.0)) if math.isfinite(hi) else math.inf)


def excess_disagreement(a: np.ndarray, b: np.ndarray, classes: int | None = None, n_boot: int = N_BOOT,
                        rng: np.random.Generator | int = 0) -> Disagreement:
    """Two-sample function-space statistic between seed-paired ensembles (row s of ``a`` and ``b`` is seed s)."""
    a, b = np.asarray(a), np.asarray(b)
    if a.shape != b.shape:
        raise ValueError(f"ensembles must be seed-paired with equal shapes, got {a.shape} and {b.shape}")
    n = a.shape[0]
    if n < 3:
        raise ValueError(f"need at least 3 runs per ensemble, got {n}")
    k = classes if classes is not None else int(max(a.max(), b.max())) + 1
    gaa, gbb, gab = agreement_gram(a, a, k), agreement_gram(b, b, k), agreement_gram(a, b, k)
    # the cross Gram symmetrised: pairs (A_i, B_j) and (A_j, B_i) enter alike
    gab = 0.5 * (gab + gab.T)

    def parts(w: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        return tuple(_off_diagonal_mean(g, w) for g in (gaa, gbb, gab))  # type: ignore[return-value]

    aa, bb, ab = (float(v[0]) for v in parts(np.ones((1, n))))
    rng = np.random.default_rng(rng)
    w = rng.multinomial(n, np.full(n, 1.0 / n), size=n_boot).astype(np.float64)
    baa, bbb, bab = parts(w)
    return Disagreement(aa + bb - 2 * ab, 1 - ab, 1 - aa, 1 - bb, baa + bbb - 2 * bab, n)


def label_distributions(pred: np.ndarray, classes: int) -> np.ndarray:
    """[N, P] labels → [P, K] empirical predicted-label distribution per test point."""
    pred = np.asarray(pred, dtype=np.int64)
    out = np.zeros((pred.shape[1], classes))
    np.add.at(out, (np.broadcast_to(np.arange(pred.shape[1]), pred.shape), pred), 1.0)
    return out / pred.shape[0]


def l1_distance(a: np.ndarray, b: np.ndarray, classes: int) -> float:
    """Seed 002's Figure 4 statistic: mean over test points of |p_A(x) − p_B(x)|₁ (biased up at finite N)."""
    return float(np.abs(label_distributions(a, classes) - label_distributions(b, classes)).sum(1).mean())


def l1_permutation_null(a: np.ndarray, b: np.ndarray, classes: int, n_perm: int = 200,
                        rng: np.random.Generator | int = 0) -> np.ndarray:
    """The l1 distance under relabelling: each seed's pair (A_s, B_s) swapped with probability ½.

    Swapping within a seed keeps the common-random-number pairing, so this is
    the distance two ensembles drawn from one distribution would show at this N.
    """
    a, b = np.asarray(a), np.asarray(b)
    rng = np.random.default_rng(rng)
    out = np.empty(n_perm)
    for i in range(n_perm):
        swap = rng.random(a.shape[0]) < 0.5
        out[i] = l1_distance(np.where(swap[:, None], b, a), np.where(swap[:, None], a, b), classes)
    return out


# ------------------------------------------------------------------ spikes --

def count_spikes(loss: np.ndarray, low: float, high: float) -> int:
    """How often the loss, having been below ``low``, rises above ``high`` again."""
    spikes, below = 0, False
    for v in np.asarray(loss, dtype=float):
        if not np.isfinite(v):
            break
        if v < low:
            below = True
        elif v > high and below:
            spikes += 1
            below = False
    return spikes


def settled(loss: np.ndarray, low: float, high: float) -> bool:
    """Reached ``low``, never exceeded ``high`` afterwards, and ends below ``low``."""
    loss = np.asarray(loss, dtype=float)
    hit = np.flatnonzero(loss < low)
    if hit.size == 0 or not np.isfinite(loss).all():
        return False
    return bool(loss[hit[0]:].max() <= high and loss[-1] < low)


def spike_rate_ci(counts: np.ndarray, confidence: float | None = None) -> tuple[float, float]:
    """Interval for the mean events per run that holds whether runs spike alike or not.

    The exact Poisson (Garwood) interval assumes every run has the same rate; runs
    in different basins (some spiking far more than others) over-disperse the
    counts and it under-covers. The union with the Student-t interval over runs
    covers both cases: Garwood where all counts are equal (e.g. all zero, where
    the t-interval degenerates), t where the counts scatter more than Poisson.
    """
    c = np.asarray(counts, dtype=float)
    g = poisson_rate_ci(int(c.sum()), len(c), confidence)
    if len(c) < 2:
        return g
    _, t = mean_ci(c, confidence)
    return (max(0.0, min(g[0], t[0])), max(g[1], t[1]))


def poisson_rate_ci(total: int, runs: int, confidence: float | None = None) -> tuple[float, float]:
    """Exact (Garwood) interval for events per run, from ``total`` events over ``runs`` runs.

    Spikes come more regularly than a Poisson process's events, so the
    interval is conservative for them.
    """
    from scipy import stats as sps  # lazy: scipy.stats costs ~0.6 s to import
    a = 1 - (current_confidence() if confidence is None else confidence)
    lo = 0.0 if total == 0 else float(sps.chi2.ppf(a / 2, 2 * total) / 2)
    hi = float(sps.chi2.ppf(1 - a / 2, 2 * total + 2) / 2)
    return lo / runs, hi / runs


def radial_share(r: np.ndarray | float) -> np.ndarray | float:
    """r/(1+|r|): a radial ratio mapped monotonically into (−1, 1), so a seed whose weights are far from
    scale invariant (|r| in the thousands) cannot swamp the mean over seeds; per-seed medians commute with it."""
    return r / (1 + np.abs(r))


def measured_growth_over_shrink(w_norm2: np.ndarray, steps: np.ndarray, win: np.ndarray, lr: float, wd: float,
                                momentum: float) -> np.ndarray:
    """[N, T, L] recorded |w|² → [N, L]: (Δ|w|² + Σ shrink) / Σ shrink over the window.

    Σ shrink = Σ_t 2λα|w_t|²/(1−ρ) (λ = ``lr``, α = ``wd``, ρ = ``momentum``), the resummed
    decay of every step in the window (trapezoid rule between records); Δ|w|² is the
    measured change between the window's first and last record, so the growth the
    gradient steps brought is read off the weights themselves, not from |g|.
    """
    w = np.asarray(w_norm2, dtype=float)[:, win]
    t = np.asarray(steps, dtype=float)[win]
    if t.size < 2:
        raise ValueError("the equilibrium window holds fewer than 2 recorded steps")
    shrink = 2.0 * lr * wd / (1.0 - momentum) * 0.5 * ((w[:, 1:] + w[:, :-1]) * np.diff(t)[None, :, None]).sum(1)
    return (w[:, -1] - w[:, 0] + shrink) / shrink
