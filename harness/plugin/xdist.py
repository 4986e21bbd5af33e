"""pytest-xdist's ``-n``: refused before collection when the session's paths hold law tests.

Each xdist worker would plan and train on its own, so the plan would not be one. The
controller never collects, so the refusal reads the paths pytest was given: a test
module with a module-level ``@lrlaw(`` makes the session a law session. Sessions without
laws (the plugin is loaded in every pytest of the environment) keep their ``-n``.
"""
from __future__ import annotations

import importlib.util
import os
import re
from pathlib import Path
from typing import Iterator

import pytest

XDIST_REFUSAL = ("lrlaws: laws do not run under pytest-xdist's -n (each worker would train on its own); "
                 "drop -n and parallelise training with --workers K (CPU), --gpus N or --executor ray")

#: directories a law is never in, skipped so the scan stays quick in a large checkout
_SKIP_DIRS = {"node_modules", "__pycache__", "site-packages", "build", "dist", "results"}


def refuse_xdist(config: pytest.Config) -> None:
    """Raise ``pytest.UsageError`` (exit 4, one line) when ``-n`` would run law tests."""
    if hasattr(config, "workerinput") or not getattr(config.option, "numprocesses", None):
        return
    pyargs = bool(getattr(config.option, "pyargs", False))
    if any(_mentions_laws(p) for arg in config.args for p in _paths(arg, pyargs)):
        raise pytest.UsageError(XDIST_REFUSAL)


def _paths(arg: str, pyargs: bool) -> Iterator[Path]:
    arg = arg.split("::")[0]
    path = Path(arg)
    if path.exists():
        yield path
    elif pyargs:
        try:
            spec = importlib.util.find_spec(arg)
        except (ImportError, ValueError):
            return
        if spec is not None and spec.submodule_search_locations:
            yield from (Path(p) for p in spec.submodule_search_locations)
        elif spec is not None and spec.origin:
            yield Path(spec.origin)


def _mentions_laws(path: Path) -> bool:
    if path.is_file():
        return _is_law_module(path)
    for root, dirs, files in os.walk(path):
        dirs[:] = [d for d in dirs if not d.startswith(".") and d not in _SKIP_DIRS]
        if any(_is_law_module(Path(root, f)) for f in files if f.endswith(".py") and
               (f.startswith("test_") or f.endswith("_test.py"))):
            return True
    return False


#: a law point: ``@lrlaw(...)`` decorating a module-level test (a law quoted inside a string is indented)
_LAW = re.compile(rb"^@lrlaw\(", re.M)


def _is_law_module(path: Path) -> bool:
    try:
        return _LAW.search(path.read_bytes()) is not None
    except OSError:
        return False
