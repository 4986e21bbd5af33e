"""The calibration engine: families of generators with known truth, trials, the table.

A *family* is one statistic that decides claims, with its decision rule
(``decide(data) -> (lo, hi, decision)``) and at least six generators. A
generator draws one trial's data and knows the population value (``truth``) the
interval must cover. Its ``role`` says what its pass rate means:

* ``boundary``: the truth sits exactly on the threshold (or beyond it), so every
  *pass* is a false pass — the bar is ≤ 5%;
* ``inside``: the truth lies just inside the threshold — the pass rate is power;
* ``away``: the truth is far from the threshold — coverage only.

Coverage is P(lo ≤ truth ≤ hi) with the bar ≥ 93% in every cell. Both rates come
with a Clopper–Pearson interval over the trials (the Monte-Carlo uncertainty of
the calibration itself). Other statistics (e.g. a sequential rule) join the
table by calling ``register`` with one more family.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from harness.stats import PASS, proportion_ci

#: the bars every cell must meet
MAX_FALSE_PASS = 0.05
MIN_COVERAGE = 0.93
#: trials per cell: the full run needs ≥ 400 (±~1.2% on a 95% coverage)
FULL_TRIALS = 400
QUICK_TRIALS = 60
#: a full run re-measures a cell below a bar but within its own noise on this many times the trials.
#: Why: ~40 cells sit near 95% coverage, and each falls below 93% over 400 trials ~3% of the time
#: by chance alone, so most full runs would otherwise report a miss that is not there.
RECHECK_FACTOR = 10
ROLES = ("boundary", "inside", "away")


@dataclass(frozen=True)
class Generator:
    name: str
    truth: float
    role: str
    draw: Callable[[np.random.Generator], Any]
    note: str = ""

    def __post_init__(self) -> None:
        if self.role not in ROLES:
            raise ValueError(f"generator role must be one of {ROLES}, got {self.role!r}")


@dataclass(frozen=True)
class Family:
    statistic: str
    decide: Callable[[Any], tuple[float, float, str]]
    generators: tuple[Generator, ...]
    n: int  # seeds (or runs) per trial, as at the smoke tier
    trial_cost: float = 1.0  # relative cost; trials scale by 1/cost (only down in quick mode, up when cost < 1)
    #: every N a law decides this statistic at, each with the generators ``generators_at(N)`` draws;
    #: left empty, the family is measured at ``n`` on ``generators`` alone
    sizes: tuple[int, ...] = ()
    generators_at: Callable[[int], tuple[Generator, ...]] | None = None

    def cells(self) -> list[tuple[int, tuple[Generator, ...]]]:
        """(N, generators) for every N the statistic is measured at."""
        if not self.sizes or self.generators_at is None:
            return [(self.n, self.generators)]
        return [(n, self.generators_at(n)) for n in self.sizes]


REGISTRY: dict[str, Family] = {}


def register(family: Family) -> Family:
    if len(family.generators) < 6:
        raise ValueError(f"{family.statistic}: a family needs at least 6 generators, got {len(family.generators)}")
    REGISTRY[family.statistic] = family
    return family


@dataclass
class Cell:
    statistic: str
    generator: str
    role: str
    truth: float
    trials: int
    covered: int
    passed: int
    seconds: float
    note: str = ""
    coverage_ci: tuple[float, float] = field(default=(0.0, 1.0))
    pass_ci: tuple[float, float] = field(default=(0.0, 1.0))
    n: int = 0  # seeds (or runs) per trial

    @property
    def coverage(self) -> float:
        return self.covered / self.trials

    @property
    def pass_rate(self) -> float:
        return self.passed / self.trials

    @property
    def ok(self) -> bool:
        false_ok = self.role != "boundary" or self.pass_rate <= MAX_FALSE_PASS
        return self.coverage >= MIN_COVERAGE and false_ok

    @property
    def surely_misses(self) -> bool:
        """The cell misses a bar beyond its own Monte-Carlo doubt: its 95% interval lies wholly on the
        wrong side (what a quick run, too short to prove the bars, can still show)."""
        false_bad = self.role == "boundary" and self.pass_ci[0] > MAX_FALSE_PASS
        return self.coverage_ci[1] < MIN_COVERAGE or false_bad

    def to_dict(self) -> dict[str, Any]:
        return {
            "statistic": self.statistic, "generator": self.generator, "n": self.n, "role": self.role,
            "truth": self.truth, "trials": self.trials, "coverage": self.coverage, "coverage_ci": list(self.coverage_ci),
            "pass_rate": self.pass_rate, "pass_ci": list(self.pass_ci),
            "false_pass": self.pass_rate if self.role == "boundary" else None, "ok": self.ok,
            "surely_misses": self.surely_misses,
            "seconds": self.seconds, "note": self.note,
        }


def run_cell(family: Family, gen: Generator, trials: int, seed: int, n: int | None = None) -> Cell:
    rng = np.random.default_rng(seed)
    covered = passed = 0
    t0 = time.perf_counter()
    for _ in range(trials):
        lo, hi, decision = family.decide(gen.draw(rng))
        covered += bool(lo <= gen.truth <= hi)
        passed += decision == PASS
    # the calibration's own uncertainty is a 95% interval whatever level a session decides at
    return Cell(family.statistic, gen.name, gen.role, gen.truth, trials, covered, passed,
                time.perf_counter() - t0, gen.note,
                proportion_ci(covered, trials, 0.95), proportion_ci(passed, trials, 0.95), family.n if n is None else n)


def run_all(trials: int, only: list[str] | None = None, seed: int = 20261127,
            progress: Callable[[Cell], None] | None = None, generators: list[str] | None = None) -> list[Cell]:
    """Every cell of the registered families (``only`` those statistics, ``generators`` those generators).

    A cell's random stream depends on its family's and generator's places in the registry, so a
    cell re-run alone (``generators``) draws the same first trials as in a run of everything."""
    cells = []
    for i, (name, family) in enumerate(sorted(REGISTRY.items())):
        if only and name not in only:
            continue
        # costly families get fewer trials in quick mode; cheap ones (cost < 1) more in every mode,
        # so their cells are measured to a few tenths of a percent
        scaled = max(20, int(math.ceil(trials / family.trial_cost)))
        n = scaled if trials < FULL_TRIALS or family.trial_cost < 1 else trials
        sized = family.cells()
        if trials < FULL_TRIALS and len(sized) > 1:
            n = min(n, trials)  # a quick run of a family at many N: the quick trials, not more
            if family.trial_cost >= 1:
                sized = sized[:1]  # and a costly family at its first N only (the full run measures every N)
        for k, (size, gens) in enumerate(sized):
            # a trial's cost grows with its N: a quick run measures a costly family at a larger N on fewer trials
            m = n if trials >= FULL_TRIALS or family.trial_cost < 1 else max(20, n * family.n // max(size, family.n))
            for j, gen in enumerate(gens):
                if generators and gen.name not in generators:
                    continue
                cells.append(_measure(family, gen, m, trials, seed + 1000 * i + j + 100_000 * k, size))
                if progress is not None:
                    progress(cells[-1])
    return cells


def _measure(family: Family, gen: Generator, n: int, asked: int, seed: int, size: int) -> Cell:
    cell = run_cell(family, gen, n, seed, size)
    if asked >= FULL_TRIALS and not cell.ok and not cell.surely_misses:
        # the same stream: the first n trials are among the new ones, so the verdict rests on all
        cell = run_cell(family, gen, RECHECK_FACTOR * n, seed, size)
        cell.note = f"re-measured on {cell.trials} trials: below a bar within the noise of {n}" + (
            f"; {cell.note}" if cell.note else "")
    return cell


def _pct(x: float) -> str:
    return f"{100 * x:.1f}"


def markdown_table(cells: list[Cell]) -> str:
    out = [
        "| statistic | generator | N | role | truth | trials | coverage % [95% CI] | pass % [95% CI] | meets bars |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for c in cells:
        passes = f"{_pct(c.pass_rate)} [{_pct(c.pass_ci[0])}, {_pct(c.pass_ci[1])}]"
        label = {"boundary": "false pass", "inside": "power", "away": "pass"}[c.role]
        out.append(
            f"| {c.statistic} | {c.generator} | {c.n} | {c.role} | {c.truth:.4g} | {c.trials} | "
            f"{_pct(c.coverage)} [{_pct(c.coverage_ci[0])}, {_pct(c.coverage_ci[1])}] | {label} {passes} | "
            f"{'yes' if c.ok else '**no**'} |"
        )
    return "\n".join(out) + "\n"
