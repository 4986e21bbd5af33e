"""``python -m harness calibrate``: the registry, the table, the files, bad input."""
from __future__ import annotations

import json

import numpy as np
import pytest

from harness.calibrate import REGISTRY, Family, Generator, register, run_all
from harness.calibrate.cli import main
from harness.calibrate.seed_means import MEAN_SIZES
from harness.stats import FAIL, PASS

CLAIM_STATISTICS = {"paired_difference_t", "band_t", "noninferiority_t", "proportion_clopper_pearson", "spike_rate",
                    "fn_distance_same", "fn_distance_different", "transfer_drop_bootstrap", "linearity_r2_inf",
                    "linearity_slope_inf"}


def test_every_claim_statistic_has_at_least_six_generators_with_the_required_kinds():
    assert CLAIM_STATISTICS <= set(REGISTRY)
    for name, fam in REGISTRY.items():
        assert len(fam.generators) >= 6, name
        roles = {g.role for g in fam.generators}
        assert "boundary" in roles and "inside" in roles, name


def test_quick_cli_writes_json_and_markdown(tmp_path, capsys):
    assert main(["--trials", "5", "--only", "band_t", "--only", "proportion_clopper_pearson", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "coverage" in out and "| band_t |" in out
    data = json.loads((tmp_path / "calibration.json").read_text())
    assert {c["statistic"] for c in data["cells"]} == {"band_t", "proportion_clopper_pearson"}
    assert all(0 <= c["coverage_ci"][0] <= c["coverage"] <= c["coverage_ci"][1] <= 1 for c in data["cells"])
    assert "meets bars" in (tmp_path / "calibration.md").read_text()


@pytest.mark.parametrize("args, msg", [(["--only", "nope"], "unknown statistic"), (["--trials", "0"], "must be >= 1")])
def test_bad_input_is_one_line(tmp_path, capsys, args, msg):
    assert main(args + ["--out", str(tmp_path)]) == 2
    assert msg in capsys.readouterr().err


def test_a_miscalibrated_statistic_is_flagged(monkeypatch):
    # an interval that ignores its data: never covers, always passes at the threshold
    monkeypatch.setitem(REGISTRY, "broken", Family("broken", lambda d: (5.0, 6.0, PASS), tuple(
        Generator(f"g{i}", 0.0, "boundary", lambda r: r.random()) for i in range(6)), 1))
    cells = run_all(20, only=["broken"])
    assert cells and not any(c.ok for c in cells)
    honest = Family("honest", lambda d: (-1.0, 1.0, FAIL), tuple(
        Generator(f"g{i}", 0.0, "boundary", lambda r: r.random()) for i in range(6)), 1)
    monkeypatch.setitem(REGISTRY, "honest", honest)
    assert all(c.ok for c in run_all(20, only=["honest"]))
    with pytest.raises(ValueError, match="at least 6"):
        register(Family("thin", honest.decide, honest.generators[:3], 1))
    assert np.isfinite(cells[0].pass_ci[0])


def _family(name: str, cover: float) -> Family:
    """Its interval covers the truth 0 with probability ``cover`` and never passes."""
    def decide_(u: float) -> tuple[float, float, str]:
        return (-1.0, 1.0, FAIL) if u < cover else (5.0, 6.0, FAIL)
    return Family(name, decide_, tuple(Generator(f"g{i}", 0.0, "boundary", lambda r: r.random()) for i in range(6)), 1)


def test_a_full_run_exits_nonzero_and_names_the_cell_that_misses(monkeypatch, tmp_path, capsys):
    monkeypatch.setitem(REGISTRY, "shaky", _family("shaky", 0.90))
    assert main(["--trials", "400", "--only", "shaky", "--out", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert "shaky x g0 misses the bars" in err and "6 cell(s) miss the bars" in err
    # the same statistic at its bar passes the full run
    monkeypatch.setitem(REGISTRY, "sound", _family("sound", 0.99))
    assert main(["--trials", "400", "--only", "sound", "--out", str(tmp_path)]) == 0


def test_a_quick_run_fails_only_on_a_sure_miss(monkeypatch, tmp_path, capsys):
    # 92% coverage over 60 trials: below the 93% bar, but within the quick run's own noise
    monkeypatch.setitem(REGISTRY, "shaky", _family("shaky", 0.92))
    assert main(["--trials", "60", "--only", "shaky", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "cannot prove the bars" in out and "within a quick run's noise" in out
    monkeypatch.setitem(REGISTRY, "broken", _family("broken", 0.5))
    assert main(["--quick", "--only", "broken", "--out", str(tmp_path)]) == 1
    assert "broken x g0 misses the bars" in capsys.readouterr().err
    data = json.loads((tmp_path / "calibration.json").read_text())
    assert data["full"] is False and all(c["surely_misses"] for c in data["cells"])


def test_a_false_pass_beyond_doubt_fails_a_quick_run(monkeypatch, tmp_path):
    # covers always, but passes half the time where the truth sits on the threshold
    fam = Family("lenient", lambda u: (-1.0, 1.0, PASS if u < 0.5 else FAIL),
                 tuple(Generator(f"g{i}", 0.0, "boundary", lambda r: r.random()) for i in range(6)), 1)
    monkeypatch.setitem(REGISTRY, "lenient", fam)
    assert main(["--quick", "--only", "lenient", "--out", str(tmp_path)]) == 1


def test_one_cell_re_runs_alone(tmp_path, capsys):
    assert main(["--trials", "5", "--only", "band_t", "--generator", "just_inside", "--out", str(tmp_path)]) == 0
    data = json.loads((tmp_path / "calibration.json").read_text())
    # one cell per N the mean builders decide at, each in the table's N column
    assert [(c["statistic"], c["generator"], c["n"]) for c in data["cells"]] == [
        ("band_t", "just_inside", n) for n in MEAN_SIZES]
    assert "| band_t | just_inside | 8 |" in (tmp_path / "calibration.md").read_text()
    assert main(["--only", "band_t", "--generator", "exactly_linear", "--out", str(tmp_path)]) == 2
    assert "unknown generator(s) exactly_linear" in capsys.readouterr().err


def test_a_full_run_re_measures_a_cell_below_a_bar_within_its_noise(monkeypatch, tmp_path):
    # 92% coverage: over 400 trials its interval mostly straddles 93%, so the full run measures it on 4000
    monkeypatch.setitem(REGISTRY, "borderline", _family("borderline", 0.92))
    assert main(["--trials", "400", "--only", "borderline", "--out", str(tmp_path)]) == 1
    cells = json.loads((tmp_path / "calibration.json").read_text())["cells"]
    again = [c for c in cells if c["note"].startswith("re-measured")]
    assert len(again) >= 3 and all(c["trials"] == 4000 and not c["ok"] for c in again)
    assert all(c["ok"] or c["surely_misses"] for c in cells if c not in again)
    # a sure miss is not re-measured
    monkeypatch.setitem(REGISTRY, "broken", _family("broken", 0.5))
    assert [c.trials for c in run_all(400, only=["broken"])] == [400] * 6


@pytest.mark.parametrize("statistic", ["band_t", "paired_difference_t", "noninferiority_t", "sequential_t_looks"])
def test_the_mean_interval_families_have_every_kind_of_generator(statistic):
    names = " ".join(g.name for g in REGISTRY[statistic].generators)
    for kind in ("minority", "collapsing", "t3", "unequal_noise", "crn|common_random_numbers", "skewed",
                 "just_inside", "just_outside"):
        assert any(k in names for k in kind.split("|")), f"{statistic} lacks a {kind} generator"


@pytest.mark.parametrize("statistic", ["band_t", "paired_difference_t", "noninferiority_t"])
def test_the_mean_families_run_at_every_n_with_rare_minorities_and_strong_skew(statistic):
    fam = REGISTRY[statistic]
    assert [n for n, _ in fam.cells()] == list(MEAN_SIZES) and {3, 4, 8, 16, 64} <= set(MEAN_SIZES)
    for n, gens in fam.cells():
        names = " ".join(g.name for g in gens)
        for kind in ("one_in_n_minority", "rare_minority_10pct", "lognormal_sigma1", "chi2_1"):
            assert names.count(kind) >= (1 if "minority" in kind else 2), (statistic, n, kind)
        assert all(np.size(g.draw(np.random.default_rng(0))[0] if isinstance(g.draw(np.random.default_rng(0)), tuple)
                           else g.draw(np.random.default_rng(0))) == n for g in gens)


def test_same_distance_is_measured_where_it_can_pass():
    assert [n for n, _ in REGISTRY["fn_distance_same"].cells()] == [64, 128]
    assert 16 in [n for n, _ in REGISTRY["fn_distance_different"].cells()]
