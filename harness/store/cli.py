"""``python -m harness store check|rebuild``: verify a store, or rebuild its index from the artifacts.

``check`` opens the index read-only, verifies every row's artifact against its
sha256, and lists artifacts without a row and temp files left by killed
writers; it writes nothing and exits 1 when it finds a problem.
``rebuild`` reads every artifact's own description, writes a fresh index beside
the old one and swaps it in (the old one is kept as ``index.sqlite.damaged-<time>``),
then removes left-over temp files. Run it while no session uses the store.
"""
from __future__ import annotations

import contextlib
import hashlib
import os
import sqlite3
import stat
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from harness.store import artifacts, provenance
from harness.cli import OneLineParser
from harness.store.index import _SCHEMA, INDEX, RunRecord, Store
from harness.config import DEFAULT_STORE, STORE_ENV, default_store
from harness.store.errors import StoreError, confined, read_regular

PROG = "python -m harness store"


@dataclass
class Scan:
    indexed: int = 0
    problems: list[str] = field(default_factory=list)


def _own_files(root: Path, pattern: str) -> list[Path]:
    """Regular files matching ``pattern`` below ``runs/``, reached through no symlink: a planted link or
    FIFO is neither read (it could block) nor deleted through (it could lead out of the store)."""
    return sorted(p for p in (root / "runs").glob(pattern)
                  if confined(root, p) and stat.S_ISREG(p.lstat().st_mode))


def _artifact_files(root: Path) -> list[Path]:
    return _own_files(root, "*/*/*.npz")


def _tmp_files(root: Path) -> list[Path]:
    return _own_files(root, "*/*/.*.tmp")


def check(root: Path) -> Scan:
    """Every problem of the store at ``root``, one line each; writes nothing."""
    scan = Scan()
    try:
        store = Store(root, readonly=True)
        rows = store._rows("SELECT key, seed FROM runs")
    except StoreError as e:
        scan.problems.append(str(e))
        return scan
    seen, recs = set(), []
    try:
        for key, seed in rows:
            rec = store.records(key, [seed])[seed]
            recs.append((key, rec))
            seen.add((key, seed))
            try:
                _row_of(root, root / rec.file, store._read_verified(rec))
                scan.indexed += 1
            except StoreError as e:
                scan.problems.append(f"{e} (it will be retrained)")
            except artifacts.BadArtifact as e:
                scan.problems.append(f"artifact {rec.file} passes its checksum but is not a valid run: {e} "
                                     "(it will be retrained)")
    finally:
        store.close()
    for path in _artifact_files(root):
        if (path.parent.name, _seed_of(path)) not in seen:
            scan.problems.append(f"{path} has no index row: `{PROG} rebuild --store {root}` indexes it")
    for tmp in _tmp_files(root):
        scan.problems.append(f"{tmp} is a temp file left by a killed writer (removed by the next session or a rebuild)")
    for key, classes in provenance.mixed_classes([(k, r.device_class) for k, r in recs]).items():
        scan.problems.append(f"ensemble {key[:12]}… mixes device classes {classes}: its runs are not one arithmetic "
                             f"(retrain on one class, or keep it knowingly)")
    return scan


def _seed_of(path: Path) -> int | None:
    try:
        return int(path.stem)
    except ValueError:
        return None


def _row_of(root: Path, path: Path, data: bytes) -> tuple[RunRecord, dict]:
    meta = artifacts.verified_meta(data)
    if path.parent.name != meta["key"] or _seed_of(path) != meta["seed"]:
        raise artifacts.BadArtifact(f"it describes run {meta['key'][:12]}…/{meta['seed']}, not the one its path names")
    rel = str(path.relative_to(root))
    rec = RunRecord(meta["key"], meta["seed"], meta["status"], rel, hashlib.sha256(data).hexdigest(),
                    float(meta["seconds"]), meta["device"], meta["metrics"], str(meta.get("device_class", "")),
                    int(meta.get("pack", 0)), str(meta.get("torch", "")))
    return rec, meta


def rebuild(root: Path) -> Scan:
    """A new index from the artifacts under ``root``; the old index is kept aside, not deleted."""
    scan = Scan()
    new_path = root / f"{INDEX}.rebuild"
    for p in (new_path, Path(f"{new_path}-wal"), Path(f"{new_path}-shm")):
        with contextlib.suppress(FileNotFoundError):
            p.unlink()
    (root / "runs").mkdir(exist_ok=True)
    db = sqlite3.connect(new_path, isolation_level=None)
    try:
        db.executescript(_SCHEMA)
        db.execute("BEGIN")
        for path in _artifact_files(root):
            try:
                rec, meta = _row_of(root, path, read_regular(path))
            except (artifacts.BadArtifact, OSError) as e:
                scan.problems.append(f"{path} skipped: {e}")
                continue
            Store._insert(db, rec, float(meta.get("created") or time.time()))
            if all(isinstance(meta.get(f), str) for f in ("trainer", "salt", "recipe")):
                db.execute("INSERT OR IGNORE INTO recipes(key, trainer, salt, recipe) VALUES (?,?,?,?)",
                           (rec.key, meta["trainer"], meta["salt"], meta["recipe"]))
            scan.indexed += 1
        db.execute("COMMIT")
    finally:
        db.close()
    _swap_in(root, new_path)
    for tmp in _tmp_files(root):
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
    return scan


def _swap_in(root: Path, new_path: Path) -> None:
    old = root / INDEX
    stamp = time.strftime("%Y%m%d-%H%M%S")
    for suffix in ("", "-wal", "-shm"):
        p = Path(f"{old}{suffix}")
        if p.exists():
            os.replace(p, Path(f"{old}.damaged-{stamp}{suffix}"))
    os.replace(new_path, old)
    for suffix in ("-wal", "-shm"):
        with contextlib.suppress(FileNotFoundError):
            Path(f"{new_path}{suffix}").unlink()


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["prune"]:
        from harness.store import prune as store_prune

        return store_prune.main(argv)
    ap = OneLineParser(prog=PROG, description=__doc__.split("\n\n")[0])
    ap.add_argument("action", choices=("check", "rebuild", "prune"))
    ap.add_argument("--store", default=None, metavar="DIR", help=f"the store (default ${STORE_ENV} or {DEFAULT_STORE})")
    args = ap.parse_args(argv)
    root = Path(args.store) if args.store is not None else default_store()
    if str(args.store).strip() == "" or not (root / "runs").is_dir():
        print(f"{PROG} {args.action}: {root} is not a store (no runs/ folder); pass --store DIR", file=sys.stderr)
        return 2
    try:
        scan = check(root) if args.action == "check" else rebuild(root)
    except (StoreError, sqlite3.Error, OSError) as e:
        print(f"{PROG} {args.action}: {e}", file=sys.stderr)
        return 2
    for line in scan.problems:
        print(line)
    verb = "verified" if args.action == "check" else "indexed"
    print(f"{PROG} {args.action}: {scan.indexed} runs {verb}, {len(scan.problems)} problem(s) in {root}")
    return 1 if args.action == "check" and scan.problems else 0
