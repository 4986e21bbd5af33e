"""Plug-in trainers and data sets: a throw-away package outside the repo, found through its entry points.

The package is the tutorial's (``tests/tutorial/lrlaws_logreg``, entry points from
``tests/tutorial/pyproject_entry_points.toml``), laid out in a temporary directory
the way ``pip install`` leaves it (the package next to a ``*.dist-info`` with
``entry_points.txt``). Its law file runs in-process, through the pool of spawned
CPU workers and on a loopback Ray cluster that was started before the package
was on any path, so Ray workers can only get its code from the driver.
"""
from __future__ import annotations

import json
import os
import shutil
import sys
import textwrap
import tomllib
from pathlib import Path

import numpy as np
import pytest

from harness import Ensemble, Recipe, RecipeError
from harness import extensions as plugins
from harness.store.index import Store
from harness.identity import recipe_key
from harness.trainers import TrainContext, get_trainer

from conftest import loopback_ray_cluster

ROOT = Path(__file__).resolve().parents[1]
TUTORIAL = ROOT / "tests" / "tutorial"
PACKAGE = "lrlaws_logreg"
SMOKE = Recipe(trainer="logreg", dataset="blobs", model="linear", lr=0.05, batch_size=16, steps=20)


def build_site(site: Path, package: Path = TUTORIAL / PACKAGE) -> Path:
    """Lay ``package`` out in ``site`` as an installed distribution with the tutorial's entry points."""
    shutil.copytree(package, site / package.name, ignore=shutil.ignore_patterns("__pycache__"))
    groups = tomllib.loads((TUTORIAL / "pyproject_entry_points.toml").read_text())["project"]["entry-points"]
    info = site / f"{package.name}-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {package.name}\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("".join(
        f"[{g}]\n" + "".join(f"{k} = {v}\n" for k, v in eps.items()) + "\n" for g, eps in groups.items()))
    return site


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    return build_site(tmp_path_factory.mktemp("site"))


def _forget() -> None:
    """Undo what importing the package left in this process."""
    plugins._LOADED.clear()
    for entries in plugins._INSTALLED.values():
        entries.clear()
    for name in [m for m in sys.modules if m == PACKAGE or m.startswith(PACKAGE + ".")]:
        del sys.modules[name]


@pytest.fixture
def on_path(site, monkeypatch):
    """The package installed for this process (and the processes it spawns)."""
    monkeypatch.syspath_prepend(str(site))
    yield site
    _forget()


def write_law(pytester) -> None:
    pytester.makeini("[pytest]\n")
    shutil.copy(TUTORIAL / "logreg_law.py", pytester.path / "test_logreg_law.py")


def run_law(pytester, site: Path, monkeypatch, name: str, *args: str):
    """The law file through pytest in a fresh process that has the package on its path; its report entries."""
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(site), str(ROOT)]))
    r = pytester.runpytest_subprocess("-p", "no:cacheprovider", "--gpus=0", f"--store={pytester.path / name}",
                                      f"--report-dir={pytester.path / ('results-' + name)}", "--compare-to=none",
                                      *args, timeout=300)
    reports = [json.loads(p.read_text()) for p in (pytester.path / f"results-{name}").glob("*/report.json")]
    entries = {e["nodeid"]: (e["decision"], [x["value"] for x in e["results"]]) for rep in reports for e in rep["entries"]}
    return r, entries


def stored(store: Path) -> dict[tuple[str, int], tuple[str, float]]:
    s = Store(store)
    out = {}
    for name, n in (("slow", 0.05), ("fast", 0.5)):
        for seed in range(8):
            rec, arrays = s.load(_key(SMOKE.replace(lr=n)), seed)
            out[(name, seed)] = (rec.device, float(arrays["logits"].sum()))
    return out


def _key(recipe: Recipe) -> str:
    # the key without importing the package into this process: trainer salt + data set salt
    return recipe.key("logreg-v1\0plugin-data:blobs:blobs-v1")


# ------------------------------------------------------------------ in-process --

def test_entry_points_resolve_trainer_and_dataset(on_path):
    trainer = get_trainer(SMOKE)
    assert trainer.name == "logreg" and type(trainer).__module__ == PACKAGE
    assert plugins.get_dataset("blobs").load(None, False).x_train.shape == (512, 2)
    # the data set's salt is part of the run's identity; built-in recipes keep their keys
    assert recipe_key(SMOKE) == _key(SMOKE) != SMOKE.key("logreg-v1")
    mlp = Recipe(trainer="mlp", dataset="teacher", model="mlp")
    assert recipe_key(mlp) == mlp.key(get_trainer(mlp).salt)


def test_without_the_package_the_trainer_is_unknown_with_the_fix():
    with pytest.raises(RecipeError, match=r"unknown trainer 'logreg'.*'lrlaws\.trainers' entry point"):
        get_trainer(SMOKE)


def test_a_broken_entry_point_is_one_line_naming_it(tmp_path, monkeypatch):
    pkg = tmp_path / "pkg" / PACKAGE
    shutil.copytree(TUTORIAL / PACKAGE, pkg)
    (pkg / "__init__.py").write_text("raise ImportError('no module named sklearn')\n")
    monkeypatch.syspath_prepend(str(build_site(tmp_path / "site", pkg)))
    try:
        with pytest.raises(RecipeError) as e:
            get_trainer(SMOKE)
    finally:
        _forget()
    msg = str(e.value)
    assert "\n" not in msg and "'lrlaws_logreg:LogReg' failed to load (ImportError: no module named sklearn)" in msg


def test_law_runs_in_process(pytester, site, monkeypatch):
    write_law(pytester)
    r, entries = run_law(pytester, site, monkeypatch, "local", "--workers=1")
    assert r.ret == 0, r.stdout.str()
    assert list(entries.values()) == [("pass", entries["test_logreg_law.py::test_larger_lr_fits_the_blobs_sooner"][1])]
    r.stdout.fnmatch_lines(["*lrlaws: trained 64 runs*"])


# ----------------------------------------------------------------------- pool --

def test_law_runs_in_spawned_pool_workers_with_the_same_runs(pytester, site, monkeypatch):
    write_law(pytester)
    _, _ = run_law(pytester, site, monkeypatch, "local", "--workers=1")
    r, entries = run_law(pytester, site, monkeypatch, "pool", "--workers=2")
    assert r.ret == 0, r.stdout.str()
    assert [d for d, _ in entries.values()] == ["pass"]
    r.stdout.fnmatch_lines(["*lrlaws: trained 64 runs*"])
    assert stored(pytester.path / "pool") == stored(pytester.path / "local")


def test_negative_control_a_trainer_registered_in_conftest_does_not_reach_pool_workers(pytester, site, monkeypatch):
    """What entry points fix: the spawned workers never run the conftest that edited TRAINERS."""
    write_law(pytester)
    plain = pytester.path / "plain"  # the package without its *.dist-info: no entry points
    shutil.copytree(site / PACKAGE, plain / PACKAGE)
    pytester.makeconftest(textwrap.dedent("""
        import sys
        sys.path.insert(0, %r)
        from harness import extensions as plugins
        from harness.trainers import TRAINERS
        from lrlaws_logreg import LogReg
        TRAINERS["logreg"] = LogReg()
        plugins.install({"lrlaws.datasets": {"blobs": "lrlaws_logreg:Blobs"}})
    """ % str(plain)))
    monkeypatch.setenv("PYTHONPATH", str(ROOT))  # no entry points: the package is not installed
    r = pytester.runpytest_subprocess("-p", "no:cacheprovider", "--gpus=0", "--workers=2", "--store=s",
                                      "--report-dir=rep", "--compare-to=none", timeout=300)
    r.stdout.fnmatch_lines(["*lrlaws: training failed for*unknown trainer 'logreg'*",
                            "NOT_RUN*test_larger_lr_fits_the_blobs_sooner*training failed*"])
    assert "trained 0 runs" in r.stdout.str() or "lrlaws: trained" not in r.stdout.str()


# ------------------------------------------------------------------------ Ray --

@pytest.fixture(scope="module")
def cluster():
    """A 2-CPU Ray cluster on loopback, started before the package is on any path."""
    pytest.importorskip("ray", reason="the ray extra is not installed: pip install -e '.[dev,ray]'")
    with loopback_ray_cluster() as c:
        yield c


def test_law_runs_on_ray_with_the_same_runs(cluster, pytester, site, monkeypatch):
    write_law(pytester)
    _, local = run_law(pytester, site, monkeypatch, "local")
    r, on_ray = run_law(pytester, site, monkeypatch, "ray", "--executor=ray", f"--ray-address={cluster.address}")
    assert r.ret == 0, r.stdout.str()
    assert on_ray == local and [d for d, _ in on_ray.values()] == ["pass"]
    r.stdout.fnmatch_lines(["*lrlaws: trained 64 runs*"])
    ray_runs, local_runs = stored(pytester.path / "ray"), stored(pytester.path / "local")
    assert {k: v[1] for k, v in ray_runs.items()} == {k: v[1] for k, v in local_runs.items()}
    assert all(device.startswith("ray:") for device, _ in ray_runs.values())


def test_negative_control_ray_workers_lack_a_plugin_the_driver_does_not_ship(cluster, on_path, tmp_path, monkeypatch):
    from harness.execute.tasks import make_tasks
    from harness.execute.plan import make_plan
    from harness.execute.ray import train_ray

    store = Store(tmp_path / "s")
    tasks = make_tasks(make_plan([Ensemble(SMOKE, 4)], store, "cpu"), "cpu")
    monkeypatch.setattr(plugins, "ray_py_modules", lambda: [])
    out = train_ray(store, tasks, TrainContext("cpu"), lambda *a: None, address=cluster.address, max_retries=0)
    assert out.trained == 0 and out.failed
    assert all("No module named 'lrlaws_logreg'" in why for _, _, why in out.failed), out.failed


def test_two_packages_claiming_one_name_is_one_line(site, tmp_path, monkeypatch):
    other = tmp_path / "other-0.1.dist-info"
    other.mkdir()
    (other / "METADATA").write_text("Metadata-Version: 2.1\nName: other\nVersion: 0.1\n")
    (other / "entry_points.txt").write_text("[lrlaws.trainers]\nlogreg = other:Trainer\n")
    monkeypatch.syspath_prepend(str(site))
    monkeypatch.syspath_prepend(str(tmp_path))
    try:
        with pytest.raises(RecipeError, match=r"^two installed packages register lrlaws\.trainers entry point 'logreg' "
                                              r"\(.*\); uninstall one of them$"):
            get_trainer(SMOKE)
    finally:
        _forget()
