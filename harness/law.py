"""The API law modules use: declare needs with ``@lrlaw``, read runs and decide through the ``law`` fixture.

A law test looks like::

    @lrlaw("linearity", needs=lambda tier, point: {"eta": Ensemble(...), ...})
    @pytest.mark.parametrize("point", POINTS, ids=...)
    def test_linearity(law, point):
        logits = law.runs("eta").array("logits")        # N x ... stacked over seeds (small N)
        chunks = law.runs("eta").chunks("logits")       # the same, 256 seeds at a time (any N)
        law.check(stats_result_1, stats_result_2)         # pass / fail / inconclusive

``needs`` is called at collection time with the session's tier and the test's
parameters, so the plugin knows every run the selected tests read before any
test starts. It may raise ``NotAtThisTier(reason)`` for a tier where the claim
is not tested (say why in the law's docstring).
"""
from __future__ import annotations

import contextlib
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator, Mapping

import numpy as np
import pytest

from harness.recipe import Ensemble
from harness.stats import FAIL, INCONCLUSIVE, PASS, LawResult, combine

from harness.store import StoreError

if TYPE_CHECKING:
    from harness.store import RunRecord, Store

NeedsFn = Callable[..., Mapping[str, Ensemble]]


class NotAtThisTier(Exception):
    """Raised by a ``needs`` function: this law point is not tested at this tier."""


def lrlaw(name: str, needs: NeedsFn) -> pytest.MarkDecorator:
    return pytest.mark.lrlaw(name=name, needs=needs)


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

    def records(self, key: str, seeds: range | list[int]) -> list["RunRecord"]:
        have = self._records.setdefault(key, {})
        if any(s not in have for s in seeds):
            have.update(self.store.records(key))  # one index query for all seeds of the key
        if missing := [s for s in seeds if s not in have]:
            raise StoreError(f"{len(missing)} runs of {key[:12]} are not in the store (first seed {missing[0]})")
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
    #: a sequential look: ``check`` records without raising, figures are not saved
    dry: bool = False
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
    def decision(self) -> str:
        return combine([r.decision for r in self.results]) if self.results else INCONCLUSIVE

    def check(self, *results: LawResult) -> None:
        """Record the point's assertions and turn their combined decision into a test outcome."""
        self.results.extend(results)
        if self.dry:
            return
        lines = "\n".join(f"  {r.law}: {r.summary()}" for r in self.results)
        decision = self.decision
        if decision == PASS:
            return
        if decision == FAIL:
            pytest.fail(f"law {self.name} does not hold:\n{lines}", pytrace=False)
        worst = next(r for r in self.results if r.decision == INCONCLUSIVE)
        thr = worst.threshold
        reason = (
            f"inconclusive: CI [{worst.ci[0]:.4g}, {worst.ci[1]:.4g}] straddles threshold "
            f"{thr if not isinstance(thr, tuple) else list(thr)} ({worst.statistic}, N={worst.n})"
        )
        if self.inconclusive == "fail":
            pytest.fail(reason + "\n" + lines, pytrace=False)
        # reported at the test, not at this line, in pytest's short summary (-rs)
        raise pytest.skip.Exception(reason, _use_item_location=True)
