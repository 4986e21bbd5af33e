"""Data and code identity: runs of other data or other training code never share a key."""
from __future__ import annotations

import random
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from harness import config, identity
from harness.data import arrays, catalog, digits, mnist1d
from harness.recipe import Recipe, RecipeError

CIFAR = Recipe(trainer="airbench", dataset="cifar10", model="airbench94", optimizer="nesterov", lr=0.1, steps=10)
ROOT = Path(__file__).resolve().parents[1]


def fake_cifar(root: Path, fill: bytes) -> Path:
    folder = root / catalog.CIFAR10_FOLDER
    folder.mkdir(parents=True)
    for name in catalog.CIFAR10_FILES:
        (folder / name).write_bytes(fill * 100)
    return root


@pytest.fixture(autouse=True)
def private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv(config.CACHE_ENV, str(tmp_path / "cache"))
    catalog._memo.clear()


def test_same_dataset_name_different_content_different_key(tmp_path):
    a, b = fake_cifar(tmp_path / "a", b"x"), fake_cifar(tmp_path / "b", b"y")
    assert identity.recipe_key(CIFAR, a) != identity.recipe_key(CIFAR, b)


def test_same_content_same_key_wherever_it_lives(tmp_path):
    a, b = fake_cifar(tmp_path / "a", b"x"), fake_cifar(tmp_path / "b", b"x")
    assert identity.recipe_key(CIFAR, a) == identity.recipe_key(CIFAR, b)


def test_rewritten_data_changes_the_key(tmp_path):
    a = fake_cifar(tmp_path / "a", b"x")
    before = identity.recipe_key(CIFAR, a)
    (a / catalog.CIFAR10_FOLDER / "test_batch").write_bytes(b"z" * 101)
    assert identity.recipe_key(CIFAR, a) != before


def test_fingerprint_is_hashed_once_then_cached_outside_the_data_dir(tmp_path, monkeypatch):
    a = fake_cifar(tmp_path / "a", b"x")
    calls = []
    real = catalog.hash_files
    monkeypatch.setattr(catalog, "hash_files", lambda *p, **k: calls.append(1) or real(*p, **k))
    first = catalog.fingerprint("cifar10", a)
    catalog._memo.clear()  # a new process: only the on-disk cache is left
    assert catalog.fingerprint("cifar10", a) == first and len(calls) == 1
    assert (tmp_path / "cache" / "fingerprints.json").is_file()
    assert sorted(p.name for p in (a / catalog.CIFAR10_FOLDER).iterdir()) == sorted(catalog.CIFAR10_FILES)


def test_absent_data_has_no_key_unless_planning(tmp_path):
    with pytest.raises(FileNotFoundError, match="--data-dir"):
        identity.recipe_key(CIFAR, tmp_path)
    assert identity.recipe_key(CIFAR, tmp_path, absent_ok=True) != identity.recipe_key(CIFAR, fake_cifar(tmp_path / "c", b"x"))


def test_generated_sets_are_identified_by_their_definition(monkeypatch):
    r = Recipe(trainer="mlp", dataset="mnist1d", model="mlp")
    before = identity.recipe_key(r)
    mnist1d.fingerprint.cache_clear()
    monkeypatch.setattr(mnist1d, "hash_files", lambda paths, extra="": arrays.hash_files(paths, extra + " changed"))
    try:
        assert identity.recipe_key(r) != before
    finally:
        mnist1d.fingerprint.cache_clear()
    assert identity.recipe_key(r.replace(dataset="digits")) != before


def test_mnist1d_is_the_published_split_and_leaves_global_rngs_alone():
    np.random.seed(123)
    random.seed(123)
    expect_np, expect_py = np.random.rand(), random.random()
    np.random.seed(123)
    random.seed(123)
    d = mnist1d.load()
    assert (np.random.rand(), random.random()) == (expect_np, expect_py)
    assert d.x_train.shape == (4000, 40) and d.x_test.shape == (1000, 40) and d.num_classes == 10
    assert sorted(np.unique(d.y_train)) == list(range(10))


def test_digits_split_is_fixed_and_stratified():
    d = digits.load()
    assert d.x_train.shape == (1500, 1, 8, 8) and d.x_test.shape == (297, 1, 8, 8)
    counts = np.bincount(d.y_test, minlength=10)
    assert counts.min() >= 29 and counts.max() <= 30
    assert digits.as_uint8(d.x_train).max() == 255


# -- code identity -------------------------------------------------------------------------

@pytest.fixture
def package_copy(tmp_path, monkeypatch) -> Path:
    copy = tmp_path / "harness"
    shutil.copytree(identity.PACKAGE_ROOT, copy, ignore=shutil.ignore_patterns("__pycache__"))
    monkeypatch.setattr(identity, "PACKAGE_ROOT", copy)
    return copy


def _append(path: Path, text: str) -> None:
    path.write_text(path.read_text() + text)


def test_a_change_to_a_trainer_or_its_imports_changes_its_salt(package_copy):
    before = {t: identity.code_salt(t) for t in ("mlp", "gd")}
    _append(package_copy / "data" / "synthetic.py", "\nEXTRA = 1\n")  # mlp and gd both read it
    after = {t: identity.code_salt(t) for t in ("mlp", "gd")}
    assert all(before[t] != after[t] for t in before)


def test_comments_docstrings_and_unrelated_modules_leave_the_salt(package_copy):
    before = identity.code_salt("mlp")
    _append(package_copy / "trainers" / "mlp.py", "\n# a comment\n")
    src = (package_copy / "trainers" / "mlp.py").read_text()
    (package_copy / "trainers" / "mlp.py").write_text(src.replace('"""Small MLPs', '"""Reworded: small MLPs', 1))
    _append(package_copy / "report" / "report.py", "\nEXTRA = 1\n")
    assert identity.code_salt("mlp") == before


def test_every_builtin_trainer_is_instantiated_from_the_one_registry():
    from harness.trainers import TRAINERS

    assert set(TRAINERS) == set(identity.BUILTIN_TRAINERS)
    for name, trainer in TRAINERS.items():
        assert trainer.name == name, f"{identity.BUILTIN_TRAINERS[name]} says its name is {trainer.name!r}"
        assert trainer.salt == identity.code_salt(name)


def test_keys_are_computed_without_importing_torch():
    code = textwrap.dedent("""
        import sys
        from harness.identity import recipe_key
        from harness.execute.plan import merge
        from harness.recipe import Ensemble, Recipe
        for ds in ("teacher", "mnist1d", "digits"):
            recipe_key(Recipe(trainer="sched", dataset=ds, model="si_mlp"))
        merge([Ensemble(Recipe(trainer="paper_nets", dataset="mnist1d", model="mnist1d_cnn", optimizer="adam"), 2)])
        assert "torch" not in sys.modules, "torch was imported"
    """)
    res = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr


def test_unknown_trainer_or_dataset_is_one_line():
    with pytest.raises(RecipeError, match="unknown trainer"):
        identity.recipe_key(Recipe(trainer="nope", dataset="teacher", model="mlp"))
    with pytest.raises(RecipeError, match="unknown dataset"):
        identity.recipe_key(Recipe(trainer="mlp", dataset="imagenet", model="mlp"))
