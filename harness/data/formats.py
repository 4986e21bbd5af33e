"""Writers of the real on-disk formats (CIFAR-10 pickle batches, MNIST IDX), and ``make-data``.

Tests write small arrays with these and read them back through the real
loaders; ``python -m harness make-data`` writes a stand-in data set where the
real one cannot be downloaded, so the gpu tier's code path is the real one.
"""
from __future__ import annotations

import argparse
import gzip
import os
import pickle
import struct
import sys
import tempfile
from pathlib import Path

import numpy as np

from harness.data import cifar10, mnist
from harness.data.images import ImageSet
from harness.data.standin import learnable_images, random_images

CIFAR10_LABELS = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")


def _atomic_write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    os.replace(tmp, path)


def write_cifar10(root: Path, data: ImageSet, bytes_keys: bool = False) -> Path:
    """``root/cifar-10-batches-py/``: the training set split over 5 batches, plus ``test_batch``.

    ``bytes_keys`` writes dict keys as bytes, the way some re-writers of the
    Python 2 originals do; the loader must read both.
    """
    if tuple(data.x_train.shape[1:]) != cifar10.SHAPE or tuple(data.x_test.shape[1:]) != cifar10.SHAPE:
        raise ValueError(f"CIFAR-10 format holds 3×32×32 images, got {tuple(data.x_train.shape[1:])}")
    folder = Path(root) / cifar10.FOLDER
    key = (lambda k: k.encode()) if bytes_keys else (lambda k: k)

    def batch(name: str, x, y) -> bytes:
        x = x.numpy().reshape(len(x), -1)
        return pickle.dumps({key("batch_label"): name, key("labels"): [int(v) for v in y],
                             key("data"): np.ascontiguousarray(x, dtype=np.uint8),
                             key("filenames"): [f"{i}.png" for i in range(len(x))]}, protocol=2)

    chunks = np.array_split(np.arange(len(data.x_train)), len(cifar10.TRAIN_FILES))
    for i, (name, idx) in enumerate(zip(cifar10.TRAIN_FILES, chunks)):
        part = slice(int(idx[0]) if len(idx) else 0, int(idx[-1]) + 1 if len(idx) else 0)
        _atomic_write(folder / name, batch(f"training batch {i + 1} of 5", data.x_train[part], data.y_train[part]))
    _atomic_write(folder / cifar10.TEST_FILE, batch("testing batch 1 of 1", data.x_test, data.y_test))
    meta = {key("label_names"): list(CIFAR10_LABELS[: data.num_classes]), key("num_vis"): 3072,
            key("num_cases_per_batch"): int(max(len(c) for c in chunks))}
    _atomic_write(folder / "batches.meta", pickle.dumps(meta, protocol=2))
    return folder


def idx_bytes(array: np.ndarray) -> bytes:
    """An unsigned-byte IDX file: magic (0, 0, 0x08, ndim), big-endian dims, data."""
    array = np.ascontiguousarray(array, dtype=np.uint8)
    return bytes([0, 0, mnist.UBYTE, array.ndim]) + struct.pack(f">{array.ndim}i", *array.shape) + array.tobytes()


def write_mnist(root: Path, data: ImageSet, gz: bool = False) -> Path:
    """``root/MNIST/raw/*-ubyte`` (``.gz`` when ``gz``), the layout torchvision leaves after download."""
    if data.x_train.shape[1] != 1:
        raise ValueError(f"MNIST format holds one-channel images, got {data.x_train.shape[1]} channels")
    folder = Path(root) / mnist.FOLDER
    arrays = {"x_train": data.x_train[:, 0], "y_train": data.y_train, "x_test": data.x_test[:, 0], "y_test": data.y_test}
    for field, name in mnist.FILES.items():
        blob = idx_bytes(arrays[field].numpy())
        if gz:
            _atomic_write(folder / f"{name}.gz", gzip.compress(blob, mtime=0))
        else:
            _atomic_write(folder / name, blob)
    return folder


# --------------------------------------------------------------- make-data --

#: what ``make-data`` can write: name -> (format writer, stand-in maker, image shape, default sizes)
KINDS = {
    "cifar10-synthetic": (write_cifar10, learnable_images, (3, 32, 32), (50_000, 10_000)),
    "cifar10-random": (write_cifar10, random_images, (3, 32, 32), (50_000, 10_000)),
    "mnist-synthetic": (write_mnist, learnable_images, (1, 28, 28), (60_000, 10_000)),
}


def _arg_problem(folder: Path, n_train: int, n_test: int, seed: int, min_train: int = 1) -> str | None:
    """Why make-data cannot write what it was asked, in one line, or None."""
    if n_train < min_train:
        return f"--n-train must be >= {min_train}" + (
            f" (one image per training batch file)" if min_train > 1 else "") + f", got {n_train}"
    if n_test < 1:
        return f"--n-test must be >= 1, got {n_test}"
    if not 0 <= seed < 2**32:
        return f"--seed must be in 0..2**32-1, got {seed}"
    if str(folder).strip() == "":
        return "DIR is empty: pass the directory to write the data set into"
    probe = Path(folder).absolute()
    while not probe.exists():
        probe = probe.parent
    if not probe.is_dir():
        return f"DIR {folder}: {probe} is a file, not a directory; pass a directory"
    if not os.access(probe, os.W_OK):
        return f"DIR {folder}: {probe} is not writable; pass a writable directory"
    return None


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(
        prog="python -m harness make-data",
        description="Write a stand-in data set in a real data set's on-disk format, for machines that cannot "
                    "download the real one. cifar10-synthetic: class templates + noise (learnable); "
                    "cifar10-random: noise with random labels (timing only). Point --data-dir at DIR afterwards.")
    p.add_argument("kind", choices=sorted(KINDS))
    p.add_argument("dir", type=Path)
    p.add_argument("--n-train", type=int, default=None, help="training images (default: the real set's size)")
    p.add_argument("--n-test", type=int, default=None, help="test images (default: the real set's size)")
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args(argv)
    writer, make, shape, (n_train, n_test) = KINDS[a.kind]
    n_train, n_test = (n_train if a.n_train is None else a.n_train), (n_test if a.n_test is None else a.n_test)
    min_train = len(cifar10.TRAIN_FILES) if writer is write_cifar10 else 1
    if (why := _arg_problem(a.dir, n_train, n_test, a.seed, min_train)) is not None:
        print(f"python -m harness make-data: {why}", file=sys.stderr)
        return 2
    data = make(n_train, n_test, shape=shape, seed=a.seed)
    try:
        folder = writer(a.dir, data)
    except OSError as e:
        print(f"python -m harness make-data: cannot write {e.filename or a.dir} ({e.strerror}); "
              "pass a writable DIR with room for the data", file=sys.stderr)
        return 2
    print(f"wrote {a.kind}: {len(data.x_train)} train + {len(data.x_test)} test images {shape} to {folder}")
    return 0
