"""Trainers and data sets from other packages, found through entry points.

A package makes its trainer usable by name in recipes (``Recipe(trainer="mine", ...)``)
by declaring, in its ``pyproject.toml``::

    [project.entry-points."lrlaws.trainers"]
    mine = "mypkg.training:MyTrainer"       # a class (called with no arguments) or an instance

    [project.entry-points."lrlaws.datasets"]
    mydata = "mypkg.data:MyData"

A trainer follows ``harness.trainers.base.Trainer``; a data set follows ``Dataset``
below. Built-in trainers (``harness.trainers.TRAINERS``) win over entry points of the
same name. Pool workers (start method ``spawn``) find the entry points the way the
parent does, through ``sys.path``. Ray workers may have no copy of the package, so
the driver ships each plugin's top-level package (``ray_py_modules``) and the
entry points themselves (``exported`` → ``install``): a worker then imports the
same code without reading any package metadata.

This module imports no torch.
"""
from __future__ import annotations

import importlib
import importlib.metadata as md
import importlib.util
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Protocol, runtime_checkable

import numpy as np

from harness.recipe import RecipeError

TRAINER_GROUP = "lrlaws.trainers"
DATASET_GROUP = "lrlaws.datasets"
GROUPS = (TRAINER_GROUP, DATASET_GROUP)


@dataclass(frozen=True)
class DatasetArrays:
    """A classification data set in memory: features ``(n, ...)`` and integer labels ``(n,)``."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray


@runtime_checkable
class Dataset(Protocol):
    """What a ``lrlaws.datasets`` entry point provides.

    ``salt`` enters the key of every run trained on the data set (like a trainer's
    salt): change it whenever ``load`` would return different arrays, so runs of
    the old data are never mixed with runs of the new.
    """

    name: str
    salt: str

    def check(self, data_dir: Path | None, download: bool) -> None:
        """Raise ``harness.trainers.DataUnavailable`` (with the fix) if ``load`` could not get the data."""

    def load(self, data_dir: Path | None, download: bool) -> DatasetArrays:
        """The arrays; deterministic (no seed: the trainer samples and shuffles per run)."""


class PluginError(RecipeError):
    """An entry point that cannot be used; the message says which package to fix."""


#: per process: group -> name -> "module:attr", set by ``install`` on workers that have no package metadata
_INSTALLED: dict[str, dict[str, str]] = {g: {} for g in GROUPS}
_LOADED: dict[tuple[str, str], Any] = {}


#: (group, sys.path) -> the group's installed entry points: scanning the installed packages takes
#: milliseconds, and recipe keys ask for every recipe's data set
_DISCOVERED: dict[tuple[str, tuple[str, ...]], dict[str, str]] = {}


def _entry_points(group: str) -> dict[str, str]:
    """name -> "module:attr" of a group; a name two packages both claim is an error."""
    cache_key = (group, tuple(sys.path))
    if cache_key not in _DISCOVERED:
        found: dict[str, str] = {}
        for ep in md.entry_points(group=group):
            if ep.name in found and found[ep.name] != ep.value:
                raise PluginError(f"two installed packages register {group} entry point {ep.name!r} "
                                  f"({found[ep.name]} and {ep.value}); uninstall one of them")
            found[ep.name] = ep.value
        _DISCOVERED[cache_key] = found
    return _DISCOVERED[cache_key] | _INSTALLED[group]


def names(group: str) -> list[str]:
    return sorted(_entry_points(group))


def _import(ref: str) -> Any:
    module, _, attr = ref.partition(":")
    obj: Any = importlib.import_module(module)
    for part in attr.split(".") if attr else ():
        obj = getattr(obj, part)
    return obj() if isinstance(obj, type) else obj


def load(group: str, name: str) -> Any | None:
    """The plugin ``name`` of ``group`` (instantiated once per process), or None if none is registered."""
    if (group, name) in _LOADED:
        return _LOADED[(group, name)]
    ref = _entry_points(group).get(name)
    if ref is None:
        return None
    try:
        obj = _import(ref)
    except (Exception, SystemExit) as e:  # a package that calls sys.exit() at import must not end the session
        raise PluginError(f"{group} entry point {name!r} = {ref!r} failed to load ({type(e).__name__}: {e}); "
                          "fix or uninstall the package that declares it") from None
    if getattr(obj, "name", name) != name:
        raise PluginError(f"{group} entry point {name!r} = {ref!r} names itself {obj.name!r}; "
                          "make the entry point's name and the object's `name` agree")
    _LOADED[(group, name)] = obj
    return obj


def get_dataset(name: str) -> Dataset:
    """A plugin data set by name; the error lists the installed ones."""
    ds = load(DATASET_GROUP, name)
    if ds is None:
        raise RecipeError(f"unknown data set {name!r}; installed {DATASET_GROUP} entry points: {names(DATASET_GROUP)}")
    return ds


def dataset_salt(name: str) -> str | None:
    """The salt of plugin data set ``name``, or None when it is not a plugin data set."""
    ds = load(DATASET_GROUP, name)
    return None if ds is None else str(ds.salt)


def exported() -> dict[str, dict[str, str]]:
    """Every entry point of both groups this process can see, for ``install`` on another machine."""
    return {g: _entry_points(g) for g in GROUPS}


def install(refs: Mapping[str, Mapping[str, str]]) -> None:
    """Make the entry points ``refs`` (from ``exported``) resolvable in this process."""
    for group, entries in refs.items():
        _INSTALLED.setdefault(group, {}).update(entries)


def ray_py_modules() -> list[str]:
    """Local paths of the top-level packages (or single modules) that the entry points import."""
    paths: set[str] = set()
    for group in GROUPS:
        for ref in _entry_points(group).values():
            top = ref.partition(":")[0].split(".")[0]
            spec = importlib.util.find_spec(top)
            if spec is None or top == "harness":
                continue
            if not spec.submodule_search_locations:
                # Ray ships directories (packages), not single-module files
                raise PluginError(f"{group} entry point {ref!r} is the single module {top!r}: "
                                  "to train it on Ray, make it a package (a directory with __init__.py)")
            paths.add(str(Path(list(spec.submodule_search_locations)[0])))
    return sorted(paths)
