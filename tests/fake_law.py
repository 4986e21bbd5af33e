"""Driving a law's own test function on synthetic runs, and the mutations of what it binds (tests/test_law_bodies.py).

``drive`` resolves the ensembles a law test reads from its ``@lrlaw`` mark (``resolve_needs`` at the
smoke tier, as the plugin does), serves synthetic per-seed metrics and arrays for them through a
fake store, and runs the test body with the real ``LawContext`` in a dry look: ``law.check`` records
the rows without raising, figures are drawn and dropped.

A law module binds builders (functions of ``harness.stats`` returning a ``LawResult``, and
``LawResult`` itself) and statistics (the other functions of ``harness.stats`` it calls).
``passing_row`` stands in for a builder: a row that passes, whatever the data. ``Replay`` stands in for
a statistic: it returns, call by call, what the statistic returned on data where the law holds, so the
statistic no longer looks at the data it is given.
"""
from __future__ import annotations

import ast
import copy
import inspect
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any, Callable

import numpy as np

from harness.law import resolve_needs
from harness.law.context import LawContext
from harness.law.runs import EnsembleRuns
from harness.recipe import Ensemble
from harness.stats import CLAIM, PASS
from harness.stats.core import LawResult
from harness.store.cache import RunCache
from harness.store.index import RunRecord


@dataclass
class Runs:
    """Synthetic runs of one ensemble: metrics [N] and arrays [N, ...] per name, and which runs diverged."""

    metrics: dict[str, np.ndarray] = field(default_factory=dict)
    arrays: dict[str, np.ndarray] = field(default_factory=dict)
    diverged: np.ndarray | None = None

    @property
    def n(self) -> int:
        return len(next(iter({**self.metrics, **self.arrays}.values())))


#: synthetic runs of an ensemble, from its name in the law and the ensemble itself
Data = Callable[[str, Ensemble], Runs]


class FakeStore:
    """Serves ``Runs`` per key the way ``harness.store.index.Store`` serves stored runs (seeds 0..N-1)."""

    def __init__(self, runs: dict[str, Runs]) -> None:
        self.runs = runs

    def records(self, key: str, seeds: Any = None) -> dict[int, RunRecord]:
        r = self.runs[key]
        bad = np.zeros(r.n, bool) if r.diverged is None else np.asarray(r.diverged, bool)
        return {s: RunRecord(key, s, "diverged" if bad[s] else "ok", "", "", 0.0, "cpu",
                             {k: float(v[s]) for k, v in r.metrics.items()}) for s in range(r.n)}

    def load(self, key: str, seed: int) -> tuple[RunRecord, dict[str, np.ndarray]]:
        return self.records(key)[seed], {k: np.asarray(v[seed]) for k, v in self.runs[key].arrays.items()}


def lrlaw_mark(test: Callable[..., Any]) -> Any:
    return next(m for m in getattr(test, "pytestmark", []) if m.name == "lrlaw")


def drive(test: Callable[..., Any], data: Data, params: dict[str, Any], n: int | None = None,
          tier: str = "smoke") -> LawContext:
    """Run ``test`` (a law test function) on ``data`` for the ensembles its mark resolves at ``tier``;
    ``n`` overrides every ensemble's N. Returns the dry context, whose ``results`` are the rows."""
    mark = lrlaw_mark(test)
    ensembles, config = resolve_needs(mark, tier, params)
    if n is not None:
        ensembles = {k: Ensemble(e.recipe, n) for k, e in ensembles.items()}
    store = FakeStore({k: data(k, e) for k, e in ensembles.items()})
    for k, e in ensembles.items():
        assert store.runs[k].n == e.n, f"synthetic data for {k} has {store.runs[k].n} runs, the ensemble {e.n}"
    cache = RunCache(store)  # type: ignore[arg-type]
    law = LawContext(f"laws/{test.__module__}::{test.__name__}", mark.kwargs["name"], tier, dict(params),
                     {k: EnsembleRuns(k, k, e, store, cache) for k, e in ensembles.items()},  # type: ignore[arg-type]
                     Path("/nonexistent/plots"), config=config, dry=True)
    test(law, **params)
    return law


@dataclass(frozen=True)
class Case:
    """One run of a law test's body on synthetic data, and the decision each named row must take there.

    ``complete``: the data where the law holds; ``expect`` then names every row the body gives.
    ``why`` says why an expected decision is neither pass nor fail (a row the smoke N cannot decide).
    """

    test: Callable[..., Any]
    label: str
    data: Data
    expect: dict[str, str]
    params: tuple[tuple[str, Any], ...] = ()
    n: int | None = None
    complete: bool = False
    why: str = ""

    @property
    def group(self) -> tuple[str, str, int | None]:
        """The cases of one law point (test and parameters) at one N."""
        return self.test.__name__, self.param_id, self.n

    @property
    def param_id(self) -> str:
        return ",".join(str(getattr(v, "id", v)) for _, v in self.params)

    @property
    def id(self) -> str:
        p = f"[{self.param_id}]" if self.params else ""
        return f"{self.test.__name__.removeprefix('test_')}{p}{'' if self.n is None else f'@N{self.n}'}-{self.label}"

    def run(self) -> list[LawResult]:
        """The body's rows; the seed-independence checks ``law.check`` adds to every point are the context's, not
        the body's (tests/test_dependence.py controls them)."""
        rows = drive(self.test, self.data, dict(self.params), self.n).results
        return [r for r in rows if not r.statistic.endswith(":seed_independence_p")]

    def wrong(self, rows: list[LawResult]) -> str | None:
        """The first expected decision the rows do not take, or None."""
        got = {r.statistic: r for r in rows}
        for stat, decision in self.expect.items():
            if stat not in got:
                return f"{self.id}: no row {stat!r} (rows: {sorted(got)})"
            if got[stat].decision != decision:
                return f"{self.id}: {got[stat].summary()}, expected {decision}"
        return None


def rng(tag: str) -> np.random.Generator:
    """A generator fixed by ``tag`` (not by ``hash``, which changes per process)."""
    return np.random.default_rng(zlib.crc32(tag.encode()))


def noise(tag: str, *shape: int) -> np.ndarray:
    """Standard normal draws fixed by ``tag``."""
    return rng(tag).standard_normal(shape)


# ------------------------------------------------------------------------------ mutations --

def called_names(module: ModuleType) -> set[str]:
    """Names the module's source calls (``f(...)``), so a name imported for annotations only is not a
    mutation target: replacing it cannot change a row."""
    tree = ast.parse(Path(inspect.getfile(module)).read_text())
    return {n.func.id for n in ast.walk(tree) if isinstance(n, ast.Call) and isinstance(n.func, ast.Name)}


def bound_statistics(module: ModuleType) -> dict[str, Callable[..., Any]]:
    """Functions of ``harness.stats`` (``LawResult`` included) the law module binds and calls."""
    calls = called_names(module)
    return {name: obj for name, obj in vars(module).items()
            if callable(obj) and str(getattr(obj, "__module__", "")).startswith("harness.stats") and name in calls}


def is_builder(fn: Callable[..., Any]) -> bool:
    """``LawResult`` and the functions that return one (by their annotation)."""
    if fn is LawResult:
        return True
    try:
        ret = inspect.signature(fn).return_annotation
    except (TypeError, ValueError):
        return False
    return ret in (LawResult, "LawResult")


def passing_row(*args: Any, **kw: Any) -> LawResult:
    """A builder's stand-in: the row it was asked for (its statistic, kind and extras), decided PASS."""
    statistic = kw.pop("statistic", None) or args[0]
    extra = kw.pop("extra", None) or {k: v for k, v in kw.items() if k not in ("kind", "n", "testable_at")}
    return LawResult(statistic, 1.0, (1.0, 1.0), 0.0, ">", decision=PASS, n=int(kw.get("n", 0)),
                     extra=dict(extra), kind=kw.get("kind", CLAIM))


class Replay:
    """A statistic's stand-in: records its outputs on one run of a body, then returns them in call order.

    Where a body calls it more often than when it recorded, the last output is returned again; a
    body that never called it while recording gets the real statistic (nothing to replay).
    """

    def __init__(self, fn: Callable[..., Any]) -> None:
        self.fn, self.tape, self.i, self.recording = fn, [], 0, True
        self.recorded = 0  # calls recorded over every ``record``

    def record(self) -> None:
        self.tape, self.recording = [], True

    def replay(self) -> None:
        self.i, self.recording = 0, False

    def __call__(self, *args: Any, **kw: Any) -> Any:
        if self.recording:
            out = self.fn(*args, **kw)
            self.tape.append(copy.deepcopy(out))
            self.recorded += 1
            return out
        if not self.tape:
            return self.fn(*args, **kw)
        out = self.tape[min(self.i, len(self.tape) - 1)]
        self.i += 1
        return copy.deepcopy(out)
