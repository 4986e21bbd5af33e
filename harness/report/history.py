"""Finding and reading reports: a report path, earlier reports, the previous report of a tier, the baseline.

The one reader of earlier reports (``earlier_reports``) orders them by the time they started, never by
directory name, so the committed baseline (``results/baseline/``) cannot shadow a newer report.
A report compared with is validated against its schema (``harness.report.schema``).
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Iterator

from harness.report.schema import ReportInvalid, validate
from harness.store.jsonfile import read_json

BASELINE_DIR = Path("results") / "baseline"


class ReportError(RuntimeError):
    """A report cannot be read or compared; the message says which and why."""


def report_path(path: str | Path) -> Path:
    """A report.json path, given the file or the run directory holding it."""
    p = Path(path)
    return p / "report.json" if p.is_dir() else p


def load_report(path: str | Path, schema: bool = True) -> dict[str, Any]:
    """The report at ``path`` (a report.json or its run directory); ``schema=False`` asks only for its
    entries (tables built from hand-made or partial reports)."""
    p = report_path(path)
    try:
        data = read_json(p)
    except FileNotFoundError:
        raise ReportError(f"no report at {p}") from None
    except (OSError, ValueError, RecursionError) as e:
        raise ReportError(f"cannot read report {p}: {e}") from None
    if not isinstance(data, dict) or not isinstance(data.get("entries"), list):
        raise ReportError(f"{p} is not an lrlaws report (no 'entries' list)")
    try:
        if schema:
            validate(data)
    except ReportInvalid as e:
        raise ReportError(f"{p} is not a valid lrlaws report: {e}; fix or delete it") from None
    return data


def invalid_reason(path: Path) -> str | None:
    """Why the report at ``path`` cannot be compared with, or None if it can."""
    try:
        load_report(path)
    except ReportError as e:
        return str(e)
    return None


def _started(data: dict[str, Any]) -> float:
    try:
        return float(data.get("started", 0.0))
    except (TypeError, ValueError, OverflowError):
        return 0.0


def _malformed(data: Any) -> str | None:
    """Why ``data`` cannot be an earlier report that sessions read (its order and its runs), or None."""
    if not isinstance(data, dict) or not isinstance(data.get("entries"), list):
        return "not an lrlaws report (no 'entries' list)"
    if not isinstance(data.get("started", 0.0), (int, float)):
        return f"its 'started' is {data.get('started')!r}, not a time"
    for e in data["entries"]:
        if not isinstance(e, dict) or not isinstance(e.get("runs_used", 0), int):
            return "an entry is not an object with a whole 'runs_used'"
    return None


def earlier_reports(report_dir: Path, tier: str | None = None, before: float = math.inf, *, below: bool = False,
                    skip_dirs: tuple[str, ...] = (), skipped: list[str] | None = None,
                    ) -> Iterator[tuple[Path, dict[str, Any]]]:
    """``(path, report)`` of every readable report in ``report_dir`` (``*/report.json``; with ``below``, every
    ``report.json`` below it) of ``tier`` (any tier if None) that started before ``before``, newest first.

    Unreadable files and files that are not lrlaws reports are passed over (one line about each appended
    to ``skipped``); the schema is not checked here.
    """
    root = Path(report_dir)
    found: list[tuple[float, Path, dict[str, Any]]] = []
    for p in root.rglob("report.json") if below else root.glob("*/report.json"):
        if skip_dirs and set(skip_dirs) & set(p.relative_to(root).parts):
            continue
        try:
            data = read_json(p)
        except (OSError, ValueError, RecursionError) as e:
            if skipped is not None:
                skipped.append(f"skipped the malformed report {p} ({type(e).__name__}: {str(e)[:120]})")
            continue
        if (why := _malformed(data)) is not None:
            if skipped is not None:
                skipped.append(f"skipped the malformed report {p}: {why}")
            continue
        if (tier is None or data.get("tier") == tier) and (started := _started(data)) < before:
            found.append((started, p, data))
    for _, p, data in sorted(found, key=lambda t: t[0], reverse=True):
        yield p, data


def _tier_and_start(path: Path) -> tuple[str | None, float] | None:
    try:
        data = read_json(path)
        return data.get("tier"), float(data.get("started", 0.0))
    except (OSError, ValueError, TypeError, AttributeError, OverflowError, RecursionError):
        return None


def find_previous(report_dir: Path, tier: str, before: float, exclude: Path | None = None,
                  skipped: list[str] | None = None) -> Path | None:
    """The newest valid report of ``tier`` in ``report_dir`` that started before ``before`` (baselines excluded).

    An invalid report is passed over (one line about it appended to ``skipped``), so one bad
    file cannot break every later session's comparison.
    """
    for p, _ in earlier_reports(report_dir, tier, before, skip_dirs=(BASELINE_DIR.name,)):
        if exclude is not None and p.parent.resolve() == exclude.resolve():
            continue
        why = invalid_reason(p)
        if why is None:
            return p
        if skipped is not None:
            skipped.append(f"skipped {why}")
    return None


def find_baseline(root: Path, tier: str) -> Path | None:
    """The committed baseline of ``tier``: ``results/baseline/report.json`` or ``results/baseline/*/report.json``."""
    base = Path(root) / BASELINE_DIR
    for p in [base / "report.json", *sorted(base.glob("*/report.json"))]:
        meta = _tier_and_start(p) if p.is_file() else None
        if meta is not None and meta[0] == tier:
            return p
    return None


def resolve_reference(compare_to: str, report_dir: Path, root: Path, new_report: Path,
                      skipped: list[str] | None = None) -> Path | None:
    """What a session compares with: a path, or ``previous`` (else the baseline of the tier), or ``none``."""
    if compare_to == "none":
        return None
    if compare_to != "previous":
        p = report_path(compare_to)
        if not p.is_file():
            raise ReportError(f"--compare-to {compare_to}: no report there")
        return p
    meta = _tier_and_start(new_report)
    if meta is None or meta[0] is None:
        raise ReportError(f"cannot read the tier of {new_report}")
    tier, started = meta
    return find_previous(report_dir, tier, started, exclude=new_report.parent, skipped=skipped) or find_baseline(root, tier)
