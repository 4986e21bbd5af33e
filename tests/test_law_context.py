"""The helpers the ``law`` fixture gives law authors: divergence masks, streamed multi-ensemble chunks,
labelled figures, and the builders behind one-line rows."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from harness.law.runs import EnsembleRuns
from harness.law.context import LawContext
from harness.store.cache import RunCache
from harness.recipe import Ensemble, Recipe
from harness.stats import CHECK, FAIL, INCONCLUSIVE, PASS, LawResult, exact_result, mean_result
from harness.store.index import RunRecord

#: per ensemble, the seeds whose run diverged
DIVERGED = {"a": {1}, "b": {3}, "c": set()}


class FakeStore:
    """Four runs per key; run s of key k has logits filled with s and accuracy s/10 (NaN-free even if diverged)."""

    def records(self, key, seeds=None):
        return {s: RunRecord(key, s, "diverged" if s in DIVERGED[key] else "ok", "", "", 0.0, "cpu",
                             {"test_acc": s / 10}) for s in range(4)}

    def load(self, key, seed):
        return self.records(key)[seed], {"logits": np.full(3, float(seed)), "curve": np.arange(5.0) * seed}


def context(tmp_path, dry: bool = False) -> LawContext:
    cache = RunCache(FakeStore())
    recipe = Recipe(trainer="mlp", dataset="teacher", model="mlp")
    ensembles = {k: EnsembleRuns(k, k, Ensemble(recipe, 4), cache.store, cache) for k in DIVERGED}
    return LawContext("t.py::test_x", "x", "smoke", {}, ensembles, tmp_path / "plots", dry=dry)


def test_ok_masks_and_metrics_leave_diverged_runs_out(tmp_path):
    law = context(tmp_path)
    assert law.runs("a").ok.tolist() == [True, False, True, True]
    np.testing.assert_array_equal(law.runs("a").ok_metric("test_acc"), [0.0, np.nan, 0.2, 0.3])
    assert law.ok_seeds("a", "b").tolist() == [True, False, True, False]
    assert law.notes == ["2 of 4 seeds dropped because a run diverged (a, b)"]
    assert law.ok_seeds("c").all() and len(law.notes) == 1  # nothing dropped, nothing noted


def test_a_mistyped_metric_or_array_raises_listing_the_names_the_runs_have(tmp_path):
    law = context(tmp_path)
    with pytest.raises(KeyError, match=r"no metric 'accuracy'; its runs record: \['test_acc'\]"):
        law.runs("a").metric("accuracy")
    with pytest.raises(KeyError, match=r"no array 'logit'; its runs store: \['curve', 'logits'\]"):
        law.runs("a").array("logit")
    with pytest.raises(KeyError, match="no array 'logit'"):
        next(law.chunks("logit", "a", "b"))
    # a name some runs lack (a diverged run records no metrics) stays NaN there, not an error
    runs = law.runs("a")
    runs._records = lambda: [dataclasses.replace(r, metrics={} if r.seed == 1 else r.metrics)
                             for r in EnsembleRuns._records(runs)]
    np.testing.assert_array_equal(runs.metric("test_acc"), [0.0, np.nan, 0.2, 0.3])


def test_require_ok_fails_the_point_naming_the_ensembles(tmp_path):
    law = context(tmp_path)
    law.require_ok("c", why="needs every run")
    with pytest.raises(AssertionError, match=r"needs every run; diverged runs per ensemble: \{'a': 1, 'c': 0\}"):
        law.require_ok("a", "c", why="needs every run")


def test_chunks_are_seed_aligned_across_ensembles_and_masked(tmp_path):
    law = context(tmp_path)
    mask = np.array([True, False, True, True])
    chunks = list(law.chunks("logits", "a", "b", mask=mask))
    assert len(chunks) == 1
    a, b = chunks[0]
    np.testing.assert_array_equal(a[:, 0], [0, 2, 3])
    np.testing.assert_array_equal(a, b)
    assert set(law.runs("a").arrays("logits", "curve")) == {"logits", "curve"}


def test_figure_labels_every_panel_and_saves_only_outside_dry_looks(tmp_path):
    law = context(tmp_path)
    with law.figure("bands", ncols=2, xlabel="step", ylabel="acc", title="T", legend=7, logy=True) as (fig, axes):
        law.band(axes[0], np.arange(5), law.runs("a").array("curve") + 1, "a", "C0")
        panels = list(axes)
    assert [a.get_xlabel() for a in panels] == ["step", "step"] and panels[0].get_ylabel() == "acc"
    assert all(a.get_yscale() == "log" for a in panels) and fig._suptitle.get_text() == "T"
    assert panels[0].get_legend() is not None and len(panels[0].collections) == 1  # the 10–90% band
    assert [p.rsplit("/", 1)[-1] for p in law.plots] == ["test_x-bands.png"]
    dry = context(tmp_path / "dry", dry=True)
    with dry.figure("bands") as (fig, ax):
        ax.plot([0, 1])
    assert dry.plots == [] and not (tmp_path / "dry").exists()


def _outcome(law: LawContext, *rows: LawResult) -> tuple[str, str]:
    """What ``law.check(*rows)`` turns into: ('passed'|'xfailed'|'skipped'|'failed', message)."""
    try:
        law.check(*rows)
    except pytest.xfail.Exception as e:
        return "xfailed", str(e)
    except pytest.skip.Exception as e:
        return "skipped", str(e)
    except pytest.fail.Exception as e:
        return "failed", str(e)
    return "passed", ""


#: one claim needing > 1.0: failing by 10 half-widths (robust), by a tenth of one (at the edge), passing
ROBUST_FAIL = LawResult("s", 0.5, (0.4, 0.6), 1.0, ">")
EDGE_FAIL = LawResult("s", 0.98, (0.96, 0.99), 1.0, ">")
ROBUST_PASS = LawResult("s", 1.5, (1.4, 1.6), 1.0, ">")


def test_a_finding_is_an_xfail_only_where_it_fails_beyond_the_machine_spread(tmp_path):
    law = context(tmp_path)
    law.known_failure("a finding")
    assert _outcome(law, ROBUST_FAIL) == ("xfailed", "finding at smoke: a finding")
    edge = context(tmp_path)
    edge.known_failure("a finding")
    kind, msg = _outcome(edge, EDGE_FAIL)
    assert kind == "skipped" and msg.startswith("fragile: fail here") and edge.fragile
    holds = context(tmp_path)
    holds.known_failure("a finding")
    kind, msg = _outcome(holds, ROBUST_PASS)
    assert kind == "failed" and "no longer holds" in msg


def test_no_finding_means_a_robust_failure_fails_and_none_pins_nothing(tmp_path):
    law = context(tmp_path)
    law.known_failure(None)
    assert law.finding is None and _outcome(law, ROBUST_FAIL)[0] == "failed"
    assert _outcome(context(tmp_path), ROBUST_PASS) == ("passed", "")


def test_a_finding_never_hides_a_harness_error(tmp_path):
    law = context(tmp_path)
    law.known_failure("a finding")
    broken = LawResult("probe", 0.5, (0.5, 0.5), 1e-6, "<", kind=CHECK)
    kind, msg = _outcome(law, ROBUST_FAIL, broken)
    assert kind == "failed" and msg.startswith("harness error")


def test_a_check_at_its_band_edge_is_fragile_not_a_harness_error(tmp_path):
    law = context(tmp_path)
    # w·g/(|w||g|) just past -0.0909 with a half-width of 0.01: on another machine it may pass
    edge = LawResult("radial", -0.085, (-0.095, -0.075), (-0.0909, 0.0909), "in", kind=CHECK)
    assert edge.decision == INCONCLUSIVE
    assert _outcome(law, ROBUST_PASS, edge) == ("passed", "")
    assert law.broken_checks == [] and law.fragile_rows == [law.results[1]]


def test_without_a_machine_spread_the_edge_is_decided_as_computed(tmp_path, monkeypatch):
    # negative control: with no spread the edge failure is pinned and the edge check is broken
    from harness.stats import fragility

    monkeypatch.setattr(fragility, "MACHINE_SPREAD", 0.0)
    monkeypatch.setattr(fragility, "ZERO_WIDTH_FLOOR", 0.0)
    law = context(tmp_path)
    law.known_failure("a finding")
    assert _outcome(law, EDGE_FAIL)[0] == "xfailed"
    edge = LawResult("radial", -0.085, (-0.095, -0.075), (-0.0909, 0.0909), "in", kind=CHECK)
    assert _outcome(context(tmp_path), ROBUST_PASS, edge)[0] == "failed"


def test_a_row_without_a_decision_is_decided_by_the_one_rule():
    assert LawResult("s", 1.0, (0.5, 1.5), 0.2, ">").decision == PASS
    assert LawResult("s", 1.0, (0.5, 1.5), 1.0, ">").decision == INCONCLUSIVE
    assert LawResult("s", 1.0, (0.5, 1.5), 0.2, ">", "fail").decision == FAIL  # given, kept


def test_mean_and_exact_builders():
    r = mean_result("m", [1.0, 1.01, 0.99, np.nan], (0.5, 1.5), "in", kind=CHECK, layer="c0")
    assert r.decision == PASS and r.n == 3 and r.kind == CHECK and r.extra == {"layer": "c0"}
    assert mean_result("m", [1.0, 1.01, 0.99], 2.0, ">").decision == FAIL
    e = exact_result("err", 1e-9, 1e-6, "<", n=8)
    assert e.ci == (1e-9, 1e-9) and e.decision == PASS and e.n == 8
    assert exact_result("worst", 2.0, 1.15, "<", n=2).decision == FAIL


def test_every_builder_makes_a_claim_unless_told_otherwise():
    from harness.stats import CLAIM, band_result, noninferiority_result, paired_difference_result, rate_result
    x = np.linspace(0.9, 1.1, 8)
    rows = [mean_result("m", x, 0.0, ">"), band_result("b", x, (0.0, 2.0)), noninferiority_result("n", x, x, 0.1),
            paired_difference_result("p", x, x, 0.0, ">"), rate_result("r", x > 1, 0.9, "<"),
            exact_result("e", 1.0, 2.0, "<", n=8)]
    assert {r.kind for r in rows} == {CLAIM}
    assert exact_result("e", 1.0, 2.0, "<", n=8, kind=CHECK).kind == CHECK  # the control: a kind given is kept


def test_the_context_fills_in_the_law_name_and_the_seeds_read(tmp_path):
    law = context(tmp_path, dry=True)
    law.seed_base = 1000
    law.check(mean_result("m", [1.0, 1.01, 0.99], 0.5, ">"))
    (row,) = law.results
    assert row.law == "x" and row.seeds == (1000, 1004)  # 4 seeds per ensemble, from the session's seed base
    assert mean_result("m", [1.0], 0.5, ">").law == ""  # a builder alone names no law: the context does


def test_sanity_rows_decide_only_a_point_without_claims_and_are_counted_apart(tmp_path):
    from harness.report.summary import law_summary
    from harness.stats import CLAIM, SANITY

    fails = LawResult("s", 0.5, (0.4, 0.6), 1.0, ">", kind=SANITY)
    holds = LawResult("c", 1.5, (1.4, 1.6), 1.0, ">", kind=CLAIM)
    mixed, alone = context(tmp_path, dry=True), context(tmp_path, dry=True)
    mixed.check(holds, fails)
    alone.check(fails)
    assert mixed.decision == PASS and alone.decision == FAIL  # control: the same sanity row decides when alone
    entries = [{"law": "x", "decision": c.decision, "results": [r.to_dict() for r in c.results]} for c in (mixed, alone)]
    counts = law_summary(entries)["x"]
    assert (counts["holding"], counts["failing"], counts["sanity_failing"]) == (1, 0, 2)


def test_a_fragile_point_of_sanity_rows_alone_names_its_fragile_row(tmp_path):
    from harness.stats import SANITY

    law = context(tmp_path)
    edge = LawResult("behind", -0.025, (-0.079, -0.011), 0.0, "<", kind=SANITY)  # passes, within the spread of 0
    with pytest.raises(pytest.skip.Exception, match=r"fragile: pass here.*behind CI \[-0.079, -0.011\]"):
        law.check(edge)
