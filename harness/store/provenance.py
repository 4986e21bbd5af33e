"""Where a run was trained: device class, pack size and torch version (not part of its key).

Runs of one key trained on different device classes are the same recipe but not
the same arithmetic (fp16 on CUDA, fp32 on a CPU), so the index records it per run,
reports carry it per point, ``compare`` names a change of it, and ``store check``
lists ensembles that mix device classes. Stores written before these columns
existed are migrated in place when opened for writing (the old rows read as "").
"""
from __future__ import annotations

import functools
import platform
import sqlite3
import sys
from importlib import metadata

#: the index columns, added to ``runs`` by ``migrate`` where missing
COLUMNS = (("device_class", "TEXT NOT NULL DEFAULT ''"), ("pack", "INTEGER NOT NULL DEFAULT 0"),
           ("torch", "TEXT NOT NULL DEFAULT ''"))
NAMES = ", ".join(name for name, _ in COLUMNS)


def migrate(conn: sqlite3.Connection) -> None:
    have = {row[1] for row in conn.execute("PRAGMA table_info(runs)")}
    for name, decl in COLUMNS:
        if name not in have:
            conn.execute(f"ALTER TABLE runs ADD COLUMN {name} {decl}")


def select_list(conn: sqlite3.Connection | None) -> str:
    """The columns to SELECT: the real ones, or their defaults on a read-only store not yet migrated."""
    have = {row[1] for row in conn.execute("PRAGMA table_info(runs)")} if conn is not None else set()
    return NAMES if all(name in have for name, _ in COLUMNS) else "'', 0, ''"


@functools.lru_cache(maxsize=None)
def describe(device: str) -> tuple[str, str]:
    """(device class, torch version) of this process training on ``device``: ``cuda:NVIDIA H200``, ``cpu:x86_64``.

    Never imports torch (the store stays torch-free): a process that trained on CUDA has it loaded already.
    """
    torch = sys.modules.get("torch")
    try:
        version = torch.__version__ if torch is not None else metadata.version("torch")
    except metadata.PackageNotFoundError:
        version = ""
    if str(device).startswith("cuda"):
        name = torch.cuda.get_device_name(torch.device(device)) if torch is not None else "unknown"
        return f"cuda:{name}", str(version)
    return f"cpu:{platform.machine() or 'unknown'}", str(version)


def mixed_classes(rows: list[tuple[str, str]]) -> dict[str, list[str]]:
    """``{key: its device classes}`` for keys whose runs were trained on more than one class (from (key, class) rows)."""
    seen: dict[str, set[str]] = {}
    for key, cls in rows:
        seen.setdefault(key, set()).add(cls or "unrecorded")
    return {k: sorted(v) for k, v in seen.items() if len(v) > 1}
