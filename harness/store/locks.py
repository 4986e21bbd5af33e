"""Locks across processes for the store's blocks of seeds: flock through ``filelock``.

The OS releases a lock whose holder dies, so a killed session never leaves a block locked. No soft
(marker-file) fallback: such a lock would outlive a SIGKILLed holder. The lock file is kept, so a
waiter never locks a file that its holder is about to unlink.
"""
from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Iterator

from filelock import FileLock, Timeout

from harness.store.errors import write_error


@contextlib.contextmanager
def block_lock(locks_dir: Path, name: str, blocking: bool = True) -> Iterator[bool]:
    """Exclusive lock ``name`` under ``locks_dir``; yields whether it is held (always True when ``blocking``)."""
    fl = FileLock(locks_dir / f"{name}.lock", fallback_to_soft=False, preserve_lock_file=True)
    try:
        fl.acquire(timeout=-1 if blocking else 0)
    except Timeout:
        yield False
        return
    except OSError as e:
        raise write_error(e, locks_dir) from None
    try:
        yield True
    finally:
        fl.release()
