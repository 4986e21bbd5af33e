"""The schema of ``report.json``, by version, and its validation (JSON Schema, via ``jsonschema``).

A report carries ``version`` (``harness.report.REPORT_VERSION``). Readers
validate before use: ``compare`` refuses an invalid report with one line and
``--compare-to previous`` skips one with a warning; ``trends`` validates each
result on its own, so an older report that lacks a field loses only what it lacks.
A report without ``version`` was written before versions existed: it is read
against the version-1 schema.
"""
from __future__ import annotations

from typing import Any

import jsonschema

_NUMBER = {"type": "number"}
_PAIR = {"type": "array", "items": _NUMBER, "minItems": 2, "maxItems": 2}

RESULT = {
    "type": "object",
    "required": ["statistic", "value", "ci"],
    "properties": {
        "statistic": {"type": "string", "minLength": 1},
        "value": _NUMBER,
        "ci": _PAIR,
        "threshold": {"oneOf": [_NUMBER, _PAIR]},
        "direction": {"type": "string"},
        "decision": {"type": "string"},
    },
}

ENTRY = {
    "type": "object",
    "required": ["nodeid", "law", "decision"],
    "properties": {
        "nodeid": {"type": "string", "minLength": 1},
        "law": {"type": "string"},
        "decision": {"type": "string"},
        "results": {"type": "array", "items": RESULT},
        "recipes": {"type": "object"},
        "device_classes": {"type": "array", "items": {"type": "string"}},
    },
}

SCHEMAS: dict[int, dict[str, Any]] = {
    1: {
        "type": "object",
        "required": ["tier", "entries"],
        "properties": {
            "version": {"const": 1},
            "run_id": {"type": "string"},
            "tier": {"type": "string"},
            "started": _NUMBER,
            "confidence": {"type": "number", "exclusiveMinimum": 0, "exclusiveMaximum": 1},
            "environment": {"type": "object"},
            "entries": {"type": "array", "items": ENTRY},
        },
    },
}
LATEST = max(SCHEMAS)


class ReportInvalid(ValueError):
    """A report that does not match its schema; the message names the first bad field."""


def _where(error: jsonschema.ValidationError) -> str:
    parts = [f"[{p}]" if isinstance(p, int) else f".{p}" for p in error.absolute_path]
    return "".join(parts).lstrip(".") or "the top level"


def _first_error(schema: dict[str, Any], data: Any) -> str | None:
    error = jsonschema.exceptions.best_match(jsonschema.Draft202012Validator(schema).iter_errors(data))
    return None if error is None else f"{_where(error)}: {error.message[:200]}"


def validate(data: Any) -> None:
    """Raise ``ReportInvalid`` unless ``data`` is a report of a schema version this lrlaws knows."""
    if not isinstance(data, dict):
        raise ReportInvalid("not a JSON object")
    version = data.get("version", 1)
    if not isinstance(version, int) or isinstance(version, bool):
        raise ReportInvalid(f"version {version!r} is not a whole number")
    if version > LATEST:
        raise ReportInvalid(f"schema version {version} is newer than this lrlaws reads ({LATEST}): upgrade lrlaws")
    if version not in SCHEMAS:
        raise ReportInvalid(f"unknown schema version {version}")
    why = _first_error(SCHEMAS[version], data)
    if why is not None:
        raise ReportInvalid(f"{why} (schema version {version})")


def result_ok(result: Any) -> bool:
    """Whether one result row can be read (for readers that keep the good rows of an older report)."""
    return _first_error(RESULT, result) is None
