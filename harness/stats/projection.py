"""How many runs an undecided row needs: its interval, shrunk until it clears the threshold.

At the observed estimate ``v``, a row is decided once the side of its interval that faces
the nearest threshold is shorter than the distance ``d`` from ``v`` to that threshold.
That side shrinks as N^-β: β is measured across the point's looks where it had several
(a least-squares slope of log side on log N), else the 1/√N of a mean (β = ½, said so
in the report). To decide with probability about ``POWER`` rather than one half, the
target side leaves room for the estimate's own noise at the projected N, and for the machine
spread (``harness.stats.fragility``) that a robust decision must clear:
side·(1 + MACHINE_SPREAD)·(z + z_power)/z < d, with z the interval's quantile.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from statistics import NormalDist
from typing import Sequence

from harness.stats import fragility
from harness.stats.core import INCONCLUSIVE, LawResult

#: the chance of deciding at the projected N if the truth is the observed estimate. Set before
#: looking at data, to the rate the projection aims for; calibrate measures the rate it reaches.
POWER = 0.75
#: projections beyond this many runs per ensemble are reported as "beyond reach"
MAX_RUNS = 10**9


@dataclass(frozen=True)
class Projection:
    """Runs per ensemble at which a row's interval would clear its threshold, and how that was found."""

    runs: float          # math.inf when the estimate sits on the threshold
    exponent: float      # β in side ∝ N^-β
    measured: bool       # β fitted across looks (True) or the 1/√N default (False)

    @property
    def reachable(self) -> bool:
        return math.isfinite(self.runs) and self.runs <= MAX_RUNS


def facing_side(r: LawResult) -> tuple[float, float]:
    """(distance from the estimate to the nearest threshold, the interval's side facing it)."""
    v, (lo, hi) = r.value, r.ci
    if r.direction == "in":
        a, b = r.threshold  # type: ignore[misc]
        points = [(abs(v - a), v - lo if v >= a else hi - v), (abs(b - v), hi - v if v <= b else v - lo)]
        return min(points)
    t = float(r.threshold)  # type: ignore[arg-type]
    return abs(v - t), (v - lo if v >= t else hi - v)


def fitted_exponent(history: Sequence[tuple[int, float]]) -> float | None:
    """β from (N, side) at several looks; None with fewer than two usable looks."""
    pts = [(math.log(n), math.log(s)) for n, s in history if n > 0 and s > 0 and math.isfinite(s)]
    if len({x for x, _ in pts}) < 2:
        return None
    mx = sum(x for x, _ in pts) / len(pts)
    my = sum(y for _, y in pts) / len(pts)
    slope = sum((x - mx) * (y - my) for x, y in pts) / sum((x - mx) ** 2 for x, _ in pts)
    return -slope if slope < 0 else None  # a side that did not shrink says nothing about scaling


def runs_to_decide(r: LawResult, n: int, history: Sequence[tuple[int, float]] = (),
                   confidence: float = 0.95, power: float = POWER) -> Projection:
    """Runs per ensemble at which ``r`` (undecided, computed on ``n`` runs) would be decided."""
    beta = fitted_exponent(history)
    measured = beta is not None
    beta = beta if beta is not None else 0.5
    d, side = facing_side(r)
    if not (math.isfinite(side) and side > 0) or d <= 0 or not math.isfinite(d):
        return Projection(math.inf, beta, measured)
    z = NormalDist().inv_cdf(0.5 + confidence / 2)
    target = d * z / ((z + NormalDist().inv_cdf(power)) * (1 + fragility.MACHINE_SPREAD))
    runs = n * (side / target) ** (1 / beta)
    return Projection(max(float(n), runs), beta, measured)


def undecided(r: LawResult) -> bool:
    """A claim that more runs could still decide: inconclusive, or decided within the machine spread."""
    return r.kind != "check" and (r.decision == INCONCLUSIVE or fragility.is_fragile(r))


def point_projection(rows: Sequence[LawResult], n: int, histories: dict[str, Sequence[tuple[int, float]]],
                     confidence: float = 0.95) -> Projection | None:
    """The largest projection over a point's undecided or fragile claims (all must be decided beyond the
    machine spread); None if every claim is."""
    out = [runs_to_decide(r, n, histories.get(r.statistic, ()), confidence) for r in rows if undecided(r)]
    return max(out, key=lambda p: p.runs) if out else None
