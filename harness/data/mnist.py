"""MNIST from torchvision's on-disk layout, parsed here (IDX files, gzipped or not).

``root/MNIST/raw/`` holds ``train-images-idx3-ubyte``, ``train-labels-idx1-ubyte``,
``t10k-images-idx3-ubyte`` and ``t10k-labels-idx1-ubyte``, each possibly as
``.gz``. An IDX file is: two zero bytes, a type byte (0x08 = uint8), the number
of dimensions, one big-endian int32 per dimension, then the data row-major.
"""
from __future__ import annotations

import functools
import gzip
from pathlib import Path

import numpy as np
import torch

from harness.data.catalog import DataUnavailable, data_root, unavailable_message
from harness.data.imageset import ImageSet, try_download

FOLDER = Path("MNIST") / "raw"
FILES = {
    "x_train": "train-images-idx3-ubyte",
    "y_train": "train-labels-idx1-ubyte",
    "x_test": "t10k-images-idx3-ubyte",
    "y_test": "t10k-labels-idx1-ubyte",
}
NUM_CLASSES = 10
UBYTE = 0x08


def _fix(path: Path) -> str:
    return (f"delete {path} and let lrlaws download MNIST again (or rewrite it with "
            "`python -m harness make-data mnist-synthetic DIR`)")


def read_idx(path: Path) -> np.ndarray:
    """One IDX file of unsigned bytes as an array of its stated shape."""
    try:
        with (gzip.open if path.suffix == ".gz" else open)(path, "rb") as f:
            raw = f.read()
    except (OSError, EOFError, gzip.BadGzipFile) as e:
        why = "the .gz is truncated" if isinstance(e, EOFError) else str(e)
        raise DataUnavailable(f"{path}: cannot be read ({why}); {_fix(path)}") from None
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0:
        raise DataUnavailable(f"{path}: not an IDX file (bad magic); {_fix(path)}")
    if raw[2] != UBYTE:
        raise DataUnavailable(f"{path}: IDX type 0x{raw[2]:02x} is not unsigned byte (0x08); {_fix(path)}")
    ndim = raw[3]
    if len(raw) < 4 + 4 * ndim:
        raise DataUnavailable(f"{path}: IDX header is cut short ({len(raw)} bytes); {_fix(path)}")
    dims = tuple(int(d) for d in np.frombuffer(raw, dtype=">i4", count=ndim, offset=4))
    body = np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim)
    if any(d < 0 for d in dims) or body.size != int(np.prod(dims, dtype=object)):
        raise DataUnavailable(f"{path}: IDX header says {dims} but holds {body.size} bytes; {_fix(path)}")
    return body.reshape(dims)


def _find(folder: Path, name: str) -> Path | None:
    for candidate in (folder / name, folder / f"{name}.gz"):
        if candidate.is_file():
            return candidate
    return None


@functools.lru_cache(maxsize=4)
def _decode(paths: tuple[str, ...], stamp: tuple[int, ...]) -> ImageSet:
    # ``stamp`` (the files' mtimes) is part of the cache key so a rewritten data dir is re-read
    arrays = {k: read_idx(Path(p)) for k, p in zip(FILES, paths)}
    for split in ("train", "test"):
        x, y = arrays[f"x_{split}"], arrays[f"y_{split}"]
        if x.ndim != 3 or y.ndim != 1 or len(x) != len(y):
            raise DataUnavailable(f"MNIST {split}: images {x.shape} and labels {y.shape} do not match")
    def images(a: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(a.copy()).unsqueeze(1)  # N×1×28×28
    def labels(a: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(a.astype(np.int64))
    return ImageSet(images(arrays["x_train"]), labels(arrays["y_train"]), images(arrays["x_test"]),
                    labels(arrays["y_test"]), NUM_CLASSES)


def load_mnist(root: Path | None, download: bool = True) -> ImageSet:
    """MNIST under ``root`` (decoded once per process); downloaded with torchvision only if absent."""
    root = data_root(root)
    folder = root / FOLDER
    why = ""
    if any(_find(folder, n) is None for n in FILES.values()) and download:
        import torchvision

        why = try_download(lambda: torchvision.datasets.MNIST(str(root), train=True, download=True))
    found = [_find(folder, n) for n in FILES.values()]
    if any(p is None for p in found):
        raise DataUnavailable(unavailable_message(
            "MNIST", root, f"{FOLDER}/{{{','.join(FILES.values())}}}[.gz]",
            why or ("download disabled" if not download else "")))
    return _decode(tuple(str(p.resolve()) for p in found), tuple(p.stat().st_mtime_ns for p in found))
