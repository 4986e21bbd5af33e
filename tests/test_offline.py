"""--offline / LRLAWS_OFFLINE: absent data is 'not run' with the fix, and nothing is downloaded."""
from __future__ import annotations

import textwrap

import pytest

CIFAR_LAW = textwrap.dedent(
    """
    from harness import Ensemble
    from harness.law import lrlaw
    from harness.trainers.recipes import AIRBENCH94

    @lrlaw("needs_cifar", tiers={t: t for t in ("smoke", "gpu", "paper")}, reads=lambda tier: {"runs": Ensemble(AIRBENCH94, 2)})
    def test_needs_cifar(law):
        raise AssertionError("must not run without its data")
    """
)


def run(pytester, *args, **env):
    pytester.makepyfile(test_cifar_law=CIFAR_LAW)
    for k, v in env.items():
        pytester._monkeypatch.setenv(k, v)
    return pytester.runpytest_subprocess("-p", "no:cacheprovider", "--store", str(pytester.path / "store"),
                                         "--data-dir", str(pytester.path / "data"), "--gpus", "0", "--tier", "smoke",
                                         "--report-dir", "rep", "--compare-to", "none", "-rs", *args, timeout=300)


@pytest.mark.parametrize("how", ["flag", "env"])
def test_offline_reports_absent_data_as_not_run_with_the_fix(pytester, how):
    res = run(pytester, *(["--offline"] if how == "flag" else []), **({"LRLAWS_OFFLINE": "1"} if how == "env" else {}))
    out = res.stdout.str()
    assert res.ret == 0, out
    assert "not run: CIFAR-10 not found under" in out and "downloads disabled (--offline)" in out and "--data-dir DIR" in out
    assert "lrlaws: trained" not in out
    assert not (pytester.path / "data").exists()  # nothing downloaded, nothing written


def test_bad_offline_value_is_one_line(pytester):
    res = run(pytester, LRLAWS_OFFLINE="yes")
    assert res.ret != 0
    assert "LRLAWS_OFFLINE must be 1 (never download) or 0; got 'yes'" in res.stderr.str()
    assert "Traceback" not in res.stderr.str()
