"""The store's errors, each one line saying what to do, and the checks made before a store is opened."""
from __future__ import annotations

import atexit
import contextlib
import errno
import hashlib
import os
import shutil
import stat
import tempfile
from pathlib import Path

from harness.config import STORE_ENV


class StoreError(RuntimeError):
    """A store problem, said in one line. ``deterministic``: retrying cannot help (disk full, read-only, damage)."""

    deterministic = False


class CorruptArtifact(StoreError):
    pass


class StoreWriteError(StoreError):
    deterministic = True


class IndexDamaged(StoreError):
    deterministic = True


def rebuild_command(root: Path) -> str:
    return f"python -m harness store rebuild --store {root}"


def write_error(e: OSError, path: Path) -> StoreError:
    """One line for a failed write; errors that a retry would meet again are ``deterministic``."""
    if e.errno in (errno.ENOSPC, errno.EDQUOT):
        return StoreWriteError(f"disk full at {path}: free space there, or pass --store DIR on another disk")
    if e.errno == errno.EFBIG:
        return StoreWriteError(f"file too large at {path} (file size limit reached): raise the limit (ulimit -f) "
                               "or pass --store DIR on another file system")
    if e.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
        return StoreWriteError(f"cannot write {path} ({e.strerror}): make the store writable, "
                               "or pass --no-train to only read it")
    return StoreError(f"cannot write {path}: {e.strerror or e}")


def file_size_limit() -> int | None:
    """The soft limit on the size of a file this process writes (``ulimit -f``), or None when there is none.

    SQLite reports a write beyond it (EFBIG) as a bare "disk I/O error"; the limit is how to tell."""
    try:
        import resource
    except ImportError:  # not POSIX
        return None
    soft = resource.getrlimit(resource.RLIMIT_FSIZE)[0]
    return None if soft == resource.RLIM_INFINITY else int(soft)


def disk_is_full(path: Path) -> bool:
    with contextlib.suppress(OSError):
        return shutil.disk_usage(path).free == 0
    return False


def dir_problem(path: Path) -> str | None:
    """Why ``path`` cannot be (or be created as) a writable directory, or None. Creates nothing."""
    path = path.absolute()
    probe_dir = path
    while not probe_dir.exists():
        probe_dir = probe_dir.parent
    if not probe_dir.is_dir():
        return f"{probe_dir} is a file, not a directory"
    try:
        fd, tmp = tempfile.mkstemp(dir=probe_dir, prefix=".lrlaws-write-test-")
        os.close(fd)
        os.unlink(tmp)
    except OSError as e:
        return f"{probe_dir} is not writable ({e.strerror})"
    return None


def check_writable(root: str | os.PathLike) -> None:
    """Raise ``StoreError`` unless ``root`` is, or could be created as, a writable directory.

    Creates nothing, so a bad path is reported before any work and nothing is lost.
    """
    if str(root).strip() == "":
        raise StoreError(f"--store is empty: pass --store DIR (or set {STORE_ENV}) to a writable directory")
    fix = f"pass --store DIR (or set {STORE_ENV}) to a writable directory"
    why = dir_problem(Path(root))
    if why is not None:
        raise StoreError(f"store {Path(root).absolute()} is not usable: {why}; {fix}")


def confined(root: Path, path: Path) -> bool:
    """Whether ``path`` lies below ``root`` with no symlink on the way: a planted link (``runs/ab`` pointing
    elsewhere) or a ``..`` would lead a write or a delete out of the directory it belongs to."""
    try:
        rel = Path(path).relative_to(root)
    except ValueError:
        return False
    p = Path(root)
    for part in rel.parts:
        if part in ("..", "."):
            return False
        p = p / part
        if p.is_symlink():
            return False
    return True


def read_regular(path: Path, follow_links: bool = False) -> bytes:
    """The bytes of the regular file ``path``; a FIFO or device is refused (``OSError``), never waited on
    (reading a FIFO would block for ever), and so is a symlink unless ``follow_links``."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | (0 if follow_links else os.O_NOFOLLOW))
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise OSError(errno.EINVAL, "not a regular file", str(path))
        with os.fdopen(fd, "rb", closefd=False) as f:
            return f.read()
    finally:
        os.close(fd)


def unlink_if_ours(path: Path, digest: str) -> None:
    """Remove ``path`` if it holds the bytes with sha256 ``digest`` (ours); a concurrent writer's file is left alone."""
    with contextlib.suppress(OSError):
        if hashlib.sha256(read_regular(path)).hexdigest() == digest:
            path.unlink()


def wal_copy(db: Path) -> Path | None:
    """A private copy of the index ``db`` with its ``-wal``, or None when the -wal holds nothing.

    On a read-only disk without the ``-shm`` file SQLite opens an index only as immutable, which
    ignores the -wal: the rows committed there since the last checkpoint would be silently missed."""
    wal = Path(f"{db}-wal")
    if not wal.is_file() or wal.stat().st_size == 0:
        return None
    tmp = Path(tempfile.mkdtemp(prefix="lrlaws-index-"))
    atexit.register(shutil.rmtree, tmp, True)
    shutil.copyfile(db, tmp / db.name)
    shutil.copyfile(wal, tmp / wal.name)
    return (tmp / db.name).absolute()
