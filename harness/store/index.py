"""Content-addressed store of finished runs.

Layout under the store root::

    index.sqlite            runs and recipes (WAL mode: many readers, one writer at a time)
    runs/<k[:2]>/<k>/<seed>.npz   one self-describing artifact per run (see harness.store.artifacts)
    locks/<k>.b<block>.lock  per-block lock held while a process trains that block

The artifact is written to a temp file and renamed *before* its index row is
committed, so a crash leaves at worst an orphan file that the next session
overwrites; a row always points at a complete file. Every row carries the
artifact's sha256, checked before a run is used; a mismatch drops the row so the
run is retrained. Each artifact describes its run, so a lost or damaged index is
rebuilt from the artifacts (``python -m harness store rebuild``).

A store that cannot be written is opened with ``readonly=True``: it can be
planned against and read (``--plan``, ``--no-train``), never written.
"""
from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import sqlite3
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Iterator

import numpy as np

from harness.store import artifacts, provenance
from harness.store.locks import block_lock
from harness.recipe import Recipe
from harness.store.runs import RunResult
from harness.store.errors import (
    CorruptArtifact, IndexDamaged, StoreError, StoreWriteError, check_writable, confined, disk_is_full,
    file_size_limit, read_regular, unlink_if_ours, rebuild_command, wal_copy, write_error,
)

INDEX = "index.sqlite"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS recipes (
    key TEXT PRIMARY KEY, trainer TEXT NOT NULL, salt TEXT NOT NULL, recipe TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS runs (
    key TEXT NOT NULL, seed INTEGER NOT NULL, status TEXT NOT NULL,
    file TEXT NOT NULL, sha256 TEXT NOT NULL, seconds REAL NOT NULL,
    device TEXT NOT NULL, created REAL NOT NULL, metrics TEXT NOT NULL,
    device_class TEXT NOT NULL DEFAULT '', pack INTEGER NOT NULL DEFAULT 0, torch TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (key, seed)
);
"""


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
    device_class: str = ""  # harness.store.provenance: where it was trained, not part of the key
    pack: int = 0
    torch: str = ""


class Store:
    """Process-safe: open one per process; SQLite and file locks do the coordination."""

    def __init__(self, root: str | os.PathLike, readonly: bool = False) -> None:
        self.root = Path(root)
        self.readonly = readonly
        self._db_path = self.root / INDEX
        self._conn: sqlite3.Connection | None = None
        self._conn_pid: int | None = None
        self._recipes: dict[str, tuple[str, str, str] | None] = {}
        if not readonly:
            check_writable(self.root)
            try:
                (self.root / "runs").mkdir(parents=True, exist_ok=True)
                (self.root / "locks").mkdir(parents=True, exist_ok=True)
            except OSError as e:
                raise write_error(e, self.root) from None
        self._check_index_present()
        try:
            self._open_index()
        except BaseException:
            self.close()
            raise

    def _open_index(self) -> None:
        with self._sql():
            conn = self._connect()
            if conn is not None:
                if not self.readonly:
                    conn.executescript(_SCHEMA)
                    provenance.migrate(conn)
                self._run_columns = f"{self._RUN_COLUMNS}, {provenance.select_list(conn)}"
                # Catches a scrambled or truncated index at open, not half-way through a session.
                bad = [r[0] for r in conn.execute("PRAGMA quick_check").fetchall() if r[0] != "ok"]
                if bad:
                    raise sqlite3.DatabaseError(f"database disk image is malformed: {bad[0]}")

    def _check_index_present(self) -> None:
        """A missing or zero-length index beside stored artifacts was lost, not new: say how to rebuild it."""
        if self._db_path.is_file() and self._db_path.stat().st_size > 0:
            return
        if next((self.root / "runs").glob("*/*/*.npz"), None) is not None:
            state = "is empty" if self._db_path.exists() else "is missing"
            raise IndexDamaged(f"store index {self._db_path} {state} but the store holds artifacts: "
                               f"run `{rebuild_command(self.root)}`")

    # -- sqlite ------------------------------------------------------------------
    def _connect(self) -> sqlite3.Connection | None:
        """The connection of this process; None for a read-only store without an index (nothing stored)."""
        if self._conn is None or self._conn_pid != os.getpid():
            if self.readonly:
                conn = self._connect_readonly()
                if conn is None:
                    return None
            else:
                conn = sqlite3.connect(self._db_path, timeout=60.0, isolation_level=None)
                conn.execute("PRAGMA journal_mode=WAL")
                conn.execute("PRAGMA synchronous=NORMAL")
                conn.execute("PRAGMA busy_timeout=60000")
            self._conn, self._conn_pid = conn, os.getpid()
        return self._conn

    def _connect_readonly(self) -> sqlite3.Connection | None:
        if not self._db_path.is_file():
            return None
        uri = self._db_path.absolute().as_uri()
        try:
            conn = sqlite3.connect(f"{uri}?mode=ro", uri=True, isolation_level=None)
            conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
            return conn
        except sqlite3.OperationalError:
            # WAL needs its -shm file; without one, read as it stands (immutable) or, if its -wal holds rows, a copy
            copy = wal_copy(self._db_path)
            return sqlite3.connect(copy.as_uri() if copy else f"{uri}?immutable=1", uri=True, isolation_level=None)

    def _index_error(self, e: sqlite3.Error) -> StoreError:
        msg, db = str(e).lower(), self._db_path
        if "full" in msg or ("disk i/o" in msg and disk_is_full(db.parent)):
            return StoreWriteError(f"disk full at {db}: free space there, or pass --store DIR on another disk")
        if "disk i/o" in msg and (limit := file_size_limit()) is not None:
            return StoreWriteError(f"disk I/O error at {db}, with a file size limit of {limit} bytes in force "
                                   "(file too large): raise the limit (ulimit -f) or pass --store DIR elsewhere")
        if "readonly" in msg or "read-only" in msg:
            return StoreWriteError(f"store index {db} is read-only: make it writable, or pass --no-train to only read it")
        if "malformed" in msg or "not a database" in msg or "corrupt" in msg:
            return IndexDamaged(f"store index {db} is damaged ({e}): run `{rebuild_command(self.root)}`")
        if "locked" in msg or "busy" in msg:
            return StoreError(f"store index {db} stayed locked for 60 s by another process ({e}); try again")
        return StoreError(f"store index {db}: {e}")

    @contextlib.contextmanager
    def _sql(self) -> Iterator[None]:
        try:
            yield
        except sqlite3.Error as e:
            raise self._index_error(e) from None

    def _rows(self, sql: str, args: tuple = ()) -> list[tuple]:
        with self._sql():
            conn = self._connect()
            return [] if conn is None else conn.execute(sql, args).fetchall()

    @contextlib.contextmanager
    def _db(self) -> Iterator[sqlite3.Connection]:
        if self.readonly:
            raise StoreWriteError(f"store {self.root} was opened read-only; it cannot record runs")
        with self._sql():
            conn = self._connect()
            assert conn is not None
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
            except BaseException:
                with contextlib.suppress(sqlite3.Error):
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
        self._recipes[key] = (recipe.trainer, salt, recipe.canonical_json())

    def _recipe_row(self, key: str) -> tuple[str, str, str] | None:
        if key not in self._recipes:
            rows = self._rows("SELECT trainer, salt, recipe FROM recipes WHERE key = ?", (key,))
            self._recipes[key] = tuple(rows[0]) if rows else None  # type: ignore[assignment]
        return self._recipes[key]

    # -- runs ------------------------------------------------------------------------
    def _artifact_path(self, key: str, seed: int) -> Path:
        if not artifacts.KEY_RE.match(key):
            raise StoreError(f"malformed recipe key {key[:40]!r}")
        path = self.root / "runs" / key[:2] / key / f"{int(seed)}.npz"
        if not confined(self.root, path.parent):
            raise StoreWriteError(f"{path.parent} is reached through a symlink out of the store: remove the link")
        return path

    def put(self, key: str, result: RunResult, device: str) -> RunRecord:
        path = self._artifact_path(key, result.seed)
        trainer, salt, recipe = self._recipe_row(key) or (None, None, None)
        device_class, torch_version = provenance.describe(device)
        meta = {"key": key, "seed": int(result.seed), "status": result.status, "metrics": dict(result.metrics),
                "seconds": float(result.seconds), "device": device, "created": time.time(),
                "trainer": trainer, "salt": salt, "recipe": recipe,
                "device_class": device_class, "pack": int(result.pack), "torch": torch_version}
        data = artifacts.encode(result.arrays, meta)
        digest = hashlib.sha256(data).hexdigest()
        tmp = self._write_tmp(path, data, result.seed)
        rel = str(path.relative_to(self.root))
        rec = RunRecord(key, result.seed, result.status, rel, digest, result.seconds, device, dict(result.metrics),
                        device_class, int(result.pack), torch_version)
        try:
            # Renamed inside the index's write transaction: concurrent writers of one run leave
            # the file and the row of the same writer (the last), never a row that fails its file.
            with self._db() as db:
                try:
                    os.replace(tmp, path)
                except OSError as e:
                    raise write_error(e, path.parent) from None
                self._insert(db, rec, meta["created"])
        except BaseException:
            unlink_if_ours(path, digest)  # its row was not committed: an orphan would only be retrained
            raise
        finally:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
        return rec

    @staticmethod
    def _insert(db: sqlite3.Connection, rec: RunRecord, created: float) -> None:
        db.execute(
            "INSERT OR REPLACE INTO runs(key, seed, status, file, sha256, seconds, device, created, metrics, "
            f"{provenance.NAMES}) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
            (rec.key, rec.seed, rec.status, rec.file, rec.sha256, rec.seconds, rec.device, created,
             json.dumps(rec.metrics), rec.device_class, rec.pack, rec.torch),
        )

    def _write_tmp(self, path: Path, data: bytes, seed: int) -> str:
        """``data`` in a synced temp file beside ``path``; removed again if anything fails."""
        if self.readonly:
            raise StoreWriteError(f"store {self.root} was opened read-only; it cannot record runs")
        tmp = None
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{seed}.", suffix=".tmp")
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            return tmp
        except BaseException as e:
            if tmp is not None:
                with contextlib.suppress(OSError):
                    os.unlink(tmp)
            if isinstance(e, OSError):
                raise write_error(e, path.parent) from None
            raise

    def clean_tmp(self, key: str, seeds: Iterable[int]) -> int:
        """Remove temp files a killed writer left for ``seeds``. Call under the block's lock, so no live writer owns them."""
        folder = self._artifact_path(key, 0).parent
        removed = 0
        for s in seeds:
            for tmp in folder.glob(f".{int(s)}.*.tmp"):
                with contextlib.suppress(OSError):  # gone already, or not a file a writer left: leave it
                    tmp.unlink()
                    removed += 1
        return removed

    _RUN_COLUMNS = "key, seed, status, file, sha256, seconds, device, metrics"
    _run_columns = f"{_RUN_COLUMNS}, '', 0, ''"  # until the index is open (harness.store.provenance)

    def records(self, key: str, seeds: Iterable[int] | None = None) -> dict[int, RunRecord]:
        rows = self._rows(f"SELECT {self._run_columns} FROM runs WHERE key = ?", (key,))
        wanted = None if seeds is None else set(seeds)
        return {row[1]: self._record_of(row) for row in rows if wanted is None or row[1] in wanted}

    def record(self, key: str, seed: int) -> RunRecord | None:
        """One run's index row (a primary-key lookup, not every row of the key)."""
        rows = self._rows(f"SELECT {self._run_columns} FROM runs WHERE key = ? AND seed = ?", (key, int(seed)))
        return self._record_of(rows[0]) if rows else None

    def _record_of(self, row: tuple) -> RunRecord:
        k, s, st, f, h, sec, dev, met, *prov = row
        try:
            metrics = json.loads(met)
        except ValueError:
            raise IndexDamaged(f"store index {self._db_path} has unreadable metrics for {k[:12]}…/{s}: "
                               f"run `{rebuild_command(self.root)}`") from None
        return RunRecord(k, s, st, f, h, sec, dev, metrics, *prov)

    def _read_verified(self, rec: RunRecord) -> bytes:
        # A row may only name its own artifact: a path elsewhere (absolute, ``..``) is never followed.
        path = self._artifact_path(rec.key, rec.seed)
        if rec.file != str(path.relative_to(self.root)):
            raise CorruptArtifact(f"index row for {rec.key[:12]}…/{rec.seed} names {rec.file!r}, not its artifact")
        try:
            data = read_regular(path)
        except OSError as e:
            if e.errno not in (errno.ENOENT, errno.EISDIR, errno.ENOTDIR, errno.ELOOP, errno.EINVAL):
                raise StoreError(f"cannot read {path}: {e.strerror}") from None
            data = b""  # absent, or a link or FIFO where the artifact belongs: retrained
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
                    if not self.readonly:
                        self.drop(key, s)
                    del recs[s]
        return [s for s in seeds if s not in recs]

    def load(self, key: str, seed: int) -> tuple[RunRecord, dict[str, np.ndarray]]:
        rec = self.record(key, seed)
        if rec is None:
            raise StoreError(f"run {key[:12]}…/{seed} is not in the store")
        return rec, self.read_arrays(rec)

    def read_arrays(self, rec: RunRecord) -> dict[str, np.ndarray]:
        """The arrays of the run ``rec`` (an index row read earlier), checksum verified."""
        try:
            _, arrays = artifacts.decode(self._read_verified(rec))
        except artifacts.BadArtifact as e:
            raise CorruptArtifact(f"artifact {rec.file}: {e}") from None
        return arrays

    def median_seconds(self, key: str) -> float | None:
        rows = self._rows("SELECT seconds FROM runs WHERE key = ?", (key,))
        if not rows:
            return None
        return float(np.median([r[0] for r in rows]))

    def count(self) -> int:
        rows = self._rows("SELECT COUNT(*) FROM runs")
        return int(rows[0][0]) if rows else 0

    # -- locking ---------------------------------------------------------------------
    @contextlib.contextmanager
    def lock(self, name: str, blocking: bool = True) -> Iterator[bool]:
        """Exclusive lock across processes (``harness.store.locks``); yields whether it is held."""
        if self.readonly:
            raise StoreWriteError(f"store {self.root} was opened read-only; nothing can be trained into it")
        with block_lock(self.root / "locks", name, blocking) as held:
            yield held


def open_store(root: Path, plan_only: bool = False, no_train: bool = False) -> Store:
    """A session's store: read-only where nothing will be written (``--plan``; ``--no-train`` on a read-only store)."""
    if plan_only:
        return Store(root, readonly=True)
    try:
        check_writable(root)
    except StoreError as e:
        if no_train and (Path(root) / "runs").is_dir():
            return Store(root, readonly=True)
        raise StoreError(f"{e} (a read-only store can be used with --no-train or --plan)") from None
    return Store(root)

