"""The plugin's side of sequential decisions: each point's looks, the rounds' plans, dry looks.

The rule itself (looks, levels, why error rates stay valid) is in ``harness.stats.sequential``.
Here a look runs a law test's own body with a dry ``LawContext`` on the first n runs
of each of its ensembles, under the look's confidence level.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path
import time
from typing import TYPE_CHECKING, Any, Callable

import pytest

from harness.plugin import stops
from harness.plugin.budget import extend_within_budget, point_costs
from harness.law.runs import EnsembleRuns
from harness.law.context import LawContext
from harness.execute.plan import Plan, format_seconds, plan_keyed
from harness.recipe import Ensemble
from harness.report.history import earlier_reports
from harness.report.report import projection_text
from harness.stats.sequential import PointState, decided, run_rounds, scaled
from harness.stats import confidence_level
from harness.stats.projection import facing_side

if TYPE_CHECKING:
    from harness.plugin.state import ItemNeeds, LawSession

#: what a dry look catches: any error or pytest outcome ends the look without a verdict
_NO_VERDICT = (Exception, pytest.skip.Exception, pytest.fail.Exception, pytest.xfail.Exception)


def init_points(ls: "LawSession") -> None:
    """One ``PointState`` per law point that will run; a single look with ``--fixed-n``."""
    for nodeid, need in ls.items.items():
        # --plan counts points whose data is missing here too, as the plan itself does
        if (need.not_run is None or ls.plan_only) and need.refused is None and need.ensembles:
            n_max = max(e.n for e in need.ensembles.values())
            ls.points[nodeid] = PointState.new(n_max, fixed=ls.fixed_n, open_ended=ls.budget is not None)


def ensembles_at(need: "ItemNeeds", point: PointState | None, n: int | None = None) -> dict[str, Ensemble]:
    """The point's ensembles cut to a look of ``n`` runs (default: the point's current look)."""
    if point is None:
        return dict(need.ensembles)
    look = point.n if n is None else n
    return {name: dataclasses.replace(e, n=scaled(e.n, look, point.n_max)) for name, e in need.ensembles.items()}


def round_plan(ls: "LawSession", verify: bool = False) -> Plan:
    """What the current look of every point needs (decided points stay at their stop)."""
    assert ls.store is not None
    # the keys of collection, not recomputed: a round trains exactly the runs the tests will read
    keyed = [(ls.items[nodeid].keys[name], e) for nodeid, p in ls.points.items()
             for name, e in ensembles_at(ls.items[nodeid], p).items()]
    return plan_keyed(keyed, ls.store, ls.device, verify=verify)


def context(ls: "LawSession", item: pytest.Item, point: PointState | None, dry: bool = False) -> LawContext:
    need = ls.items[item.nodeid]
    assert ls.store is not None and ls.report is not None
    ens = ensembles_at(need, point)
    return LawContext(
        nodeid=item.nodeid, name=need.law, tier=str(ls.tier), params=_params(item),
        ensembles={name: EnsembleRuns(name, need.keys[name], e, ls.store, ls.run_cache) for name, e in ens.items()},
        plot_dir=ls.report.run_dir / "plots", inconclusive=ls.inconclusive, dry=dry,
        config=need.config, seed_base=ls.seed_base, node=item,
        runs_used=max((e.n for e in ens.values()), default=0), runs_max=point.n_max if point else 0,
        looks=len(point.plan) if point else 1, history=point.history if point else {},
    )


def _params(item: pytest.Item) -> dict[str, Any]:
    return dict(item.callspec.params) if hasattr(item, "callspec") else {}


def dry_look(ls: "LawSession", item: pytest.Item, point: PointState) -> bool | None:
    """Run the test body on the look's runs: True when every claim is decided (or runs are
    missing, which the real test reports), False when not, None when the body cannot run dry."""
    need = ls.items[item.nodeid]
    assert ls.run_cache is not None and ls.stops is not None
    for name, e in ensembles_at(need, point).items():
        if ls.run_cache.missing(need.keys[name], e.seeds):
            ls.stops.unverified.add(item.nodeid)
            return True
    params = _params(item)
    argnames = getattr(getattr(item, "_fixtureinfo", None), "argnames", ())
    if set(argnames) - {"law"} - set(params):
        return None  # the body wants other fixtures: it is decided once, at the maximum
    ctx = context(ls, item, point, dry=True)
    ls.dry_looks += 1
    kwargs = {a: ctx if a == "law" else params[a] for a in argnames}
    with confidence_level(point.level):
        try:
            item.obj(**kwargs)
        except _NO_VERDICT:
            # what raised may not happen again (an I/O error): this stop is not one to reuse
            ls.stops.unverified.add(item.nodeid)
            return None
    record_sides(point, ctx)
    if ls.budget is not None:
        ls.costs[item.nodeid] = point_costs(ctx)
    return decided(ctx.results)


def record_sides(point: PointState, ctx: LawContext) -> None:
    """How far each claim's interval reached towards its threshold at this look (for projections)."""
    for r in ctx.claims:
        point.history.setdefault(r.statistic, []).append((ctx.runs_used, facing_side(r)[1]))


def _stop_digest(ls: "LawSession", nodeid: str, law_dir: Path, point: PointState, n: int) -> str | None:
    assert ls.stops is not None and ls.run_cache is not None
    need = ls.items[nodeid]
    keyed = {name: (need.keys[name], e) for name, e in ensembles_at(need, point, n).items()}
    return stops.stop_digest(ls.stops, ls.run_cache, nodeid, law_dir, point, ls.seed_base, keyed)


def reuse_stops(ls: "LawSession", law_dirs: dict[str, Path]) -> None:
    """Start every point whose earlier stop has this session's digest at that stop (``harness.plugin.stops``)."""
    assert ls.stops is not None
    for nodeid, p in ls.points.items():
        n, digest = ls.stops.previous.get(nodeid, (0, ""))
        if len(p.plan) > 1 and n in p.plan and _stop_digest(ls, nodeid, law_dirs[nodeid], p, n) == digest:
            p.stop_at(n)
            p.history = {k: [(int(a), float(b)) for a, b in v] for k, v in ls.stops.histories.get(nodeid, {}).items()
                         if isinstance(v, list)}
            ls.stops.reused += 1


def record_stops(ls: "LawSession", law_dirs: dict[str, Path]) -> None:
    """The digest of every point that its looks' verdicts stopped, for its report entry."""
    assert ls.stops is not None
    for nodeid, p in ls.points.items():
        if p.done and len(p.plan) > 1 and nodeid not in ls.stops.unverified:
            digest = _stop_digest(ls, nodeid, law_dirs[nodeid], p, p.n)
            if digest is not None:
                ls.stops.digests[nodeid] = digest


def previous_runs(report_dir: Path, tier: str, skipped: list[str] | None = None) -> dict[str, int]:
    """Runs each point used in the newest earlier report of the tier (for --plan's expectation); a report
    that cannot be read is passed over, one line about it appended to ``skipped``."""
    return {n: int(e["runs_used"]) for n, e in previous_entries(report_dir, tier, skipped).items()
            if isinstance(e.get("runs_used"), int)}


def expected_plan(ls: "LawSession", skipped: list[str] | None = None) -> tuple[Plan, str]:
    """The runs to train if each point stops where it stopped last time (else at its maximum)."""
    assert ls.store is not None
    before = previous_runs(ls.report_dir, str(ls.tier), skipped)
    keyed = []
    for nodeid, p in ls.points.items():
        n = min(before.get(nodeid, p.n_max), p.n_max)
        keyed += [(ls.items[nodeid].keys[name], e) for name, e in ensembles_at(ls.items[nodeid], p, n).items()]
    source = "each point's stop in the previous report" if before else "no previous report: every point at its maximum"
    return plan_keyed(keyed, ls.store, ls.plan_device, verify=False), source


def write_expected(tr: Any, ls: "LawSession") -> None:
    skipped: list[str] = []
    exp, source = expected_plan(ls, skipped)
    for line in skipped:
        tr.write_line(f"lrlaws plan: {line}", yellow=True)
    tr.write_line(f"lrlaws plan (sequential looks): at most {ls.plan.runs_missing} runs to train, expected "
                  f"{exp.runs_missing} (est. {format_seconds(exp.est_seconds / max(1, ls.gpus))}; {source})")
    for line in point_plan_lines(ls):
        tr.write_line(line)


def previous_entries(report_dir: Path, tier: str, skipped: list[str] | None = None) -> dict[str, dict[str, Any]]:
    """The entries of the newest earlier report of the tier, by node id."""
    for _, data in earlier_reports(report_dir, tier, skipped=skipped):
        entries = {e["nodeid"]: e for e in data["entries"] if isinstance(e, dict) and "nodeid" in e}
        if entries:
            return entries
    return {}


def point_plan_lines(ls: "LawSession") -> list[str]:
    """Per point: the runs to its next look, and what the newest earlier report said deciding would cost."""
    assert ls.store is not None
    before = previous_entries(ls.report_dir, str(ls.tier))
    lines = []
    for nodeid, p in ls.points.items():
        need = ls.items[nodeid]
        look = plan_keyed([(need.keys[k], e) for k, e in ensembles_at(need, p, p.plan[0]).items()],
                          ls.store, ls.plan_device, verify=False)
        e = before.get(nodeid)
        if e is None:
            last = "no earlier report"
        elif e.get("projection"):
            last = f"last {e.get('decision')} at {e.get('runs_used')} runs, {projection_text(e['projection'])}"
        else:
            last = f"last {e.get('decision')} at {e.get('runs_used')} runs"
        lines.append(f"  {nodeid}: next look at {p.plan[0]} runs/ensemble ({look.runs_missing} to train); {last}")
    return lines


def decide_in_rounds(session: pytest.Session, ls: "LawSession", train_plan: Callable[[Plan], None]) -> None:
    """Train the undecided points' next look together, look at each, until every point stops."""

    by_id = {it.nodeid: it for it in session.items}
    t0 = time.perf_counter()
    law_dirs = {nodeid: Path(by_id[nodeid].path).parent for nodeid in ls.points}
    histories: dict[str, dict] = {}
    ls.stops = stops.Stops(stops.previous_stops(ls.report_dir, str(ls.tier), set(ls.points), histories), histories)
    reuse_stops(ls, law_dirs)

    def train() -> None:
        plan = round_plan(ls)
        if not ls.no_train and plan.runs_missing:
            train_plan(plan)

    extend = (lambda undecided: extend_within_budget(ls, undecided)) if ls.budget is not None else None
    rounds = run_rounds(ls.points, train, lambda nodeid, p: dry_look(ls, by_id[nodeid], p), extend)
    record_stops(ls, law_dirs)
    tr = session.config.pluginmanager.get_plugin("terminalreporter")
    if tr is not None and ls.points:
        used = sum(p.n for p in ls.points.values())
        tr.write_line(f"lrlaws: trained {ls.trained} runs in {format_seconds(ls.train_seconds)} over {rounds} "
                      f"round(s); points stopped at {used} of {sum(p.n_max for p in ls.points.values())} runs "
                      f"(looks in {format_seconds(time.perf_counter() - t0 - ls.train_seconds)}: {ls.dry_looks} dry, "
                      f"{ls.stops.reused} point(s) at their stop in an earlier report on the same runs and code)")
