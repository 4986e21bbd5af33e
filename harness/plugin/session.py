"""``LawSession``: the object that owns an lrlaws pytest session; ``harness.plugin.hooks`` delegates each hook to it.

Its life follows pytest's: the options parsed and checked (``configure``) → at the end of
collection, the selected law tests' needs and the plan (``harness.plugin.planning.Planned``) →
before the tests, rounds of training and looks (``harness.plugin.rounds.Rounds``, which holds
the report) → each law test's ``law`` fixture → the report finished, compared and summed up.
What exists only after a stage is an object that stage makes, so no later stage finds it half made.

Light on purpose: the pytest11 entry point imports this module in *every* pytest session of an
environment where lrlaws is installed. The modules of a stage (numpy, the law API, the report,
torch for training) are imported where the stage starts, so a session without law tests never
loads them.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Iterator

import pytest

from harness.plugin.entries import complete_entry
from harness.plugin.options import Options
from harness.plugin.xdist import XDIST_REFUSAL, refuse_xdist

if TYPE_CHECKING:
    from harness.law.context import LawContext
    from harness.plugin.planning import Planned
    from harness.plugin.rounds import Rounds
    from harness.report.compare import Comparison

#: what the ``law`` fixture's teardown learns of the test body's call (``record_call``)
CALL_PASSED = pytest.StashKey[bool]()
CALL_ERROR = pytest.StashKey[str]()
CALL_OUTCOME = pytest.StashKey[str]()

NOT_A_LAW = "the `law` fixture is for tests marked with @lrlaw(...)"


class LawSession:
    """This pytest session's options, then its plan, rounds and report as each stage makes them."""

    def __init__(self, config: pytest.Config, options: Options) -> None:
        self.config = config
        self.options = options  # resolved (tier, GPUs) once a law test is selected
        self.planned: "Planned | None" = None  # once law tests are collected (never on an xdist worker)
        self.rounds: "Rounds | None" = None  # once the session trains and tests
        self.refused: dict[str, str] = {}  # law tests that fail without running (on an xdist worker)
        self.comparison: "Comparison | None" = None  # of this session's report with its reference
        self.compare_note = ""  # why there is no comparison, or what it skipped

    @classmethod
    def configure(cls, config: pytest.Config) -> "LawSession":
        """Every option checked before anything is collected, trained or written."""
        config.addinivalue_line("markers", "lrlaw(name, tiers, reads): an lrlaws law point (see harness.law)")
        refuse_xdist(config)
        return cls(config, Options.from_config(config))

    def _write(self, line: str, **markup: bool) -> None:
        tr = self.config.pluginmanager.get_plugin("terminalreporter")
        if tr is not None:
            tr.write_line(line, **markup)

    # ----------------------------------------------------------------- planning --

    def collection_finish(self, session: pytest.Session) -> None:
        """The selected law tests' needs and the session's plan, before any test runs."""
        items = [it for it in session.items if it.get_closest_marker("lrlaw") is not None]
        if not items:
            return
        if hasattr(self.config, "workerinput"):  # a law harness.plugin.xdist's scan missed: refused per test
            self.refused = {item.nodeid: XDIST_REFUSAL for item in items}
            return
        self.options = self.options.resolved()
        from harness.plugin.planning import plan_session  # the stage's modules: see the module's docstring

        # --collect-only (an IDE's test discovery) reads the store like --plan: it creates and writes nothing
        readonly = self.options.plan_only or bool(self.config.option.collectonly)
        self.planned = planned = plan_session(self.options, items, readonly)
        self._write(planned.plan.summary(max(1, self.options.gpus or 0))
                    + f" [tier {self.options.tier}, store {self.options.store_root}]")
        for msg in planned.data_warnings:
            self._write(f"lrlaws: {msg}", yellow=True)

    # ----------------------------------------------------------------- training --

    def runtestloop(self, session: pytest.Session) -> bool | None:
        """Train in rounds of looks before pytest runs the tests; ``--plan`` prints the plan and runs nothing."""
        planned = self.planned
        if planned is None or self.config.option.collectonly or _collection_failed(session):
            return None  # pytest's own loop reports the collection errors and stops: nothing is trained
        tr = self.config.pluginmanager.get_plugin("terminalreporter")
        if self.options.plan_only:
            if tr is not None:
                from harness.plugin.expected import write_plan

                write_plan(tr, planned)
            return True  # nothing trained, no test run
        self.rounds = rounds = self._start_rounds(planned)
        if planned.to_download:
            planned.fetch_data(lambda line: self._write(line, yellow=True))
        rounds.decide(session.items, tr.write_line if tr is not None else None)
        return None

    def _start_rounds(self, planned: "Planned") -> "Rounds":
        from harness.plugin.rounds import Rounds

        return Rounds.start(planned, self.config)

    # ------------------------------------------------------------------ fixture --

    def law(self, item: pytest.Item) -> Iterator["LawContext"]:
        """The ``law`` fixture: the point's runs and decision sink; after the test, its report entry."""
        planned = self.planned
        need = planned.needs.get(item.nodeid) if planned is not None else None
        if planned is None or need is None:
            pytest.fail(self.refused.get(item.nodeid, NOT_A_LAW), pytrace=False)
        if need.refused:
            pytest.fail(need.refused, pytrace=False)
        if self.rounds is None:  # our runtestloop was not reached (another plugin's ran the tests)
            self.rounds = self._start_rounds(planned)
        rounds = self.rounds
        if need.not_run is None:
            need.not_run = planned.runs_missing(item.nodeid)
        if need.not_run is not None:
            rounds.add_not_run(item, need.law, need.not_run)
            pytest.skip(need.not_run)
        point = planned.points.get(item.nodeid)
        ctx = rounds.context(item, point)
        ctx.own_recipe = need.law in self.options.own_recipes  # findings were measured on the shipped recipes only
        # the level of the look the point stopped at: the real test decides as its last look did
        with rounds.at_level(point):
            yield ctx
            entry = rounds.report.add(ctx)
            if entry.decision == "error" and not entry.reason:
                entry.reason = item.stash.get(CALL_ERROR, "") or "the test decided nothing (it never called law.check)"
            entry.stop_digest = rounds.stops.digests.get(item.nodeid, "")
        complete_entry(entry, item, item.stash.get(CALL_OUTCOME, ""), rounds.report.run_dir)
        if not ctx.results and item.stash.get(CALL_PASSED, False):
            pytest.fail(f"{item.nodeid}: the law test never called law.check(...), so it decided nothing", pytrace=False)
        for k, v in entry.junit_properties():
            item.user_properties.append((k, v))

    @staticmethod
    def record_call(item: pytest.Item, call: Any, rep: pytest.TestReport) -> pytest.TestReport:
        """What the ``law`` fixture's teardown needs of the test body's call: did it run to its end, how."""
        if call.when == "call":
            item.stash[CALL_PASSED] = rep.passed
            # the report's verdict states pytest's outcome too, so the two never disagree
            item.stash[CALL_OUTCOME] = "xfailed" if hasattr(rep, "wasxfail") else rep.outcome
            if call.excinfo is not None:  # an `error` entry says what went wrong
                item.stash[CALL_ERROR] = call.excinfo.exconly().strip().splitlines()[0][:500]
        return rep

    # ------------------------------------------------------------------- report --

    def finish(self, session: pytest.Session) -> None:
        """Write the report, compare it with its reference, and set the exit status from both."""
        rounds = self.rounds
        if rounds is None or self.options.plan_only:
            return
        if rounds.training.failed_tasks and session.exitstatus == pytest.ExitCode.OK:
            session.exitstatus = pytest.ExitCode.TESTS_FAILED  # runs the session needed were not trained
        o, t = self.options, rounds.training
        rounds.report.budget = o.budget
        rounds.report.finish(rounds.planned.plan, o.store_root, t.seconds, t.trained)
        if o.compare_to != "none" and not hasattr(self.config, "workerinput"):
            from harness.report.compare import compare_session

            self.comparison, self.compare_note = compare_session(
                rounds.report.run_dir, o.report_dir, self.config.rootpath, o.compare_to)
            if self.comparison is not None and self.comparison.exit_code(o.fail_on) \
                    and session.exitstatus == pytest.ExitCode.OK:
                session.exitstatus = pytest.ExitCode.TESTS_FAILED
        from harness.report.html import write_html

        write_html(rounds.report.run_dir)  # after the comparison, which the page shows

    def summarize(self, terminalreporter: Any) -> None:
        """The ``lrlaws`` section of the terminal summary: verdicts per law, budget, report, comparison."""
        rounds = self.rounds
        if rounds is None or self.options.plan_only or not rounds.report.entries:
            return
        report, tr = rounds.report, terminalreporter
        tr.section("lrlaws")
        for line in report.summary_lines():
            tr.write_line(line)
        for line in report.law_summary_lines():
            tr.write_line(line, bold=line.startswith("total"))
        for line in report.budget_lines(rounds.training.seconds):
            tr.write_line(line)
        tr.write_line(f"report: {report.run_dir / 'report.md'}")
        if self.comparison is not None:
            for line in self.comparison.context_lines() + self.comparison.table().splitlines():
                tr.write_line(line)
            bad = self.comparison.exit_code(self.options.fail_on)
            tr.write_line(f"lrlaws compare: {self.comparison.headline()}", red=bool(bad), green=not bad)
        if self.compare_note:
            tr.write_line(f"lrlaws compare: {self.compare_note}", yellow=self.comparison is not None)


def _collection_failed(session: pytest.Session) -> bool:
    """A collection error stops the session before any test runs: training first would waste the night."""
    return bool(session.testsfailed) and not session.config.option.continue_on_collection_errors
