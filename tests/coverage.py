"""The trial count and acceptance bound shared by the coverage controls in tests/.

With T = 200 trials and the bound k = 179 (computed, not typed): a 95% interval
passes with probability 0.9995, one with only 85% coverage with probability
0.041 (< 0.05), so a control fails an 85%-coverage interval with probability
>= 0.95.
"""
from __future__ import annotations

from functools import lru_cache

from scipy.stats import binom

COVERAGE_TRIALS = 200
#: the weakest coverage a control must reject with probability >= 0.95
BAD_COVERAGE = 0.85


@lru_cache(maxsize=None)
def coverage_bound(trials: int = COVERAGE_TRIALS, bad: float = BAD_COVERAGE) -> int:
    """Smallest k with P(Binomial(trials, bad) >= k) <= 0.05."""
    return int(binom.isf(0.05, trials, bad)) + 1
