"""Test outcomes of law points and their JUnit properties (--junitxml, --inconclusive)."""
from __future__ import annotations

import textwrap
import xml.etree.ElementTree as ET

import pytest

# Three points with fixed statistics (pass, fail, inconclusive against "> 0"), each
# reading a tiny real ensemble so N and compute seconds come from the store.
LAW = textwrap.dedent("""
    import pytest
    from harness import Ensemble, Recipe
    from harness.law import lrlaw
    from harness.stats import LawResult, decide

    RECIPE = Recipe(trainer="mlp", dataset="teacher", model="mlp", lr=0.1, batch_size=8, steps=3,
                    probes=("logits",), options={"n_train": 64, "n_test": 8, "width": 8})
    CIS = {"pass": (0.5, 1.5), "fail": (-1.5, -0.5), "inconc": (-2.5, 2.5)}

    @lrlaw("toy", tiers={t: t for t in ("smoke", "gpu", "paper")}, reads=lambda tier, case: {"runs": Ensemble(RECIPE, 3)})
    @pytest.mark.parametrize("case", list(CIS), ids=lambda c: f"toy-{c}")
    def test_toy(law, case):
        lo, hi = CIS[case]
        n = len(law.runs("runs").metric("test_acc"))
        law.check(LawResult("stat", (lo + hi) / 2, (lo, hi), 0.0, ">", decide((lo, hi), 0.0, ">"), n=n))
""")


def _cases(xml_path) -> dict[str, ET.Element]:
    root = ET.parse(xml_path).getroot()
    return {tc.get("name"): tc for tc in root.iter("testcase")}


def _props(tc: ET.Element) -> dict[str, str]:
    return {p.get("name"): p.get("value") for p in tc.iter("property")}


@pytest.fixture
def run(pytester):
    pytester.makeini("[pytest]\n")
    pytester.makepyfile(test_toy_law=LAW)

    def go(*args):
        return pytester.runpytest("-p", "no:cacheprovider", f"--store={pytester.path / 'store'}",
                                  f"--report-dir={pytester.path / 'results'}", "--compare-to=none",
                                  f"--junitxml={pytester.path / 'junit.xml'}", *args)
    return go


def test_outcomes_and_junit_properties(run, pytester):
    r = run("-rs")
    r.assert_outcomes(passed=1, failed=1, skipped=1)
    r.stdout.fnmatch_lines(["*SKIPPED*inconclusive: CI [[]-2.5, 2.5] straddles threshold 0 (stat, N=3)*"])
    cases = _cases(pytester.path / "junit.xml")
    assert set(cases) == {"test_toy[toy-pass]", "test_toy[toy-fail]", "test_toy[toy-inconc]"}
    assert cases["test_toy[toy-fail]"].find("failure") is not None
    skip = cases["test_toy[toy-inconc]"].find("skipped")
    assert skip is not None and "inconclusive: CI [-2.5, 2.5] straddles threshold 0" in skip.get("message")
    for case, decision, ci in (("pass", "pass", "[0.5, 1.5]"), ("fail", "fail", "[-1.5, -0.5]"),
                               ("inconc", "inconclusive", "[-2.5, 2.5]")):
        p = _props(cases[f"test_toy[toy-{case}]"])
        assert p["lrlaws.decision"] == decision
        assert p["lrlaws.stat.ci"] == ci and p["lrlaws.stat.threshold"] == "0.0"
        assert float(p["lrlaws.stat"]) == pytest.approx(sum(eval(ci)) / 2)
        assert p["lrlaws.N"] == "3"
        assert float(p["lrlaws.compute_seconds"]) > 0  # the three stored runs' training time


def test_inconclusive_fail_makes_strict_ci_fail(run, pytester):
    r = run("--inconclusive=fail")
    r.assert_outcomes(passed=1, failed=2)
    tc = _cases(pytester.path / "junit.xml")["test_toy[toy-inconc]"]
    failure = tc.find("failure")
    assert failure is not None and "inconclusive: CI [-2.5, 2.5] straddles threshold 0" in failure.get("message")
    assert _props(tc)["lrlaws.decision"] == "inconclusive"
