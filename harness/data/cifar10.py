"""CIFAR-10 from torchvision's on-disk layout, parsed here (python pickle batches).

``root/cifar-10-batches-py/`` holds ``data_batch_1`` … ``data_batch_5`` and
``test_batch``: pickled dicts with ``data`` (uint8 rows of 3072 = 3×32×32, channel
planes in order R, G, B) and ``labels`` (a list of ints). The files were written
by Python 2, so keys come back as ``str`` when loaded with latin-1 and as
``bytes`` from some re-writers; both are accepted.
"""
from __future__ import annotations

import functools
import pickle
from pathlib import Path

import numpy as np
import torch

from harness.data.catalog import DataUnavailable, data_root, unavailable_message
from harness.data.imageset import ImageSet, try_download

FOLDER = "cifar-10-batches-py"
TRAIN_FILES = tuple(f"data_batch_{i}" for i in range(1, 6))
TEST_FILE = "test_batch"
SHAPE = (3, 32, 32)
NUM_CLASSES = 10


#: every (module, name) a CIFAR-10 batch's pickle refers to, as written by numpy 1.x and 2.x; nothing else
#: is imported, because importing a module can run code (``numpy.f2py.__main__`` runs f2py).
ALLOWED = frozenset({
    ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar"),
    ("numpy", "ndarray"), ("numpy", "dtype"), ("_codecs", "encode"),
})


class _NumpyOnly(pickle.Unpickler):
    """Unpickles only what a CIFAR batch contains: a data set dir is not trusted to run code."""

    def find_class(self, module: str, name: str):
        if (module, name) in ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"it refers to {module}.{name}, which a data batch never does")


def _fix(path: Path) -> str:
    return (f"delete {path.parent} and let lrlaws download CIFAR-10 again (or rewrite it with "
            "`python -m harness make-data`)")


def _read_batch(path: Path) -> tuple[torch.Tensor, torch.Tensor]:
    try:
        with open(path, "rb") as f:
            raw = _NumpyOnly(f, encoding="latin1").load()
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, IndexError, KeyError,
            MemoryError, OSError) as e:
        why = "it is truncated" if isinstance(e, EOFError) else str(e) or type(e).__name__
        raise DataUnavailable(f"{path}: not a readable CIFAR-10 batch ({why}); {_fix(path)}") from None
    d = {(k.decode() if isinstance(k, bytes) else k): v for k, v in raw.items()} if isinstance(raw, dict) else {}
    if "data" not in d or "labels" not in d:
        raise DataUnavailable(f"{path}: not a CIFAR-10 batch (no 'data'/'labels' entries); {_fix(path)}")
    try:
        data = np.asarray(d["data"], dtype=np.uint8)
        labels = np.asarray(d["labels"], dtype=np.int64)
    except (ValueError, TypeError, OverflowError) as e:
        raise DataUnavailable(f"{path}: not a CIFAR-10 batch ({e}); {_fix(path)}") from None
    if data.ndim != 2 or data.shape[1] != int(np.prod(SHAPE)) or labels.ndim != 1 or len(labels) != len(data):
        raise DataUnavailable(f"{path}: not a CIFAR-10 batch (data {data.shape}, labels {labels.shape}); {_fix(path)}")
    return torch.from_numpy(data.reshape(-1, *SHAPE).copy()), torch.from_numpy(labels.copy())


@functools.lru_cache(maxsize=4)
def _decode(folder: str, stamp: tuple[int, ...]) -> ImageSet:
    # ``stamp`` (the files' mtimes) is part of the cache key so a rewritten data dir is re-read
    parts = [_read_batch(Path(folder) / name) for name in TRAIN_FILES]
    x_test, y_test = _read_batch(Path(folder) / TEST_FILE)
    return ImageSet(torch.cat([p[0] for p in parts]), torch.cat([p[1] for p in parts]), x_test, y_test, NUM_CLASSES)


def _files(folder: Path) -> list[Path]:
    return [folder / n for n in (*TRAIN_FILES, TEST_FILE)]


def load_cifar10(root: Path | None, download: bool = True) -> ImageSet:
    """CIFAR-10 under ``root`` (decoded once per process); downloaded with torchvision only if absent."""
    root = data_root(root)
    folder = root / FOLDER
    why = ""
    if not all(p.is_file() for p in _files(folder)) and download:
        import torchvision

        why = try_download(lambda: torchvision.datasets.CIFAR10(str(root), train=True, download=True))
    files = _files(folder)
    if not all(p.is_file() for p in files):
        raise DataUnavailable(unavailable_message(
            "CIFAR-10", root, f"{FOLDER}/{{data_batch_1..5,test_batch}}",
            why or ("download disabled" if not download else "")))
    return _decode(str(folder.resolve()), tuple(p.stat().st_mtime_ns for p in files))
