"""The real laws/ plan at each tier on this GPU-less machine: what a nightly would train, without training."""
from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def plan(tmp_path: Path, *args: str, env: dict[str, str] | None = None) -> str:
    res = subprocess.run(
        [sys.executable, "-m", "pytest", "laws/", "--plan", "--store", str(tmp_path / "store"), "-p", "no:cacheprovider",
         "--data-dir", str(tmp_path / "no-data"), *args],
        cwd=ROOT, capture_output=True, text=True, timeout=300, env={**os.environ, **(env or {})},
    )
    assert res.returncode == 0, res.stdout + res.stderr
    # --plan never downloads and never writes into the data dir, network or not
    assert not (tmp_path / "no-data").exists()
    return res.stdout


def test_gpu_tier_plan_lists_the_cifar10_linearity_runs(tmp_path):
    out = plan(tmp_path, "-k", "linearity", "--tier", "gpu")
    assert "6 recipes, 384 runs needed, 384 runs to train" in out
    assert len(re.findall(r"airbench/cifar10/airbench94 nesterov lr=", out)) == 6
    assert "CIFAR-10 not found under" in out  # offline and absent: said, and still planned
    assert not (tmp_path / "store" / "runs").exists() or not any((tmp_path / "store" / "runs").iterdir())


#: what each tier trains: every law contributes recipes of its trainer on the tier's data
EXPECTED = {
    "smoke": {"mlp/mnist1d", "scale_invariant/digits", "scale_invariant/mnist1d", "toy2d/none", "sched/digits",
              "sched/mnist1d", "sched/ps10", "gd/quadratic", "gd/mnist1d", "paper_nets/mnist1d"},
    "gpu": {"airbench/cifar10", "scale_invariant/cifar10", "scale_invariant/mnist", "toy2d/none", "sched/cifar10",
            "sched/ps10", "gd/quadratic", "gd/cifar10", "paper_nets/mnist1d"},
}


@pytest.mark.parametrize("tier", sorted(EXPECTED))
def test_every_law_has_a_plan_at_the_tier(tmp_path, tier):
    out = plan(tmp_path, "--tier", tier)
    found = set(re.findall(r"^\w{12}\s+\d+\s+\d+\s+[\d.]+\s+(\w+/\w+)/", out, re.M))
    assert EXPECTED[tier] <= found, f"missing: {EXPECTED[tier] - found}"
    assert "not tested at tier" not in out


def test_offline_plan_says_what_is_missing_and_how_to_fix_it(tmp_path):
    out = plan(tmp_path, "-k", "linearity", "--tier", "gpu", env={"LRLAWS_OFFLINE": "1"})
    assert "CIFAR-10 not found under" in out and "downloads disabled (--offline)" in out
    assert "384 runs to train" in out  # still planned: --plan lists what a night with the data would train


def test_smoke_plan_is_mostly_real_data(tmp_path):
    out = plan(tmp_path, "--tier", "smoke")
    laws = {"linearity": "mlp/mnist1d", "lars": "scale_invariant/digits", "intrinsic_lr": "scale_invariant/digits",
            "small_lr": "sched/digits", "gd_divergence": "gd/mnist1d", "transferability": "sched/mnist1d"}
    assert all(f"{recipe}/" in out for recipe in laws.values())
