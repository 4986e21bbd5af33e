"""Fragile decisions: rows whose decision could move on another machine.

Training amplifies floating-point differences (another CPU's kernels, another thread
count, another device class): the same seeds and code give runs that differ a little,
so a row's interval moves a little. A row is *fragile* when moving each edge of its
interval by the machine spread ``spread(r)`` (either way, independently) can change its
decision. A fragile row decides nothing on its own: the point reports it, and a point
whose decision can move is reported as fragile instead of passing, failing or being
pinned as a recorded finding.

The spread is measured, not argued: ``python -m harness confirm --perturb BASE OTHER``
compares two sessions of the same seeds and code on perturbed floating point and
reports, per row, how far the interval edges moved in units of the interval's
half-width.
"""
from __future__ import annotations

import math
from typing import Iterable

from harness.stats.core import FAIL, INCONCLUSIVE, PASS, UNTESTABLE, LawResult, decide

#: How far a row's interval edges move between machines, in half-widths of the interval.
#: Chosen after seeing data (``confirm --perturb``, smoke tier, seeds 0…): two intra-op threads
#: instead of one moved two rows, by 0.17 and 0.60 half-widths (intrinsic_lr bn_net; the spikes
#: row changed decision); another 2-core x86-64 CPU moved lars rho0.9's conv2 radial check by
#: 0.41. Rounded up to 0.75. A device class is another matter: the same seeds on an H200 moved the
#: rows by a median 0.34 half-widths but 41% of them by more than 0.75 (training on a GPU is
#: another sample, not a rounding of the same one), so a decision is re-made per device class
#: (``compare`` names the change) rather than covered by this spread. docs/statistics.md.
MACHINE_SPREAD = 0.75
#: a floor for intervals of zero width (exact statistics, sample maxima): relative to the larger
#: of |value| and |threshold|, set before looking, well above float32's 6e-8
ZERO_WIDTH_FLOOR = 1e-4


def spread(r: LawResult) -> float:
    """How far ``r``'s interval edges may move on another machine."""
    lo, hi = r.ci
    if not (math.isfinite(lo) and math.isfinite(hi)):
        return 0.0  # an unbounded interval decides nothing, wherever it is computed
    thr = r.threshold if isinstance(r.threshold, tuple) else (r.threshold,)
    scale = max([abs(r.value) if math.isfinite(r.value) else 0.0, *(abs(t) for t in thr)])
    return max(MACHINE_SPREAD * (hi - lo) / 2, ZERO_WIDTH_FLOOR * scale)


def possible_decisions(r: LawResult) -> frozenset[str]:
    """The decisions ``r`` could take with each interval edge moved by up to its spread."""
    if r.decision == UNTESTABLE:
        return frozenset({UNTESTABLE})  # no interval decides it, wherever it is computed
    s = spread(r)
    lo, hi = r.ci
    if s == 0.0:
        return frozenset({r.decision})
    out = {r.decision}
    for dl in (-s, s):
        for dh in (-s, s):
            if lo + dl <= hi + dh:
                out.add(decide((lo + dl, hi + dh), r.threshold, r.direction))
    return frozenset(out)


def is_fragile(r: LawResult) -> bool:
    return len(possible_decisions(r)) > 1


def possible_point_decisions(rows: Iterable[LawResult]) -> frozenset[str]:
    """The decisions ``combine`` could give the rows, each row free to take any of its possible ones."""
    sets = [possible_decisions(r) for r in rows if r.decision != UNTESTABLE]
    if not sets:
        return frozenset()
    out = set()
    if any(FAIL in s for s in sets):
        out.add(FAIL)
    if all(PASS in s for s in sets):
        out.add(PASS)
    if all(s - {FAIL} for s in sets) and any(INCONCLUSIVE in s for s in sets):
        out.add(INCONCLUSIVE)
    return frozenset(out)


def robust_failure(rows: Iterable[LawResult]) -> bool:
    """Some row fails by more than its spread: the point fails on any machine."""
    return any(possible_decisions(r) == {FAIL} for r in rows)
