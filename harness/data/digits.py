"""scikit-learn's digits: 1797 real handwritten 8×8 digits (UCI), shipped inside scikit-learn.

A fixed split: stratified by class with ``random_state`` SPLIT_SEED, TEST_SIZE
images held out (1500 train / 297 test). Pixels are the data set's 0…16 grey
levels; ``as_uint8`` maps them onto 0…255 for the image trainers, which
standardise per channel anyway.

The fingerprint hashes the packaged ``digits.csv.gz`` (found without importing
scikit-learn) and the split's definition.
"""
from __future__ import annotations

import functools
import importlib.util
from pathlib import Path

import numpy as np

from harness.data.arrays import ArraySet, hash_files

NAME = "digits"
SPLIT_SEED, TEST_SIZE = 0, 297
SHAPE, NUM_CLASSES, MAX_LEVEL = (1, 8, 8), 10, 16
MISSING = "the digits data set ships with scikit-learn: pip install scikit-learn"


def _csv() -> Path | None:
    spec = importlib.util.find_spec("sklearn")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(list(spec.submodule_search_locations)[0]) / "datasets" / "data" / "digits.csv.gz"
    return path if path.is_file() else None


def missing() -> str | None:
    return MISSING if _csv() is None else None


@functools.lru_cache(maxsize=1)
def fingerprint() -> str:
    path = _csv()
    if path is None:
        raise FileNotFoundError(MISSING)
    return hash_files([path], extra=f"stratified split seed={SPLIT_SEED} test={TEST_SIZE}")


@functools.lru_cache(maxsize=1)
def load() -> ArraySet:
    """Images as float32 [N, 1, 8, 8] grey levels 0…16, int64 labels (loaded once per process)."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    d = load_digits()
    x = d.images.astype(np.float32).reshape(-1, *SHAPE)
    xtr, xte, ytr, yte = train_test_split(x, d.target.astype(np.int64), test_size=TEST_SIZE,
                                          random_state=SPLIT_SEED, stratify=d.target)
    return ArraySet(xtr, ytr, xte, yte, NUM_CLASSES)


def as_uint8(x: np.ndarray) -> np.ndarray:
    return np.rint(x * (255.0 / MAX_LEVEL)).astype(np.uint8)
