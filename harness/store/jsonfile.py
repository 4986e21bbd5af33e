"""Reports and index files as standard JSON: non-finite floats written as strings and read back.

``report.json`` is read by browsers and other tools whose JSON parsers reject the NaN and
Infinity tokens Python writes by default: non-finite floats are written as the strings the
protobuf JSON mapping uses and turned back into floats when read. Files are read as regular
files only (a FIFO planted where a report belongs is refused, not waited on). Below the report
stage so that the store's pruning reads reports through the same codec.
"""
from __future__ import annotations

import json
import math
import sys
from pathlib import Path
from typing import Any

from harness.store.errors import read_regular

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
