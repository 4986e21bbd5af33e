"""The API law modules use: declare needs with ``@lrlaw``, read runs and decide through the ``law`` fixture.

A law test declares its configuration per tier on the law, and what it reads::

    @lrlaw("linearity", tiers={"smoke": SMOKE, "gpu": GPU},
           needs=lambda cfg, point: {"eta": Ensemble(cfg.base.replace(lr=point), cfg.n), ...})
    @pytest.mark.parametrize("point", POINTS, ids=...)
    def test_linearity(law, point):
        logits = law.runs("eta").array("logits")        # N x ... stacked over seeds (small N)
        chunks = law.runs("eta").chunks("logits")       # the same, 256 seeds at a time (any N)
        law.check(stats_result_1, stats_result_2)         # pass / fail / inconclusive

With ``tiers``, ``needs`` gets the session tier's configuration (any object; the
test reads it back as ``law.config``), and a tier the law does not declare is
reported as not tested there. Without ``needs``, each tier's configuration must
be the ensembles themselves (a mapping name -> ``Ensemble``). The older form,
``@lrlaw(name, needs=lambda tier, **params: ...)``, gets the tier's name and may
raise ``NotAtThisTier(reason)``.

``needs`` is called at collection time with the test's parameters, so the plugin
knows every run the selected tests read before any test starts. A ``needs`` that
raises (a wrong signature, a bug) fails its own test with one line; the other
tests run.
"""
from __future__ import annotations

import contextlib
import inspect
import dataclasses
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator, Mapping

import numpy as np
import pytest

from harness.recipe import Ensemble
from harness.stats import CHECK, CLAIM, FAIL, INCONCLUSIVE, PASS, LawResult, combine

from harness.store import StoreError

if TYPE_CHECKING:
    from harness.store import RunRecord, Store

NeedsFn = Callable[..., Mapping[str, Ensemble]]


class NotAtThisTier(Exception):
    """Raised by a ``needs`` function: this law point is not tested at this tier."""


class NeedsError(Exception):
    """A law's ``needs`` could not say what the point reads; the message is one line."""


def lrlaw(name: str, needs: NeedsFn | None = None, *, tiers: Mapping[str, Any] | None = None) -> pytest.MarkDecorator:
    """Mark a test as a point of law ``name``; see the module docstring for ``needs`` and ``tiers``."""
    if needs is None and tiers is None:
        raise TypeError(f"@lrlaw({name!r}) needs `tiers=` or `needs=`: say which runs the law reads")
    if tiers is not None and not isinstance(tiers, Mapping):
        raise TypeError(f"@lrlaw({name!r}, tiers=...) takes a dict tier name -> configuration, got {type(tiers).__name__}")
    return pytest.mark.lrlaw(name=name, needs=needs, tiers=None if tiers is None else dict(tiers))


def _describe(fn: Callable[..., Any]) -> str:
    try:
        return f"{getattr(fn, '__qualname__', fn)}{inspect.signature(fn)}"
    except (TypeError, ValueError):
        return repr(fn)


def resolve_needs(mark: pytest.Mark, tier: str, params: Mapping[str, Any]) -> tuple[dict[str, Ensemble], Any]:
    """The ensembles an ``@lrlaw`` point reads at ``tier``, and the tier's configuration (None in the old form).

    Raises ``NotAtThisTier`` for a tier the law does not test and ``NeedsError``
    (one line) when ``needs`` raises or returns something that is not ensembles.
    """
    name, needs, tiers = mark.kwargs["name"], mark.kwargs.get("needs"), mark.kwargs.get("tiers")
    config: Any = None
    if tiers is not None:
        if tier not in tiers:
            raise NotAtThisTier(f"{name} declares tiers {', '.join(tiers)} only")
        config = tiers[tier]
    first = config if tiers is not None else tier
    try:
        found = config if needs is None else needs(first, **params)
    except NotAtThisTier:
        raise
    except Exception as e:
        args = ", ".join(["<configuration>" if tiers is not None else "<tier name>", *(f"{k}=..." for k in params)])
        raise NeedsError(f"needs of law {name!r} failed: {type(e).__name__}: {e} — it is called as "
                         f"needs({args}); it is {_describe(needs)}") from None
    if not isinstance(found, Mapping) or not all(isinstance(v, Ensemble) for v in found.values()):
        raise NeedsError(f"needs of law {name!r} must give a dict name -> Ensemble, got {type(found).__name__}"
                         + ("" if needs is not None else f" as the configuration of tier {tier!r}"))
    return dict(found), config


#: seeds per chunk that ``EnsembleRuns.chunks`` stacks (memory ~ CHUNK x one run's array)
CHUNK = 256
#: bytes of run arrays a session keeps for tests that read the same ensemble again; beyond it
#: runs are streamed from the store on every read. Not measured: the smoke tier's largest
#: law (linearity) reads ~60 MB, a paper-tier ensemble (N = 40 000) would need ~30 GB.
CACHE_BYTES = 512 * 2**20


class RunCache:
    """The session's reads of the store: index rows per key, and run arrays up to a byte budget."""

    def __init__(self, store: "Store", budget: int = CACHE_BYTES) -> None:
        self.store = store
        self.budget = budget
        self.used = 0
        self._records: dict[str, dict[int, "RunRecord"]] = {}
        self._arrays: dict[tuple[str, int], dict[str, np.ndarray]] = {}
        self.loads = 0  # artifacts read from disk (tests assert reuse with it)

    def missing(self, key: str, seeds: range | list[int]) -> list[int]:
        """Seeds of ``key`` without a row in the index (artifacts are checked when read)."""
        have = self._records.setdefault(key, {})
        if any(s not in have for s in seeds):
            have.update(self.store.records(key))  # one index query for all seeds of the key
        return [s for s in seeds if s not in have]

    def records(self, key: str, seeds: range | list[int]) -> list["RunRecord"]:
        if missing := self.missing(key, seeds):
            raise StoreError(f"{len(missing)} runs of {key[:12]} are not in the store (first seed {missing[0]})")
        have = self._records[key]
        return [have[s] for s in seeds]

    def arrays(self, key: str, seed: int) -> dict[str, np.ndarray]:
        hit = self._arrays.get((key, seed))
        if hit is not None:
            return hit
        _, arrays = self.store.load(key, seed)
        self.loads += 1
        size = sum(a.nbytes for a in arrays.values())
        if self.used + size <= self.budget:
            self._arrays[(key, seed)] = arrays
            self.used += size
        return arrays


@dataclass
class EnsembleRuns:
    """The stored runs of one ensemble: index rows read at once, arrays streamed in chunks of seeds."""

    name: str
    key: str
    ensemble: Ensemble
    store: "Store"
    cache: RunCache | None = None
    _read: bool = False

    def _cache(self) -> RunCache:
        if self.cache is None:
            self.cache = RunCache(self.store, budget=0)
        self._read = True
        return self.cache

    def _records(self) -> list["RunRecord"]:
        return self._cache().records(self.key, self.ensemble.seeds)

    @property
    def n(self) -> int:
        return self.ensemble.n

    @property
    def seeds(self) -> range:
        return self.ensemble.seeds

    @property
    def loaded(self) -> bool:
        """Whether the test read these runs (only runs it read count towards its compute)."""
        return self._read

    def chunks(self, name: str, mask: np.ndarray | None = None, size: int = CHUNK) -> Iterator[np.ndarray]:
        """The array ``name`` of the seeds where ``mask`` is true, stacked ``size`` seeds at a time.

        Statistics over large ensembles read through this, so memory stays flat in N.
        """
        cache = self._cache()
        seeds = [s for i, s in enumerate(self.ensemble.seeds) if mask is None or mask[i]]
        for start in range(0, len(seeds), size):
            yield np.stack([cache.arrays(self.key, s)[name] for s in seeds[start : start + size]])

    def array(self, name: str) -> np.ndarray:
        """N x ... stacked over seeds: for small ensembles; large ones go through ``chunks``."""
        return np.concatenate(list(self.chunks(name)))

    def metric(self, name: str) -> np.ndarray:
        return np.array([rec.metrics.get(name, np.nan) for rec in self._records()], dtype=float)

    @property
    def status(self) -> np.ndarray:
        return np.array([rec.status for rec in self._records()])

    @property
    def seconds(self) -> float:
        return float(sum(rec.seconds for rec in self._records()))

    @property
    def devices(self) -> list[str]:
        return sorted({rec.device for rec in self._records()})


@dataclass
class LawContext:
    """What the ``law`` fixture hands a test: its runs, and the place its decision goes."""

    nodeid: str
    name: str
    tier: str
    params: dict[str, Any]
    ensembles: dict[str, EnsembleRuns]
    plot_dir: Path
    inconclusive: str = "skip"
    #: the configuration ``@lrlaw(tiers=...)`` declares for this tier (None in the ``needs(tier, ...)`` form)
    config: Any = None
    seed_base: int = 0
    #: a sequential look: ``check`` records without raising, figures are not saved
    dry: bool = False
    #: the pytest item of the point (for ``known_failure``); None outside a session
    node: Any = None
    #: runs this point used (per ensemble, the largest) and its tier's maximum
    runs_used: int = 0
    runs_max: int = 0
    looks: int = 1
    results: list[LawResult] = field(default_factory=list)
    plots: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def runs(self, name: str) -> EnsembleRuns:
        try:
            return self.ensembles[name]
        except KeyError:
            raise KeyError(f"law {self.name!r} declared no ensemble {name!r}; declared: {sorted(self.ensembles)}") from None

    def known_failure(self, reason: str) -> None:
        """This point's claim is a recorded finding that does not hold at this tier: a strict xfail,
        so the point still trains, reports and plots, and flips loudly if it starts to hold."""
        if not self.dry and self.node is not None:
            self.node.add_marker(pytest.mark.xfail(strict=True, reason=f"finding at {self.tier}: {reason}"))

    def note(self, text: str) -> None:
        """A line for the report (e.g. a finding that is not itself an assertion)."""
        self.notes.append(text)

    @contextlib.contextmanager
    def figure(self, name: str, **subplots_kw: Any) -> Iterator[Any]:
        """``with law.figure("scatter") as (fig, ax): ...`` saves a PNG into the report."""
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(**subplots_kw)
        try:
            yield fig, ax
            if self.dry:
                return
            self.plot_dir.mkdir(parents=True, exist_ok=True)
            stem = re.sub(r"[^A-Za-z0-9_.-]+", "_", self.nodeid.split("::")[-1])
            path = self.plot_dir / f"{stem}-{name}.png"
            fig.savefig(path, dpi=110, bbox_inches="tight")
            self.plots.append(str(path))
        finally:
            plt.close(fig)

    @property
    def claims(self) -> list[LawResult]:
        return [r for r in self.results if r.kind == CLAIM]

    @property
    def broken_checks(self) -> list[LawResult]:
        """Checks (identities, probe correctness) that did not pass: errors of the harness."""
        return [r for r in self.results if r.kind == CHECK and r.decision != PASS]

    @property
    def decision(self) -> str:
        """The point's verdict, made of its claims only; a point with checks alone passes when they hold."""
        if self.broken_checks:
            return "error"
        claims = self.claims
        if claims:
            return combine([r.decision for r in claims])
        return PASS if self.results else INCONCLUSIVE

    def _rebase(self, r: LawResult) -> LawResult:
        # rows count seeds from 0 (the i-th run of an ensemble); the report wants the seeds trained
        return dataclasses.replace(r, seeds=(r.seeds[0] + self.seed_base, r.seeds[1] + self.seed_base))

    def check(self, *results: LawResult) -> None:
        """Record the point's rows and turn their decision into a test outcome.

        Claims decide the point; a check that does not hold is an error of the
        harness (its probe or trainer is wrong), reported as such and never as a
        verdict on the law.
        """
        self.results.extend(self._rebase(r) for r in results)
        if self.dry:
            return
        lines = "\n".join(f"  {r.law}: {r.summary()}" for r in self.results)
        if self.broken_checks:
            pytest.fail(f"harness error: a check of law {self.name} is broken (this is no verdict on the law):\n"
                        f"{lines}", pytrace=False)
        decision = self.decision
        if decision == PASS:
            return
        if decision == FAIL:
            pytest.fail(f"law {self.name} does not hold:\n{lines}", pytrace=False)
        worst = next(r for r in self.claims if r.decision == INCONCLUSIVE)
        thr = worst.threshold
        reason = (
            f"inconclusive: CI [{worst.ci[0]:.4g}, {worst.ci[1]:.4g}] straddles threshold "
            f"{thr if not isinstance(thr, tuple) else list(thr)} ({worst.statistic}, N={worst.n})"
        )
        if self.inconclusive == "fail":
            pytest.fail(reason + "\n" + lines, pytrace=False)
        # reported at the test, not at this line, in pytest's short summary (-rs)
        raise pytest.skip.Exception(reason, _use_item_location=True)
