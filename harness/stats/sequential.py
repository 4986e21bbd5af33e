"""Sequential decisions: train a law point in rounds and stop as soon as every claim is decided.

A point whose tier declares N runs per ensemble is looked at after N0, 2·N0,
4·N0, … runs, and at N itself (``looks``). At each look the point's test body
runs in a dry mode (``LawContext.dry``): its assertions are recorded instead of
raised. The point stops at the first look where every claim is decided (pass or
fail), or at N, where an undecided claim stays inconclusive.

Why the error rates stay valid: with K planned looks, every interval of every
look is built at level 1 − α/K instead of 1 − α (α = 1 − CONFIDENCE), through
``harness.stats.confidence_level``. A wrong decision at *some* look needs at
least one of the K intervals to miss the truth, so by the union (Bonferroni)
bound the chance of that over all looks is at most K·α/K = α, whatever the
dependence between looks (they share runs), and however the stopping time is
chosen. This is the simplest alpha-spending rule (equal spending); it is
conservative, and the price is an interval at N that is wider than a single
look's (z = 2.50 instead of 1.96 for K = 4). A claim's false-pass rate at its
threshold is then ≤ α/2 for a one-sided claim; ``false_pass_rate`` measures
it on generators with known truth, and ``calibration_cells`` hands those to
the calibration command.

The looks are planned from N alone (never from data), which the union bound
needs: K is fixed before the first run is trained.

Open-ended looks (``--budget``): a point may look again at 2N, 4N, … for as long
as the budget lasts, so K is not known in advance. Its k-th look (k = 1, 2, …)
then uses level 1 − α·2^−k (``spending_level``). The α_k = α·2^−k sum to α over
any number of looks, so the same union bound holds without a K: the chance that
any interval of the sequence misses the truth is at most Σ α_k ≤ α, whatever the
stopping time (which the budget and the data choose). The price is a slowly
widening interval (z = 2.24 at the first look, 2.96 at the fourth, 3.72 at the
eighth); ``harness.calibrate.sequential_rule`` measures its false-pass rate.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable, Sequence

import numpy as np

from harness.stats import CLAIM, CONFIDENCE, FAIL, PASS, LawResult, t_interval
from harness.stats.fragility import is_fragile

#: runs per ensemble at the first look. Chosen before looking at data: the cross-fitted
#: bootstrap statistics of the laws group runs in up to 256 groups and need tens of runs
#: for a usable interval; with N0 = 64 a smoke point (N = 512) gets 4 looks.
N0 = 64


def looks(n_max: int, n0: int = N0) -> list[int]:
    """Run counts at which a point with tier maximum ``n_max`` is decided: n0, 2·n0, … , n_max."""
    out: list[int] = []
    n = n0
    while n < n_max:
        out.append(n)
        n *= 2
    return out + [n_max]


def look_level(k_looks: int, confidence: float = CONFIDENCE) -> float:
    """Two-sided level of every interval when a point has ``k_looks`` planned looks (Bonferroni)."""
    return 1.0 - (1.0 - confidence) / k_looks


def spending_level(k: int, confidence: float = CONFIDENCE) -> float:
    """Two-sided level of the k-th look (k = 1, 2, …) of an open-ended sequence: α_k = α·2^−k."""
    if k < 1:
        raise ValueError(f"looks are counted from 1, got {k}")
    return 1.0 - (1.0 - confidence) * 2.0**-k


def decided(results: list[LawResult]) -> bool:
    """Every claim of the point is pass or fail beyond the machine spread (no claim left
    inconclusive, none fragile: a decision that may move on another machine is no stop).

    Checks (identities, probe correctness) do not keep a point training: a point of
    checks alone is decided by its first look.
    """
    claims = [r for r in results if r.kind == CLAIM] or results
    return bool(claims) and all(r.decision in (PASS, FAIL) and not is_fragile(r) for r in claims)


def scaled(n: int, look: int, n_max: int) -> int:
    """An ensemble of tier size ``n`` at a look of ``look`` runs out of the point's ``n_max``."""
    return max(1, math.ceil(n * look / n_max))  # past n_max (--budget) the ensembles grow in proportion


@dataclass
class PointState:
    """Where one law point stands: its planned looks and the look it is at."""

    n_max: int
    plan: list[int]
    k: int = 0
    done: bool = False
    #: looks may go on past ``n_max`` (``--budget``): levels by ``spending_level``
    open_ended: bool = False
    #: per claim statistic, (runs, side of its interval facing the threshold) at each dry look:
    #: how the interval shrank, for the projection of runs to decide
    history: dict[str, list[tuple[int, float]]] = field(default_factory=dict)

    @classmethod
    def new(cls, n_max: int, fixed: bool = False, open_ended: bool = False) -> "PointState":
        return cls(n_max, [n_max] if fixed or n_max <= 0 else looks(n_max), open_ended=open_ended)

    @property
    def n(self) -> int:
        return self.plan[self.k]

    @property
    def level(self) -> float:
        return spending_level(self.k + 1) if self.open_ended else look_level(len(self.plan))

    def extend(self) -> None:
        """One more look, at twice the last one's runs (open-ended points only)."""
        if not self.open_ended:
            raise ValueError("only an open-ended point looks past its tier's maximum")
        self.plan.append(2 * self.plan[-1])
        self.k, self.done = len(self.plan) - 1, False

    def stop_at(self, n: int) -> None:
        """Stop at the look of ``n`` runs without looking: an earlier session's looks on the same
        runs and code stopped there (``harness.plugin.stops``)."""
        self.k, self.done = self.plan.index(n), True

    def advance(self, verdict: bool | None) -> None:
        """After a look: decided → stop; undecided → next look; no verdict (the body could not
        run dry) → jump to the maximum, where the real test decides once."""
        last = len(self.plan) - 1
        if verdict or self.k == last:
            self.done = True
        elif verdict is None:
            self.k = last
        else:
            self.k += 1


def run_rounds(points: dict[str, PointState], train: Callable[[], None],
               look: Callable[[str, PointState], bool | None],
               extend: Callable[[list[str]], list[str]] | None = None) -> int:
    """Alternate one training round for every undecided point and one look at each; returns rounds.

    ``train`` trains every point up to its current ``n`` (decided points stay where
    they stopped), so one round of all undecided points goes to the executor at once.
    With ``extend`` (``--budget``), open-ended points still undecided at their last look are
    offered to it; those it returns look again at twice the runs, and the rounds go on.
    """
    rounds = 0
    undecided: list[str] = []
    while True:
        while any(not p.done for p in points.values()):
            train()
            rounds += 1
            for nodeid, p in points.items():
                if p.done:
                    continue
                last = p.k == len(p.plan) - 1
                if last and not p.open_ended:
                    p.advance(True)  # the real test decides anyway: no dry look (none with --fixed-n)
                    continue
                verdict = look(nodeid, p)
                p.advance(verdict)
                if last and verdict is False:
                    undecided.append(nodeid)
        if extend is None or not undecided:
            return rounds
        chosen = extend(undecided)
        if not chosen:
            return rounds
        undecided = [n for n in undecided if n not in chosen]
        for nodeid in chosen:
            points[nodeid].extend()


def choose_extensions(candidates: dict[str, tuple[float, float]], remaining: float) -> list[str]:
    """Which undecided points look again: ``candidates`` maps a point to (projected seconds to
    decide it, seconds of its next look). Cheapest to decide first, as many next looks as the
    ``remaining`` budget holds; if none fits but some budget is left, the cheapest alone, so no
    point overshoots the budget by more than one look. Points that cannot be projected (infinite
    cost) are never chosen."""
    if remaining <= 0:
        return []
    order = sorted((c, nxt, n) for n, (c, nxt) in candidates.items() if math.isfinite(c))
    chosen, spent = [], 0.0
    for _, nxt, n in order:
        if spent + nxt <= remaining:
            chosen.append(n)
            spent += nxt
    return chosen or [n for _, _, n in order[:1]]


# ------------------------------------------------------------------ calibration --

@dataclass(frozen=True)
class Cell:
    """One generator with known truth for the sequential rule: mean ``truth`` of noisy runs."""

    name: str
    truth: float
    threshold: float
    n_max: int
    noise: str  # "normal" or "t3" (heavy tails)
    trials: int = 2000


def _draw(cell: Cell, rng: np.random.Generator) -> np.ndarray:
    if cell.noise == "t3":
        x = rng.standard_t(3, size=cell.n_max) / math.sqrt(3.0)  # unit variance
    else:
        x = rng.standard_normal(cell.n_max)
    return cell.truth + x


def sequential_interval(runs: np.ndarray, threshold: float, plan: list[int],
                        level: float | Sequence[float]) -> tuple[float, float, str, int]:
    """The rule on one claim 'mean > threshold' with the package's mean interval
    (``harness.stats.t_interval``: Student-t joined with its skewness correction, which
    keeps the 64 runs of the first look covered when they are strongly skewed): the
    interval of the look it stopped at, the decision and the runs used."""
    levels = [level] * len(plan) if isinstance(level, float) else list(level)
    for n, lvl in zip(plan, levels):
        lo, hi = t_interval(runs[:n], lvl)
        if lo > threshold:
            return lo, hi, PASS, n
        if hi < threshold:
            return lo, hi, FAIL, n
    return lo, hi, "inconclusive", plan[-1]


def sequential_decision(runs: np.ndarray, threshold: float, plan: list[int], level: float) -> tuple[str, int]:
    """The rule on one claim 'mean > threshold': (decision, runs used)."""
    _, _, decision, n = sequential_interval(runs, threshold, plan, level)
    return decision, n


def false_pass_rate(cell: Cell, n0: int = N0, level: float | None = None, seed: int = 0) -> tuple[float, float]:
    """Share of trials the rule passes (a false pass when truth ≤ threshold) and mean runs used.

    ``level`` overrides the rule's level per look (a naive 95% at every look is the
    negative control: its false-pass rate grows with the number of looks).
    """
    plan = looks(cell.n_max, n0)
    lvl = look_level(len(plan)) if level is None else level
    rng = np.random.default_rng(seed)
    passes, used = 0, 0
    for _ in range(cell.trials):
        decision, n = sequential_decision(_draw(cell, rng), cell.threshold, plan, lvl)
        passes += decision == PASS
        used += n
    return passes / cell.trials, used / cell.trials


def calibration_cells() -> list[Cell]:
    """Generators at the threshold (false pass must be ≤ 5%) for tests; ``python -m harness calibrate``
    measures the same rule in ``harness.calibrate.sequential_rule``."""
    return [
        Cell("seq-normal-at-threshold", truth=0.0, threshold=0.0, n_max=512, noise="normal"),
        Cell("seq-heavy-tails-at-threshold", truth=0.0, threshold=0.0, n_max=512, noise="t3"),
        Cell("seq-many-looks-at-threshold", truth=0.0, threshold=0.0, n_max=4096, noise="normal"),
    ]
