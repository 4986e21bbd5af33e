"""Agreement of a measured mean with a published figure, within a stated tolerance."""
from __future__ import annotations

from typing import Sequence

import numpy as np

from harness.stats import CLAIM, LawResult, current_confidence, decide, mean_ci


def agreement(values: Sequence[float] | np.ndarray, reported: float, tolerance: float, *,
              statistic: str, kind: str = CLAIM) -> LawResult:
    """Pass when the CI of the mean over runs lies within ``reported ± tolerance``, fail when it lies outside.

    ``extra`` keeps the published figure and the tolerance, so a report can show
    paper and measurement side by side.
    """
    if tolerance <= 0:
        raise ValueError(f"tolerance must be positive, got {tolerance}")
    x = np.asarray(values, dtype=float)
    mean, ci = mean_ci(x, current_confidence())
    band = (reported - tolerance, reported + tolerance)
    return LawResult(statistic=statistic, value=mean, ci=ci, threshold=band, direction="in",
                     decision=decide(ci, band, "in"), n=int(x.size),
                     kind=kind, extra={"reported": reported, "tolerance": tolerance,
                            "per_seed": [round(float(v), 3) for v in x]})
