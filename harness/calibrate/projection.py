"""How often a projection decides: the runs ``harness.stats.projection`` asks for, then trained.

A trial draws ``N0`` runs of a claim "mean > 0" whose truth lies ``delta`` standard errors
(at ``N0``) from the threshold, on either side. Where the interval is undecided, the
projection gives the runs to decide; the trial then draws that many (the first ``N0``
kept) and asks whether the interval is decided there, at the same level. The rate
reported is the share of undecided trials that the projected N decides beyond the machine
spread (``harness.stats.fragility``), which is what the projection aims at. The aim is
≥ 75% (``POWER``); calibrate reports the measured rate whatever it is.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from harness.stats import LawResult, mean_ci
from harness.stats.core import INCONCLUSIVE
from harness.stats.fragility import is_fragile
from harness.stats.projection import POWER, runs_to_decide

N0 = 16
DELTAS = (1.0, 1.5, 2.0, 3.0)
#: trials whose projection asks for more runs than this count as not decided
CAP = 20_000


@dataclass(frozen=True)
class ProjectionCell:
    generator: str
    delta: float
    undecided: int
    decided_at_projection: int
    median_ratio: float   # projected runs / N0, median over undecided trials

    @property
    def rate(self) -> float:
        return self.decided_at_projection / self.undecided if self.undecided else math.nan


def _draw(kind: str, rng: np.random.Generator, n: int) -> np.ndarray:
    if kind == "lognormal":
        return (rng.lognormal(0.0, 1.0, n) - math.exp(0.5)) / math.sqrt((math.e - 1) * math.e)
    if kind == "t3":
        return rng.standard_t(3, n) / math.sqrt(3.0)
    return rng.standard_normal(n)


def run_cell(kind: str, delta: float, trials: int, seed: int, power: float = POWER) -> ProjectionCell:
    rng = np.random.default_rng(seed)
    undecided = hits = 0
    ratios = []
    for i in range(trials):
        truth = (1 if i % 2 else -1) * delta / math.sqrt(N0)  # unit sd: one SE at N0 is 1/√N0
        x = truth + _draw(kind, rng, N0)
        v, ci = mean_ci(x, 0.95)
        row = LawResult("mean", v, ci, 0.0, ">")
        if row.decision != INCONCLUSIVE:
            continue
        undecided += 1
        n = runs_to_decide(row, N0, power=power).runs
        ratios.append(n / N0)
        if n > CAP:
            continue
        more = truth + _draw(kind, rng, int(math.ceil(n)) - N0)
        _, ci2 = mean_ci(np.concatenate([x, more]), 0.95)
        later = LawResult("mean", float(np.mean(ci2)), ci2, 0.0, ">")
        hits += later.decision != INCONCLUSIVE and not is_fragile(later)
    return ProjectionCell(kind, delta, undecided, hits, float(np.median(ratios)) if ratios else math.nan)


def run_projection(trials: int, seed: int = 20261204) -> list[ProjectionCell]:
    return [run_cell(kind, d, trials, seed + 31 * i + j)
            for i, kind in enumerate(("normal", "t3", "lognormal")) for j, d in enumerate(DELTAS)]


def projection_table(cells: list[ProjectionCell]) -> str:
    out = [f"| generator | truth (SE at N={N0}) | undecided trials | decided at the projected N | median N/N0 |",
           "|---|---|---|---|---|"]
    for c in cells:
        out.append(f"| {c.generator} | ±{c.delta:g} | {c.undecided} | {100 * c.rate:.1f}% | {c.median_ratio:.1f} |")
    total_u = sum(c.undecided for c in cells)
    total_h = sum(c.decided_at_projection for c in cells)
    out.append(f"| all | ≥ 1 | {total_u} | {100 * total_h / max(total_u, 1):.1f}% | |")
    return "\n".join(out) + "\n"
