"""A trainer's output checked against what was asked, before anything of it is stored.

A trainer may be a plug-in (``harness.extensions``): the harness does not take its
word. Each yielded run must be a ``RunResult`` for a seed that was asked and not
yielded before, with a known status, named numeric arrays whose names, dtypes
and shapes agree across the runs of one call, and, where the status says ``ok``,
finite metrics and no float array without a single finite value (a NaN statistic
would otherwise read as an undecided claim instead of a broken trainer). Partly
non-finite arrays are data: a probe's first step, a fine-tune that diverged.
When the trainer stops, every asked seed must have been yielded.

A violation is ``TrainerOutputError``: deterministic (the same call would break
the same way), so the task fails once, without retry, and the session fails,
with a line naming the trainer.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Iterable

import numpy as np

from harness.store.runs import OK, STATUSES, RunResult
from harness.store.errors import StoreError


class TrainerOutputError(StoreError):
    """A trainer yielded something other than what was asked. A ``StoreError`` so that every executor
    records it the way it records other errors a retry would meet again: once, without retry."""

    deterministic = True


def _span(seeds: Iterable[int]) -> str:
    s = sorted(seeds)
    return f"{s[0]}..{s[-1]}" if len(s) > 1 else str(s[0]) if s else "none"


@dataclass
class YieldCheck:
    """The runs one ``train(recipe, seeds, ctx)`` call yielded, checked one by one (``run``) and at the end (``done``)."""

    trainer: str
    asked: tuple[int, ...]
    seen: set[int] = field(default_factory=set)
    layout: dict[str, tuple[str, tuple[int, ...]]] | None = None

    def _fail(self, why: str) -> TrainerOutputError:
        return TrainerOutputError(f"trainer {self.trainer!r} {why} (asked for seeds {_span(self.asked)}): "
                                  "fix the trainer; nothing it yielded wrongly was stored")

    def run(self, result: Any) -> RunResult:
        if not isinstance(result, RunResult):
            raise self._fail(f"yielded a {type(result).__name__}, not a RunResult")
        seed = result.seed
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or int(seed) not in self.asked:
            raise self._fail(f"yielded a run for seed {seed!r}, which was not asked for")
        if int(seed) in self.seen:
            raise self._fail(f"yielded seed {seed} twice")
        if result.status not in STATUSES:
            raise self._fail(f"gave seed {seed} the status {result.status!r}, not one of {', '.join(STATUSES)}")
        self._check_arrays(result)
        if result.status == OK:
            self._check_finite(result)
        self.seen.add(int(seed))
        return result

    def _check_arrays(self, result: RunResult) -> None:
        if not isinstance(result.arrays, dict) or not all(isinstance(a, np.ndarray) for a in result.arrays.values()):
            raise self._fail(f"gave seed {result.seed} arrays that are not a dict of numpy arrays")
        if any(a.dtype.kind not in "biuf" for a in result.arrays.values()):
            raise self._fail(f"gave seed {result.seed} an array that is not numeric")
        layout = {name: (a.dtype.str, a.shape) for name, a in result.arrays.items()}
        if self.layout is None:
            self.layout = layout
        elif layout != self.layout:
            raise self._fail(f"gave seed {result.seed} arrays {layout}, where the runs before had {self.layout}")

    def _check_finite(self, result: RunResult) -> None:
        bad = [k for k, v in dict(result.metrics).items() if isinstance(v, float) and not math.isfinite(v)]
        if bad:
            raise self._fail(f"gave seed {result.seed} status ok with non-finite metrics {bad}; "
                             "a run that diverged must say status 'diverged'")
        empty = [k for k, a in result.arrays.items() if a.dtype.kind == "f" and a.size and not np.isfinite(a).any()]
        if empty:
            raise self._fail(f"gave seed {result.seed} status ok with arrays {empty} holding no finite value; "
                             "a run that diverged must say status 'diverged'")

    def done(self) -> None:
        missing = [s for s in self.asked if s not in self.seen]
        if missing:
            raise self._fail(f"yielded {len(self.seen)} run(s) for {len(self.asked)} seeds; "
                             f"no run for seeds {_span(missing)}")
