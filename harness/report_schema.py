"""The schema of ``report.json``, by version, and its validation (JSON Schema, via ``jsonschema``).

A report carries ``version`` (``harness.report.REPORT_VERSION``). Readers
validate before use: ``compare`` refuses an invalid report with one line and
``--compare-to previous`` skips one with a warning; ``trends`` validates each
result on its own, so an older report that lacks a field loses only what it lacks.
A report without ``version`` was written before versions existed: it is read
against the version-1 schema.
"""
from __future__ import annotations

import json
import math
import sys
from pathlib import Path
from typing import Any

import jsonschema

from harness.store_errors import read_regular

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


# ------------------------------------------------------------- standard JSON --
# ``report.json`` is read by browsers and other tools whose JSON parsers reject the NaN and
# Infinity tokens Python writes by default: non-finite floats are written as these strings
# (the names the protobuf JSON mapping uses) and turned back into floats when read.
NONFINITE = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}


def _encode(v: Any) -> Any:
    if isinstance(v, float) and not math.isfinite(v):
        return "NaN" if math.isnan(v) else ("Infinity" if v > 0 else "-Infinity")
    if isinstance(v, dict):
        return {k: _encode(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_encode(x) for x in v]
    return v


def _decode(v: Any) -> Any:
    if isinstance(v, str):
        return NONFINITE.get(v, v)
    if isinstance(v, dict):
        return {k: _decode(x) for k, x in v.items()}
    if isinstance(v, list):
        return [_decode(x) for x in v]
    return v


def _int(text: str) -> int:
    value = int(text)  # beyond 4300 digits Python itself refuses (ValueError)
    if abs(value) > sys.float_info.max:
        raise ValueError(f"the integer {text[:12]}... ({len(text)} digits) is beyond the range of a float")
    return value


def dumps(data: Any, indent: int | None = 1) -> str:
    """``data`` as standard JSON (no NaN or Infinity tokens)."""
    return json.dumps(_encode(data), indent=indent, allow_nan=False)


def loads(text: str | bytes) -> Any:
    """A report's JSON (standard, or an older one with NaN/Infinity tokens) with its non-finite floats restored;
    an integer no float can hold is a ``ValueError``."""
    return _decode(json.loads(text, parse_int=_int))


def read_json(path: Path) -> Any:
    """The report at ``path``, a regular file (a FIFO planted in a report dir is refused, not waited on)."""
    return loads(read_regular(Path(path), follow_links=True))
