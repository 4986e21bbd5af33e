"""The core of ``harness.stats`` (re-exported there): ``LawResult``, the decision rule, the level
in force and the generic intervals. Builders and law statistics import from here."""
from __future__ import annotations

import contextlib
import functools
import math
from contextvars import ContextVar
from dataclasses import asdict, dataclass, field
from typing import Any, Iterator, Sequence

import numpy as np

PASS, FAIL, INCONCLUSIVE, NOT_RUN = "pass", "fail", "inconclusive", "not_run"
#: a row its statistic cannot decide at its N whatever the data (``LawResult.testable_at`` says at which N it
#: could): neither undecided nor a claim the point is made of
UNTESTABLE = "untestable"
#: a row's kind: a *claim* is a seed's empirical statement and makes a point's decision; a *check*
#: is an identity, a theorem or a probe's correctness, and failing it is an error of the harness; a
#: *sanity* row shows the setup behaves as the claim presupposes (a published figure reproduced, a
#: consequence any such run shows) but cannot tell the claim from its negation: it is counted apart,
#: and it decides a point only where the point has no claim
CLAIM, CHECK, SANITY = "claim", "check", "sanity"
KINDS = (CLAIM, CHECK, SANITY)

#: default two-sided confidence level of every interval
CONFIDENCE = 0.95
#: The level in force for the law point being decided. A sequential decision (several
#: looks at a growing ensemble) lowers it per look to keep the error rate over all looks
#: valid; every interval builder resolves ``confidence=None`` through ``current_confidence()``.
_LEVEL: ContextVar[float] = ContextVar("lrlaws_confidence", default=CONFIDENCE)


def current_confidence() -> float:
    return _LEVEL.get()


@contextlib.contextmanager
def confidence_level(level: float) -> Iterator[None]:
    """Within the block, intervals built with ``confidence=None`` use ``level``."""
    if not 0.0 < level < 1.0:
        raise ValueError(f"confidence level must be in (0, 1), got {level}")
    token = _LEVEL.set(level)
    try:
        yield
    finally:
        _LEVEL.reset(token)


#: bootstrap resamples; 2000 keeps the Monte-Carlo error of a 95% bound ~0.5%
N_BOOT = 2000
#: runs are pooled into at most this many groups before resampling (bootstrap cost ~ G²)
MAX_GROUPS = 256


@dataclass
class LawResult:
    """One decision about one law at one parameter point."""

    statistic: str
    value: float
    ci: tuple[float, float]
    threshold: float | tuple[float, float]
    direction: str  # ">" (value must exceed), "<", "in" (inside a band)
    #: left out, it is ``decide(ci, threshold, direction)``: the one rule every row is decided by
    decision: str = ""
    n: int = 0
    seeds: tuple[int, int] = (0, 0)  # half-open range of seeds used
    extra: dict[str, Any] = field(default_factory=dict)
    kind: str = CLAIM
    #: > 0: the row is untestable at its N and would be testable from this many seeds on
    testable_at: int = 0
    #: the law's name, filled in by ``law.check`` (an author never writes it)
    law: str = ""

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"LawResult kind must be one of {KINDS}, got {self.kind!r}")
        if self.testable_at > 0:
            self.decision = UNTESTABLE
        elif not self.decision:
            self.decision = decide(self.ci, self.threshold, self.direction)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["ci"] = list(self.ci)
        d["seeds"] = list(self.seeds)
        if isinstance(self.threshold, tuple):
            d["threshold"] = list(self.threshold)
        return d

    def summary(self) -> str:
        thr = self.threshold
        t = f"[{thr[0]:.4g}, {thr[1]:.4g}]" if isinstance(thr, tuple) else f"{thr:.4g}"
        if self.testable_at > 0:
            return (f"[{self.kind}] {self.statistic}: untestable at N={self.n} (needs {self.direction} {t}; "
                    f"testable from N={self.testable_at})")
        return (
            f"[{self.kind}] {self.statistic} = {self.value:.4g}, {int(CONFIDENCE * 100)}% CI "
            f"[{self.ci[0]:.4g}, {self.ci[1]:.4g}], needs {self.direction} {t} (N={self.n}): {self.decision}"
        )


def decide(ci: tuple[float, float], threshold: float | tuple[float, float], direction: str) -> str:
    lo, hi = ci
    if not (math.isfinite(lo) and math.isfinite(hi)):
        return INCONCLUSIVE
    if direction == ">":
        return PASS if lo > threshold else FAIL if hi < threshold else INCONCLUSIVE
    if direction == "<":
        return PASS if hi < threshold else FAIL if lo > threshold else INCONCLUSIVE
    if direction == "in":
        a, b = threshold  # type: ignore[misc]
        if a <= lo and hi <= b:
            return PASS
        if hi < a or lo > b:
            return FAIL
        return INCONCLUSIVE
    raise ValueError(f"unknown direction {direction!r}")


def combine(decisions: Sequence[str]) -> str:
    """A law point with several assertions passes only if all pass; any fail fails it. Untestable rows
    take no part; a point of untestable rows alone is inconclusive."""
    decisions = [d for d in decisions if d != UNTESTABLE]
    if not decisions:
        return INCONCLUSIVE
    if FAIL in decisions:
        return FAIL
    if all(d == PASS for d in decisions):
        return PASS
    return INCONCLUSIVE



#: Few seeds: the mean interval's error rate is this share of the level's α below each N. Why: at the
#: nominal level, Student-t ∪ Hall passed falsely 7-10% at N = 8 (1-in-N minorities 4 sd low, 10%
#: minorities 5 sd low, lognormal σ = 1, χ²₁) and 5.4-8.5% up to N = 64 (lognormal σ = 1); at these
#: shares every such cell is ≤ 5% (``calibrate``'s table at every N, docs/statistics.md).
SMALL_N_ALPHA = ((8, 0.05), (16, 0.1), (32, 0.2), (64, 0.4), (128, 0.6))
#: below this many seeds no interval of a mean holds on skewed seeds: its rows are untestable
MIN_MEAN_N = 3


def mean_level(confidence: float, n: int) -> float:
    """The level a mean interval over ``n`` seeds is built at, for a decision at ``confidence``."""
    share = next((s for below, s in SMALL_N_ALPHA if n < below), 1.0)
    return 1.0 - (1.0 - confidence) * share


def mean_ci(values: Sequence[float] | np.ndarray, confidence: float | None = None) -> tuple[float, tuple[float, float]]:
    """Mean and interval over independent runs (e.g. one value per seed): the union of the
    Student-t interval and Hall's skewness-corrected t interval (``t_interval``), at the stricter
    level ``mean_level`` on few seeds."""
    confidence = current_confidence() if confidence is None else confidence
    x = np.asarray(values, dtype=float)
    x = x[np.isfinite(x)]
    if x.size < 2:
        return float(x.mean()) if x.size else math.nan, (-math.inf, math.inf)
    return float(x.mean()), t_interval(x, mean_level(confidence, x.size))


@functools.lru_cache(maxsize=512)
def t_quantile(confidence: float, df: int) -> float:
    """The Student-t quantile of a two-sided ``confidence`` interval with ``df`` degrees of freedom."""
    from scipy import stats as sps  # lazy: scipy.stats costs ~0.6 s to import
    return float(sps.t.ppf(0.5 + confidence / 2, df))


def t_interval(x: np.ndarray, confidence: float) -> tuple[float, float]:
    """Interval for the mean of finite values ``x`` (n >= 2) that survives skewed seeds.

    The Student-t interval alone errs on the short-tail side when the values are
    skewed (a minority of seeds in another basin, lognormal runs): the mean and the
    standard deviation move together, so a low mean comes with a small s. Hall's
    (1992, "On the removal of skewness by transformation", JRSS B 54) monotone
    cubic transform g(t) = t + γ̂t²/(3√n) + γ̂²t³/(27n) + γ̂/(6√n) of the t statistic
    removes the first-order skewness term; its interval is [x̄ − s·g⁻¹(q)/√n,
    x̄ − s·g⁻¹(−q)/√n]. It alone under-covers symmetric heavy tails (where γ̂ is
    noise), the t interval alone under-covers skew; the union covers at least as
    often as either, and only ever widens the t interval (fewer passes, never more).
    """
    n = x.size
    m, s = float(x.mean()), float(x.std(ddof=1))
    q = t_quantile(confidence, n - 1)
    lo, hi = m - q * s / math.sqrt(n), m + q * s / math.sqrt(n)
    sd = float(x.std())
    if s == 0 or sd == 0:
        return lo, hi
    gamma = float(np.mean((x - m) ** 3)) / sd**3
    if gamma == 0:
        return lo, hi
    u, shift = gamma / (3 * math.sqrt(n)), gamma / (6 * math.sqrt(n))

    def g_inv(y: float) -> float:
        # g(t) = ((1 + u·t)³ − 1)/(3u) + shift is increasing (g' = (1 + u·t)² ≥ 0): a real cube root inverts it
        return float((np.cbrt(1 + 3 * u * (y - shift)) - 1) / u)

    return min(lo, m - s * g_inv(q) / math.sqrt(n)), max(hi, m - s * g_inv(-q) / math.sqrt(n))


def bootstrap_interval(theta: float, reps: np.ndarray, confidence: float | None = None,
                       method: str = "basic", expected: int | None = None) -> tuple[float, float]:
    """The one bootstrap interval of the package, from replicates ``reps`` of an estimate ``theta``.

    ``basic`` (pivotal: 2θ̂ − q_hi, 2θ̂ − q_lo) or ``percentile`` (q_lo, q_hi). Non-finite
    replicates (e.g. a resample whose ratio's denominator vanished) are dropped; if more
    than 10% of ``expected`` (default: all replicates) are, the interval is (−inf, inf).
    """
    confidence = current_confidence() if confidence is None else confidence
    reps = np.asarray(reps, dtype=float)
    total = reps.size if expected is None else expected
    reps = reps[np.isfinite(reps)]
    if not math.isfinite(theta) or total == 0 or reps.size < 0.9 * total:
        return (-math.inf, math.inf)
    alpha = (1 - confidence) / 2
    qlo, qhi = np.quantile(reps, [alpha, 1 - alpha])
    if method == "percentile":
        return (float(qlo), float(qhi))
    if method != "basic":
        raise ValueError(f"unknown bootstrap method {method!r}")
    return (float(2 * theta - qhi), float(2 * theta - qlo))


def bootstrap_ci(
    values: np.ndarray, fn, n_boot: int = N_BOOT, confidence: float | None = None, rng: np.random.Generator | int = 0
) -> tuple[float, tuple[float, float]]:
    """``fn`` over runs (axis 0) with a basic-bootstrap interval from resampling runs."""
    rng = np.random.default_rng(rng)
    values = np.asarray(values)
    theta = float(fn(values))
    idx = rng.integers(0, len(values), size=(n_boot, len(values)))
    reps = np.array([fn(values[i]) for i in idx], dtype=float)
    return theta, bootstrap_interval(theta, reps, confidence)
