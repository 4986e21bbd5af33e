"""The pytest11 entry point stays light: no torch, scipy or trainers until a law test is selected."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
HEAVY = ("torch", "scipy", "jsonschema", "harness.trainers", "harness.execute.local", "harness.law", "harness.report.schema")


def _loaded_after(statement: str) -> list[str]:
    code = f"import sys; {statement}; print(','.join(m for m in {HEAVY!r} if m in sys.modules))"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    return [m for m in out.stdout.strip().split(",") if m]


def test_importing_the_plugin_loads_no_torch():
    assert _loaded_after("import harness.plugin") == []


def test_negative_control_the_check_sees_torch_when_it_is_imported():
    assert "torch" in _loaded_after("import harness.execute.local")


UNRELATED = """
import sys

def test_unrelated(pytestconfig):
    assert pytestconfig.pluginmanager.has_plugin("lrlaws")  # the entry point is active here
    heavy = [m for m in {heavy!r} if m in sys.modules]
    assert heavy == [], heavy
"""


def test_an_unrelated_pytest_session_with_the_plugin_imports_no_torch(pytester):
    pytester.makepyfile(test_unrelated=UNRELATED.format(heavy=HEAVY))
    res = pytester.runpytest_subprocess("-p", "no:cacheprovider")  # the plugin comes from its entry point
    res.assert_outcomes(passed=1)


def test_bad_workers_value_is_one_line(pytester):
    pytester.makepyfile(test_unrelated=UNRELATED.format(heavy=HEAVY))
    res = pytester.runpytest_subprocess("-p", "no:cacheprovider", "--workers", "0")
    err = res.stderr.str()
    assert res.ret != 0 and err.splitlines()[0] == "ERROR: --workers must be a whole number >= 1 (CPU worker processes), got '0'"


def _stats_loaded_after(statement: str) -> bool:
    code = f"import sys; {statement}; print('scipy.stats' in sys.modules)"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                          check=True).stdout.strip() == "True"


def test_law_modules_and_the_comparison_load_scipy_stats_only_when_a_statistic_needs_it():
    # a rerun that reuses its stops and reads bootstrap statistics only (linearity) never pays scipy.stats' import
    assert not _stats_loaded_after("import harness.stats, harness.stats.linearity, harness.report.compare, harness.law")
    # negative control: the first interval that needs a t quantile loads it
    assert _stats_loaded_after("import harness.stats as s; s.mean_ci([1.0, 2.0, 3.0])")


def test_help_runs_with_the_options_defaults_as_declared(pytester):
    # --help stops parsing before argparse would pass a string default through its type, yet runs pytest_configure
    res = pytester.runpytest_subprocess("-p", "no:cacheprovider", "--help")
    assert res.ret == 0 and "--seed-base=K" in res.stdout.str(), res.stderr.str()[-2000:]
