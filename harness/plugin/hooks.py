"""The pytest plugin: options, the plan before any test runs, training, the ``law`` fixture, the report.

Flow per session (one direction): collect → every selected law test declares its ensembles →
plan (union, de-duplicated, minus the store) → train what is missing, in rounds of sequential
looks → tests read runs from the store and decide → report.

Light on purpose: this module is the pytest11 entry point, loaded by *every* pytest session in an
environment where lrlaws is installed. torch, scipy and the trainers are imported only once a law
test is selected or an lrlaws option needs them; the session's state lives in ``harness.plugin.state``.
"""
from __future__ import annotations

import contextlib
import dataclasses
import time
from typing import TYPE_CHECKING, Any

import pytest

from harness.plugin.options import add_options
from harness.plugin.ids import law_id
from harness.plugin.own_recipe import parse as parse_own_recipes
from harness.plugin.state import ItemNeeds, LawSession, session_from_options
from harness.plugin.xdist import XDIST_REFUSAL, refuse_xdist

if TYPE_CHECKING:
    from harness.execute.tasks import Outcome
    from harness.execute.plan import Plan


SESSION = pytest.StashKey[LawSession]()
CALL_PASSED = pytest.StashKey[bool]()
CALL_ERROR = pytest.StashKey[str]()
CALL_OUTCOME = pytest.StashKey[str]()


# ------------------------------------------------------------------- options --

def pytest_addoption(parser: pytest.Parser) -> None:
    add_options(parser)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "lrlaw(name, needs, tiers): an lrlaws law point (see harness.law)")
    refuse_xdist(config)
    config.stash[SESSION] = ls = session_from_options(config)
    ls.own_recipes = parse_own_recipes(config.getoption("--recipe"))


def _law_items(items: list[pytest.Item]) -> list[pytest.Item]:
    return [it for it in items if it.get_closest_marker("lrlaw") is not None]


# ------------------------------------------------------------------- planning --

def pytest_collection_finish(session: pytest.Session) -> None:
    ls = session.config.stash[SESSION]
    items = _law_items(session.items)
    if not items:
        return
    if hasattr(session.config, "workerinput"):  # a law harness.plugin.xdist's scan missed: refused per test
        for item in items:
            ls.items[item.nodeid] = ItemNeeds(law=item.get_closest_marker("lrlaw").kwargs["name"], refused=XDIST_REFUSAL)
        return
    ls.resolve()
    from harness.store.cache import RunCache
    from harness.store.index import StoreError, open_store

    try:
        # --collect-only (an IDE's test discovery) reads the store like --plan: it creates and writes nothing
        ls.store = open_store(ls.store_root, ls.plan_only or session.config.option.collectonly, ls.no_train)
    except StoreError as e:
        raise pytest.UsageError(str(e)) from None
    ls.run_cache = RunCache(ls.store)
    data_errors = _declare_needs(ls, items)
    tr = session.config.pluginmanager.get_plugin("terminalreporter")
    if tr is not None:
        tr.write_line(ls.plan.summary(max(1, ls.gpus)) + f" [tier {ls.tier}, store {ls.store_root}]")
        for msg in sorted({m for m in data_errors.values() if m}):
            tr.write_line(f"lrlaws: {msg}", yellow=True)


def _declare_needs(ls: LawSession, items: list[pytest.Item]) -> dict[str, str]:
    """Call every selected law test's ``needs`` and check its data; then the session's plan."""
    from harness.law import NeedsError, NotAtThisTier, resolve_needs
    from harness.plugin.own_recipe import apply as apply_own
    from harness.plugin.rounds import init_points
    from harness.recipe import RecipeError

    data_errors: dict[str, str] = {}
    for item in items:
        mark = item.get_closest_marker("lrlaw")
        params = dict(getattr(item, "callspec", None).params) if hasattr(item, "callspec") else {}
        need = ItemNeeds(law=mark.kwargs["name"])
        try:
            ensembles, need.config = resolve_needs(mark, ls.tier, params)
            ensembles = apply_own(ls.own_recipes.get(need.law), ensembles)  # --recipe LAW=MODULE:NAME
            need.ensembles = {name: dataclasses.replace(e, seed_base=ls.seed_base) for name, e in ensembles.items()}
        except NotAtThisTier as e:
            need.not_run = f"not tested at tier {ls.tier}: {e}"
        except NeedsError as e:
            need.ensembles, need.refused = {}, str(e)
        except RecipeError as e:
            need.ensembles, need.refused = {}, f"{item.nodeid}: bad recipe: {e}"
        for ens in need.ensembles.values():
            dataset = ens.recipe.dataset
            if dataset not in data_errors:
                data_errors[dataset] = _data_status(ls, dataset)
            if data_errors[dataset] and need.not_run is None:
                need.not_run = f"not run: {data_errors[dataset]}"
        ls.items[item.nodeid] = need
    _make_plan(ls)
    init_points(ls)
    return data_errors


def _data_status(ls: LawSession, dataset: str) -> str:
    """"" when ``dataset`` can be read (or fetched before training), else why not, with the fix.

    Collection never downloads: an absent on-disk set is fetched in ``pytest_runtestloop``,
    and only by a session that trains and may download.
    """
    from harness.data import catalog

    if not catalog.known(dataset):
        return ""  # the trainer rejects it, with the list of known ones
    why = "downloads disabled (--offline)" if ls.offline else ""
    msg = catalog.missing(dataset, ls.data_dir, why) or ""
    if msg and dataset in catalog.ON_DISK and not (ls.offline or ls.plan_only or ls.no_train):
        ls.to_download.add(dataset)
        return ""
    return msg


def _make_plan(ls: LawSession) -> None:
    """Keys of every law point's ensembles (data fingerprints included), then the plan."""
    from harness.identity import recipe_key
    from harness.execute.plan import make_plan
    from harness.recipe import RecipeError

    for nodeid, need in ls.items.items():
        try:
            need.keys = {name: recipe_key(e.recipe, ls.data_dir, absent_ok=True, compiled=ls.compile) for name, e in need.ensembles.items()}
        except RecipeError as e:  # fails this point alone, at its test
            need.ensembles, need.keys, need.refused = {}, {}, f"{nodeid}: bad recipe: {e}"

    def planned(needs: list[ItemNeeds]) -> "Plan":
        # --plan lists runs whose data is missing too (a GPU-less box planning a gpu-tier night)
        return make_plan([e for n in needs if ls.plan_only or n.not_run is None for e in n.ensembles.values()],
                         ls.store, ls.plan_device, data_dir=ls.data_dir, compiled=ls.compile)

    try:
        ls.plan = planned(list(ls.items.values()))
    except RecipeError:  # a trainer rejects a recipe: find its points, and plan the others
        for nodeid, need in ls.items.items():
            try:
                planned([need])
            except RecipeError as e:
                need.ensembles, need.keys, need.refused = {}, {}, f"{nodeid}: bad recipe: {e}"
        ls.plan = planned(list(ls.items.values()))


def _fetch_data(session: pytest.Session, ls: LawSession) -> None:
    """Download the absent on-disk data sets, then re-key and re-plan: their fingerprints are now known."""
    from harness.data.images import load_images
    from harness.trainers import DataUnavailable

    tr = session.config.pluginmanager.get_plugin("terminalreporter")
    for dataset in sorted(ls.to_download):
        try:
            load_images(dataset, ls.data_dir, download=True)
        except DataUnavailable as e:
            for need in ls.items.values():
                if need.not_run is None and any(x.recipe.dataset == dataset for x in need.ensembles.values()):
                    need.not_run = f"not run: {e}"
            if tr is not None:
                tr.write_line(f"lrlaws: {e}", yellow=True)
    ls.to_download.clear()
    _make_plan(ls)


# ------------------------------------------------------------------- training --

@pytest.hookimpl(tryfirst=True)
def pytest_runtestloop(session: pytest.Session) -> bool | None:
    ls = session.config.stash[SESSION]
    if ls.plan is None or session.config.option.collectonly or _collection_failed(session):
        return None  # pytest's own loop reports the collection errors and stops: nothing is trained
    tr = session.config.pluginmanager.get_plugin("terminalreporter")
    if ls.plan_only:
        if tr is not None:
            tr.write_line(ls.plan.table())
            tr.write_line(ls.plan.summary(max(1, ls.gpus)))
            if not ls.fixed_n:
                from harness.plugin.rounds import write_expected

                write_expected(tr, ls)
        return True  # nothing trained, no test run
    from harness.plugin.rounds import decide_in_rounds
    from harness.report.report import Report

    ls.report = Report.start(ls.report_dir, ls.tier, ls.seed_base)
    if ls.to_download:
        _fetch_data(session, ls)
    decide_in_rounds(session, ls, lambda plan: _train(session, ls, plan))
    return None


def _collection_failed(session: pytest.Session) -> bool:
    """A collection error stops the session before any test runs: training first would waste the night."""
    return bool(session.testsfailed) and not session.config.option.continue_on_collection_errors


def _train(session: pytest.Session, ls: LawSession, plan: "Plan") -> None:
    from harness.execute.local import progress
    from harness.execute.tasks import make_tasks
    from harness.plugin.progress import Divergence, bar_title
    from harness.trainers import TrainContext

    assert ls.store is not None
    tasks = make_tasks(plan, ls.device)
    capman = session.config.pluginmanager.get_plugin("capturemanager")
    ctx = TrainContext(device="cuda:0" if ls.gpus else "cpu", data_dir=ls.data_dir, download=not ls.offline,
                       compile=ls.compile)
    t0 = time.perf_counter()
    with (capman.global_and_fixture_disabled() if capman else contextlib.nullcontext()):
        bar = progress(plan.runs_missing, desc=bar_title(ls))
        diverged = Divergence(ls)

        def on_run(key: str, seed: int, status: str) -> None:
            bar.update(1)
            if status != "ok":
                diverged.add(key)
                bar.set_postfix_str(f"diverged: {diverged.postfix()}", refresh=False)

        try:
            ls.outcome = _execute(ls, tasks, ctx, on_run)
        finally:
            bar.close()
    ls.train_seconds += time.perf_counter() - t0
    ls.outcome.failed = _still_missing(ls.store, ls.outcome.failed)
    ls.trained += ls.outcome.trained
    ls.failed_tasks += len(ls.outcome.failed)
    if ls.outcome.interrupted:
        raise KeyboardInterrupt
    tr = session.config.pluginmanager.get_plugin("terminalreporter")
    if tr is not None and ls.outcome.failed:
        tr.write_line(f"lrlaws: {len(ls.outcome.failed)} training tasks failed", red=True)
        for line in ls.outcome.failure_lines():
            tr.write_line(line, red=True)


def _still_missing(store, failed: list) -> list:
    """Failed tasks narrowed to their seeds that are still missing: a task that stored 45 of its 512 runs
    before it failed lost 467, not 512."""
    out = []
    for key, seeds, why in failed:
        try:
            left = tuple(store.missing(key, seeds, verify=False))
        except Exception:  # the store itself is what failed: count the whole task
            left = tuple(seeds)
        out.append((key, left or tuple(seeds), why))
    return out


def _execute(ls: LawSession, tasks, ctx, on_run) -> "Outcome":
    """Hand the tasks to the executor the session asked for."""
    from harness.execute.local import train_in_process, train_pool

    if ls.executor == "ray":
        from harness.execute.ray import train_ray

        return train_ray(ls.store, tasks, ctx, on_run, address=ls.ray_address)
    workers = ls.workers()
    if len(workers) == 1:
        return train_in_process(ls.store, tasks, ctx, on_run)
    return train_pool(ls.store, tasks, workers, ctx, on_run)


# -------------------------------------------------------------------- fixture --

@pytest.fixture
def law(request: pytest.FixtureRequest):
    """The running law point's runs and decision sink (see ``harness.law.context.LawContext``)."""
    ls = request.config.stash[SESSION]
    item = request.node
    need = ls.items.get(item.nodeid)
    if need is None:
        pytest.fail("the `law` fixture is for tests marked with @lrlaw(...)", pytrace=False)
    if need.refused:
        pytest.fail(need.refused, pytrace=False)
    from harness.plugin.entries import complete_entry
    from harness.plugin.rounds import context, ensembles_at
    from harness.report.report import Report
    from harness.stats import confidence_level

    if ls.report is None:
        ls.report = Report.start(ls.report_dir, ls.tier, ls.seed_base)
    params = dict(item.callspec.params) if hasattr(item, "callspec") else {}
    point = ls.points.get(item.nodeid)
    if need.not_run is None:
        ens = ensembles_at(need, point)
        missing = {name: ls.run_cache.missing(need.keys[name], e.seeds) for name, e in ens.items()}
        total = sum(len(m) for m in missing.values())
        if total:
            why = "--no-train" if ls.no_train else "training failed or was interrupted"
            need.not_run = (f"not run: {total} of {sum(e.n for e in ens.values())} runs missing ({why})")
    if need.not_run is not None:
        ls.report.add_not_run(law_id(item), need.law, params, need.not_run)
        pytest.skip(need.not_run)
    ctx = context(ls, item, point)
    ctx.own_recipe = need.law in ls.own_recipes  # findings were measured on the shipped recipes only
    # the level of the look the point stopped at: the real test decides as its last look did
    with confidence_level(point.level) if point else contextlib.nullcontext():
        yield ctx
        entry = ls.report.add(ctx)
        if entry.decision == "error" and not entry.reason:
            entry.reason = item.stash.get(CALL_ERROR, "") or "the test decided nothing (it never called law.check)"
        entry.stop_digest = ls.stops.digests.get(item.nodeid, "") if ls.stops else ""
    complete_entry(entry, item, item.stash.get(CALL_OUTCOME, ""), ls.report.run_dir)
    if not ctx.results and item.stash.get(CALL_PASSED, False):
        pytest.fail(f"{item.nodeid}: the law test never called law.check(...), so it decided nothing", pytrace=False)
    for k, v in entry.junit_properties():
        item.user_properties.append((k, v))


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: Any):
    # the `law` fixture's teardown needs to know whether the test body ran to its end
    outcome = yield
    if call.when == "call":
        rep = outcome.get_result()
        item.stash[CALL_PASSED] = rep.passed
        # the report's verdict states pytest's outcome too, so the two never disagree
        item.stash[CALL_OUTCOME] = "xfailed" if hasattr(rep, "wasxfail") else rep.outcome
        if call.excinfo is not None:  # an `error` entry says what went wrong
            item.stash[CALL_ERROR] = call.excinfo.exconly().strip().splitlines()[0][:500]


# --------------------------------------------------------------------- report --

def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    ls = session.config.stash.get(SESSION, None)
    if ls is None or ls.report is None or ls.plan_only:
        return
    if ls.failed_tasks and session.exitstatus == pytest.ExitCode.OK:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED  # runs the session needed were not trained
    ls.report.budget = ls.budget
    ls.report.finish(ls.plan, ls.store_root, ls.train_seconds, ls.trained)
    if ls.compare_to != "none" and not hasattr(session.config, "workerinput"):
        from harness.report.compare import compare_session

        ls.comparison, ls.compare_note = compare_session(
            ls.report.run_dir, ls.report_dir, session.config.rootpath, ls.compare_to)
        if ls.comparison is not None and ls.comparison.exit_code(ls.fail_on) and session.exitstatus == pytest.ExitCode.OK:
            session.exitstatus = pytest.ExitCode.TESTS_FAILED
    from harness.report.html import write_html
    write_html(ls.report.run_dir)  # after the comparison, which the page shows


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    ls = config.stash.get(SESSION, None)
    if ls is None or ls.report is None or ls.plan_only or not ls.report.entries:
        return
    terminalreporter.section("lrlaws")
    for line in ls.report.summary_lines():
        terminalreporter.write_line(line)
    for line in ls.report.law_summary_lines():
        terminalreporter.write_line(line, bold=line.startswith("total"))
    for line in ls.report.budget_lines(ls.train_seconds):
        terminalreporter.write_line(line)
    terminalreporter.write_line(f"report: {ls.report.run_dir / 'report.md'}")
    if ls.comparison is not None:
        for line in ls.comparison.context_lines() + ls.comparison.table().splitlines():
            terminalreporter.write_line(line)
        bad = ls.comparison.exit_code(ls.fail_on)
        terminalreporter.write_line(f"lrlaws compare: {ls.comparison.headline()}", red=bool(bad), green=not bad)
    if ls.compare_note:
        terminalreporter.write_line(f"lrlaws compare: {ls.compare_note}", yellow=ls.comparison is not None)
