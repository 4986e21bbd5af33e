"""Content-addressed store of finished runs.

Layout under the store root::

    index.sqlite            runs and recipes (WAL mode: many readers, one writer at a time)
    runs/<k[:2]>/<k>/<seed>.npz   one artifact per run, written to a temp file then renamed
    locks/<k>.lock          per-key advisory lock held while a process trains that key

The artifact is written and renamed *before* its index row is committed, so a
crash leaves at worst an orphan file that the next session overwrites; a row
always points at a complete file. Every row carries the artifact's sha256,
checked before a run is used; a mismatch drops the row so the run is retrained.
"""
from __future__ import annotations

import contextlib
import fcntl
import hashlib
import io
import json
import os
import sqlite3
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Iterable, Iterator

import numpy as np

from harness.recipe import Recipe
if TYPE_CHECKING:  # the store, like the plan, works without importing torch
    from harness.trainers.base import RunResult

DEFAULT_STORE = ".lrlaws/store"
STORE_ENV = "LRLAWS_STORE"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS recipes (
    key TEXT PRIMARY KEY, trainer TEXT NOT NULL, salt TEXT NOT NULL, recipe TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS runs (
    key TEXT NOT NULL, seed INTEGER NOT NULL, status TEXT NOT NULL,
    file TEXT NOT NULL, sha256 TEXT NOT NULL, seconds REAL NOT NULL,
    device TEXT NOT NULL, created REAL NOT NULL, metrics TEXT NOT NULL,
    PRIMARY KEY (key, seed)
);
"""


class StoreError(RuntimeError):
    pass


class CorruptArtifact(StoreError):
    pass


@dataclass(frozen=True)
class RunRecord:
    key: str
    seed: int
    status: str
    file: str
    sha256: str
    seconds: float
    device: str
    metrics: dict


class Store:
    """Process-safe: open one per process; SQLite and flock do the coordination."""

    def __init__(self, root: str | os.PathLike) -> None:
        self.root = Path(root)
        check_writable(self.root)
        (self.root / "runs").mkdir(parents=True, exist_ok=True)
        (self.root / "locks").mkdir(parents=True, exist_ok=True)
        self._db_path = self.root / "index.sqlite"
        self._conn: sqlite3.Connection | None = None
        self._conn_pid: int | None = None
        self._connect().executescript(_SCHEMA)

    # -- sqlite ------------------------------------------------------------------
    def _connect(self) -> sqlite3.Connection:
        if self._conn is None or self._conn_pid != os.getpid():
            conn = sqlite3.connect(self._db_path, timeout=60.0, isolation_level=None)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute("PRAGMA busy_timeout=60000")
            self._conn, self._conn_pid = conn, os.getpid()
        return self._conn

    @contextlib.contextmanager
    def _db(self) -> Iterator[sqlite3.Connection]:
        conn = self._connect()
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield conn
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        else:
            conn.execute("COMMIT")

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    # -- recipes -------------------------------------------------------------------
    def register(self, key: str, recipe: Recipe, salt: str) -> None:
        with self._db() as db:
            db.execute(
                "INSERT OR IGNORE INTO recipes(key, trainer, salt, recipe) VALUES (?,?,?,?)",
                (key, recipe.trainer, salt, recipe.canonical_json()),
            )

    # -- runs ------------------------------------------------------------------------
    def _artifact_path(self, key: str, seed: int) -> Path:
        return self.root / "runs" / key[:2] / key / f"{seed}.npz"

    def put(self, key: str, result: RunResult, device: str) -> RunRecord:
        path = self._artifact_path(key, result.seed)
        path.parent.mkdir(parents=True, exist_ok=True)
        buf = io.BytesIO()
        np.savez(buf, **result.arrays)
        data = buf.getvalue()
        digest = hashlib.sha256(data).hexdigest()
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{result.seed}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise
        rel = str(path.relative_to(self.root))
        rec = RunRecord(key, result.seed, result.status, rel, digest, result.seconds, device, dict(result.metrics))
        with self._db() as db:
            db.execute(
                "INSERT OR REPLACE INTO runs(key, seed, status, file, sha256, seconds, device, created, metrics)"
                " VALUES (?,?,?,?,?,?,?,?,?)",
                (key, rec.seed, rec.status, rel, digest, rec.seconds, device, time.time(), json.dumps(rec.metrics)),
            )
        return rec

    def records(self, key: str, seeds: Iterable[int] | None = None) -> dict[int, RunRecord]:
        rows = self._connect().execute(
            "SELECT key, seed, status, file, sha256, seconds, device, metrics FROM runs WHERE key = ?", (key,)
        ).fetchall()
        wanted = None if seeds is None else set(seeds)
        out = {}
        for k, s, st, f, h, sec, dev, met in rows:
            if wanted is None or s in wanted:
                out[s] = RunRecord(k, s, st, f, h, sec, dev, json.loads(met))
        return out

    def _read_verified(self, rec: RunRecord) -> bytes:
        try:
            data = (self.root / rec.file).read_bytes()
        except FileNotFoundError:
            data = b""
        if hashlib.sha256(data).hexdigest() != rec.sha256:
            raise CorruptArtifact(f"artifact {rec.file} fails its checksum")
        return data

    def drop(self, key: str, seed: int) -> None:
        with self._db() as db:
            db.execute("DELETE FROM runs WHERE key = ? AND seed = ?", (key, seed))

    def missing(self, key: str, seeds: Iterable[int], verify: bool = True) -> list[int]:
        """Seeds without a usable run. With ``verify``, checksum every artifact and drop corrupt ones."""
        seeds = list(seeds)
        recs = self.records(key, seeds)
        if verify:
            for s, rec in list(recs.items()):
                try:
                    self._read_verified(rec)
                except CorruptArtifact:
                    self.drop(key, s)
                    del recs[s]
        return [s for s in seeds if s not in recs]

    def load(self, key: str, seed: int) -> tuple[RunRecord, dict[str, np.ndarray]]:
        rec = self.records(key, [seed]).get(seed)
        if rec is None:
            raise StoreError(f"run {key[:12]}…/{seed} is not in the store")
        with np.load(io.BytesIO(self._read_verified(rec))) as z:
            return rec, {name: z[name] for name in z.files}

    def median_seconds(self, key: str) -> float | None:
        rows = self._connect().execute("SELECT seconds FROM runs WHERE key = ?", (key,)).fetchall()
        if not rows:
            return None
        return float(np.median([r[0] for r in rows]))

    def count(self) -> int:
        return int(self._connect().execute("SELECT COUNT(*) FROM runs").fetchone()[0])

    # -- locking ---------------------------------------------------------------------
    @contextlib.contextmanager
    def lock(self, name: str, blocking: bool = True) -> Iterator[bool]:
        """Exclusive lock across processes; the OS releases it if the holder dies.

        Yields whether the lock is held (always True when ``blocking``).
        """
        fd = os.open(self.root / "locks" / f"{name}.lock", os.O_CREAT | os.O_RDWR, 0o644)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | (0 if blocking else fcntl.LOCK_NB))
            except BlockingIOError:
                yield False
                return
            try:
                yield True
            finally:
                fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)


def check_writable(root: str | os.PathLike) -> None:
    """Raise ``StoreError`` unless ``root`` is, or could be created as, a writable directory.

    Creates nothing, so a bad path is reported before any work and nothing is lost.
    """
    path = Path(root).absolute()
    probe_dir = path
    while not probe_dir.exists():
        probe_dir = probe_dir.parent
    fix = f"pass --store DIR (or set {STORE_ENV}) to a writable directory"
    if not probe_dir.is_dir():
        raise StoreError(f"store {path} is not usable: {probe_dir} is a file, not a directory; {fix}")
    try:
        fd, tmp = tempfile.mkstemp(dir=probe_dir, prefix=".lrlaws-write-test-")
        os.close(fd)
        os.unlink(tmp)
    except OSError as e:
        raise StoreError(f"store {path} is not writable ({e.strerror}); {fix}") from None
