"""``python -m harness calibrate``: the registry, the table, the files, bad input."""
from __future__ import annotations

import json

import numpy as np
import pytest

from harness.calibrate import REGISTRY, Family, Generator, register, run_all
from harness.calibrate.cli import main
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
