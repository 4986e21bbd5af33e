"""Are an ensemble's seeds independent? Every interval of the package assumes so.

A trainer that shares state between the seeds of a chunk (one generator drawn for the whole chunk, a
buffer not reset) makes the runs of a chunk alike; one that carries state from seed to seed makes them
drift along the seed index. Two cheap rank tests of one per-seed value catch either: Spearman's
correlation with the seed index, and a Kruskal–Wallis test across chunks of consecutive seeds. Both are
distribution-free, so skewed seeds do not fake a dependence.
"""
from __future__ import annotations

import math

import numpy as np

from harness.stats.core import CHECK, LawResult

#: seeds per chunk the between-chunk test groups (the CPU trainers' chunk)
CHUNK = 8
#: the check fails below this p-value (Bonferroni over its two tests); why so low: every ensemble of a
#: session is tested, and a false alarm stops a point as a harness error
ALPHA = 1e-4


def testable(values: np.ndarray) -> bool:
    """Whether the tests can say anything: at least 6 finite values, 3 of them distinct."""
    x = np.asarray(values, dtype=float)
    x = x[np.isfinite(x)]
    return x.size >= 6 and np.unique(x).size >= 3


def dependence_p(values: np.ndarray, chunk: int = CHUNK) -> float:
    """The smaller p-value of the two tests (times 2), or 1.0 where neither applies (too few distinct values)."""
    from scipy import stats as sps  # lazy: scipy.stats costs ~0.6 s to import

    if not testable(values):
        return 1.0
    x = np.asarray(values, dtype=float)
    idx = np.flatnonzero(np.isfinite(x))
    x = x[idx]
    ps = [float(sps.spearmanr(idx, x).pvalue)]
    groups = [x[(idx // chunk) == g] for g in np.unique(idx // chunk)]
    groups = [g for g in groups if g.size >= 2]
    if len(groups) >= 2 and np.unique(np.concatenate(groups)).size > 1:
        ps.append(float(sps.kruskal(*groups).pvalue))
    p = min(1.0, len(ps) * min(p for p in ps if math.isfinite(p))) if any(map(math.isfinite, ps)) else 1.0
    return p


def independence_result(ensemble: str, values: np.ndarray, chunk: int = CHUNK) -> LawResult:
    """A check: the per-seed ``values`` of ``ensemble`` show no dependence across seeds (p ≥ ``ALPHA``)."""
    p = dependence_p(values, chunk)
    n = int(np.isfinite(np.asarray(values, dtype=float)).sum())
    return LawResult(f"{ensemble}:seed_independence_p", p, (p, p), ALPHA, ">", n=n, kind=CHECK, extra={"chunk": chunk})
