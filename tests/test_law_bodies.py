"""The law test functions of laws/ decide their rows right on synthetic runs, and a stand-in that passes
for anything a law binds from ``harness.stats`` breaks one of these controls.

``tests/test_claim_controls.py`` feeds the laws' helpers; here each law's *test function itself* runs
(``tests/fake_law.py``: the ensembles its ``@lrlaw`` mark resolves at the smoke tier, synthetic runs in a
fake store, the real ``LawContext`` in a dry look). Cases are in ``tests/synthetic_accuracy_laws.py`` and
``tests/synthetic_dynamics_laws.py``: per law point a ``true`` case where every row passes and, per claim
row, a ``false`` case where it fails — so replacing what a body calls by a constant cannot stay green.
"""
from __future__ import annotations

import functools
import importlib
import itertools
from pathlib import Path
from typing import Any, Callable

import pytest

from harness.stats import CHECK, FAIL, INCONCLUSIVE, PASS, UNTESTABLE, LawResult
from tests import synthetic_accuracy_laws as accuracy
from tests import synthetic_dynamics_laws as dynamics
from tests.fake_law import Case, Replay, bound_statistics, is_builder, passing_row

ROOT = Path(__file__).resolve().parent.parent
LAW_MODULES = {p.stem: importlib.import_module(f"laws.{p.stem}") for p in sorted((ROOT / "laws").glob("test_*.py"))}
CASES: list[Case] = [*accuracy.small_lr_cases(), *accuracy.reference_cases(), *accuracy.transferability_cases(),
                     *accuracy.linearity_cases(), *dynamics.lars_cases(), *dynamics.gd_cases(),
                     *dynamics.intrinsic_cases()]

#: rows the smoke tier's N cannot decide (the cases expect exactly these undecided there), and why
UNDECIDED_AT_SMOKE = {
    ("test_intrinsic_equivalence_in_function_space", "same_intrinsic_lr:distance"): f"untestable: {dynamics.SMOKE_N_WHY}",
    ("test_intrinsic_equivalence_in_function_space", "higher_intrinsic_lr:distance"): f"cannot fail: {dynamics.SMOKE_N_WHY}",
    **{("test_intrinsic_function_space_equilibrium", s): f"untestable: {dynamics.SMOKE_N_WHY}"
       for (_, when), s in dynamics.EQUIL.items() if when == "late"},
    **{("test_intrinsic_function_space_equilibrium", s): f"cannot fail: {dynamics.SMOKE_N_WHY}"
       for (_, when), s in dynamics.EQUIL.items() if when == "early"},
}

#: functions of harness.stats a law calls that decide no row, and why a stand-in for them cannot be seen
NOT_DECIDING = {
    ("test_transferability", "transferability"): "draws the bar chart and the note; the rows go through drop_result",
    ("test_intrinsic_lr", "l1_distance"): "seed 002's Figure 4 only",
    ("test_intrinsic_lr", "l1_permutation_null"): "seed 002's Figure 4 only",
    ("test_lr_linearity", "bootstrap_weights"): "a function of the number of runs only: its replay is itself",
    ("test_lars_equilibrium", "window_mask"): "a function of the recorded steps and the point only: its replay is itself",
}


@functools.lru_cache(maxsize=None)
def rows_of(i: int) -> tuple[LawResult, ...]:
    return tuple(CASES[i].run())


def _decisions(i: int) -> dict[str, LawResult]:
    return {r.statistic: r for r in rows_of(i)}


ROWS = [(i, stat) for i, c in enumerate(CASES) for stat in c.expect]


def _row_id(i: int, stat: str) -> str:
    return CASES[i].id if CASES[i].label == f"false-{stat}" else f"{CASES[i].id}:{stat}"


@pytest.mark.parametrize("i,stat", ROWS, ids=[_row_id(i, stat) for i, stat in ROWS])
def test_the_law_body_decides_its_row(i: int, stat: str) -> None:
    case, got = CASES[i], _decisions(i)
    assert stat in got, f"{case.id}: the body gives no row {stat!r}; it gives {sorted(got)}"
    assert got[stat].decision == case.expect[stat], (f"{case.id}: {got[stat].summary()}, expected "
                                                     f"{case.expect[stat]}" + (f" ({case.why})" if case.why else ""))


COMPLETE = [i for i, c in enumerate(CASES) if c.complete]


@pytest.mark.parametrize("i", COMPLETE, ids=[CASES[i].id for i in COMPLETE])
def test_a_true_case_names_every_row_its_body_gives(i: int) -> None:
    assert sorted(_decisions(i)) == sorted(CASES[i].expect), "a row without a control, or a control without a row"


def law_points() -> set[tuple[str, str]]:
    """(test function, parameter id) of every law point in laws/, from the test functions' marks."""
    points = set()
    for module in LAW_MODULES.values():
        for name, fn in vars(module).items():
            marks = getattr(fn, "pytestmark", [])
            if name.startswith("test_") and any(m.name == "lrlaw" for m in marks):
                grids = [list(m.args[1]) for m in marks if m.name == "parametrize"]
                points |= {(name, ",".join(str(getattr(v, "id", v)) for v in combo)) for combo in itertools.product(*grids)}
    return points


def test_every_law_point_has_a_true_case_and_every_claim_a_false_one() -> None:
    points = law_points()
    assert len(points) >= 7, f"found {len(points)} law points in laws/ (the discovery is broken)"
    gaps = []
    for point in sorted(points):
        cases = [i for i, c in enumerate(CASES) if (c.test.__name__, c.param_id) == point]
        if not any(CASES[i].complete for i in cases):
            gaps.append(f"{point}: no true case")
        for i in (i for i in cases if CASES[i].complete):
            for r in rows_of(i):
                seen = {CASES[j].expect.get(r.statistic) for j in cases}
                excused = (point[0], r.statistic) in UNDECIDED_AT_SMOKE
                if not ({PASS} if r.kind == CHECK else {PASS, FAIL}) <= seen and not excused:
                    gaps.append(f"{point} {r.statistic}: cases decide it only {sorted(d for d in seen if d)}")
    assert not gaps, gaps


def test_the_rows_undecided_at_smoke_are_those_listed() -> None:
    undecided = {(c.test.__name__, stat) for c in CASES if c.n is None
                 for stat, d in c.expect.items() if d in (UNTESTABLE, INCONCLUSIVE)}
    assert undecided == set(UNDECIDED_AT_SMOKE)
    assert all(c.why for c in CASES for d in c.expect.values() if d in (UNTESTABLE, INCONCLUSIVE))


# ---------------------------------------------------------------------------------- mutations --

def broken_by_builder(cases: list[Case]) -> str | None:
    """The first false case whose rows no longer take their expected decisions."""
    return next((w for c in cases if not c.complete and (w := c.wrong(c.run()))), None)


def broken_by_replay(cases: list[Case], replay: Replay) -> str | None:
    """Per law point: record the statistic on each true case, replay it on the point's false cases."""
    for group in dict.fromkeys(c.group for c in cases):
        members = [c for c in cases if c.group == group]
        for true in (c for c in members if c.complete):
            replay.record()
            true.run()
            if not replay.tape:
                break  # the point does not call it: there is nothing to replay
            for false in (c for c in members if not c.complete):
                replay.replay()
                if w := false.wrong(false.run()):
                    return w
    return None


def _cases_of(module: str) -> list[Case]:
    return [c for c in CASES if c.test.__module__ == LAW_MODULES[module].__name__]


MUTATIONS = [(m, name) for m in sorted(LAW_MODULES) for name in sorted(bound_statistics(LAW_MODULES[m]))
             if (m, name) not in NOT_DECIDING]


@pytest.mark.parametrize("module,name", MUTATIONS, ids=[f"{m}.{n}" for m, n in MUTATIONS])
def test_a_stand_in_that_passes_breaks_a_body_control(module: str, name: str, monkeypatch) -> None:
    law, cases = LAW_MODULES[module], _cases_of(module)
    fn: Callable[..., Any] = getattr(law, name)
    if is_builder(fn):
        monkeypatch.setattr(law, name, passing_row)
        broken = broken_by_builder(cases)
    else:
        replay = Replay(fn)
        monkeypatch.setattr(law, name, replay)
        broken = broken_by_replay(cases, replay)
    assert broken, f"{name} in laws/{module}.py replaced by a stand-in that passes: every body control stays green"


@pytest.mark.parametrize("module,name", sorted(NOT_DECIDING), ids=[f"{m}.{n}" for m, n in sorted(NOT_DECIDING)])
def test_what_decides_no_row_leaves_every_control_green_under_its_stand_in(module: str, name: str, monkeypatch) -> None:
    law = LAW_MODULES[module]
    replay = Replay(getattr(law, name))
    monkeypatch.setattr(law, name, replay)
    assert broken_by_replay(_cases_of(module), replay) is None, f"{name} decides a row: take it out of NOT_DECIDING"
    assert replay.recorded, f"no body of laws/{module}.py called {name}: the exemption is not exercised"


@pytest.mark.parametrize("module", sorted(LAW_MODULES))
def test_the_discovery_finds_the_builders_each_law_binds(module: str) -> None:
    found = bound_statistics(LAW_MODULES[module])
    assert any(is_builder(fn) for fn in found.values()), f"laws/{module}.py: no builder found in {sorted(found)}"
    stale = {n for m, n in NOT_DECIDING if m == module} - set(found)
    assert not stale, f"NOT_DECIDING names what laws/{module}.py does not call: {stale}"


def test_the_discovery_leaves_out_names_a_law_does_not_call() -> None:
    # LawResult is imported by both; linearity calls it, gd_divergence names it in annotations only
    assert "LawResult" in bound_statistics(LAW_MODULES["test_lr_linearity"])
    assert "LawResult" not in bound_statistics(LAW_MODULES["test_gd_divergence"])
    assert {"late_median", "rate_result"} <= set(bound_statistics(LAW_MODULES["test_gd_divergence"]))


def test_the_stand_ins_pass_and_replay_and_the_real_functions_break_nothing(monkeypatch) -> None:
    row = passing_row("s", [0.0], 1.0, ">", kind=CHECK, f=2.0)
    assert (row.statistic, row.decision, row.kind, row.extra) == ("s", PASS, CHECK, {"f": 2.0})
    replay = Replay(lambda x: x + 1)
    assert [replay(1), replay(2)] == [2, 3]
    replay.replay()
    assert [replay(10), replay(20), replay(30)] == [2, 3, 3]
    # the detection itself can answer "nothing broken": the laws' own functions, wrapped, break no control
    law = LAW_MODULES["test_small_lr"]
    for name, fn in bound_statistics(law).items():
        monkeypatch.setattr(law, name, functools.wraps(fn)(lambda *a, _fn=fn, **k: _fn(*a, **k)))
    assert broken_by_builder(_cases_of("test_small_lr")) is None
