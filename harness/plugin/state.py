"""The plugin's one piece of state (``LawSession``) and the parsing of its options.

Light on purpose: the pytest11 entry point imports this module in *every* pytest
session of an environment where lrlaws is installed, so it imports neither torch
nor scipy nor the trainers. Every option is checked here, in ``pytest_configure``,
and a bad one stops the session with one line saying what to do.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from harness.config import DEFAULT_STORE, OFFLINE_ENV, STORE_ENV, default_data_dir, default_store
from harness.store.errors import dir_problem

if TYPE_CHECKING:
    from harness.execute.local import WorkerSpec
    from harness.execute.tasks import Outcome
    from harness.store.cache import RunCache
    from harness.execute.plan import Plan
    from harness.recipe import Ensemble
    from harness.report.report import Report
    from harness.stats.sequential import PointState
    from harness.plugin.stops import Stops
    from harness.store.index import Store

TIERS = ("smoke", "gpu", "paper")
INCONCLUSIVE_MODES = ("skip", "fail")
#: seeds are 32-bit; the largest base leaves room for 2**20 runs per ensemble
MAX_SEED_BASE = 2**31 - 2**20


@dataclass
class ItemNeeds:
    law: str
    ensembles: "dict[str, Ensemble]" = field(default_factory=dict)
    keys: dict[str, str] = field(default_factory=dict)
    not_run: str | None = None  # reason the point cannot run this session
    refused: str | None = None  # reason the point must fail without running (a misuse)
    config: Any = None  # the tier's configuration from @lrlaw(tiers=...)


@dataclass
class LawSession:
    """This session's options, plan, sequential state and report."""

    tier: str | None  # None until resolved: the default depends on CUDA (see resolve)
    gpus: int | None  # None = "all", counted only once a law test is selected
    store_root: Path
    report_dir: Path
    data_dir: Path | None
    plan_only: bool
    no_train: bool
    inconclusive: str
    items: dict[str, ItemNeeds] = field(default_factory=dict)
    plan: "Plan | None" = None
    store: "Store | None" = None
    outcome: "Outcome | None" = None
    report: "Report | None" = None
    train_seconds: float = 0.0
    compile: bool = False  # torch.compile models (TrainContext.compile)
    executor: str = "local"
    ray_address: str | None = None
    compare_to: str = "previous"
    fail_on: str = "regression"
    comparison: Any = None  # harness.report.compare.Comparison of this session's report with its reference
    compare_note: str = ""
    seed_base: int = 0  # every ensemble uses seeds seed_base .. seed_base + N - 1
    offline: bool = False  # never download (--offline / LRLAWS_OFFLINE=1)
    to_download: set[str] = field(default_factory=set)  # absent data sets the session fetches before training
    cpu_workers: int | None = None  # --workers; None = the usable cores
    procs_per_gpu: int | None = None  # --procs-per-gpu; None = harness.packing
    fixed_n: bool = False  # --fixed-n: every point at its tier's maximum N, one look
    budget: float | None = None  # --budget, seconds of training: open-ended looks past the tier's N
    #: per point, (projected seconds to decide it, seconds of its next look), from its latest look
    costs: dict[str, tuple[float, float]] = field(default_factory=dict)
    #: runs read by several tests of the session are loaded once (bounded, see harness.store.cache.RunCache)
    run_cache: "RunCache | None" = None
    points: "dict[str, PointState]" = field(default_factory=dict)  # sequential state per law test
    own_recipes: "dict[str, Recipe]" = field(default_factory=dict)  # --recipe: law -> the user's recipe
    stops: "Stops | None" = None  # earlier stops reused, and this session's (harness.plugin.stops)
    dry_looks: int = 0  # test bodies run dry (a rerun that reuses every stop runs none)
    trained: int = 0
    failed_tasks: int = 0  # training tasks that failed over all rounds: they fail the session

    def resolve(self) -> None:
        """Count the GPUs and pick the default tier: the first step that needs torch."""
        if self.gpus is None:
            from harness.execute.local import visible_cuda_devices

            self.gpus = len(visible_cuda_devices()) if _gpu_driver_present() else 0
        if self.cpu_workers is not None and self.gpus > 0:
            raise pytest.UsageError(f"--workers {self.cpu_workers} applies to CPU training (--gpus 0); "
                                    f"with --gpus {self.gpus} use --procs-per-gpu K")
        if self.procs_per_gpu is not None and self.gpus == 0:
            raise pytest.UsageError(f"--procs-per-gpu {self.procs_per_gpu} applies to GPU training; "
                                    "on the CPU use --workers K")
        self.tier = self.tier or ("gpu" if self.gpus > 0 else "smoke")

    @property
    def device(self) -> str:
        return "cuda" if self.gpus else "cpu"

    @property
    def plan_device(self) -> str:
        """A GPU-less box planning a gpu-tier night wants GPU estimates, not CPU ones."""
        return self.device if self.gpus or self.tier == "smoke" else "cuda"

    def workers(self) -> "list[WorkerSpec]":
        from harness.execute.local import WorkerSpec, usable_cores, visible_cuda_devices

        if not self.gpus:
            return [WorkerSpec("cpu")] * (self.cpu_workers or usable_cores())
        from harness.packing import DEFAULTS

        ids = visible_cuda_devices()[: self.gpus]
        k = self.procs_per_gpu or DEFAULTS["cuda"].procs_per_gpu
        return [WorkerSpec("cuda:0", physical=i) for i in ids for _ in range(k)]


def _gpu_driver_present() -> bool:
    """Without a GPU driver there is nothing for torch to count: a CPU box never imports it for that."""
    return any(os.path.exists(p) for p in ("/proc/driver/nvidia", "/dev/nvidiactl", "/dev/kfd"))


def session_from_options(config: pytest.Config) -> LawSession:
    """Every lrlaws option checked, before anything is trained or written."""
    opt = config.getoption
    tier = opt("--tier")
    if tier is not None and tier not in TIERS:
        raise pytest.UsageError(f"--tier must be one of {', '.join(TIERS)}; got {tier!r}")
    if opt("--inconclusive") not in INCONCLUSIVE_MODES:
        raise pytest.UsageError(f"--inconclusive must be one of {', '.join(INCONCLUSIVE_MODES)}; got {opt('--inconclusive')!r}")
    if opt("--plan") and opt("--no-train"):
        raise pytest.UsageError("--plan and --no-train exclude each other: --plan trains nothing and runs no test")
    _check_perturbation()
    ls = LawSession(
        tier=tier, gpus=_parse_gpus(opt("--gpus")), store_root=_store_root(opt("--store")),
        report_dir=_report_dir(opt("--report-dir")), data_dir=_data_dir(opt("--data-dir")),
        plan_only=opt("--plan"), no_train=opt("--no-train"), inconclusive=opt("--inconclusive"),
        compile=opt("--compile"), seed_base=_parse_seed_base(opt("--seed-base")),
        offline=opt("--offline") or _offline_env(), cpu_workers=_parse_workers(opt("--workers")),
        fixed_n=opt("--fixed-n"), budget=_parse_budget(opt("--budget"), opt("--fixed-n")),
        procs_per_gpu=_parse_workers(opt("--procs-per-gpu"), "--procs-per-gpu", 16),
    )
    _check_pack_env()
    _configure_compare(config, ls)
    _configure_executor(config, ls)
    if ls.cpu_workers is not None or ls.procs_per_gpu is not None:
        ls.resolve()  # --workers with GPUs, --procs-per-gpu without, are refused before anything runs
    return ls


def _check_perturbation() -> None:
    from harness.identity import perturbation
    from harness.recipe import RecipeError

    try:
        perturbation()
    except RecipeError as e:
        raise pytest.UsageError(str(e)) from None


def _check_pack_env() -> None:
    from harness.packing import PACK_ENV, parse_pack

    if os.environ.get(PACK_ENV):
        try:
            parse_pack(os.environ[PACK_ENV])
        except ValueError as e:
            raise pytest.UsageError(f"${PACK_ENV}: {e}; unset it for the device's default") from None


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
    from harness.execute.local import visible_cuda_devices

    visible = len(visible_cuda_devices())
    if n > visible:
        raise pytest.UsageError(
            f"--gpus {n} asked for, but {visible} CUDA device(s) are visible; "
            f"use --gpus {visible}" + (" (CPU)" if visible == 0 else "") + " or check CUDA_VISIBLE_DEVICES"
        )
    return n


def _parse_workers(value: str | None, option: str = "--workers", most: int | None = None) -> int | None:
    if value is None:
        return None
    try:
        k = int(value)
    except ValueError:
        k = 0
    if k < 1 or (most is not None and k > most):
        what = "CPU worker processes" if option == "--workers" else "trainer processes per GPU"
        bound = f"in 1..{most}" if most is not None else ">= 1"
        raise pytest.UsageError(f"{option} must be a whole number {bound} ({what}), got {value!r}")
    if option == "--workers":
        from harness.execute.local import usable_cores

        if k > (cores := usable_cores()):
            raise pytest.UsageError(f"--workers {k} is more than the {cores} CPU core(s) this process may use: "
                                    f"pass --workers {cores} or fewer (more processes only compete for the cores)")
    return k


def _parse_budget(value: str | None, fixed_n: bool) -> float | None:
    if value is None:
        return None
    if fixed_n:
        raise pytest.UsageError("--budget and --fixed-n exclude each other: --fixed-n makes one look, --budget "
                                "looks again past the tier's N")
    return parse_duration(value)


_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_DURATION = re.compile(r"(\d+(?:\.\d+)?)([smhd])")


def parse_duration(value: str) -> float:
    """Seconds in '90s', '30m', '8h', '1h30m' or '2d'; a bad value is a one-line usage error."""
    text = value.strip().lower()
    parts = _DURATION.findall(text)
    if not parts or "".join(a + u for a, u in parts) != text:
        raise pytest.UsageError(f"--budget must be a duration such as 90s, 30m, 8h or 1h30m; got {value!r}")
    seconds = sum(float(a) * _UNITS[u] for a, u in parts)
    if seconds <= 0:
        raise pytest.UsageError(f"--budget must be longer than 0 s; got {value!r}")
    return seconds


def _parse_seed_base(value: str) -> int:
    try:
        k = int(value)
    except (TypeError, ValueError):
        raise pytest.UsageError(f"--seed-base must be a whole number >= 0, got {value!r}") from None
    if k < 0 or k > MAX_SEED_BASE:
        raise pytest.UsageError(f"--seed-base must be in 0 .. {MAX_SEED_BASE} (seeds are 32-bit), got {k}")
    return k


def _store_root(value: str | None) -> Path:
    if value is not None and value.strip() == "":
        raise pytest.UsageError(f"--store is empty: pass --store DIR, or leave it out for ${STORE_ENV} or {DEFAULT_STORE}")
    return Path(value) if value else default_store()


def _report_dir(value: str) -> Path:
    if value.strip() == "" or (why := dir_problem(Path(value))) is not None:
        raise pytest.UsageError(f"--report-dir {value!r} is not usable: {why or 'it is empty'}; "
                                "pass --report-dir DIR, a writable directory")
    return Path(value)


def _data_dir(value: str | None) -> Path:
    return Path(value) if value else default_data_dir()


def _offline_env() -> bool:
    value = os.environ.get(OFFLINE_ENV, "").strip()
    if value not in ("", "0", "1"):
        raise pytest.UsageError(f"{OFFLINE_ENV} must be 1 (never download) or 0; got {value!r}")
    return value == "1"


def _configure_compare(config: pytest.Config, ls: LawSession) -> None:
    ls.compare_to, ls.fail_on = config.getoption("--compare-to"), config.getoption("--fail-on")
    if ls.fail_on == "regression" and ls.compare_to in ("previous", "none"):
        return  # the defaults need no check, and harness.report.compare (scipy) stays unimported
    from harness.report.compare import FAIL_ON
    from harness.report.history import invalid_reason, report_path

    if ls.fail_on not in FAIL_ON:
        raise pytest.UsageError(f"--fail-on must be one of {', '.join(FAIL_ON)}; got {ls.fail_on!r}")
    if ls.compare_to not in ("previous", "none"):
        if not report_path(ls.compare_to).is_file():
            raise pytest.UsageError(f"--compare-to {ls.compare_to}: no report.json there; "
                                    "pass a report.json or its run directory, 'previous' or 'none'")
        if (why := invalid_reason(report_path(ls.compare_to))) is not None:
            raise pytest.UsageError(f"--compare-to: {why}; or pass 'previous' or 'none'")


def _configure_executor(config: pytest.Config, ls: LawSession) -> None:
    ls.executor = config.getoption("--executor")
    if ls.executor not in ("local", "ray"):
        raise pytest.UsageError(f"--executor must be local or ray; got {ls.executor!r}")
    ls.ray_address = config.getoption("--ray-address") or os.environ.get("RAY_ADDRESS") or None
    if config.getoption("--ray-address") is not None and ls.executor != "ray":
        config.issue_config_time_warning(pytest.PytestConfigWarning(
            "--ray-address is ignored without --executor ray: add --executor ray to train on that cluster"), stacklevel=2)
    if ls.executor == "ray":
        from harness.execute.ray import check_address, ray_missing

        if (why := ray_missing()) is not None:
            raise pytest.UsageError(why)
        if ls.ray_address is not None and (why := check_address(ls.ray_address)) is not None:
            raise pytest.UsageError(why)
