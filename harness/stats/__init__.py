"""The ``LawResult`` every assertion returns, the decision rule, and generic intervals.

Decisions follow one rule everywhere: *pass* when the whole confidence interval
lies on the law's side of the threshold, *fail* when it lies wholly on the other
side, *inconclusive* otherwise. Finite-N noise therefore widens the interval
instead of masquerading as a violation.
"""
from __future__ import annotations

from harness.stats.core import (  # noqa: F401  (the package's public names)
    CHECK, CLAIM, SANITY, CONFIDENCE, FAIL, INCONCLUSIVE, KINDS, MAX_GROUPS, MIN_MEAN_N, N_BOOT, NOT_RUN, PASS, UNTESTABLE,
    LawResult, mean_level,
    bootstrap_ci, bootstrap_interval, combine, confidence_level, current_confidence, decide, mean_ci, t_interval,
)

# The generic result builders live in their own module; they are re-exported here so that law
# authors import every builder from ``harness.stats``.
from harness.stats.builders import (
    band_result,
    exact_result,
    mean_result,
    noninferiority_result,
    paired_difference_result,
    proportion_ci,
    rate_result,
    ratio_result,
)

__all__ = [
    "CHECK", "CLAIM", "SANITY", "CONFIDENCE", "FAIL", "INCONCLUSIVE", "KINDS", "MIN_MEAN_N", "NOT_RUN", "PASS", "UNTESTABLE", "LawResult",
    "band_result", "bootstrap_ci", "bootstrap_interval", "combine", "confidence_level", "current_confidence",
    "decide", "exact_result", "mean_ci", "mean_level", "mean_result", "noninferiority_result", "paired_difference_result",
    "proportion_ci", "rate_result", "ratio_result", "t_interval",
]
