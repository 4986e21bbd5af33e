"""The API law modules use: declare tiers and reads with ``@lrlaw``, read runs and decide through ``law``.

A law declares its ensembles per tier, and which of them each test reads::

    TIERS = {"smoke": {"eta": Ensemble(SMOKE, 512), "eta_a": Ensemble(SMOKE.replace(lr=0.5), 512)},
             "gpu": {...}}

    @lrlaw("linearity", tiers=TIERS, reads=("eta", "eta_a"))
    def test_linearity(law):
        logits = law.runs("eta").array("logits")        # N x ... stacked over seeds (small N)
        chunks = law.runs("eta").chunks("logits")       # the same, 256 seeds at a time (any N)
        law.check(mean_result(...), band_result(...))    # pass / fail / inconclusive

A tier the law does not declare is reported as not tested there. When the tier's
configuration is not just ensembles (a parametrised point derives its own), give
``needs`` instead of ``reads``: it gets the session tier's configuration (any
object; the test reads it back as ``law.config``) and the test's parameters, and
returns a mapping name -> ``Ensemble``; it may raise ``NotAtThisTier(reason)``.
Without ``tiers``, ``@lrlaw(name, needs=lambda tier, **params: ...)`` gets the
tier's name.

``needs`` is called at collection time with the test's parameters, so the plugin
knows every run the selected tests read before any test starts. A ``needs`` that
raises (a wrong signature, a bug) fails its own test with one line; the other
tests run.
"""
from __future__ import annotations

import functools
import inspect
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Iterator, Mapping

import numpy as np
import pytest

from harness.recipe import Ensemble
from harness.store import StoreError

if TYPE_CHECKING:
    from harness.store import RunRecord, Store

NeedsFn = Callable[..., Mapping[str, Ensemble]]


class NotAtThisTier(Exception):
    """Raised by a ``needs`` function: this law point is not tested at this tier."""


class NeedsError(Exception):
    """A law's ``needs`` could not say what the point reads; the message is one line."""


def lrlaw(name: str, needs: NeedsFn | None = None, *, tiers: Mapping[str, Any] | None = None,
          reads: tuple[str, ...] | None = None) -> pytest.MarkDecorator:
    """Mark a test as a point of law ``name``; see the module docstring for ``needs``, ``tiers`` and ``reads``."""
    if needs is None and tiers is None:
        raise TypeError(f"@lrlaw({name!r}) needs `tiers=` or `needs=`: say which runs the law reads")
    if tiers is not None and not isinstance(tiers, Mapping):
        raise TypeError(f"@lrlaw({name!r}, tiers=...) takes a dict tier name -> configuration, got {type(tiers).__name__}")
    if reads is not None:
        if needs is not None or tiers is None:
            raise TypeError(f"@lrlaw({name!r}, reads=...) picks ensembles from `tiers=`; it goes without `needs=`")
        reads = (reads,) if isinstance(reads, str) else tuple(reads)
        needs = functools.partial(_pick, reads)
    return pytest.mark.lrlaw(name=name, needs=needs, tiers=None if tiers is None else dict(tiers))


def _pick(names: tuple[str, ...], config: Mapping[str, Ensemble]) -> dict[str, Ensemble]:
    if missing := [k for k in names if k not in config]:
        raise KeyError(f"the tier declares no ensemble {missing[0]!r}; it declares {sorted(config)}")
    return {k: config[k] for k in names}


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

    def arrays(self, *names: str) -> dict[str, np.ndarray]:
        """Several arrays by name, each N x ... stacked over seeds."""
        return {k: self.array(k) for k in names}

    def array(self, name: str) -> np.ndarray:
        """N x ... stacked over seeds: for small ensembles; large ones go through ``chunks``."""
        return np.concatenate(list(self.chunks(name)))

    def metric(self, name: str) -> np.ndarray:
        return np.array([rec.metrics.get(name, np.nan) for rec in self._records()], dtype=float)

    @property
    def status(self) -> np.ndarray:
        return np.array([rec.status for rec in self._records()])

    @property
    def ok(self) -> np.ndarray:
        """Seeds whose run finished (did not diverge), a mask over the ensemble."""
        return self.status == "ok"

    def ok_metric(self, name: str) -> np.ndarray:
        """``metric(name)`` with NaN for runs that diverged, so statistics skip them."""
        return np.where(self.ok, self.metric(name), np.nan)

    @property
    def seconds(self) -> float:
        return float(sum(rec.seconds for rec in self._records()))

    @property
    def devices(self) -> list[str]:
        return sorted({rec.device for rec in self._records()})

    @property
    def device_classes(self) -> list[str]:
        """Where the runs were trained (``cuda:NVIDIA H200``, ``cpu:x86_64``; "" for runs stored before it was recorded)."""
        return sorted({rec.device_class for rec in self._records() if rec.device_class})


from harness.law_context import LawContext  # noqa: E402,F401  (re-exported: the fixture's type)
