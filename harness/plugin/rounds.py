"""The plugin's side of sequential decisions (``Rounds``): each point's looks, the rounds' training, dry looks.

The rule itself (looks, levels, why error rates stay valid) is in ``harness.stats.sequential``.
Here a look runs a law test's own body with a dry ``LawContext`` on the first n runs
of each of its ensembles, under the look's confidence level.
"""
from __future__ import annotations

import contextlib
import time
from pathlib import Path
from typing import Any, Callable, ContextManager

import pytest

from harness.execute.plan import format_seconds
from harness.law.context import LawContext
from harness.law.runs import EnsembleRuns
from harness.plugin import stops
from harness.plugin.budget import extend_within_budget, point_costs
from harness.plugin.ids import law_id
from harness.plugin.planning import Planned, ensembles_at, params_of
from harness.plugin.training import Training
from harness.report.report import Report
from harness.stats import confidence_level
from harness.stats.projection import facing_side
from harness.stats.sequential import PointState, decided, run_rounds

#: what a dry look catches: any error or pytest outcome ends the look without a verdict
_NO_VERDICT = (Exception, pytest.skip.Exception, pytest.fail.Exception, pytest.xfail.Exception)


class Rounds:
    """The session once it trains and tests: its rounds of training and looks, its stops, and its report."""

    def __init__(self, planned: Planned, report: Report, stops_: stops.Stops, training: Training) -> None:
        self.planned = planned
        self.report = report
        self.stops = stops_  # earlier stops reused, and this session's
        self.training = training
        #: per point, (projected seconds to decide it, seconds of its next look), from its latest look
        self.costs: dict[str, tuple[float, float]] = {}
        self.dry_looks = 0  # test bodies run dry (a rerun that reuses every stop runs none)

    @classmethod
    def start(cls, planned: Planned, config: pytest.Config) -> "Rounds":
        """A new report in ``--report-dir``, and the stops of the newest earlier reports of the tier."""
        o = planned.options
        report = Report.start(o.report_dir, str(o.tier), o.seed_base)
        histories: dict[str, dict] = {}
        earlier = stops.previous_stops(o.report_dir, str(o.tier), set(planned.points), histories)
        return cls(planned, report, stops.Stops(earlier, histories), Training(planned, config))

    def decide(self, items: list[pytest.Item], write_line: Callable[[str], None] | None) -> None:
        """Train the undecided points' next look together, look at each, until every point stops."""
        points = self.planned.points
        by_id = {it.nodeid: it for it in items}
        t0 = time.perf_counter()
        law_dirs = {nodeid: Path(by_id[nodeid].path).parent for nodeid in points}
        self._reuse_stops(law_dirs)

        def train() -> None:
            plan = self.planned.round_plan()
            if not self.planned.options.no_train and plan.runs_missing:
                self.training.train(plan)

        extend = self._extend if self.planned.options.budget is not None else None
        rounds = run_rounds(points, train, lambda nodeid, p: self.dry_look(by_id[nodeid], p), extend)
        self._record_stops(law_dirs)
        if write_line is not None and points:
            used = sum(p.n for p in points.values())
            t = self.training
            write_line(f"lrlaws: trained {t.trained} runs in {format_seconds(t.seconds)} over {rounds} "
                       f"round(s); points stopped at {used} of {sum(p.n_max for p in points.values())} runs "
                       f"(looks in {format_seconds(time.perf_counter() - t0 - t.seconds)}: {self.dry_looks} dry, "
                       f"{self.stops.reused} point(s) at their stop in an earlier report on the same runs and code)")

    def _extend(self, undecided: list[str]) -> list[str]:
        budget = self.planned.options.budget
        return extend_within_budget(budget or 0.0, self.training.seconds, self.costs, undecided)

    def context(self, item: pytest.Item, point: PointState | None, dry: bool = False) -> LawContext:
        """The point's runs at its look, and where its decisions go."""
        p, o = self.planned, self.planned.options
        need = p.needs[item.nodeid]
        ens = ensembles_at(need, point)
        return LawContext(
            nodeid=item.nodeid, name=need.law, tier=str(o.tier), params=params_of(item),
            ensembles={name: EnsembleRuns(name, need.keys[name], e, p.store, p.run_cache) for name, e in ens.items()},
            plot_dir=self.report.run_dir / "plots", inconclusive=o.inconclusive, dry=dry,
            config=need.config, seed_base=o.seed_base, node=item,
            runs_used=max((e.n for e in ens.values()), default=0), runs_max=point.n_max if point else 0,
            looks=len(point.plan) if point else 1, history=point.history if point else {},
        )

    def add_not_run(self, item: pytest.Item, law: str, reason: str) -> None:
        """The point's entry when it cannot run this session (its test is skipped with ``reason``)."""
        self.report.add_not_run(law_id(item), law, params_of(item), reason)

    @staticmethod
    def at_level(point: PointState | None) -> ContextManager[Any]:
        """The confidence level of the look the point stopped at: the real test decides as its last look did."""
        return confidence_level(point.level) if point else contextlib.nullcontext()

    def dry_look(self, item: pytest.Item, point: PointState) -> bool | None:
        """Run the test body on the look's runs: True when every claim is decided (or runs are
        missing, which the real test reports), False when not, None when the body cannot run dry."""
        need = self.planned.needs[item.nodeid]
        for name, e in ensembles_at(need, point).items():
            if self.planned.run_cache.missing(need.keys[name], e.seeds):
                self.stops.unverified.add(item.nodeid)
                return True
        params = params_of(item)
        argnames = getattr(getattr(item, "_fixtureinfo", None), "argnames", ())
        if set(argnames) - {"law"} - set(params):
            return None  # the body wants other fixtures: it is decided once, at the maximum
        ctx = self.context(item, point, dry=True)
        self.dry_looks += 1
        kwargs = {a: ctx if a == "law" else params[a] for a in argnames}
        with confidence_level(point.level):
            try:
                item.obj(**kwargs)
            except _NO_VERDICT:
                # what raised may not happen again (an I/O error): this stop is not one to reuse
                self.stops.unverified.add(item.nodeid)
                return None
        record_sides(point, ctx)
        if self.planned.options.budget is not None:
            self.costs[item.nodeid] = point_costs(ctx)
        return decided(ctx.results)

    def _stop_digest(self, nodeid: str, law_dir: Path, point: PointState, n: int) -> str | None:
        need = self.planned.needs[nodeid]
        keyed = {name: (need.keys[name], e) for name, e in ensembles_at(need, point, n).items()}
        return stops.stop_digest(self.stops, self.planned.run_cache, nodeid, law_dir, point,
                                 self.planned.options.seed_base, keyed)

    def _reuse_stops(self, law_dirs: dict[str, Path]) -> None:
        """Start every point whose earlier stop has this session's digest at that stop (``harness.plugin.stops``)."""
        for nodeid, p in self.planned.points.items():
            n, digest = self.stops.previous.get(nodeid, (0, ""))
            if len(p.plan) > 1 and n in p.plan and self._stop_digest(nodeid, law_dirs[nodeid], p, n) == digest:
                p.stop_at(n)
                p.history = {k: [(int(a), float(b)) for a, b in v]
                             for k, v in self.stops.histories.get(nodeid, {}).items() if isinstance(v, list)}
                self.stops.reused += 1

    def _record_stops(self, law_dirs: dict[str, Path]) -> None:
        """The digest of every point that its looks' verdicts stopped, for its report entry."""
        for nodeid, p in self.planned.points.items():
            if p.done and len(p.plan) > 1 and nodeid not in self.stops.unverified:
                digest = self._stop_digest(nodeid, law_dirs[nodeid], p, p.n)
                if digest is not None:
                    self.stops.digests[nodeid] = digest


def record_sides(point: PointState, ctx: LawContext) -> None:
    """How far each claim's interval reached towards its threshold at this look (for projections)."""
    for r in ctx.claims:
        point.history.setdefault(r.statistic, []).append((ctx.runs_used, facing_side(r)[1]))
