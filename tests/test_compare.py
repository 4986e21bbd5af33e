"""Comparison of reports: classes, the drift test's boundary, exit codes, the CLI and --compare-to/--fail-on."""
from __future__ import annotations

import json
import math
import shutil
import textwrap
from pathlib import Path

import pytest

from harness.report import compare as C
from harness.report.compare import compare, write_into_markdown
from harness.report.history import find_baseline, find_previous

Z95 = 1.959963984540054
H = 0.1  # half-width of every crafted 95% CI below


def result(stat: str, value: float, half: float = H, decision: str = "pass") -> dict:
    return {"law": "toy", "statistic": stat, "value": value, "ci": [value - half, value + half],
            "threshold": 0.0, "direction": ">", "decision": decision, "n": 64, "seeds": [0, 64], "extra": {}}


def entry(nodeid: str, decision: str, *results: dict, recipes: dict | None = None) -> dict:
    return {"nodeid": nodeid, "law": "toy", "params": {}, "decision": decision, "results": list(results),
            "n": 64, "seeds": [0, 64], "compute_seconds": 1.0, "recipes": recipes or {"runs": "k1"},
            "devices": ["cpu"], "plots": [], "notes": [], "reason": ""}


def report(*entries: dict, tier: str = "smoke", started: float = 1000.0, run_id: str = "r") -> dict:
    return {"version": 1, "run_id": run_id, "tier": tier, "started": started, "finished": started + 1,
            "confidence": 0.95, "environment": {"git_commit": "abc", "salts": {"mlp": "mlp-v1"}},
            "entries": list(entries)}


def classes(cmp: C.Comparison) -> dict[str, str]:
    return {p.nodeid: p.cls for p in cmp.points}


def test_decision_flips_are_regressions_or_fixes():
    old = report(entry("p1", "pass", result("s", 1.0)), entry("p2", "pass", result("s", 1.0)),
                 entry("p3", "fail", result("s", -1.0, decision="fail")),
                 entry("p4", "inconclusive", result("s", 0.05, decision="inconclusive")),
                 entry("p5", "pass", result("s", 1.0)))
    new = report(entry("p1", "fail", result("s", 1.0, decision="fail")),
                 entry("p2", "inconclusive", result("s", 1.0, decision="inconclusive")),
                 entry("p3", "pass", result("s", -1.0)),
                 entry("p4", "fail", result("s", 0.05, decision="fail")),
                 {**entry("p5", "not_run"), "results": [], "reason": "not run: 3 of 64 runs missing"})
    got = classes(compare(old, new))
    # pass→fail, pass→inconclusive, and a pass no longer measured are regressions; fail→pass is fixed;
    # inconclusive→fail never passed, so it is neither (its statistics did not move: unchanged)
    assert got == {"p1": "regressed", "p2": "regressed", "p3": "fixed", "p4": "unchanged", "p5": "regressed"}


def test_drift_boundary_is_the_combined_ci():
    # equal 95% half-widths H: SE = H/z, SE of the difference = √2·H/z, so the z-test at
    # α = 0.05 flags a move beyond √2·H ≈ 1.414 H and nothing smaller
    old = report(entry("in", "pass", result("s", 1.0)), entry("out", "pass", result("s", 1.0)),
                 entry("down", "pass", result("s", 1.0)))
    new = report(entry("in", "pass", result("s", 1.0 + 1.35 * H)), entry("out", "pass", result("s", 1.0 + 1.48 * H)),
                 entry("down", "pass", result("s", 1.0 - 1.48 * H)))
    cmp = compare(old, new)
    assert classes(cmp) == {"in": "unchanged", "out": "drifted", "down": "drifted"}
    z = {p.nodeid: p.stats[0].z for p in cmp.points}
    assert z["in"] == pytest.approx(1.35 * Z95 / math.sqrt(2))
    assert z["down"] == pytest.approx(-1.48 * Z95 / math.sqrt(2))
    # a stricter α needs a larger move
    assert classes(compare(old, new, alpha=0.01))["out"] == "unchanged"


def test_drift_uses_each_reports_own_ci_width():
    # a narrow new CI does not make a move inside the old, wide CI a drift on its own
    old = report(entry("p", "pass", result("s", 1.0, half=1.0)))
    new = report(entry("p", "pass", result("s", 1.8, half=0.01)))
    assert classes(compare(old, new)) == {"p": "unchanged"}
    new = report(entry("p", "pass", result("s", 3.0, half=0.01)))
    assert classes(compare(old, new)) == {"p": "drifted"}


def test_infinite_ci_or_identical_values_never_drift():
    inf = {**result("s", 1.0), "ci": [-math.inf, math.inf]}
    old = report(entry("a", "inconclusive", inf), entry("b", "pass", result("s", 1.0, half=0.0)))
    new = report(entry("a", "inconclusive", {**inf, "value": 5.0}), entry("b", "pass", result("s", 1.0, half=0.0)))
    cmp = compare(old, new)
    assert classes(cmp) == {"a": "unchanged", "b": "unchanged"}
    assert cmp.points[0].stats[0].z is None
    # a zero-width CI that moves at all has drifted
    new = report(entry("a", "inconclusive", inf), entry("b", "pass", result("s", 1.001, half=0.0)))
    assert classes(compare(old, new))["b"] == "drifted"


def test_a_change_within_floating_point_noise_is_not_drift():
    # an identity's error at machine epsilon, zero-width CIs: the last bits moving is no drift
    eps = {**result("s", 1.687e-15, half=0.0), "threshold": 1e-3, "direction": "<"}
    old = report(entry("identity", "pass", eps), entry("edge", "pass", result("s", 0.6082152591905053, half=0.0)))
    new = report(entry("identity", "pass", {**eps, "value": 1.521e-15, "ci": [1.521e-15, 1.521e-15]}),
                 entry("edge", "pass", result("s", 0.6082152591905053 * (1 + 1e-9), half=0.0)))
    assert classes(compare(old, new)) == {"identity": "unchanged", "edge": "unchanged"}
    # control: beyond the tolerance, a zero-width CI's move is drift
    new["entries"][1]["results"][0]["value"] = 0.6082152591905053 * (1 + 1e-5)
    new["entries"][0]["results"][0]["value"] = 2e-6
    assert classes(compare(old, new)) == {"identity": "drifted", "edge": "drifted"}


def test_a_session_compares_its_selected_points_and_counts_the_rest():
    old = report(*(entry(f"p{i}", "pass", result("s", 1.0)) for i in range(20)))
    new = report(entry("p0", "pass", result("s", 1.0)), entry("p1", "pass", result("s", 1.0)))
    cmp = compare(old, new, selected_only=True)
    assert classes(cmp) == {"p0": "unchanged", "p1": "unchanged"} and cmp.not_selected == 18
    assert "18 not selected (points of the reference this session did not run)" in cmp.context_lines()
    assert len(cmp.context_lines() + cmp.table().splitlines()) <= 6
    # two reports compared by hand still list what one of them lacks
    assert compare(old, new).counts()["removed"] == 18 and compare(old, new).not_selected == 0


def test_the_comparison_warns_across_seed_bases_and_device_classes():
    old = report(entry("p", "pass", result("s", 1.0)))
    new = {**report(entry("p", "pass", result("s", 1.0))), "seed_base": 5000}
    assert any(line.startswith("warning: seed bases differ (0 vs 5000)") for line in compare(old, new).context_lines())
    assert not any("warning" in line for line in compare(old, old).context_lines())
    old["entries"][0]["device_classes"] = ["cpu-x86_64"]
    new = report({**entry("p", "pass", result("s", 1.0)), "device_classes": ["cuda-sm90"]})
    assert any(line.startswith("warning: device classes differ (cpu-x86_64 vs cuda-sm90)")
               for line in compare(old, new).context_lines())


def test_new_and_removed_points_and_statistics():
    old = report(entry("kept", "pass", result("s", 1.0), result("gone", 2.0)), entry("removed", "pass", result("s", 1.0)))
    new = report(entry("kept", "pass", result("s", 1.0), result("added", 3.0)), entry("added", "fail", result("s", -1.0)))
    cmp = compare(old, new)
    assert classes(cmp) == {"kept": "unchanged", "added": "new", "removed": "removed"}
    kept = next(p for p in cmp.points if p.nodeid == "kept")
    assert {(s.statistic, s.old, s.new) for s in kept.stats} == {("s", 1.0, 1.0), ("added", None, 3.0), ("gone", 2.0, None)}
    assert cmp.exit_code("regression") == 0 and cmp.exit_code("drift") == 0


def test_exit_codes_follow_fail_on():
    base = report(entry("p", "pass", result("s", 1.0)))
    drift = compare(base, report(entry("p", "pass", result("s", 2.0))))
    regr = compare(base, report(entry("p", "fail", result("s", -1.0, decision="fail"))))
    same = compare(base, base)
    assert [drift.exit_code(f) for f in C.FAIL_ON] == [0, 1, 0]
    assert [regr.exit_code(f) for f in C.FAIL_ON] == [1, 1, 0]
    assert [same.exit_code(f) for f in C.FAIL_ON] == [0, 0, 0]
    assert same.headline() == "no regressions (1 unchanged)"


def test_recipe_and_salt_changes_are_reported():
    old = report(entry("p", "pass", result("s", 1.0)))
    new = report(entry("p", "pass", result("s", 1.0), recipes={"runs": "k2"}))
    new["environment"]["salts"] = {"mlp": "mlp-v2"}
    cmp = compare(old, new)
    assert cmp.points[0].recipes_changed
    assert any("salts changed: mlp mlp-v1 → mlp-v2" in line for line in cmp.context_lines())


def _write(dir_: Path, data: dict) -> Path:
    dir_.mkdir(parents=True, exist_ok=True)
    (dir_ / "report.json").write_text(json.dumps(data))
    (dir_ / "report.md").write_text("# report\n")
    return dir_


def test_cli_names_the_drift_and_the_flip_and_exits_nonzero(tmp_path, capsys):
    old = _write(tmp_path / "old", report(entry("flip", "pass", result("s", 1.0)), entry("drift", "pass", result("s", 1.0)),
                                          entry("same", "pass", result("s", 1.0))))
    new = _write(tmp_path / "new", report(entry("flip", "inconclusive", result("s", 1.0, decision="inconclusive")),
                                          entry("drift", "pass", result("s", 1.5)), entry("same", "pass", result("s", 1.0))))
    before = {p: p.read_bytes() for p in (*old.iterdir(), *new.iterdir())}
    assert C.main([str(old), str(new)]) == 1
    out = capsys.readouterr().out
    assert "1 regression: flip (pass → inconclusive)" in out and "drifted: drift (s)" in out
    # read-only by default: neither report changes
    assert {p: p.read_bytes() for p in (*old.iterdir(), *new.iterdir())} == before
    assert C.main([str(old), str(new), "--write"]) == 1
    md = (new / "report.md").read_text()
    assert md.startswith("# report\n") and "| `flip` | regressed | pass → inconclusive |" in md
    assert (old / "report.md").read_bytes() == before[old / "report.md"]
    # run again: the comparison is replaced, not appended twice
    assert C.main([str(old), str(new / "report.json"), "--fail-on", "never", "--write"]) == 0
    assert (new / "report.md").read_text().count("## Comparison") == 1
    assert C.main([str(old), str(old)]) == 0
    assert "no regressions (3 unchanged)" in capsys.readouterr().out
    assert C.main([str(old), str(new), "--fail-on", "drift"]) == 1


def test_cli_bad_input_is_a_one_line_error(tmp_path, capsys):
    (tmp_path / "junk.json").write_text("{}")
    assert C.main([str(tmp_path / "nope"), str(tmp_path / "junk.json")]) == 2
    assert C.main([str(tmp_path / "junk.json"), str(tmp_path / "junk.json")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and "no report at" in err[0] and "not an lrlaws report" in err[1]


def test_find_previous_and_baseline(tmp_path):
    d = tmp_path / "results"
    _write(d / "a", report(started=10, run_id="a"))
    _write(d / "b", report(started=20, run_id="b"))
    _write(d / "g", report(started=25, tier="gpu", run_id="g"))
    cur = _write(d / "c", report(started=30, run_id="c"))
    _write(d / "d", report(started=40, run_id="d"))  # later than this session: not "previous"
    _write(d / "baseline", report(started=35, run_id="base"))
    assert find_previous(d, "smoke", 30, exclude=cur) == d / "b" / "report.json"
    assert find_previous(d, "gpu", 30, exclude=cur) == d / "g" / "report.json"
    assert find_previous(d, "paper", 30) is None
    assert find_baseline(tmp_path, "smoke") == d / "baseline" / "report.json"
    assert find_baseline(tmp_path, "gpu") is None
    _write(d / "baseline" / "gpu", report(tier="gpu", run_id="gbase"))
    assert find_baseline(tmp_path, "gpu") == d / "baseline" / "gpu" / "report.json"


def test_write_into_markdown_keeps_the_rest(tmp_path):
    md = tmp_path / "report.md"
    md.write_text("# r\n\ntable\n")
    write_into_markdown(md, "## Comparison\n\none")
    write_into_markdown(md, "## Comparison\n\ntwo")
    text = md.read_text()
    assert text.startswith("# r\n\ntable\n") and "two" in text and "one" not in text


# ------------------------------------------------------------- through pytest --

TOY_LAW = textwrap.dedent("""
    import json, os
    import pytest
    from harness.law import lrlaw
    from harness.stats import LawResult, decide

    @lrlaw("toy", tiers={t: t for t in ("smoke", "gpu", "paper")}, reads=lambda tier, point: {})
    @pytest.mark.parametrize("point", ["a", "b"], ids=lambda p: f"toy-{p}")
    def test_toy(law, point):
        v, lo, hi = json.loads(open(os.environ["TOY_VALUES"]).read())[point]
        law.check(LawResult("stat", v, (lo, hi), 0.0, ">", decide((lo, hi), 0.0, ">"), n=10))
""")


@pytest.fixture
def toy(pytester, monkeypatch):
    pytester.makeini("[pytest]\n")  # rootdir (node ids, results/baseline) = this directory
    pytester.makepyfile(test_toy_law=TOY_LAW)
    values = pytester.path / "values.json"
    monkeypatch.setenv("TOY_VALUES", str(values))

    def run(a, b, *args):
        values.write_text(json.dumps({"a": a, "b": b}))
        # options as --opt=value: a bare path after an option would count towards the rootdir
        return pytester.runpytest("-p", "no:cacheprovider", f"--store={pytester.path / 'store'}",
                                  f"--report-dir={pytester.path / 'results'}", *args)
    return run


def _reports(root: Path) -> list[dict]:
    rs = [json.loads(p.read_text()) for p in (root / "results").glob("*/report.json") if p.parent.name != "baseline"]
    return sorted(rs, key=lambda r: r["started"])


PASS_A, PASS_B, INCONC = (1.0, 0.5, 1.5), (2.0, 1.5, 2.5), (1.0, -0.5, 2.5)


def test_session_compares_with_previous_and_fails_on_regression(toy, pytester):
    r = toy(PASS_A, PASS_B)
    assert r.ret == 0
    r.stdout.fnmatch_lines(["*lrlaws compare: no earlier smoke report*nothing to compare with*"])
    r = toy(PASS_A, PASS_B)
    assert r.ret == 0
    r.stdout.fnmatch_lines(["*lrlaws compare: no regressions (2 unchanged)*"])
    second = _reports(pytester.path)[-1]
    assert second["comparison"]["headline"] == "no regressions (2 unchanged)"
    assert second["comparison"]["reference_run_id"] == _reports(pytester.path)[0]["run_id"]
    md = (pytester.path / "results" / second["run_id"] / "report.md").read_text()
    assert "**no regressions (2 unchanged)**" in md
    # point a becomes inconclusive: a skip for pytest, a regression for the comparison
    r = toy(INCONC, PASS_B)
    r.assert_outcomes(passed=1, skipped=1)
    assert r.ret == 1
    r.stdout.fnmatch_lines(["*lrlaws compare: 1 regression: test_toy_law.py::test_toy?toy-a? (pass → inconclusive)*"])
    # same again: compared with the regressed night, nothing flipped, but --fail-on never ignores flips anyway
    r = toy(INCONC, PASS_B, "--fail-on", "never")
    assert r.ret == 0


def test_session_fail_on_drift(toy):
    assert toy(PASS_A, PASS_B).ret == 0
    # CI half-width 0.5 on both sides: the drift test flags moves beyond √2·0.5 ≈ 0.71
    moved = (1.3, 0.8, 1.8)
    assert toy(moved, PASS_B, "--fail-on", "drift").ret == 0
    far = (3.0, 2.5, 3.5)
    r = toy(far, PASS_B, "--fail-on", "drift")
    assert r.ret == 1
    r.stdout.fnmatch_lines(["*drifted: test_toy_law.py::test_toy?toy-a? (stat)*"])
    assert toy(far, PASS_B).ret == 0  # default --fail-on regression: a drift alone passes


def test_session_falls_back_to_the_baseline_of_its_tier(toy, pytester):
    base = pytester.path / "results" / "baseline"
    _write(base, report(entry("test_toy_law.py::test_toy[toy-a]", "pass", result("stat", 1.0)), tier="gpu"))
    r = toy(INCONC, PASS_B)
    r.stdout.fnmatch_lines(["*nothing to compare with*"])  # a gpu baseline is not a smoke reference
    assert r.ret == 0
    for p in (pytester.path / "results").glob("2*"):
        shutil.rmtree(p)
    _write(base, report(entry("test_toy_law.py::test_toy[toy-a]", "pass", result("stat", 1.0)), tier="smoke"))
    r = toy(INCONC, PASS_B)
    assert r.ret == 1
    r.stdout.fnmatch_lines(["*compared with r (tier smoke*", "*1 regression*", ])
    assert "1 new" in _reports(pytester.path)[-1]["comparison"]["headline"]


def test_session_compare_to_path_and_none(toy, pytester):
    ref = _write(pytester.path / "ref", report(entry("test_toy_law.py::test_toy[toy-b]", "pass", result("stat", 2.0))))
    r = toy(PASS_A, INCONC, f"--compare-to={ref}")
    assert r.ret == 1
    r.stdout.fnmatch_lines(["*1 regression: test_toy_law.py::test_toy?toy-b?*"])
    r = toy(PASS_A, INCONC, "--compare-to", "none")
    assert r.ret == 0
    assert "comparison" not in _reports(pytester.path)[-1]
    r = toy(PASS_A, PASS_B, f"--compare-to={pytester.path / 'missing'}")
    assert r.ret == pytest.ExitCode.USAGE_ERROR
    r.stderr.fnmatch_lines(["*--compare-to*missing: no report.json there*"])
    r = toy(PASS_A, PASS_B, "--fail-on=regresion")
    assert r.ret == pytest.ExitCode.USAGE_ERROR
    assert [line for line in r.stderr.lines if line.strip()] == [
        "ERROR: --fail-on must be one of regression, drift, never; got 'regresion'"]


def test_baseline_command_promotes_a_report_without_its_comparison(tmp_path):
    from harness.report import baseline as B

    results = tmp_path / "results"
    old = _write(results / "20260101-000000-smoke-1", report(entry("p", "fail"), started=1, run_id="old"))
    run = _write(results / "20260102-000000-smoke-1", {**report(entry("p", "pass"), started=2, run_id="new"),
                                                        "comparison": {"headline": "no regressions"}})
    write_into_markdown(run / "report.md", "## Comparison\n\nagainst old")
    (run / "plots").mkdir()
    (run / "plots" / "a.png").write_bytes(b"png")
    args = ["--report-dir", str(results), "--root", str(tmp_path)]
    assert B.main(["latest", *args]) == 0
    base = results / "baseline"
    data = json.loads((base / "report.json").read_text())
    assert data["run_id"] == "new" and "comparison" not in data
    assert (base / "report.md").read_text() == "# report\n" and (base / "plots" / "a.png").exists()
    assert find_baseline(tmp_path, "smoke") == base / "report.json"
    # the baseline is not "previous": the next session still compares with the newest run
    assert find_previous(results, "smoke", 3) == run / "report.json"
    assert B.main([str(old), *args]) == 0 and not (base / "plots").exists()  # replaced, plots and all
    gpu = _write(results / "20260103-000000-gpu-1", report(entry("p", "pass"), tier="gpu", started=3))
    assert B.main([str(gpu), *args]) == 0
    assert find_baseline(tmp_path, "gpu") == base / "gpu" / "report.json"
    assert B.main(["latest", "--tier", "paper", *args]) == 2


def test_baseline_refuses_a_report_of_fewer_points_or_other_seeds_without_force(tmp_path, capsys):
    from harness.report import baseline as B

    results = tmp_path / "results"
    full = _write(results / "full", report(*(entry(f"p{i}", "pass", result("s", 1.0)) for i in range(21)), started=1))
    args = ["--report-dir", str(results), "--root", str(tmp_path)]
    assert B.main([str(full), *args]) == 0
    assert "new baseline of tier smoke: 21 law points" in capsys.readouterr().out
    one_law = _write(results / "one", report(entry("p0", "fail", result("s", -1.0, decision="fail")), started=2))
    held_out = _write(results / "held", {**report(*(entry(f"p{i}", "pass", result("s", 1.0)) for i in range(21)),
                                                  started=3), "seed_base": 5000})
    base = results / "baseline" / "report.json"
    for run, why in ((one_law, "covers 1 of the baseline's 21 law points"), (held_out, "its seed base is 5000")):
        assert B.main([str(run), *args]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and why in err[0] and "--force" in err[0], err
        assert len(json.loads(base.read_text())["entries"]) == 21 and json.loads(base.read_text()).get("seed_base", 0) == 0
    assert "21 → 1 law points; 20 dropped" in B.changes(json.loads(base.read_text()), json.loads((one_law / "report.json").read_text()))[1][0]
    # with --force it replaces, and says what changed
    assert B.main([str(one_law), *args, "--force"]) == 0
    out = capsys.readouterr().out
    assert "21 → 1 law points; 20 dropped" in out and "decision changes: p0 (pass → fail)" in out
    assert len(json.loads(base.read_text())["entries"]) == 1


def test_trends_plot_each_law_statistic_across_reports_in_time_order(tmp_path, capsys):
    from harness.report import trends as T

    d = tmp_path / "results"
    for i, v in ((2, 1.2), (0, 1.0), (1, 1.1)):  # written out of order: plotted by start time
        _write(d / f"r{i}", report(entry("p", "pass", result("s", v), result("t", -v)), started=i, run_id=f"r{i}"))
    _write(d / "g", report(entry("p", "pass", result("s", 5.0)), tier="gpu", started=9, run_id="g"))
    series = T.collect(T.load_reports(d))
    assert set(series) == {("smoke", "toy", "s"), ("smoke", "toy", "t"), ("gpu", "toy", "s")}
    labels, by_node = series[("smoke", "toy", "s")]
    assert labels == ["r0", "r1", "r2"] and by_node["p"].value == [1.0, 1.1, 1.2] and by_node["p"].x == [0, 1, 2]
    assert T.main([str(d)]) == 0
    pngs = sorted(p.name for p in (d / "trends").glob("*.png"))
    assert pngs == ["gpu-toy-s.png", "smoke-toy-s.png", "smoke-toy-t.png"]
    assert all((d / "trends" / p).read_bytes().startswith(b"\x89PNG") for p in pngs)
    assert T.main([str(d)]) == 0 and len(list((d / "trends").glob("*.png"))) == 3  # its own output is not a report
    (tmp_path / "empty").mkdir()
    assert T.main([str(tmp_path / "empty")]) == 1 and T.main([str(tmp_path / "nope")]) == 2
