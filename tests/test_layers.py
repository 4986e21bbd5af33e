"""Layering and size limits of the library: the core imports no torch, the packages import top-down only
(TYPE_CHECKING imports count), no import cycles, small modules and functions."""
from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "harness"
#: the project's limits (CTO's rules): a module is read in one sitting, a function on one screen
MAX_MODULE_LINES = 400
MAX_FUNCTION_LINES = 60
#: the core a user can use without torch: recipes, plans, the store, the statistics (and the plug-in registry)
#: the stages of the data flow, bottom up: a module imports only from its own stage or the ones before it.
#: ``identity`` hashes a recipe's data, so it sits after ``data``.
LAYERS: list[tuple[str, ...]] = [
    ("harness", "harness.config", "harness.packing", "harness.recipe", "harness.extensions", "harness.cli"),
    ("harness.data",),
    ("harness.identity",),
    ("harness.stats",),
    ("harness.calibrate",),
    ("harness.store",),
    ("harness.trainers",),
    ("harness.execute",),
    ("harness.law",),
    ("harness.report",),
    ("harness.plugin", "harness.bench", "harness.__main__"),
]
TORCH_FREE = ["harness.recipe", "harness.packing", "harness.execute.plan", "harness.store.index", "harness.stats", "harness.extensions"]


@pytest.mark.parametrize("module", TORCH_FREE)
def test_core_module_imports_no_torch(module):
    code = f"import sys, {module}; print(sorted(m for m in ('torch', 'torchvision') if m in sys.modules))"
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "[]", f"importing {module} imports {r.stdout.strip()}"


def test_the_torch_check_can_fail():
    code = "import sys, harness.trainers; print('torch' in sys.modules)"
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert r.stdout.strip() == "True"


def module_name(path: Path, root: Path = ROOT) -> str:
    parts = path.relative_to(root).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported(tree: ast.AST, modules: set[str]) -> set[str]:
    """harness modules a module imports, at any depth: lazy imports and TYPE_CHECKING imports count."""
    out: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            subs = {f"{node.module}.{a.name}" for a in node.names} & modules
            # ``from pkg import sub`` is an edge to the submodule; the package is an edge only for its own names
            out |= subs if len(subs) == len(node.names) else subs | {node.module}
    return {m for m in out if m in modules}


def import_graph(files: list[Path]) -> dict[str, set[str]]:
    modules = {module_name(f) for f in files}
    return {module_name(f): imported(ast.parse(f.read_text()), modules) - {module_name(f)} for f in files}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The groups of modules that import each other (strongly connected, more than one module)."""
    def reach(start: str) -> set[str]:
        seen, todo = set(), [start]
        while todo:
            for m in graph.get(todo.pop(), ()):
                if m not in seen:
                    seen.add(m)
                    todo.append(m)
        return seen

    reachable = {m: reach(m) for m in graph}
    groups = {frozenset({m} | {o for o in reachable[m] if m in reachable[o]}) for m in graph if m in reachable[m]}
    return sorted(sorted(g) for g in groups if len(g) > 1)


def harness_files() -> list[Path]:
    return sorted(p for p in PACKAGE.rglob("*.py") if "__pycache__" not in p.parts)


def test_no_import_cycles_in_harness():
    found = cycles(import_graph(harness_files()))
    assert not found, "modules that import each other: " + "; ".join(" <-> ".join(g) for g in found)


def _planted(tmp_path: Path, files: dict[str, str]) -> dict[str, set[str]]:
    for name, text in files.items():
        path = tmp_path / (name.replace(".", "/") + ".py")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    paths = sorted(tmp_path.rglob("*.py"))
    modules = {module_name(f, tmp_path) for f in paths}
    return {module_name(f, tmp_path): imported(ast.parse(f.read_text()), modules) - {module_name(f, tmp_path)}
            for f in paths}


def test_the_cycle_check_finds_a_cycle(tmp_path):
    graph = _planted(tmp_path, {
        "harness.a": "def f():\n    from harness.b import g\n",
        "harness.b": "from harness import a\n",
        "harness.c": "from harness.a import f\n",
    })
    assert cycles(graph) == [["harness.a", "harness.b"]]


def test_the_cycle_check_counts_type_checking_imports(tmp_path):
    graph = _planted(tmp_path, {
        "harness.law.__init__": "from harness.law.context import Ctx\n",
        "harness.law.context": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from harness.law import lrlaw\n",
    })
    assert cycles(graph) == [["harness.law", "harness.law.context"]]


def layer(module: str) -> int:
    """The stage of a module: that of the longest package prefix listed in LAYERS."""
    best = max(((len(p), i) for i, group in enumerate(LAYERS) for p in group
                if module == p or module.startswith(p + ".")), default=None)
    assert best is not None, f"{module} is in no stage of LAYERS: add its package there"
    return best[1]


def upward_imports(graph: dict[str, set[str]]) -> list[str]:
    return sorted(f"{m} -> {d}" for m, deps in graph.items() for d in deps if layer(d) > layer(m))


#: modules directly in harness/ (``__init__`` and ``__main__`` included): the rest lives in the stages' packages
MAX_TOP_LEVEL = 8


def top_level_modules(package: Path = PACKAGE) -> list[str]:
    return sorted(p.name for p in package.glob("*.py"))


def test_the_top_level_stays_small():
    assert len(top_level_modules()) <= MAX_TOP_LEVEL, top_level_modules()


def test_the_top_level_check_can_fail(tmp_path):
    for i in range(MAX_TOP_LEVEL + 1):
        (tmp_path / f"m{i}.py").write_text("")
    assert len(top_level_modules(tmp_path)) > MAX_TOP_LEVEL


def test_packages_import_top_down_only():
    found = upward_imports(import_graph(harness_files()))
    assert not found, "imports against the data flow (see LAYERS): " + "; ".join(found)


def test_the_layer_check_finds_an_upward_import(tmp_path):
    graph = _planted(tmp_path, {
        "harness.store.index": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from harness.report.history import x\n",
        "harness.report.history": "from harness.store.index import Store\n",
        "harness.plugin.hooks": "from harness.report import history\n",
    })
    assert upward_imports(graph) == ["harness.store.index -> harness.report.history"]


def line_count(path: Path) -> int:
    return len(path.read_text().splitlines())


def test_no_module_over_the_limit():
    files = harness_files() + sorted((ROOT / "laws").glob("*.py"))
    over = {str(f.relative_to(ROOT)): n for f in files if (n := line_count(f)) > MAX_MODULE_LINES}
    assert not over, f"modules over {MAX_MODULE_LINES} lines: {over}"


def long_functions(path: Path, root: Path = ROOT) -> dict[str, int]:
    out = {}
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            n = node.end_lineno - node.lineno + 1
            if n > MAX_FUNCTION_LINES:
                out[f"{path.relative_to(root)}:{node.lineno} {node.name}"] = n
    return out


def test_no_function_over_the_limit():
    over = {k: v for f in harness_files() + sorted((ROOT / "laws").glob("*.py")) for k, v in long_functions(f).items()}
    assert not over, f"functions over {MAX_FUNCTION_LINES} lines: {over}"


def test_the_size_checks_can_fail(tmp_path):
    f = tmp_path / "big.py"
    f.write_text("def f():\n" + "    x = 1\n" * MAX_FUNCTION_LINES + "\n" * (MAX_MODULE_LINES - MAX_FUNCTION_LINES))
    assert long_functions(f, tmp_path) == {"big.py:1 f": MAX_FUNCTION_LINES + 1}
    assert line_count(f) > MAX_MODULE_LINES
