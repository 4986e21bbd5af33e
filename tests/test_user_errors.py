"""A user's mistake is loud: a mistyped metric, a bad recipe, xdist's -n; each says what to do."""
from __future__ import annotations

import json
import re
import textwrap

from harness.report.report import verdict_of

LAW = textwrap.dedent(
    """
    import pytest
    from harness import Ensemble, Recipe
    from harness.law import lrlaw
    from harness.stats import LawResult, decide, mean_ci

    def needs(tier, case):
        data = "nosuch" if case == "bad_recipe" else "teacher"
        return {"runs": Ensemble(Recipe(trainer="mlp", dataset=data, model="mlp", lr=0.1, batch_size=16, steps=5,
                                        options={"n_train": 64, "n_test": 16, "width": 8, "dim": 4}), 4)}

    @lrlaw("typo", tiers={t: t for t in ("smoke", "gpu", "paper")}, reads=needs)
    @pytest.mark.parametrize("case", ["good", "mistyped", "bad_recipe", "stale_finding"])
    def test_point(law, case):
        law.known_failure("a finding that no longer holds" if case == "stale_finding" else None)
        acc = law.runs("runs").metric("accuracy" if case == "mistyped" else "test_acc")
        m, ci = mean_ci(acc)
        law.check(LawResult("mean_acc", m, ci, -1.0, ">", decide(ci, -1.0, ">"), n=len(acc)))
    """
)


def run(pytester, *args):
    return pytester.runpytest_subprocess("-p", "no:cacheprovider", "--store", str(pytester.path / "s"),
                                         "--report-dir", "rep", "--compare-to", "none", *args, timeout=300)


def test_a_mistyped_metric_and_a_bad_recipe_fail_their_own_point_only(pytester):
    pytester.makepyfile(test_law=LAW)
    res = run(pytester, "--fixed-n")
    res.assert_outcomes(passed=1, failed=2, errors=1)  # the bad recipe fails at its fixture
    assert "lrlaws typo (smoke, look 1 of 1)" in res.stderr.str()  # the bar names the law and its look
    out = res.stdout.str()
    assert "no metric 'accuracy'; its runs record: [" in out and "'test_acc'" in out
    assert "test_law.py::test_point[bad_recipe]: bad recipe: unknown dataset 'nosuch'" in out
    assert res.ret == 1
    # pytest failed the point whose recorded finding no longer holds: lrlaws's verdict says so too
    assert re.search(r"^FAIL \(pass, test failed\) +test_law.py::test_point\[stale_finding\]", out, re.M)
    assert re.search(r"^PASS +test_law.py::test_point\[good\]", out, re.M)
    entries = {e["nodeid"]: e for e in json.loads(next((pytester.path / "rep").glob("*/report.json")).read_text())["entries"]}
    stale = entries["test_law.py::test_point[stale_finding]"]
    assert stale["decision"] == "pass" and stale["outcome"] == "failed"
    assert entries["test_law.py::test_point[good]"]["outcome"] == "passed"
    page = next((pytester.path / "rep").glob("*/report.html")).read_text()  # beside report.md
    assert '<span class="badge pass">PASS</span>' in page and "FAIL (pass, test failed)" in page


def test_the_verdict_is_pytests_outcome_where_they_differ():
    assert verdict_of({"decision": "pass", "outcome": "failed"}) == "FAIL (pass, test failed)"
    assert verdict_of({"decision": "fail", "outcome": "xfailed"}) == "XFAIL (finding)"
    assert verdict_of({"decision": "inconclusive", "outcome": "skipped"}) == "INCONCLUSIVE"
    assert verdict_of({"decision": "pass"}) == "PASS"  # a report from before outcomes were stored


def test_xdist_is_refused_in_one_line_before_collection(pytester):
    pytester.makepyfile(test_law=LAW)
    res = run(pytester, "-n", "2")
    assert res.ret == 4
    err = [line for line in res.stderr.lines if line.strip()]
    assert len(err) == 1 and "--workers" in err[0] and "--gpus" in err[0] and "--executor ray" in err[0], err
    assert "collected" not in res.stdout.str() and not (pytester.path / "s").exists()


def test_xdist_stays_available_to_suites_without_laws(pytester):
    pytester.makepyfile(test_plain="def test_ok():\n    assert True\n")
    res = run(pytester, "-n", "2")
    assert res.ret == 0
    res.assert_outcomes(passed=1)


def test_a_law_points_report_id_does_not_move_with_pytests_rootdir(tmp_path):
    from types import SimpleNamespace

    from harness.plugin.ids import law_id

    laws = tmp_path / "repo" / "laws"
    laws.mkdir(parents=True)
    (laws / "__init__.py").write_text("")
    (laws / "test_x.py").write_text("")
    own = tmp_path / "own"
    own.mkdir()
    (own / "test_y.py").write_text("")
    # the node ids pytest gives one law from three rootdirs
    for nodeid in ("repo/laws/test_x.py::test_a[p]", "laws/test_x.py::test_a[p]", "test_x.py::test_a[p]"):
        assert law_id(SimpleNamespace(path=laws / "test_x.py", nodeid=nodeid, name="test_a[p]")) == "laws/test_x.py::test_a[p]"
    assert law_id(SimpleNamespace(path=own / "test_y.py", nodeid="../own/test_y.py::t", name="t")) == "test_y.py::t"


def test_xdist_stays_available_to_the_harness_tests_which_quote_laws_in_strings():
    from pathlib import Path

    from harness.plugin.xdist import _mentions_laws

    root = Path(__file__).resolve().parents[1]
    assert _mentions_laws(root / "laws") and _mentions_laws(root / "tests" / "tutorial" / "my_law.py")
    assert not _mentions_laws(root / "tests")  # `pytest tests/ -n 4` stays allowed
