"""``python -m harness calibrate [--quick]``: coverage and false-pass rate of every claim statistic.

See ``harness.calibrate.core`` for the engine and the bars; the families live in
``seed_means`` (t-intervals, proportions, spike rates) and ``ensembles``
(function-space distance, transferability, linearity) and ``sequential_rule``
(the stopping rule of sequential looks). A new statistic joins the
table with ``register(Family(...))``.
"""
from __future__ import annotations

from harness.calibrate.core import (
    FULL_TRIALS, MAX_FALSE_PASS, MIN_COVERAGE, QUICK_TRIALS, REGISTRY, Cell, Family, Generator,
    markdown_table, register, run_all,
)
from harness.calibrate import ensembles as _ensembles  # noqa: F401,E402 (registers its families)
from harness.calibrate import seed_means as _seed_means  # noqa: F401,E402
from harness.calibrate import sequential_rule as _sequential_rule  # noqa: F401,E402

__all__ = ["FULL_TRIALS", "MAX_FALSE_PASS", "MIN_COVERAGE", "QUICK_TRIALS", "REGISTRY", "Cell", "Family",
           "Generator", "markdown_table", "register", "run_all"]
