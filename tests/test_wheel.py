"""The installed wheel, as a new user gets it: the laws ship, and run on the tutorial's own model.

Builds the lrlaws wheel and the tutorial plug-in's wheel from copies of their sources (the
repository is never written), installs both with pip (offline, no dependencies) into a fresh
virtual environment that sees the shared environment's packages (torch, numpy, ...) only
through a path file, and runs, from a directory outside the repository, a shipped law with
``--pyargs`` and ``linearity`` on the plug-in's logistic regression through ``--recipe``.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import venv
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
TUTORIAL = ROOT / "tests" / "tutorial"


def _run(*cmd: str, cwd: Path, timeout: int = 600) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "LRLAWS_STORE")}
    return subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


def _wheel(src: Path, out: Path) -> Path:
    res = _run(sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index",
               "-w", str(out), str(src), cwd=src)
    assert res.returncode == 0, res.stderr[-2000:]
    return next(out.glob(f"{src.name.replace('-', '_')}*.whl"))


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("wheel")
    src = tmp / "lrlaws"
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, src / name)
    for pkg in ("harness", "laws"):
        shutil.copytree(ROOT / pkg, src / pkg, ignore=shutil.ignore_patterns("__pycache__"))
    plugin = tmp / "lrlaws-logreg"
    shutil.copytree(TUTORIAL / "lrlaws_logreg", plugin / "lrlaws_logreg", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(TUTORIAL / "pyproject_entry_points.toml", plugin / "pyproject.toml")
    wheels = [_wheel(src, tmp / "dist"), _wheel(plugin, tmp / "dist")]
    env = tmp / "venv"
    venv.create(env, with_pip=False)
    py = env / "bin" / "python"
    site = Path(_run(str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])", cwd=tmp).stdout.strip())
    # the shared environment's packages (torch, numpy...) after the venv's own: the wheel wins
    (site / "zz_shared.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    res = _run(sys.executable, "-m", "pip", "--python", str(py), "install", "--no-index", "--no-deps",
               *map(str, wheels), cwd=tmp)
    assert res.returncode == 0, res.stderr[-2000:]
    return py


def test_the_wheel_holds_the_laws_and_its_harness_is_the_one_imported(installed, tmp_path):
    res = _run(str(installed), "-c", "import harness, laws, lrlaws_logreg; print(harness.__file__); print(laws.__file__)",
               cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    for line in res.stdout.split():
        assert str(installed.parent.parent) in line and str(ROOT) not in line, line


def test_a_shipped_law_runs_with_pyargs(installed, tmp_path):
    res = _run(str(installed), "-m", "pytest", "-p", "no:cacheprovider", "--pyargs", "laws", "-k", "quadratic",
               "--tier", "smoke", "--gpus", "0", "--workers", "1", "--store", "store", "--report-dir", "rep", cwd=tmp_path)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-2000:]
    data = json.loads(next((tmp_path / "rep").glob("*/report.json")).read_text())
    assert data["entries"] and all(e["nodeid"].startswith("laws/test_gd_divergence.py::") for e in data["entries"])
    assert (next((tmp_path / "rep").glob("*/report.html"))).is_file()


def test_linearity_runs_on_the_tutorial_model_without_the_shipped_findings(installed, tmp_path):
    (tmp_path / "my_recipes.py").write_text(
        'from harness import Recipe\n\nMINE = Recipe(trainer="logreg", dataset="blobs", model="linear", lr=0.05, '
        'batch_size=16, steps=20)\n')
    res = _run(str(installed), "-m", "pytest", "-p", "no:cacheprovider", "--pyargs", "laws", "-k", "linearity",
               "--tier", "smoke", "--gpus", "0", "--workers", "1", "--store", "store", "--report-dir", "rep",
               "--recipe", "linearity=my_recipes:MINE", "-rA", cwd=tmp_path)
    out = res.stdout
    assert "finding" not in out and "XFAIL" not in out, out[-3000:]  # no finding of MNIST-1D dragged along
    entries = json.loads(next((tmp_path / "rep").glob("*/report.json")).read_text())["entries"]
    assert len(entries) == 3 and all(e["outcome"] in ("passed", "failed", "skipped") for e in entries), out[-3000:]
    # pytest's outcome and the report's verdict agree, point by point
    for e in entries:
        assert {"pass": "passed", "fail": "failed", "inconclusive": "skipped"}[e["decision"]] == e["outcome"], e
    assert res.returncode == (1 if any(e["outcome"] == "failed" for e in entries) else 0), out[-3000:]
