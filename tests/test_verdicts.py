"""Held-out seeds, claims apart from checks, the per-law summary, and the confirmatory table."""
from __future__ import annotations

import json
import pathlib
import textwrap

import pytest

from harness.report.confirm import main as confirm_main
from harness.report.summary import law_summary, law_summary_lines

LAW = textwrap.dedent(
    """
    import pytest
    from harness import Ensemble, Recipe
    from harness.law import lrlaw
    from harness.stats import CHECK, CLAIM, LawResult, decide, mean_ci

    BASE = Recipe(trainer="mlp", dataset="teacher", model="mlp", lr=0.1, batch_size=16, steps=5,
                  probes=("logits",), options={"n_train": 64, "n_test": 16, "width": 8, "dim": 4})

    def needs(tier):
        return {"runs": Ensemble(BASE, 4)}

    def row(law, kind, threshold):
        acc = law.runs("runs").metric("test_acc")
        m, ci = mean_ci(acc)
        return LawResult(f"acc_{kind}", m, ci, threshold, ">", decide(ci, threshold, ">"), n=len(acc),
                         seeds=(0, len(acc)), kind=kind)

    @lrlaw("tiny", tiers={t: t for t in ("smoke", "gpu", "paper")}, reads=needs)
    def test_claim_holds_and_check_ok(law):
        law.check(row(law, CLAIM, -10.0), row(law, CHECK, -10.0))

    @lrlaw("tiny", tiers={t: t for t in ("smoke", "gpu", "paper")}, reads=needs)
    def test_broken_check(law):
        law.check(row(law, CLAIM, -10.0), row(law, CHECK, 10.0))

    @lrlaw("other", tiers={t: t for t in ("smoke", "gpu", "paper")}, reads=needs)
    def test_claim_fails(law):
        law.check(row(law, CLAIM, 10.0))  # no accuracy reaches it, however wide the interval of 4 seeds

    @lrlaw("other", tiers={t: t for t in ("smoke", "gpu", "paper")}, reads=needs)
    def test_never_checks(law):
        law.runs("runs").metric("test_acc")
    """
)


def test_held_out_seeds_kinds_and_summary(pytester):
    pytester.makepyfile(test_tiny_law=LAW)
    res = pytester.runpytest_subprocess("-p", "no:cacheprovider", "--store", str(pytester.path / "store"),
                                        "--report-dir", "rep", "--compare-to", "none", "--seed-base", "1000000",
                                        timeout=300)
    out = res.stdout.str()
    # the point that never checks passes its call and errors at teardown: pytest counts both
    res.assert_outcomes(passed=2, failed=2, errors=1)
    assert "harness error: a check of law tiny is broken" in out
    assert "never called law.check" in out
    data = json.loads(next((pytester.path / "rep").glob("*/report.json")).read_text())
    assert data["seed_base"] == 1000000
    rows = [r for e in data["entries"] for r in e["results"]]
    assert rows and all(r["kind"] in ("claim", "check") for r in rows)
    assert all(r["seeds"] == [1000000, 1000004] for r in rows)
    by_node = {e["nodeid"].split("::")[-1]: e for e in data["entries"]}
    assert by_node["test_claim_holds_and_check_ok"]["decision"] == "pass"
    assert by_node["test_broken_check"]["decision"] == "error"
    assert by_node["test_claim_fails"]["decision"] == "fail"
    assert by_node["test_never_checks"]["decision"] == "error"
    assert data["summary"]["tiny"] == {"holding": 2, "failing": 0, "undecided": 0, "fragile": 0, "untestable": 0,
                                       "not_run": 0, "errors": 0,
                                       "checks_ok": 1, "checks_broken": 1,
                                       "sanity_holding": 0, "sanity_failing": 0, "sanity_undecided": 0}
    assert data["summary"]["other"]["failing"] == 1 and data["summary"]["other"]["errors"] == 1
    assert "total" in out and "claims: 2 holding, 1 failing" in out
    md = next((pytester.path / "rep").glob("*/report.md")).read_text()
    assert "confirmatory (held-out seeds)" in md and "checks: 1 ok, 1 broken" in md
    # the same runs are not retrained at the same base, and seed base 0 needs its own runs
    again = pytester.runpytest_subprocess("-p", "no:cacheprovider", "--store", str(pytester.path / "store"),
                                          "--report-dir", "rep2", "--compare-to", "none", "--seed-base", "1000000",
                                          "-k", "holds", timeout=300)
    assert "0 runs to train" in again.stdout.str()
    base0 = pytester.runpytest_subprocess("-p", "no:cacheprovider", "--store", str(pytester.path / "store"),
                                          "--plan", "-k", "holds", timeout=300)
    assert "4 runs to train" in base0.stdout.str()


@pytest.mark.parametrize("value", ["-1", "abc", "1.5"])
def test_bad_seed_base_is_one_line(pytester, value):
    pytester.makepyfile(test_x="def test_x():\n    pass\n")
    res = pytester.runpytest_subprocess("-p", "no:cacheprovider", "--seed-base", value)
    assert res.ret == pytest.ExitCode.USAGE_ERROR
    assert "--seed-base must be" in res.stderr.str() and "Traceback" not in res.stderr.str()


def test_summary_counts_not_run_points_and_known_failures():
    entries = [
        {"law": "a", "decision": "not_run", "results": []},
        {"law": "a", "decision": "fail", "results": [{"kind": "claim", "decision": "fail"},
                                                     {"kind": "claim", "decision": "inconclusive"}]},
        {"law": "b", "decision": "pass", "results": [{"kind": "check", "decision": "pass"}]},
    ]
    s = law_summary(entries)
    assert s["a"]["not_run"] == 1 and s["a"]["failing"] == 1 and s["a"]["undecided"] == 1
    lines = law_summary_lines(s)
    assert lines[-1].startswith("total") and "1 failing, 1 undecided, 1 point(s) not run" in lines[-1]


def _report(path, base, decision, ci):
    path.write_text(json.dumps({"seed_base": base, "entries": [
        {"nodeid": "laws/x.py::t", "decision": decision, "results": [
            {"statistic": "s", "kind": "claim", "decision": decision, "ci": ci},
            {"statistic": "identity", "kind": "check", "decision": "pass", "ci": [0, 0]}]}]}))
    return str(path)


def test_confirm_flags_claims_decided_differently(tmp_path, capsys):
    fixed = _report(tmp_path / "a.json", 0, "pass", [0.2, 0.4])
    held = _report(tmp_path / "b.json", 1000000, "inconclusive", [-0.1, 0.3])
    assert confirm_main([fixed, held, "--md", str(tmp_path / "c.md")]) == 0
    out = capsys.readouterr().out
    assert "**yes**" in out and "identity" not in out and "1 claim(s) decided differently" in out
    assert "seeds from 1000000" in (tmp_path / "c.md").read_text()
    same = _report(tmp_path / "d.json", 1000000, "pass", [0.2, 0.4])
    assert confirm_main([held, same]) == 2  # both at one base: not a confirmation
    assert confirm_main([fixed, str(tmp_path / "missing.json")]) == 2
    assert "no report at" in capsys.readouterr().err


def test_confirm_union_decides_each_claim_over_several_seed_bases(tmp_path, capsys):
    a = _report(tmp_path / "a.json", 0, "pass", [0.2, 0.4])
    b = _report(tmp_path / "b.json", 1000000, "pass", [0.1, 0.3])
    c = _report(tmp_path / "c.json", 2000000, "inconclusive", [-0.1, 0.3])
    assert confirm_main(["--union", a, b, "--md", str(tmp_path / "u.md")]) == 0
    out = capsys.readouterr().out
    assert "| `laws/x.py::t` s | pass | pass 2/2 |" in out and "0 claim(s) decided differently" in out
    assert confirm_main(["--union", a, b, c]) == 0
    out = capsys.readouterr().out  # the control: one base that disagrees makes the row mixed
    assert "| `laws/x.py::t` s | mixed | pass 2/3, inconclusive 1/3 |" in out and "identity" not in out
    assert "1 claim(s) decided differently across seed bases 0, 1000000, 2000000" in out
    fragile = json.loads(pathlib.Path(c).read_text())
    fragile["entries"][0]["results"][0].update(decision="pass", fragile=True)
    pathlib.Path(c).write_text(json.dumps(fragile))
    assert confirm_main(["--union", a, b, c]) == 0  # a pass within the machine spread is not the same pass
    assert "| mixed | pass 2/3, pass (fragile) 1/3 |" in capsys.readouterr().out
    assert confirm_main(["--union", a, _report(tmp_path / "d.json", 0, "pass", [0.2, 0.4])]) == 2  # one base twice
    assert confirm_main([a, b, c]) == 2  # three reports without --union
    assert "distinct seed bases" in capsys.readouterr().err
