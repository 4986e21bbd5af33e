"""Fragile decisions (``harness.stats.fragility``) and how they are measured (``confirm --perturb``)."""
from __future__ import annotations

import json
import math

import pytest

from harness.report.confirm import edge_shift, main as confirm_main, perturb_table
from harness.identity import PERTURB_ENV, perturbation, recipe_key
from harness.recipe import Recipe, RecipeError
from harness.stats import CHECK, FAIL, INCONCLUSIVE, PASS, LawResult
from harness.stats import fragility
from harness.stats.fragility import (MACHINE_SPREAD, is_fragile, possible_decisions, possible_point_decisions,
                                     robust_failure, spread)


def row(lo: float, hi: float, thr=1.0, direction: str = ">", kind: str = "claim") -> LawResult:
    return LawResult("s", (lo + hi) / 2, (lo, hi), thr, direction, kind=kind)


def test_a_row_is_fragile_exactly_when_a_spread_can_move_its_decision():
    half = 0.1
    s = MACHINE_SPREAD * half
    clear = row(1 + s * 1.01, 1 + s * 1.01 + 2 * half)
    edge = row(1 + s * 0.99, 1 + s * 0.99 + 2 * half)
    assert possible_decisions(clear) == {PASS} and not is_fragile(clear)
    assert possible_decisions(edge) == {PASS, INCONCLUSIVE} and is_fragile(edge)
    straddling = row(0.99, 1.01)  # inconclusive either way: a small spread cannot decide it
    assert possible_decisions(straddling) == {INCONCLUSIVE}


def test_unbounded_intervals_and_exact_values():
    assert spread(row(-math.inf, math.inf)) == 0.0 and not is_fragile(row(-math.inf, math.inf))
    exact = LawResult("err", 7e-13, (7e-13, 7e-13), 1e-6, "<", kind=CHECK)
    assert not is_fragile(exact)
    at_edge = LawResult("max", 1.14999, (1.14999, 1.14999), 1.15, "<")
    assert is_fragile(at_edge)  # a zero-width value a hair below its threshold


def test_point_decisions_and_robust_failure():
    robust_fail, edge_pass = row(0.2, 0.4), row(1 + 0.05 * MACHINE_SPREAD, 1.1 + 0.05 * MACHINE_SPREAD)
    assert possible_point_decisions([robust_fail, edge_pass]) == {FAIL} and robust_failure([robust_fail])
    assert possible_point_decisions([edge_pass]) == {PASS, INCONCLUSIVE}
    assert not robust_failure([row(0.9 - 0.05 * MACHINE_SPREAD, 1 - 0.05 * MACHINE_SPREAD)])


def test_zero_spread_is_the_negative_control(monkeypatch):
    monkeypatch.setattr(fragility, "MACHINE_SPREAD", 0.0)
    monkeypatch.setattr(fragility, "ZERO_WIDTH_FLOOR", 0.0)
    assert not is_fragile(row(1.001, 1.2))


def _report(rows: dict[str, tuple[str, list[float]]], seed_base: int = 0) -> dict:
    return {"tier": "smoke", "seed_base": seed_base, "entries": [
        {"nodeid": "t.py::a", "law": "a", "decision": "x",
         "results": [{"statistic": k, "value": sum(ci) / 2, "ci": ci, "decision": d, "kind": "claim"}
                     for k, (d, ci) in rows.items()]}]}


def test_perturb_table_flags_rows_decided_differently():
    base = _report({"r1": ("pass", [1.0, 1.2]), "r2": ("pass", [2.0, 3.0])})
    other = _report({"r1": ("inconclusive", [0.95, 1.15]), "r2": ("pass", [2.0, 3.0])})
    table, fragile, worst = perturb_table(base, other)
    assert fragile == ["`t.py::a` r1"] and worst == pytest.approx(0.5)
    assert "**yes**" in table and table.count("\n") == 4
    assert edge_shift({"ci": [0, 2]}, {"ci": [0.5, 2]}) == 0.5
    assert edge_shift({"ci": [-math.inf, math.inf]}, {"ci": [-math.inf, math.inf]}) == 0.0


def test_confirm_perturb_cli(tmp_path, capsys):
    a, b, c = tmp_path / "a.json", tmp_path / "b.json", tmp_path / "c.json"
    a.write_text(json.dumps(_report({"r1": ("pass", [1.0, 1.2])})))
    b.write_text(json.dumps(_report({"r1": ("fail", [0.1, 0.2])})))
    c.write_text(json.dumps(_report({"r1": ("pass", [1.0, 1.2])}, seed_base=1000)))
    assert confirm_main(["--perturb", str(a), str(b), "--md", str(tmp_path / "f.md")]) == 0
    assert "1 row(s) decided differently" in capsys.readouterr().out and (tmp_path / "f.md").exists()
    assert confirm_main(["--perturb", str(a), str(c)]) == 2  # other seeds: not a perturbation
    assert "other seeds" in capsys.readouterr().err
    assert confirm_main(["--perturb", str(a), str(tmp_path / "missing.json")]) == 2


def test_a_perturbation_is_keyed_and_checked(monkeypatch):
    r = Recipe(trainer="toy2d", dataset="none", model="toy2d", lr=0.1, steps=10)
    plain = recipe_key(r)
    monkeypatch.setenv(PERTURB_ENV, "threads")
    assert perturbation() == "threads" and recipe_key(r) != plain
    monkeypatch.setenv(PERTURB_ENV, "float16")
    with pytest.raises(RecipeError, match="not a perturbation; known: \\['threads'\\]"):
        perturbation()
