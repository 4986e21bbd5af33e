"""MNIST-1D (Greydanus & Kobak, "Scaling Down Deep Learning", 2020/2024): the published split.

``mnist1d.data.make_dataset(get_dataset_args())`` builds the paper's 4000
training and 1000 test signals (length 40, 10 classes) procedurally from the
package's templates, with no download. It seeds NumPy's (and Python's) global
RNG, so the build runs between a save and a restore of both states: loading
MNIST-1D never changes what other code draws.

The fingerprint is the generator's definition (the package's version, the
source of its ``data`` and ``transform`` modules, the arguments), read from the
installed files without importing anything: the data is a pure function of it.
"""
from __future__ import annotations

import functools
import importlib.util
import random
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import numpy as np

from harness.data.arrays import ArraySet, hash_files

NAME = "mnist1d"
LENGTH, NUM_CLASSES = 40, 10
MISSING = "MNIST-1D needs the mnist1d package: pip install mnist1d"


def _package_dir() -> Path | None:
    spec = importlib.util.find_spec("mnist1d")
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(list(spec.submodule_search_locations)[0])


def missing() -> str | None:
    """Why MNIST-1D cannot be built here (one line with the fix), or None."""
    return MISSING if _package_dir() is None else None


@functools.lru_cache(maxsize=1)
def fingerprint() -> str:
    folder = _package_dir()
    if folder is None:
        raise FileNotFoundError(MISSING)
    try:
        pkg = version("mnist1d")
    except PackageNotFoundError:
        pkg = "unknown"
    return hash_files([folder / "data.py", folder / "transform.py"], extra=f"mnist1d=={pkg} default-args")


@functools.lru_cache(maxsize=1)
def load() -> ArraySet:
    """The default split as float32 [N, 40] signals and int64 labels (built once per process)."""
    from mnist1d.data import get_dataset_args, make_dataset

    np_state, py_state = np.random.get_state(), random.getstate()
    try:
        d = make_dataset(get_dataset_args())
    finally:
        np.random.set_state(np_state)
        random.setstate(py_state)
    return ArraySet(d["x"].astype(np.float32), d["y"].astype(np.int64), d["x_test"].astype(np.float32),
                    d["y_test"].astype(np.int64), NUM_CLASSES)
