"""What every trainer provides, and what a finished run hands to the store."""
from __future__ import annotations

import abc
import contextlib
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any, Iterable, Iterator, Mapping, Sequence

import torch

from harness.data.catalog import ON_DISK
from harness.data.images import load_images
from harness.identity import BUILTIN_TRAINERS, code_salt, perturbation
from harness.recipe import Recipe, RecipeError
from harness.store.runs import RunResult


@dataclass
class TrainContext:
    device: str = "cpu"
    data_dir: Path | None = None
    download: bool = True
    #: torch.compile the model (once per process, reused across runs); compiled runs get their own keys
    compile: bool = False
    #: seeds trained as one packed computation by trainers that pack (0 = ``harness.packing``)
    pack: int = 0


class Trainer(abc.ABC):
    """What a trainer provides: built-ins are listed in ``harness.trainers.TRAINERS``; other packages
    add theirs through a ``lrlaws.trainers`` entry point (``harness.extensions``).

    The harness calls ``validate`` and ``check_data`` before anything trains, then
    ``train`` on blocks of ``chunk_size`` seeds, in-process, in spawned worker
    processes or on Ray workers, so a trainer keeps no state between calls that
    changes its results (caches of loaded data are fine).

    A subclass states what differs from the defaults here: its ``name``, its
    ``options`` (defaults of the options recipes may set), the ``rules`` its
    recipes obey, ``estimate_seconds`` and ``train``. The harness uses only
    ``name``, ``salt``, ``validate``, ``check_data``, ``chunk_size``,
    ``estimate_seconds`` and ``train``, so a plug-in trainer that provides those
    without subclassing works too.
    """

    #: the name recipes use in their ``trainer`` field
    name: str
    #: the options a recipe may set (``Recipe.options``) and their defaults; any other is an error
    options: Mapping[str, Any] = MappingProxyType({})

    @property
    def salt(self) -> str:
        """Code-version salt, part of every run's key: a built-in's is its code's hash
        (``harness.identity.code_salt``); any other trainer declares its own (``salt = "name-v1"``)."""
        if self.name not in BUILTIN_TRAINERS:
            raise RecipeError(f"{self.name} trainer: declares no salt; add salt = \"{self.name}-v1\" to its class "
                              "and change it whenever train() would produce different runs")
        return code_salt(self.name)

    def opts(self, recipe: Recipe) -> dict[str, Any]:
        """The recipe's options over ``options``' defaults; an unknown one is a ``RecipeError`` listing the known."""
        return resolve_options(self.name, recipe, self.options)

    def rules(self, recipe: Recipe, o: dict[str, Any]) -> Iterable[tuple[bool, str]]:
        """``(violated, message)`` pairs on the recipe and its options ``o`` (``opts``), which
        ``validate`` checks in order; a generator's later rules may rely on the earlier ones holding."""
        return ()

    def validate(self, recipe: Recipe) -> None:
        """Raise ``RecipeError`` for fields or options this trainer does not understand.

        Default: an unknown option, then the first violated ``rules`` entry, as one line naming the trainer.
        """
        require(self.name, self.rules(recipe, self.opts(recipe)))

    def check_data(self, recipe: Recipe, ctx: TrainContext) -> None:
        """Raise ``DataUnavailable`` (with the fix) if training could not get its data.

        Default: load the recipe's data set if it is one read from disk (CIFAR-10, MNIST);
        the constructed and packaged ones are always there.
        """
        if recipe.dataset in ON_DISK:
            load_images(recipe.dataset, ctx.data_dir, ctx.download)

    def chunk_size(self, recipe: Recipe, device: str) -> int:
        """How many seeds to train together in one call of ``train``. Default: one, for a trainer
        that trains seeds one at a time; one that batches seeds says how many."""
        return 1

    @abc.abstractmethod
    def estimate_seconds(self, recipe: Recipe, device: str) -> float:
        """A-priori seconds per run, used by ``--plan`` before the store has timings."""

    @abc.abstractmethod
    def train(self, recipe: Recipe, seeds: Sequence[int], ctx: TrainContext) -> Iterator[RunResult]:
        """Train one run per seed; yield each as it finishes. Must be deterministic per seed."""


def resolve_options(trainer: str, recipe: Recipe, defaults: Mapping[str, Any]) -> dict[str, Any]:
    """The trainer's option defaults overlaid with the recipe's; an unknown option is an error."""
    unknown = sorted(set(dict(recipe.options)) - set(defaults))
    if unknown:
        raise RecipeError(f"{trainer} trainer: unknown option(s) {unknown}; known: {sorted(defaults)}")
    return {k: recipe.option(k, v) for k, v in defaults.items()}


def require(trainer: str, rules: Iterable[tuple[bool, str]]) -> None:
    """Raise ``RecipeError`` with the message of the first rule whose condition is violated (True)."""
    for violated, message in rules:
        if violated:
            raise RecipeError(f"{trainer} trainer: {message}")


def cpu_thread_count() -> int:
    """Intra-op threads a CPU worker trains with: one, or two under ``LRLAWS_PERTURB=threads``."""
    return 2 if perturbation() == "threads" else 1


@contextlib.contextmanager
def cpu_threads(device: str, n: int | None = None) -> Iterator[None]:
    """Train with ``n`` intra-op threads on the CPU (default ``cpu_thread_count()``; no change
    elsewhere), restoring the count after.

    Batched tiny nets are dispatch-bound on the CPU: on the 2-core CI box one
    thread trained a gd smoke chunk in 6 s where two took 15–40 s as soon as
    another process competed for the cores (measured; the second thread spins).
    """
    if not str(device).startswith("cpu"):
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(cpu_thread_count() if n is None else n)
    try:
        yield
    finally:
        torch.set_num_threads(before)
