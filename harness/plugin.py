"""The pytest plugin: options, the plan before any test runs, training, the ``law`` fixture, the report.

Flow per session (one direction): collect → every selected law test declares
its ensembles → plan (union, de-duplicated, minus the store) → train what is
missing → tests read runs from the store and decide → report.
"""
from __future__ import annotations

import contextlib
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from harness.data import catalog
from harness.executor import (
    Outcome, WorkerSpec, make_tasks, progress, train_in_process, train_pool, visible_cuda_devices,
)
from harness.identity import recipe_key
from harness.law import EnsembleRuns, LawContext, NotAtThisTier
from harness.plan import Plan, format_seconds, make_plan
from harness.recipe import Ensemble, RecipeError
from harness.report import Report
from harness.store import DEFAULT_STORE, STORE_ENV, Store, StoreError, check_writable
from harness.trainers import DataUnavailable, TrainContext

TIERS = ("smoke", "gpu", "paper")
INCONCLUSIVE_MODES = ("skip", "fail")
DATA_ENV = "LRLAWS_DATA"
OFFLINE_ENV = "LRLAWS_OFFLINE"
XDIST_REFUSAL = "lrlaws: run laws without pytest-xdist's -n (each worker would train on its own); parallelism comes from --gpus N or --executor ray"


@dataclass
class ItemNeeds:
    law: str
    ensembles: dict[str, Ensemble] = field(default_factory=dict)
    keys: dict[str, str] = field(default_factory=dict)
    not_run: str | None = None  # reason the point cannot run this session
    refused: str | None = None  # reason the point must fail without running (a misuse)


@dataclass
class LawSession:
    """The plugin's one piece of state: this session's options, plan and report."""

    tier: str
    gpus: int
    store_root: Path
    report_dir: Path
    data_dir: Path | None
    plan_only: bool
    no_train: bool
    inconclusive: str
    items: dict[str, ItemNeeds] = field(default_factory=dict)
    plan: Plan | None = None
    store: Store | None = None
    outcome: Outcome | None = None
    report: Report | None = None
    train_seconds: float = 0.0
    compile: bool = False  # torch.compile models (TrainContext.compile)
    executor: str = "local"
    ray_address: str | None = None
    compare_to: str = "previous"
    fail_on: str = "regression"
    comparison: Any = None  # harness.compare.Comparison of this session's report with its reference
    compare_note: str = ""
    offline: bool = False  # never download (--offline / LRLAWS_OFFLINE=1)
    to_download: set[str] = field(default_factory=set)  # absent data sets the session fetches before training

    @property
    def device(self) -> str:
        return "cuda" if self.gpus > 0 else "cpu"

    def workers(self) -> list[WorkerSpec]:
        if self.gpus == 0:
            return [WorkerSpec("cpu")]
        ids = visible_cuda_devices()[: self.gpus]
        return [WorkerSpec("cuda:0", physical=i) for i in ids]


SESSION = pytest.StashKey[LawSession]()


# ------------------------------------------------------------------- options --

def pytest_addoption(parser: pytest.Parser) -> None:
    g = parser.getgroup("lrlaws", "lrlaws: empirical laws of training")
    # Validated in pytest_configure rather than by argparse ``choices``, so a typo gets
    # one line saying what to write instead of a usage dump.
    g.addoption("--tier", default=None, metavar="{smoke,gpu,paper}",
                help="scale of the experiments: smoke (CPU, minutes), gpu, paper. Default: gpu when CUDA is available, else smoke.")
    g.addoption("--gpus", default="all", metavar="N",
                help="GPUs to train on, one worker process each; 0 = CPU. Default: all visible (CUDA_VISIBLE_DEVICES is honoured).")
    g.addoption("--store", default=None, metavar="DIR",
                help=f"run store (default ${STORE_ENV} or {DEFAULT_STORE}).")
    g.addoption("--plan", action="store_true", default=False,
                help="print what would be trained (runs, estimated time) and exit without training or testing.")
    g.addoption("--no-train", action="store_true", default=False,
                help="use only stored runs; law points with missing runs are reported as not run.")
    g.addoption("--report-dir", default="results", metavar="DIR",
                help="where reports go: DIR/<run-id>/report.{json,md} and plots (default results/).")
    g.addoption("--data-dir", default=None, metavar="DIR",
                help=f"data sets (CIFAR-10, MNIST) on disk or to download into (default ${DATA_ENV} or ~/.cache/lrlaws/data).")
    g.addoption("--offline", action="store_true", default=False,
                help=f"never download data (also ${OFFLINE_ENV}=1): absent data sets make their law points 'not run'.")
    g.addoption("--inconclusive", default="skip", metavar="{skip,fail}",
                help="what an inconclusive law point becomes: skip (default, with the CI in the reason) or fail.")
    g.addoption("--compile", action="store_true", default=False,
                help="torch.compile each trainer's model (once per process, reused across runs; a one-off "
                     "compile per process). Trainers without a compiled path ignore it.")
    g.addoption("--compare-to", default="previous", metavar="PATH|previous|none",
                help="report to compare this session's with (report.json or its run dir); previous (default) = the "
                     "newest earlier report of the tier in --report-dir, else the committed results/baseline/.")
    g.addoption("--fail-on", default="regression", metavar="{regression,drift,never}",
                help="make the session fail when the comparison finds regressions (default), regressions or drift, or never.")
    g.addoption("--executor", default="local", metavar="{local,ray}",
                help="who trains missing runs: local processes (default) or a Ray cluster (pip install 'lrlaws[ray]').")
    g.addoption("--ray-address", default=None, metavar="ADDR",
                help="Ray cluster to use with --executor ray (default $RAY_ADDRESS, else a local Ray instance).")


def _parse_gpus(value: str) -> int:
    visible = len(visible_cuda_devices())
    if value == "all":
        return visible
    try:
        n = int(value)
    except ValueError:
        raise pytest.UsageError(f"--gpus must be a whole number or 'all', got {value!r}") from None
    if n < 0:
        raise pytest.UsageError(f"--gpus must be >= 0 (0 = train on CPU), got {n}")
    if n > visible:
        raise pytest.UsageError(
            f"--gpus {n} asked for, but {visible} CUDA device(s) are visible; "
            f"use --gpus {visible}" + (" (CPU)" if visible == 0 else "") + " or check CUDA_VISIBLE_DEVICES"
        )
    return n


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "lrlaw(name, needs): an lrlaws law point (see harness.law)")
    tier = config.getoption("--tier")
    if tier is not None and tier not in TIERS:
        raise pytest.UsageError(f"--tier must be one of {', '.join(TIERS)}; got {tier!r}")
    if config.getoption("--inconclusive") not in INCONCLUSIVE_MODES:
        raise pytest.UsageError(f"--inconclusive must be one of {', '.join(INCONCLUSIVE_MODES)}; got {config.getoption('--inconclusive')!r}")
    gpus = _parse_gpus(config.getoption("--gpus"))
    tier = tier or ("gpu" if gpus > 0 else "smoke")
    store_root = Path(config.getoption("--store") or os.environ.get(STORE_ENV) or DEFAULT_STORE)
    data = config.getoption("--data-dir") or os.environ.get(DATA_ENV)
    data_dir = Path(data) if data else Path.home() / ".cache" / "lrlaws" / "data"
    offline_env = os.environ.get(OFFLINE_ENV, "").strip()
    if offline_env not in ("", "0", "1"):
        raise pytest.UsageError(f"{OFFLINE_ENV} must be 1 (never download) or 0; got {offline_env!r}")
    if config.getoption("--plan") and config.getoption("--no-train"):
        raise pytest.UsageError("--plan and --no-train exclude each other: --plan trains nothing and runs no test")
    config.stash[SESSION] = LawSession(
        tier=tier, gpus=gpus, store_root=store_root, report_dir=Path(config.getoption("--report-dir")),
        data_dir=data_dir, plan_only=config.getoption("--plan"), no_train=config.getoption("--no-train"),
        inconclusive=config.getoption("--inconclusive"), compile=config.getoption("--compile"),
        offline=config.getoption("--offline") or offline_env == "1",
    )
    _configure_compare_and_executor(config, config.stash[SESSION])


def _configure_compare_and_executor(config: pytest.Config, ls: LawSession) -> None:
    """--compare-to/--fail-on and --executor/--ray-address: checked here, before anything is trained."""
    from harness.compare import FAIL_ON, report_path

    ls.compare_to, ls.fail_on = config.getoption("--compare-to"), config.getoption("--fail-on")
    if ls.fail_on not in FAIL_ON:
        raise pytest.UsageError(f"--fail-on must be one of {', '.join(FAIL_ON)}; got {ls.fail_on!r}")
    if ls.compare_to not in ("previous", "none"):
        if not report_path(ls.compare_to).is_file():
            raise pytest.UsageError(f"--compare-to {ls.compare_to}: no report.json there; "
                                    "pass a report.json or its run directory, 'previous' or 'none'")
    ls.executor = config.getoption("--executor")
    if ls.executor not in ("local", "ray"):
        raise pytest.UsageError(f"--executor must be local or ray; got {ls.executor!r}")
    ls.ray_address = config.getoption("--ray-address") or os.environ.get("RAY_ADDRESS") or None
    if ls.executor == "ray":
        from harness.ray_executor import ray_missing

        if (why := ray_missing()) is not None:
            raise pytest.UsageError(why)


def _law_items(items: list[pytest.Item]) -> list[pytest.Item]:
    return [it for it in items if it.get_closest_marker("lrlaw") is not None]


# ------------------------------------------------------------------- planning --

def pytest_collection_finish(session: pytest.Session) -> None:
    ls = session.config.stash[SESSION]
    items = _law_items(session.items)
    if not items:
        return
    if hasattr(session.config, "workerinput"):
        # Each xdist worker would plan and train on its own: the plan must be one. The
        # controller collects nothing, so the refusal happens here, per law test.
        for item in items:
            ls.items[item.nodeid] = ItemNeeds(law=item.get_closest_marker("lrlaw").kwargs["name"], refused=XDIST_REFUSAL)
        return
    try:
        check_writable(ls.store_root)
        ls.store = Store(ls.store_root)
    except StoreError as e:
        raise pytest.UsageError(str(e)) from None
    data_errors: dict[str, str] = {}
    for item in items:
        mark = item.get_closest_marker("lrlaw")
        params = dict(getattr(item, "callspec", None).params) if hasattr(item, "callspec") else {}
        need = ItemNeeds(law=mark.kwargs["name"])
        try:
            need.ensembles = dict(mark.kwargs["needs"](ls.tier, **params))
        except NotAtThisTier as e:
            need.not_run = f"not tested at tier {ls.tier}: {e}"
        except RecipeError as e:
            raise pytest.UsageError(f"{item.nodeid}: bad recipe: {e}") from None
        for ens in need.ensembles.values():
            dataset = ens.recipe.dataset
            if dataset not in data_errors:
                data_errors[dataset] = _data_status(ls, dataset)
            if data_errors[dataset] and need.not_run is None:
                need.not_run = f"not run: {data_errors[dataset]}"
        ls.items[item.nodeid] = need
    _make_plan(ls)
    tr = session.config.pluginmanager.get_plugin("terminalreporter")
    if tr is not None:
        tr.write_line(ls.plan.summary(max(1, ls.gpus)) + f" [tier {ls.tier}, store {ls.store_root}]")
        for msg in sorted({m for m in data_errors.values() if m}):
            tr.write_line(f"lrlaws: {msg}", yellow=True)


def _data_status(ls: LawSession, dataset: str) -> str:
    """"" when ``dataset`` can be read (or fetched before training), else why not, with the fix.

    Collection never downloads: an absent on-disk set is fetched in ``pytest_runtestloop``,
    and only by a session that trains and may download.
    """
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
    try:
        for need in ls.items.values():
            need.keys = {name: recipe_key(e.recipe, ls.data_dir, absent_ok=True) for name, e in need.ensembles.items()}
        # --plan lists runs whose data is missing too (a GPU-less box planning a gpu-tier night);
        # a real session trains only what it can.
        ls.plan = make_plan(
            [e for n in ls.items.values() if ls.plan_only or n.not_run is None for e in n.ensembles.values()],
            # A GPU-less box planning a gpu-tier night wants GPU estimates, not CPU ones.
            ls.store, ls.device if ls.gpus or ls.tier == "smoke" else "cuda", data_dir=ls.data_dir,
        )
    except RecipeError as e:
        raise pytest.UsageError(f"bad recipe: {e}") from None


def _fetch_data(session: pytest.Session, ls: LawSession) -> None:
    """Download the absent on-disk data sets, then re-key and re-plan: their fingerprints are now known."""
    from harness.data.images import load_images

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


@pytest.hookimpl(tryfirst=True)
def pytest_runtestloop(session: pytest.Session) -> bool | None:
    ls = session.config.stash[SESSION]
    if ls.plan is None or session.config.option.collectonly:
        return None
    tr = session.config.pluginmanager.get_plugin("terminalreporter")
    if ls.plan_only:
        if tr is not None:
            tr.write_line(ls.plan.table())
            tr.write_line(ls.plan.summary(max(1, ls.gpus)))
        return True  # nothing trained, no test run
    ls.report = Report.start(ls.report_dir, ls.tier)
    if ls.to_download:
        _fetch_data(session, ls)
    if ls.no_train or ls.plan.runs_missing == 0:
        return None
    _train(session, ls)
    return None


def _train(session: pytest.Session, ls: LawSession) -> None:
    assert ls.plan is not None and ls.store is not None
    tasks = make_tasks(ls.plan, ls.device)
    capman = session.config.pluginmanager.get_plugin("capturemanager")
    ctx = TrainContext(device="cuda:0" if ls.gpus else "cpu", data_dir=ls.data_dir, download=not ls.offline,
                       compile=ls.compile)
    t0 = time.perf_counter()
    with (capman.global_and_fixture_disabled() if capman else contextlib.nullcontext()):
        bar = progress(ls.plan.runs_missing, desc=f"lrlaws train ({ls.tier})")
        diverged = 0

        def on_run(key: str, seed: int, status: str) -> None:
            nonlocal diverged
            diverged += status != "ok"
            bar.update(1)
            if diverged:
                bar.set_postfix(diverged=diverged, refresh=False)

        try:
            ls.outcome = _execute(ls, tasks, ctx, on_run)
        finally:
            bar.close()
    ls.train_seconds = time.perf_counter() - t0
    if ls.outcome.interrupted:
        raise KeyboardInterrupt
    tr = session.config.pluginmanager.get_plugin("terminalreporter")
    if tr is not None:
        tr.write_line(f"lrlaws: trained {ls.outcome.trained} runs in {format_seconds(ls.train_seconds)}"
                      + (f", {len(ls.outcome.failed)} tasks failed" if ls.outcome.failed else ""))
        for key, seeds, why in ls.outcome.failed:
            tr.write_line(f"lrlaws: training {key[:12]} seeds {seeds[0]}..{seeds[-1]} failed:\n{why}", red=True)


def _execute(ls: LawSession, tasks, ctx: TrainContext, on_run) -> Outcome:
    """Hand the tasks to the executor the session asked for."""
    if ls.executor == "ray":
        from harness.ray_executor import train_ray

        return train_ray(ls.store, tasks, ctx, on_run, address=ls.ray_address)
    workers = ls.workers()
    if len(workers) == 1:
        return train_in_process(ls.store, tasks, ctx, on_run)
    return train_pool(ls.store, tasks, workers, ctx, on_run)


# -------------------------------------------------------------------- fixture --

@pytest.fixture
def law(request: pytest.FixtureRequest):
    """The running law point's runs and decision sink (see ``harness.law.LawContext``)."""
    ls = request.config.stash[SESSION]
    item = request.node
    need = ls.items.get(item.nodeid)
    if need is None:
        pytest.fail("the `law` fixture is for tests marked with @lrlaw(...)", pytrace=False)
    if need.refused:
        pytest.fail(need.refused, pytrace=False)
    if ls.report is None:
        ls.report = Report.start(ls.report_dir, ls.tier)
    params = dict(item.callspec.params) if hasattr(item, "callspec") else {}
    if need.not_run is None:
        missing = {name: ls.store.missing(need.keys[name], e.seeds, verify=False) for name, e in need.ensembles.items()}
        total = sum(len(m) for m in missing.values())
        if total:
            why = "--no-train" if ls.no_train else "training failed or was interrupted"
            need.not_run = (f"not run: {total} of {sum(e.n for e in need.ensembles.values())} runs missing ({why})")
    if need.not_run is not None:
        ls.report.add_not_run(item.nodeid, need.law, params, need.not_run)
        pytest.skip(need.not_run)
    ctx = LawContext(
        nodeid=item.nodeid, name=need.law, tier=ls.tier, params=params,
        ensembles={name: EnsembleRuns(name, need.keys[name], e, ls.store) for name, e in need.ensembles.items()},
        plot_dir=ls.report.run_dir / "plots", inconclusive=ls.inconclusive,
    )
    yield ctx
    entry = ls.report.add(ctx)
    for k, v in entry.junit_properties():
        item.user_properties.append((k, v))


# --------------------------------------------------------------------- report --

def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    ls = session.config.stash.get(SESSION, None)
    if ls is None or ls.report is None or ls.plan_only:
        return
    ls.report.finish(ls.plan, ls.store_root, ls.train_seconds)
    if ls.compare_to != "none" and not hasattr(session.config, "workerinput"):
        from harness.compare import compare_session

        ls.comparison, ls.compare_note = compare_session(
            ls.report.run_dir, ls.report_dir, session.config.rootpath, ls.compare_to)
        if ls.comparison is not None and ls.comparison.exit_code(ls.fail_on) and session.exitstatus == pytest.ExitCode.OK:
            session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    ls = config.stash.get(SESSION, None)
    if ls is None or ls.report is None or ls.plan_only or not ls.report.entries:
        return
    terminalreporter.section("lrlaws")
    for line in ls.report.summary_lines():
        terminalreporter.write_line(line)
    terminalreporter.write_line(f"report: {ls.report.run_dir / 'report.md'}")
    if ls.comparison is not None:
        for line in ls.comparison.context_lines() + ls.comparison.table().splitlines():
            terminalreporter.write_line(line)
        bad = ls.comparison.exit_code(ls.fail_on)
        terminalreporter.write_line(f"lrlaws compare: {ls.comparison.headline()}", red=bool(bad), green=not bad)
    elif ls.compare_note:
        terminalreporter.write_line(f"lrlaws compare: {ls.compare_note}")
