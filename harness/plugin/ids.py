"""A law point's id in reports: its module's path from the top of its package, then pytest's ``::test[params]``.

pytest's node ids are relative to its rootdir, which moves with where pytest is
started and with ``--rootdir``/ini files; the same law would get another id in
every such session and its comparison would list it as removed + new, hiding a
regression. The package is stable: ``laws/test_lr_linearity.py::...`` in a
clone, in an installed wheel (``--pyargs laws``) and from any directory. A module
outside any package is named by its file name alone.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any


def law_id(item: Any) -> str:
    """The stable id of ``item`` (a pytest item with ``path`` and ``nodeid``)."""
    path = Path(item.path).resolve()
    top = path.parent
    while (top / "__init__.py").is_file() and top.parent != top:
        top = top.parent
    rest = item.nodeid.split("::", 1)[1] if "::" in item.nodeid else item.name
    return f"{path.relative_to(top).as_posix()}::{rest}"
