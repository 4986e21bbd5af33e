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
from typing import TYPE_CHECKING, Any

import pytest

# Light on purpose: this module is the pytest11 entry point, loaded by *every* pytest session
# in an environment where lrlaws is installed. torch, scipy and the trainers are imported
# only once a law test is selected or an lrlaws option needs them.
from harness.store import DEFAULT_STORE, STORE_ENV

if TYPE_CHECKING:
    from harness.executor import Outcome, WorkerSpec
    from harness.law import RunCache
    from harness.plan import Plan
    from harness.recipe import Ensemble
    from harness.report import Report
    from harness.sequential import PointState
    from harness.store import Store

TIERS = ("smoke", "gpu", "paper")
INCONCLUSIVE_MODES = ("skip", "fail")
DATA_ENV = "LRLAWS_DATA"
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

    tier: str | None  # None until resolved: the default depends on CUDA (see resolve)
    gpus: int | None  # None = "all", counted only once a law test is selected
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
    cpu_workers: int | None = None  # --workers; None = the usable cores
    fixed_n: bool = False  # --fixed-n: every point at its tier's maximum N, one look
    #: runs read by several tests of the session are loaded once (bounded, see harness.law.RunCache)
    run_cache: "RunCache | None" = None
    points: "dict[str, PointState]" = field(default_factory=dict)  # sequential state per law test
    trained: int = 0

    def resolve(self) -> None:
        """Count the GPUs and pick the default tier: the first step that needs torch."""
        if self.gpus is None:
            from harness.executor import visible_cuda_devices

            self.gpus = len(visible_cuda_devices()) if _gpu_driver_present() else 0
        if self.cpu_workers is not None and self.gpus > 0:
            raise pytest.UsageError(f"--workers {self.cpu_workers} applies to CPU training (--gpus 0); "
                                    f"with --gpus {self.gpus} there is one worker per GPU")
        self.tier = self.tier or ("gpu" if self.gpus > 0 else "smoke")

    @property
    def device(self) -> str:
        return "cuda" if self.gpus else "cpu"

    def workers(self) -> "list[WorkerSpec]":
        from harness.executor import WorkerSpec, usable_cores, visible_cuda_devices

        if not self.gpus:
            return [WorkerSpec("cpu")] * (self.cpu_workers or usable_cores())
        ids = visible_cuda_devices()[: self.gpus]
        return [WorkerSpec("cuda:0", physical=i) for i in ids]


def _gpu_driver_present() -> bool:
    """Without a GPU driver there is nothing for torch to count: a CPU box never imports it for that."""
    return any(os.path.exists(p) for p in ("/proc/driver/nvidia", "/dev/nvidiactl", "/dev/kfd"))


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
    g.addoption("--workers", default=None, metavar="K",
                help="CPU training (--gpus 0): K worker processes, one intra-op thread each. Default: the usable cores.")
    g.addoption("--fixed-n", action="store_true", default=False,
                help="train every law point's tier maximum N at once and decide once (default: sequential looks "
                     "that stop as soon as every claim is decided).")
    g.addoption("--ray-address", default=None, metavar="ADDR",
                help="Ray cluster to use with --executor ray (default $RAY_ADDRESS, else a local Ray instance).")


def _parse_gpus(value: str) -> int | None:
    if value == "all":
        return None  # counted in LawSession.resolve, so a session without law tests never imports torch
    try:
        n = int(value)
    except ValueError:
        raise pytest.UsageError(f"--gpus must be a whole number or 'all', got {value!r}") from None
    if n < 0:
        raise pytest.UsageError(f"--gpus must be >= 0 (0 = train on CPU), got {n}")
    if n == 0:
        return 0
    from harness.executor import visible_cuda_devices

    visible = len(visible_cuda_devices())
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
    store_root = Path(config.getoption("--store") or os.environ.get(STORE_ENV) or DEFAULT_STORE)
    data = config.getoption("--data-dir") or os.environ.get(DATA_ENV)
    data_dir = Path(data) if data else Path.home() / ".cache" / "lrlaws" / "data"
    if config.getoption("--plan") and config.getoption("--no-train"):
        raise pytest.UsageError("--plan and --no-train exclude each other: --plan trains nothing and runs no test")
    config.stash[SESSION] = LawSession(
        tier=tier, gpus=gpus, store_root=store_root, report_dir=Path(config.getoption("--report-dir")),
        data_dir=data_dir, plan_only=config.getoption("--plan"), no_train=config.getoption("--no-train"),
        inconclusive=config.getoption("--inconclusive"), compile=config.getoption("--compile"),
        cpu_workers=_parse_workers(config.getoption("--workers")), fixed_n=config.getoption("--fixed-n"),
    )
    _configure_compare_and_executor(config, config.stash[SESSION])
    if config.stash[SESSION].cpu_workers is not None:
        config.stash[SESSION].resolve()  # --workers with GPUs is refused before anything runs


def _parse_workers(value: str | None) -> int | None:
    if value is None:
        return None
    try:
        k = int(value)
    except ValueError:
        k = 0
    if k < 1:
        raise pytest.UsageError(f"--workers must be a whole number >= 1 (CPU worker processes), got {value!r}")
    return k


def _configure_compare_and_executor(config: pytest.Config, ls: LawSession) -> None:
    """--compare-to/--fail-on and --executor/--ray-address: checked here, before anything is trained."""
    ls.compare_to, ls.fail_on = config.getoption("--compare-to"), config.getoption("--fail-on")
    if ls.fail_on != "regression" or ls.compare_to not in ("previous", "none"):
        # harness.compare imports scipy: only when one of its options is set
        from harness.compare import FAIL_ON, report_path

        if ls.fail_on not in FAIL_ON:
            raise pytest.UsageError(f"--fail-on must be one of {', '.join(FAIL_ON)}; got {ls.fail_on!r}")
        if ls.compare_to not in ("previous", "none") and not report_path(ls.compare_to).is_file():
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
    ls.resolve()
    from harness.law import RunCache
    from harness.store import Store, StoreError, check_writable

    try:
        check_writable(ls.store_root)
        ls.store = Store(ls.store_root)
    except StoreError as e:
        raise pytest.UsageError(str(e)) from None
    ls.run_cache = RunCache(ls.store)
    _declare_needs(session, ls, items)


def _declare_needs(session: pytest.Session, ls: LawSession, items: list[pytest.Item]) -> None:
    """Call every selected law test's ``needs`` and check its data; then the session's plan."""
    from harness.law import NotAtThisTier
    from harness.looks import init_points
    from harness.plan import make_plan
    from harness.recipe import RecipeError
    from harness.trainers import DataUnavailable, TrainContext, get_trainer, recipe_key

    ctx = TrainContext(device=ls.device, data_dir=ls.data_dir, download=True, compile=ls.compile)
    data_errors: dict[str, str] = {}
    for item in items:
        mark = item.get_closest_marker("lrlaw")
        params = dict(getattr(item, "callspec", None).params) if hasattr(item, "callspec") else {}
        need = ItemNeeds(law=mark.kwargs["name"])
        try:
            need.ensembles = dict(mark.kwargs["needs"](ls.tier, **params))
            need.keys = {name: recipe_key(e.recipe) for name, e in need.ensembles.items()}
        except NotAtThisTier as e:
            need.not_run = f"not tested at tier {ls.tier}: {e}"
        except RecipeError as e:
            raise pytest.UsageError(f"{item.nodeid}: bad recipe: {e}") from None
        for name, ens in need.ensembles.items():
            key = need.keys[name]
            if key not in data_errors:
                try:
                    get_trainer(ens.recipe).check_data(ens.recipe, ctx)
                    data_errors[key] = ""
                except DataUnavailable as e:
                    data_errors[key] = str(e)
            if data_errors[key] and need.not_run is None:
                need.not_run = f"not run: {data_errors[key]}"
        ls.items[item.nodeid] = need
    init_points(ls)
    # --plan lists runs whose data is missing too (a GPU-less box planning a gpu-tier night);
    # a real session trains only what it can.
    ls.plan = make_plan(
        [e for n in ls.items.values() if ls.plan_only or n.not_run is None for e in n.ensembles.values()],
        # A GPU-less box planning a gpu-tier night wants GPU estimates, not CPU ones.
        ls.store, ls.device if ls.gpus or ls.tier == "smoke" else "cuda",
    )
    tr = session.config.pluginmanager.get_plugin("terminalreporter")
    if tr is not None:
        tr.write_line(ls.plan.summary(max(1, ls.gpus)) + f" [tier {ls.tier}, store {ls.store_root}]")
        for msg in sorted({m for m in data_errors.values() if m}):
            tr.write_line(f"lrlaws: {msg}", yellow=True)


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
            if not ls.fixed_n:
                from harness.looks import write_expected

                write_expected(tr, ls)
        return True  # nothing trained, no test run
    from harness.report import Report

    from harness.looks import decide_in_rounds

    ls.report = Report.start(ls.report_dir, ls.tier)
    decide_in_rounds(session, ls, lambda plan: _train(session, ls, plan))
    return None


def _train(session: pytest.Session, ls: LawSession, plan: "Plan") -> None:
    from harness.executor import make_tasks, progress
    from harness.trainers import TrainContext

    assert ls.store is not None
    tasks = make_tasks(plan, ls.device)
    capman = session.config.pluginmanager.get_plugin("capturemanager")
    ctx = TrainContext(device="cuda:0" if ls.gpus else "cpu", data_dir=ls.data_dir, download=True, compile=ls.compile)
    t0 = time.perf_counter()
    with (capman.global_and_fixture_disabled() if capman else contextlib.nullcontext()):
        bar = progress(plan.runs_missing, desc=f"lrlaws train ({ls.tier})")
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
    ls.train_seconds += time.perf_counter() - t0
    ls.trained += ls.outcome.trained
    if ls.outcome.interrupted:
        raise KeyboardInterrupt
    tr = session.config.pluginmanager.get_plugin("terminalreporter")
    if tr is not None:
        if ls.outcome.failed:
            tr.write_line(f"lrlaws: {len(ls.outcome.failed)} training tasks failed", red=True)
        for key, seeds, why in ls.outcome.failed:
            tr.write_line(f"lrlaws: training {key[:12]} seeds {seeds[0]}..{seeds[-1]} failed:\n{why}", red=True)


def _execute(ls: LawSession, tasks, ctx, on_run) -> "Outcome":
    """Hand the tasks to the executor the session asked for."""
    from harness.executor import train_in_process, train_pool

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
    from harness.looks import context, ensembles_at
    from harness.report import Report
    from harness.stats import confidence_level

    if ls.report is None:
        ls.report = Report.start(ls.report_dir, ls.tier)
    params = dict(item.callspec.params) if hasattr(item, "callspec") else {}
    point = ls.points.get(item.nodeid)
    if need.not_run is None:
        ens = ensembles_at(need, point)
        missing = {name: ls.store.missing(need.keys[name], e.seeds, verify=False) for name, e in ens.items()}
        total = sum(len(m) for m in missing.values())
        if total:
            why = "--no-train" if ls.no_train else "training failed or was interrupted"
            need.not_run = (f"not run: {total} of {sum(e.n for e in ens.values())} runs missing ({why})")
    if need.not_run is not None:
        ls.report.add_not_run(item.nodeid, need.law, params, need.not_run)
        pytest.skip(need.not_run)
    ctx = context(ls, item, point)
    # the level of the look the point stopped at: the real test decides as its last look did
    with confidence_level(point.level) if point else contextlib.nullcontext():
        yield ctx
        entry = ls.report.add(ctx)
    for k, v in entry.junit_properties():
        item.user_properties.append((k, v))


# --------------------------------------------------------------------- report --

def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    ls = session.config.stash.get(SESSION, None)
    if ls is None or ls.report is None or ls.plan_only:
        return
    ls.report.finish(ls.plan, ls.store_root, ls.train_seconds, ls.trained)
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
