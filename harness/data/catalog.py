"""Every data set a recipe can name: is it here, and what is its identity? (torch-free, never downloads)

``missing(name, root)`` says in one line why a data set is not available and
how to fix it; ``fingerprint(name, root)`` identifies the data actually loaded,
so that runs of different data never share a key:

* files on disk (``cifar10``, ``mnist``): sha256 of the files, cached by path,
  size and mtime in memory and in ``fingerprints.json`` under the cache
  directory (``$LRLAWS_CACHE`` or ``~/.cache/lrlaws``) — never in the data dir
  or the store;
* generated or packaged sets (``mnist1d``, ``digits``): their definition (see
  those modules);
* data this package constructs (``teacher``, ``templates``, ``ps10``,
  ``quadratic``, ``none``): the empty string, as their generator's source is
  part of the trainer's code salt.
"""
from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

from harness.data import digits, mnist1d
from harness.config import DATA_ENV, cache_dir, default_data_dir
from harness.data.arrays import hash_files

class DataUnavailable(RuntimeError):
    """A recipe's data set is not on disk and cannot be downloaded."""


CIFAR10_FOLDER = "cifar-10-batches-py"
CIFAR10_FILES = tuple(f"data_batch_{i}" for i in range(1, 6)) + ("test_batch",)
MNIST_FOLDER = Path("MNIST") / "raw"
MNIST_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")
CONSTRUCTED = ("teacher", "templates", "ps10", "quadratic", "none")
PACKAGED = {"mnist1d": mnist1d, "digits": digits}
ON_DISK = ("cifar10", "mnist")

_memo: dict[tuple, str] = {}


def data_root(root: Path | None) -> Path:
    """``root``, else ``$LRLAWS_DATA``, else ``~/.cache/lrlaws/data`` (the plugin's ``--data-dir`` default)."""
    if root is not None:
        return Path(root)
    return default_data_dir()


def unavailable_message(name: str, root: Path, expected: str, why: str = "") -> str:
    """One line naming both fixes: point at a directory holding the data, or run where it can be downloaded."""
    return (f"{name} not found under {root} (expected {expected}){': ' + why if why else ''}; "
            f"pass --data-dir DIR or set {DATA_ENV}=DIR to a directory holding it, "
            f"or run where torchvision can download it (network access, without --offline)")


def files(name: str, root: Path | None) -> list[Path] | None:
    """The files an on-disk data set is read from, or None when any is absent."""
    root = data_root(root)
    if name == "cifar10":
        found = [root / CIFAR10_FOLDER / f for f in CIFAR10_FILES]
        return found if all(p.is_file() for p in found) else None
    out = []
    for f in MNIST_FILES:
        hit = [p for p in (root / MNIST_FOLDER / f, root / MNIST_FOLDER / f"{f}.gz") if p.is_file()]
        if not hit:
            return None
        out.append(hit[0])
    return out


def known(name: str) -> bool:
    return name in CONSTRUCTED or name in PACKAGED or name in ON_DISK


def missing(name: str, root: Path | None, why: str = "") -> str | None:
    """Why ``name`` cannot be read here, with the fix (one line), or None when it can."""
    if name in PACKAGED:
        return PACKAGED[name].missing()
    if name in ON_DISK and files(name, root) is None:
        expected = (f"{CIFAR10_FOLDER}/{{data_batch_1..5,test_batch}}" if name == "cifar10"
                    else f"{MNIST_FOLDER}/{{{','.join(MNIST_FILES)}}}[.gz]")
        return unavailable_message("CIFAR-10" if name == "cifar10" else "MNIST", data_root(root), expected, why)
    return None


def fingerprint(name: str, root: Path | None) -> str:
    """The identity of the data ``name`` would load; raises FileNotFoundError when it is absent."""
    if name in PACKAGED:
        return PACKAGED[name].fingerprint()
    if name not in ON_DISK:
        return ""
    paths = files(name, root)
    if paths is None:
        raise FileNotFoundError(missing(name, root))
    stamp = tuple((str(p.resolve()), p.stat().st_size, p.stat().st_mtime_ns) for p in paths)
    if stamp in _memo:
        return _memo[stamp]
    disk_key = json.dumps(stamp)
    cached = _read_cache().get(disk_key)
    value = cached if isinstance(cached, str) else hash_files(paths)
    _memo[stamp] = value
    if cached is None:
        _write_cache(disk_key, value)
    return value


def _cache_file() -> Path:
    return cache_dir() / "fingerprints.json"


def _read_cache() -> dict:
    try:
        data = json.loads(_cache_file().read_text())
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}


def _write_cache(key: str, value: str) -> None:
    """Best effort (a read-only home only costs a re-hash next time); atomic, so readers never see half a file."""
    try:
        data = _read_cache()
        data[key] = value
        _cache_file().parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=_cache_file().parent, suffix=".tmp")
        with os.fdopen(fd, "w") as f:
            json.dump(data, f)
        os.replace(tmp, _cache_file())
    except OSError:
        pass
