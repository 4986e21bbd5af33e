"""The plugin's options (the ``lrlaws`` group of ``pytest --help``) and ``Options``, all of them parsed and checked.

Each option is declared with the check of its value's form, an argparse ``type=`` callable
that raises ``pytest.UsageError`` itself: pytest prints it as one ``ERROR:`` line (exit 4),
where argparse's ``choices`` or ``ArgumentTypeError`` would print a usage dump. What a value
means on this machine or next to the other options (a GPU count, the usable cores, a report
directory, ``LRLAWS_*`` variables, Ray) is checked once, in ``Options.from_config``, from
``pytest_configure``, before anything is trained or written.

Light on purpose: the pytest11 entry point imports this module in *every* pytest session of an
environment where lrlaws is installed, so it imports neither torch nor scipy nor the trainers.
"""
from __future__ import annotations

import dataclasses
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Mapping

import pytest

from harness.config import DATA_ENV, DEFAULT_STORE, OFFLINE_ENV, STORE_ENV, default_data_dir, default_store
from harness.packing import DEFAULTS, PACK_ENV, parse_pack
from harness.plugin.own_recipe import parse as parse_own_recipes, recipe_option
from harness.recipe import RecipeError
from harness.store.errors import dir_problem

if TYPE_CHECKING:
    from harness.execute.local import WorkerSpec
    from harness.recipe import Recipe

TIERS = ("smoke", "gpu", "paper")
INCONCLUSIVE_MODES = ("skip", "fail")
EXECUTORS = ("local", "ray")
#: seeds are 32-bit; the largest base leaves room for 2**20 runs per ensemble
MAX_SEED_BASE = 2**31 - 2**20
MAX_PROCS_PER_GPU = 16


# ------------------------------------------------------------- each value's form --

def _one_of(option: str, choices: tuple[str, ...]) -> Callable[[str], str]:
    def check(value: str) -> str:
        if value not in choices:
            raise pytest.UsageError(f"{option} must be one of {', '.join(choices)}; got {value!r}")
        return value
    return check


def _gpus(value: str) -> int | None:
    if value == "all":
        return None  # the default; counted in Options.resolved, so a session without law tests never imports torch
    try:
        n = int(value)
    except ValueError:
        raise pytest.UsageError(f"--gpus must be a whole number or 'all', got {value!r}") from None
    if n < 0:
        raise pytest.UsageError(f"--gpus must be >= 0 (0 = train on CPU), got {n}")
    return n


def _count(option: str, what: str, most: int | None = None) -> Callable[[str], int]:
    def check(value: str) -> int:
        try:
            k = int(value)
        except ValueError:
            k = 0
        if k < 1 or (most is not None and k > most):
            bound = f"in 1..{most}" if most is not None else ">= 1"
            raise pytest.UsageError(f"{option} must be a whole number {bound} ({what}), got {value!r}")
        return k
    return check


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


def _seed_base(value: str) -> int:
    try:
        k = int(value)
    except ValueError:
        raise pytest.UsageError(f"--seed-base must be a whole number >= 0, got {value!r}") from None
    if k < 0 or k > MAX_SEED_BASE:
        raise pytest.UsageError(f"--seed-base must be in 0 .. {MAX_SEED_BASE} (seeds are 32-bit), got {k}")
    return k


def _store(value: str) -> Path:
    if value.strip() == "":
        raise pytest.UsageError(f"--store is empty: pass --store DIR, or leave it out for ${STORE_ENV} or {DEFAULT_STORE}")
    return Path(value)


def _report_dir(value: str) -> Path:
    if value.strip() == "":
        raise pytest.UsageError(f"--report-dir {value!r} is not usable: it is empty; "
                                "pass --report-dir DIR, a writable directory")
    return Path(value)


def _fail_on(value: str) -> str:
    if value == "regression":
        return value  # the default needs no check, and harness.report.compare (numpy) stays unimported
    from harness.report.compare import FAIL_ON

    return _one_of("--fail-on", FAIL_ON)(value)


def _executor(value: str) -> str:
    if value not in EXECUTORS:
        raise pytest.UsageError(f"--executor must be local or ray; got {value!r}")
    return value


def add_options(parser: pytest.Parser) -> None:
    """Every lrlaws option, in the ``lrlaws`` group of ``pytest --help``, with the check of its value."""
    g = parser.getgroup("lrlaws", "lrlaws: empirical laws of training")
    # Defaults are given parsed: argparse would pass a string default through ``type``, but not under
    # --help, which stops parsing before that and still runs pytest_configure.
    g.addoption("--tier", default=None, metavar="{smoke,gpu,paper}", type=_one_of("--tier", TIERS),
                help="scale of the experiments: smoke (CPU, minutes), gpu, paper. Default: gpu when CUDA is available, else smoke.")
    g.addoption("--gpus", default=None, metavar="N", type=_gpus,
                help="GPUs to train on, one worker process each; 0 = CPU. Default: all visible (CUDA_VISIBLE_DEVICES is honoured).")
    g.addoption("--workers", default=None, metavar="K", type=_count("--workers", "CPU worker processes"),
                help="CPU training (--gpus 0): K worker processes, one intra-op thread each. Default: the usable cores.")
    g.addoption("--store", default=None, metavar="DIR", type=_store,
                help=f"run store (default ${STORE_ENV} or {DEFAULT_STORE}).")
    g.addoption("--plan", action="store_true", default=False,
                help="print what would be trained (runs, estimated time) and exit without training or testing.")
    g.addoption("--no-train", action="store_true", default=False,
                help="use only stored runs; law points with missing runs are reported as not run.")
    g.addoption("--fixed-n", action="store_true", default=False,
                help="train every law point's tier maximum N at once and decide once (default: sequential looks "
                     "that stop as soon as every claim is decided).")
    g.addoption("--budget", default=None, metavar="DURATION", type=parse_duration,
                help="sequential looks go on past the tier's N (doubling, open-ended alpha spending) until every "
                     "selected claim is decided or the training time reaches DURATION (e.g. 30m, 8h); the next "
                     "looks go to the points cheapest to decide.")
    g.addoption("--seed-base", default=0, metavar="K", type=_seed_base,
                help="every ensemble uses seeds K .. K+N-1 (default 0, the seeds the laws were tuned on); "
                     "K != 0 makes a confirmatory session on held-out seeds.")
    g.addoption("--report-dir", default=Path("results"), metavar="DIR", type=_report_dir,
                help="where reports go: DIR/<run-id>/report.{json,md} and plots (default results/).")
    g.addoption("--data-dir", default=None, metavar="DIR",
                help=f"data sets (CIFAR-10, MNIST) on disk or to download into (default ${DATA_ENV} or ~/.cache/lrlaws/data).")
    g.addoption("--offline", action="store_true", default=False,
                help=f"never download data (also ${OFFLINE_ENV}=1): absent data sets make their law points 'not run'.")
    g.addoption("--inconclusive", default="skip", metavar="{skip,fail}",
                type=_one_of("--inconclusive", INCONCLUSIVE_MODES),
                help="what an inconclusive law point becomes: skip (default, with the CI in the reason) or fail.")
    g.addoption("--compile", action="store_true", default=False,
                help="torch.compile each trainer's model (once per process, reused across runs; a one-off "
                     "compile per process); compiled runs are stored under their own keys. Trainers without a "
                     "compiled path ignore it.")
    g.addoption("--procs-per-gpu", default=None, metavar="K",
                type=_count("--procs-per-gpu", "trainer processes per GPU", MAX_PROCS_PER_GPU),
                help="trainer processes per visible GPU (1..16; default from harness.packing): small "
                     "nets leave a card idle, several processes fill it.")
    g.addoption("--compare-to", default="previous", metavar="PATH|previous|none",
                help="report to compare this session's with (report.json or its run dir); previous (default) = the "
                     "newest earlier report of the tier in --report-dir, else the committed results/baseline/.")
    g.addoption("--fail-on", default="regression", metavar="{regression,drift,never}", type=_fail_on,
                help="make the session fail when the comparison finds regressions (default), regressions or drift, or never.")
    g.addoption("--executor", default="local", metavar="{local,ray}", type=_executor,
                help="who trains missing runs: local processes (default) or a Ray cluster (pip install 'lrlaws[ray]').")
    g.addoption("--ray-address", default=None, metavar="ADDR",
                help="Ray cluster to use with --executor ray (default $RAY_ADDRESS, else a local Ray instance).")
    g.addoption("--recipe", action="append", default=[], metavar="LAW=MODULE:NAME", type=recipe_option,
                help="run law LAW on your own Recipe NAME of MODULE (repeatable); see docs/your-own-model.md.")


# ---------------------------------------------------------------- all of them --

@dataclass(frozen=True)
class Options:
    """The session's options, parsed and checked; ``resolved`` fills in what depends on the GPUs."""

    store_root: Path = Path(DEFAULT_STORE)
    report_dir: Path = Path("results")
    data_dir: Path | None = None
    tier: str | None = None  # None until resolved: the default depends on CUDA
    gpus: int | None = None  # None = "all", counted only once a law test is selected
    plan_only: bool = False
    no_train: bool = False
    inconclusive: str = "skip"
    compile: bool = False  # torch.compile models (TrainContext.compile)
    executor: str = "local"
    ray_address: str | None = None
    compare_to: str = "previous"
    fail_on: str = "regression"
    seed_base: int = 0  # every ensemble uses seeds seed_base .. seed_base + N - 1
    offline: bool = False  # never download (--offline / LRLAWS_OFFLINE=1)
    cpu_workers: int | None = None  # --workers; None = the usable cores
    procs_per_gpu: int | None = None  # --procs-per-gpu; None = harness.packing
    fixed_n: bool = False  # --fixed-n: every point at its tier's maximum N, one look
    budget: float | None = None  # --budget, seconds of training: open-ended looks past the tier's N
    own_recipes: "Mapping[str, Recipe]" = field(default_factory=dict)  # --recipe: law -> the user's recipe

    @classmethod
    def from_config(cls, config: pytest.Config) -> "Options":
        """Every lrlaws option, checked against the others and this machine, before anything is trained or written."""
        opt = config.getoption
        if opt("--plan") and opt("--no-train"):
            raise pytest.UsageError("--plan and --no-train exclude each other: --plan trains nothing and runs no test")
        if opt("--budget") is not None and opt("--fixed-n"):
            raise pytest.UsageError("--budget and --fixed-n exclude each other: --fixed-n makes one look, --budget "
                                    "looks again past the tier's N")
        _check_environment()
        options = cls(
            tier=opt("--tier"), gpus=opt("--gpus"), store_root=opt("--store") or default_store(),
            report_dir=opt("--report-dir"), data_dir=Path(d) if (d := opt("--data-dir")) else default_data_dir(),
            plan_only=opt("--plan"), no_train=opt("--no-train"), inconclusive=opt("--inconclusive"),
            compile=opt("--compile"), seed_base=opt("--seed-base"), offline=opt("--offline") or _offline_env(),
            cpu_workers=opt("--workers"), fixed_n=opt("--fixed-n"), budget=opt("--budget"),
            procs_per_gpu=opt("--procs-per-gpu"), compare_to=opt("--compare-to"), fail_on=opt("--fail-on"),
            executor=opt("--executor"), ray_address=opt("--ray-address") or os.environ.get("RAY_ADDRESS") or None,
        )
        options._check_machine()
        options._check_compare()
        options._check_executor(config)
        if options.cpu_workers is not None or options.procs_per_gpu is not None:
            options = options.resolved()  # --workers with GPUs, --procs-per-gpu without, are refused before anything runs
        # after conftest.py and the ini's pythonpath are in place, so a user's recipe module imports as their tests do
        return dataclasses.replace(options, own_recipes=parse_own_recipes(opt("--recipe")))

    def _check_machine(self) -> None:
        if self.gpus:
            from harness.execute.local import visible_cuda_devices

            visible = len(visible_cuda_devices())
            if self.gpus > visible:
                raise pytest.UsageError(
                    f"--gpus {self.gpus} asked for, but {visible} CUDA device(s) are visible; "
                    f"use --gpus {visible}" + (" (CPU)" if visible == 0 else "") + " or check CUDA_VISIBLE_DEVICES")
        if (why := dir_problem(self.report_dir)) is not None:
            raise pytest.UsageError(f"--report-dir {str(self.report_dir)!r} is not usable: {why}; "
                                    "pass --report-dir DIR, a writable directory")
        if self.cpu_workers is not None:
            from harness.execute.local import usable_cores

            if self.cpu_workers > (cores := usable_cores()):
                raise pytest.UsageError(f"--workers {self.cpu_workers} is more than the {cores} CPU core(s) this "
                                        f"process may use: pass --workers {cores} or fewer (more processes only "
                                        "compete for the cores)")

    def _check_compare(self) -> None:
        if self.compare_to in ("previous", "none"):
            return
        # only here: the report reader (and its schema) is not for every pytest session
        from harness.report.history import invalid_reason, report_path

        if not report_path(self.compare_to).is_file():
            raise pytest.UsageError(f"--compare-to {self.compare_to}: no report.json there; "
                                    "pass a report.json or its run directory, 'previous' or 'none'")
        if (why := invalid_reason(report_path(self.compare_to))) is not None:
            raise pytest.UsageError(f"--compare-to: {why}; or pass 'previous' or 'none'")

    def _check_executor(self, config: pytest.Config) -> None:
        if config.getoption("--ray-address") is not None and self.executor != "ray":
            config.issue_config_time_warning(pytest.PytestConfigWarning(
                "--ray-address is ignored without --executor ray: add --executor ray to train on that cluster"), stacklevel=2)
        if self.executor == "ray":
            from harness.execute.ray import check_address, ray_missing

            if (why := ray_missing()) is not None:
                raise pytest.UsageError(why)
            if self.ray_address is not None and (why := check_address(self.ray_address)) is not None:
                raise pytest.UsageError(why)

    def resolved(self) -> "Options":
        """The GPUs counted and the default tier picked: the first step that needs torch."""
        gpus = self.gpus
        if gpus is None:
            from harness.execute.local import visible_cuda_devices

            gpus = len(visible_cuda_devices()) if _gpu_driver_present() else 0
        if self.cpu_workers is not None and gpus > 0:
            raise pytest.UsageError(f"--workers {self.cpu_workers} applies to CPU training (--gpus 0); "
                                    f"with --gpus {gpus} use --procs-per-gpu K")
        if self.procs_per_gpu is not None and gpus == 0:
            raise pytest.UsageError(f"--procs-per-gpu {self.procs_per_gpu} applies to GPU training; "
                                    "on the CPU use --workers K")
        return dataclasses.replace(self, gpus=gpus, tier=self.tier or ("gpu" if gpus > 0 else "smoke"))

    @property
    def device(self) -> str:
        return "cuda" if self.gpus else "cpu"

    @property
    def plan_device(self) -> str:
        """A GPU-less box planning a gpu-tier night wants GPU estimates, not CPU ones."""
        return self.device if self.gpus or self.tier == "smoke" else "cuda"

    def workers(self) -> "list[WorkerSpec]":
        """The training processes: ``--workers`` on the CPU, ``--procs-per-gpu`` per GPU."""
        from harness.execute.local import WorkerSpec, usable_cores, visible_cuda_devices

        if not self.gpus:
            return [WorkerSpec("cpu")] * (self.cpu_workers or usable_cores())
        ids = visible_cuda_devices()[: self.gpus]
        k = self.procs_per_gpu or DEFAULTS["cuda"].procs_per_gpu
        return [WorkerSpec("cuda:0", physical=i) for i in ids for _ in range(k)]


def _gpu_driver_present() -> bool:
    """Without a GPU driver there is nothing for torch to count: a CPU box never imports it for that."""
    return any(os.path.exists(p) for p in ("/proc/driver/nvidia", "/dev/nvidiactl", "/dev/kfd"))


def _check_environment() -> None:
    """The ``LRLAWS_*`` variables that change what is trained: a bad value is refused, not ignored."""
    from harness.identity import perturbation  # numpy: not for the import of the entry point

    try:
        perturbation()
    except RecipeError as e:
        raise pytest.UsageError(str(e)) from None
    if os.environ.get(PACK_ENV):
        try:
            parse_pack(os.environ[PACK_ENV])
        except ValueError as e:
            raise pytest.UsageError(f"${PACK_ENV}: {e}; unset it for the device's default") from None


def _offline_env() -> bool:
    value = os.environ.get(OFFLINE_ENV, "").strip()
    if value not in ("", "0", "1"):
        raise pytest.UsageError(f"{OFFLINE_ENV} must be 1 (never download) or 0; got {value!r}")
    return value == "1"
