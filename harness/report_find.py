"""Finding and reading reports: a report path, the previous report of a tier, the committed baseline.

Every report read here is validated against its schema (``harness.report_schema``).
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from harness.report_schema import ReportInvalid, read_json, validate

BASELINE_DIR = Path("results") / "baseline"


class CompareError(RuntimeError):
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
        raise CompareError(f"no report at {p}") from None
    except (OSError, ValueError, RecursionError) as e:
        raise CompareError(f"cannot read report {p}: {e}") from None
    if not isinstance(data, dict) or not isinstance(data.get("entries"), list):
        raise CompareError(f"{p} is not an lrlaws report (no 'entries' list)")
    try:
        if schema:
            validate(data)
    except ReportInvalid as e:
        raise CompareError(f"{p} is not a valid lrlaws report: {e}; fix or delete it") from None
    return data


def invalid_reason(path: Path) -> str | None:
    """Why the report at ``path`` cannot be compared with, or None if it can."""
    try:
        load_report(path)
    except CompareError as e:
        return str(e)
    return None


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
    found: list[tuple[float, Path]] = []
    for p in Path(report_dir).glob("*/report.json"):
        if p.parent.name == BASELINE_DIR.name or (exclude is not None and p.parent.resolve() == exclude.resolve()):
            continue
        meta = _tier_and_start(p)
        if meta is None or meta[0] != tier or meta[1] >= before:
            continue
        found.append((meta[1], p))
    for _, p in sorted(found, key=lambda t: t[0], reverse=True):
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
            raise CompareError(f"--compare-to {compare_to}: no report there")
        return p
    meta = _tier_and_start(new_report)
    if meta is None or meta[0] is None:
        raise CompareError(f"cannot read the tier of {new_report}")
    tier, started = meta
    return find_previous(report_dir, tier, started, exclude=new_report.parent, skipped=skipped) or find_baseline(root, tier)
