"""``law.runs(name)``: the stored runs of one ensemble, read through the session's run cache."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Iterator

import numpy as np

from harness.recipe import Ensemble
from harness.store.cache import RunCache

if TYPE_CHECKING:
    from harness.store.index import RunRecord, Store

#: seeds per chunk that ``EnsembleRuns.chunks`` stacks (memory ~ CHUNK x one run's array)
CHUNK = 256
@dataclass
class EnsembleRuns:
    """The stored runs of one ensemble: index rows read at once, arrays streamed in chunks of seeds."""

    name: str
    key: str
    ensemble: Ensemble
    store: "Store"
    cache: RunCache | None = None
    _read: bool = False
    #: the metrics the test read, in order: the first is the one whose seeds are checked for independence
    metrics_read: list[str] = field(default_factory=list)

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
            yield np.stack([self._array_of(cache.arrays(self.key, s), name) for s in seeds[start : start + size]])

    def _array_of(self, arrays: dict[str, np.ndarray], name: str) -> np.ndarray:
        # a mistyped name must not read as a missing value: it would make the claim inconclusive, silently
        if name not in arrays:
            raise KeyError(f"ensemble {self.name!r} has no array {name!r}; its runs store: {sorted(arrays)}")
        return arrays[name]

    def arrays(self, *names: str) -> dict[str, np.ndarray]:
        """Several arrays by name, each N x ... stacked over seeds."""
        return {k: self.array(k) for k in names}

    def array(self, name: str) -> np.ndarray:
        """N x ... stacked over seeds: for small ensembles; large ones go through ``chunks``."""
        return np.concatenate(list(self.chunks(name)))

    def metric(self, name: str) -> np.ndarray:
        """The scalar ``name`` of every run; NaN for a run without it (one that diverged).

        A name no run records is a KeyError listing the names the runs have.
        """
        records = self._records()
        if name not in self.metrics_read:
            self.metrics_read.append(name)
        if records and not any(name in rec.metrics for rec in records):
            have = sorted({k for rec in records for k in rec.metrics})
            raise KeyError(f"ensemble {self.name!r} has no metric {name!r}; its runs record: {have}")
        return np.array([rec.metrics.get(name, np.nan) for rec in records], dtype=float)

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
