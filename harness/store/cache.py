"""The session's reads of the store, shared by its tests: index rows per key, run arrays up to a byte budget."""
from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from harness.store.errors import StoreError

if TYPE_CHECKING:
    from harness.store.index import RunRecord, Store

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
