"""Every ``LRLAWS_*`` environment variable and default path, defined once.

Torch-free and import-free: the pytest11 entry point, the store and the data catalog all read it.
"""
from __future__ import annotations

import os
from pathlib import Path

#: the run store (``--store``)
STORE_ENV = "LRLAWS_STORE"
DEFAULT_STORE = ".lrlaws/store"
#: data sets on disk or to download into (``--data-dir``)
DATA_ENV = "LRLAWS_DATA"
#: derived files (decoded data, fingerprints): never written into the data dir
CACHE_ENV = "LRLAWS_CACHE"
#: ``1`` never downloads (``--offline``)
OFFLINE_ENV = "LRLAWS_OFFLINE"


def cache_dir() -> Path:
    """``$LRLAWS_CACHE``, else ``~/.cache/lrlaws``."""
    env = os.environ.get(CACHE_ENV)
    return Path(env) if env else Path.home() / ".cache" / "lrlaws"


def default_data_dir() -> Path:
    """``$LRLAWS_DATA``, else ``~/.cache/lrlaws/data`` (the default of ``--data-dir``)."""
    env = os.environ.get(DATA_ENV)
    return Path(env) if env else Path.home() / ".cache" / "lrlaws" / "data"


def default_store() -> Path:
    """``$LRLAWS_STORE``, else ``.lrlaws/store`` (the default of ``--store``)."""
    return Path(os.environ.get(STORE_ENV) or DEFAULT_STORE)
