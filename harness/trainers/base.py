"""What every trainer provides, and what a finished run hands to the store."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, Protocol, Sequence

import numpy as np

from harness.recipe import Recipe

#: run statuses stored in the index; a diverged run is data, not an error.
OK, DIVERGED = "ok", "diverged"


class DataUnavailable(RuntimeError):
    """A recipe's data set is not on disk and cannot be downloaded."""


@dataclass
class TrainContext:
    device: str = "cpu"
    data_dir: Path | None = None
    download: bool = True
    #: torch.compile the model (once per process, reused across runs); an execution option, not in the key
    compile: bool = False


@dataclass
class RunResult:
    seed: int
    arrays: dict[str, np.ndarray]
    metrics: dict[str, float] = field(default_factory=dict)
    status: str = OK
    seconds: float = 0.0


class Trainer(Protocol):
    #: the name recipes use in their ``trainer`` field
    name: str
    #: code-version salt: bump when a change alters what runs produce
    salt: str

    def validate(self, recipe: Recipe) -> None:
        """Raise ``RecipeError`` for fields or options this trainer does not understand."""

    def check_data(self, recipe: Recipe, ctx: TrainContext) -> None:
        """Raise ``DataUnavailable`` (with the fix) if training could not get its data."""

    def chunk_size(self, recipe: Recipe, device: str) -> int:
        """How many seeds to train together in one call of ``train``."""

    def estimate_seconds(self, recipe: Recipe, device: str) -> float:
        """A-priori seconds per run, used by ``--plan`` before the store has timings."""

    def train(self, recipe: Recipe, seeds: Sequence[int], ctx: TrainContext) -> Iterator[RunResult]:
        """Train one run per seed; yield each as it finishes. Must be deterministic per seed."""
