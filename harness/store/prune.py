"""``python -m harness store prune --keep-days N``: drop the runs of recipes no one has used for N days.

A recipe's runs are kept when any of them was trained within the last N days,
or when a report below ``--reports DIR`` that started within the last N days
read them (its entries name the recipe keys they used): a law unchanged for
months trains its runs once and reuses them every night, and each night's
report keeps them alive. Everything else goes: the index rows (runs and
recipe), then the artifacts. A recipe whose lock is held (a session is training
it now) is left alone; lock files stay (deleting one a waiting process has open
would let two processes hold "the" lock).
"""
from __future__ import annotations

import fcntl
import os
import shutil
import sqlite3
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

from harness.store.artifacts import KEY_RE
from harness.cli import OneLineParser
from harness.store.jsonfile import read_json
from harness.config import DEFAULT_STORE, STORE_ENV
from harness.store.errors import confined

DAY = 86400.0


@dataclass
class PruneResult:
    pruned: list[str] = field(default_factory=list)
    kept: int = 0
    runs: int = 0
    bytes: int = 0
    busy: list[str] = field(default_factory=list)

    def line(self, keep_days: float, dry_run: bool) -> str:
        verb = "would prune" if dry_run else "pruned"
        busy = f"; {len(self.busy)} in training, left alone" if self.busy else ""
        return (f"store prune: {verb} {len(self.pruned)} recipes ({self.runs} runs, {self.bytes / 2**20:.1f} MiB) "
                f"unused for {keep_days:g} days; kept {self.kept}{busy}")


def keys_in_reports(report_dir: Path | None, since: float) -> set[str]:
    """Recipe keys read by the reports below ``report_dir`` that started after ``since``; unreadable ones are skipped."""
    keys: set[str] = set()
    if report_dir is None:
        return keys
    for path in Path(report_dir).rglob("report.json"):
        try:
            data = read_json(path)
            if float(data.get("started", 0)) < since:
                continue
            for entry in data.get("entries", []):
                keys.update(str(k) for k in (entry.get("recipes") or {}).values())
        except (OSError, ValueError, TypeError, AttributeError):
            continue
    return keys


def _lock_all(locks: Iterable[Path]) -> list[int] | None:
    """Take every lock file without waiting (held while the key is pruned); None if a session holds one."""
    fds: list[int] = []
    for path in locks:
        try:
            fd = os.open(path, os.O_RDWR | os.O_NOFOLLOW | os.O_NONBLOCK)
        except OSError:
            continue
        fds.append(fd)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            _release(fds)
            return None
    return fds


def _release(fds: list[int]) -> None:
    for fd in fds:
        os.close(fd)  # closing drops the flock


def _size(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) if path.is_dir() else 0


def _drop(conn: sqlite3.Connection, root: Path, key: str, out: PruneResult, dry_run: bool) -> None:
    artifacts = root / "runs" / key[:2] / key
    out.pruned.append(key)
    out.runs += conn.execute("SELECT COUNT(*) FROM runs WHERE key = ?", (key,)).fetchone()[0]
    # an index row may only name a folder of this store: a key like ``../x`` or a planted link is left alone
    deletable = bool(KEY_RE.match(key)) and confined(root, artifacts)
    out.bytes += _size(artifacts) if deletable else 0
    if dry_run:
        return
    # index rows first: a row must never point at a deleted artifact
    conn.execute("BEGIN IMMEDIATE")
    conn.execute("DELETE FROM runs WHERE key = ?", (key,))
    conn.execute("DELETE FROM recipes WHERE key = ?", (key,))
    conn.execute("COMMIT")
    if deletable:
        shutil.rmtree(artifacts, ignore_errors=True)


def prune(root: Path, keep_days: float, report_dir: Path | None = None, now: float | None = None,
          dry_run: bool = False) -> PruneResult:
    since = (time.time() if now is None else now) - keep_days * DAY
    used = keys_in_reports(report_dir, since)
    conn = sqlite3.connect(root / "index.sqlite", timeout=60.0, isolation_level=None)
    try:
        newest = dict(conn.execute("SELECT key, MAX(created) FROM runs GROUP BY key").fetchall())
        keys = {k for (k,) in conn.execute("SELECT key FROM recipes")} | set(newest)
        out = PruneResult()
        for key in sorted(keys):
            if key in used or (newest.get(key) or 0.0) >= since:
                out.kept += 1
                continue
            locks = sorted((root / "locks").glob(f"{key}*.lock")) if KEY_RE.match(key) else []
            fds = _lock_all(locks)
            if fds is None:
                out.busy.append(key)
                continue
            try:
                _drop(conn, root, key, out, dry_run)
            finally:
                _release(fds)
        return out
    finally:
        conn.close()


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] != "prune":
        print("python -m harness store: the subcommand is prune (python -m harness store prune --keep-days N)",
              file=sys.stderr)
        return 2
    ap = OneLineParser(prog="python -m harness store prune", description=__doc__.split("\n\n")[0])
    ap.add_argument("--keep-days", type=float, required=True, metavar="N",
                    help="keep recipes trained or read by a report within the last N days")
    ap.add_argument("--store", default=None, metavar="DIR", help=f"the store (default ${STORE_ENV} or {DEFAULT_STORE})")
    ap.add_argument("--reports", default=None, metavar="DIR",
                    help="report directory whose recent reports keep the recipes they read alive")
    ap.add_argument("--dry-run", action="store_true", help="say what would be pruned; delete nothing")
    args = ap.parse_args(argv[1:])
    if not args.keep_days >= 0:
        ap.error(f"--keep-days must be a number of days >= 0, got {args.keep_days}")
    if args.store is not None and args.store.strip() == "":
        ap.error("--store is empty: pass --store DIR, or leave it out for $" + STORE_ENV + f" or {DEFAULT_STORE}")
    root = Path(args.store or os.environ.get(STORE_ENV) or DEFAULT_STORE)
    if not (root / "index.sqlite").is_file():
        ap.error(f"no store at {root} (no index.sqlite); pass --store DIR or set {STORE_ENV}")
    if args.reports is not None and not Path(args.reports).is_dir():
        ap.error(f"--reports {args.reports} is not a directory")
    try:
        result = prune(root, args.keep_days, Path(args.reports) if args.reports else None, dry_run=args.dry_run)
    except sqlite3.Error as e:
        print(f"python -m harness store prune: store index {root / 'index.sqlite'} is damaged ({e}): "
              f"run `python -m harness store rebuild --store {root}`, then prune", file=sys.stderr)
        return 2
    print(result.line(args.keep_days, args.dry_run))
    return 0
