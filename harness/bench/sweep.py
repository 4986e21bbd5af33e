"""One configuration of the acceptance sweep: K trainer processes on one device, each training packs of P seeds.

Each worker process warms up (data onto the device, cuDNN autotuning, a compile)
on a short run of its pack size, then waits at a barrier; the timed part is the
wall time from the barrier to the last worker's last run, so the effective s/run
is what a session with ``--procs-per-gpu K`` and packs of P would see once warm.
While it trains, NVML samples the card's utilization and memory (``nvidia-ml-py``,
the ``gpu`` extra; without it both say "not measured").
"""
from __future__ import annotations

import multiprocessing as mp
import os
import statistics
import threading
import time
import traceback
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from harness.recipe import Recipe

#: steps of the warm-up run: enough to autotune and compile every shape a run meets
WARM_STEPS = 2
#: seconds between NVML samples
SAMPLE_S = 0.1


@dataclass(frozen=True)
class Config:
    pack: int
    procs: int
    compile: bool = False

    @property
    def name(self) -> str:
        return f"pack {self.pack} x {self.procs} proc{'s' if self.procs > 1 else ''}" + (" compiled" if self.compile else "")


def seeds_for(cfg: Config, runs: int) -> list[list[int]]:
    """Seeds 0..T-1 (T >= runs, a multiple of pack × procs) as one contiguous share per process."""
    unit = cfg.pack * cfg.procs
    total = -(-runs // unit) * unit
    share = total // cfg.procs
    return [list(range(i * share, (i + 1) * share)) for i in range(cfg.procs)]


def _worker(recipe, data_dir: str, device: str, cfg: Config, seeds: list[int], barrier, queue) -> None:
    try:
        import torch

        from harness.trainers.airbench import AirbenchTrainer
        from harness.trainers.base import TrainContext

        if device.startswith("cpu"):
            torch.set_num_threads(1)  # as the harness trains on a CPU: one thread per worker
        trainer = AirbenchTrainer()
        ctx = TrainContext(device=device, data_dir=Path(data_dir), download=False, compile=cfg.compile, pack=cfg.pack)
        trainer.run_pack(recipe.replace(steps=WARM_STEPS), [10**6 + i for i in range(cfg.pack)], ctx)[0].test_acc()
        barrier.wait(timeout=600)
        accs: dict[int, float] = {}
        diverged = 0  # non-finite loss or logits: tells a broken run from one at chance
        for i in range(0, len(seeds), cfg.pack):
            pack = seeds[i:i + cfg.pack]
            for seed, run in zip(pack, trainer.run_pack(recipe, pack, ctx)):
                accs[seed] = run.test_acc()  # .item() inside: waits for the device
                diverged += run.diverged()
        peak = torch.cuda.max_memory_allocated() / 2**30 if device.startswith("cuda") else None
        queue.put({"accs": accs, "diverged": diverged, "peak_gib": peak, "end": time.time()})
    except BaseException:
        _abort(barrier)
        queue.put({"error": traceback.format_exc(limit=8)})


def _abort(barrier) -> None:
    try:
        barrier.abort()  # the parent and the other workers stop waiting
    except Exception:
        pass


class Sampler:
    """Utilization (%) and memory used (GiB) of one GPU, sampled by NVML in a thread; None where not measured."""

    def __init__(self, device: str) -> None:
        self.util: list[float] = []
        self.mem: list[float] = []
        self.why = ""
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._handle = None
        if not device.startswith("cuda"):
            self.why = "not measured (cpu)"
            return
        try:
            import pynvml  # nvidia-ml-py: the optional 'gpu' extra

            pynvml.nvmlInit()
            visible = os.environ.get("CUDA_VISIBLE_DEVICES", "").split(",")[0].strip()
            index = int(visible) if visible.isdigit() else 0
            self._nvml, self._handle = pynvml, pynvml.nvmlDeviceGetHandleByIndex(index)
        except Exception as e:  # ImportError without the extra; NVMLError without a driver
            self.why = f"not measured ({type(e).__name__}: install lrlaws[gpu])"

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.util.append(float(self._nvml.nvmlDeviceGetUtilizationRates(self._handle).gpu))
                self.mem.append(self._nvml.nvmlDeviceGetMemoryInfo(self._handle).used / 2**30)
            except Exception as e:
                self.why = f"not measured ({type(e).__name__})"
                return
            self._stop.wait(SAMPLE_S)

    def __enter__(self) -> "Sampler":
        if self._handle is not None:
            self._thread = threading.Thread(target=self._loop, daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def summary(self) -> dict[str, Any]:
        if not self.util:
            return {"gpu_util_mean_pct": None, "gpu_util_min_pct": None, "gpu_mem_used_max_gib": None,
                    "gpu_util_note": self.why or "not measured (no samples)"}
        return {"gpu_util_mean_pct": round(statistics.mean(self.util), 1), "gpu_util_min_pct": min(self.util),
                "gpu_mem_used_max_gib": round(max(self.mem), 2), "gpu_util_note": f"{len(self.util)} NVML samples"}


def measure_config(recipe: "Recipe", data_dir: Path, device: str, cfg: Config, runs: int, timeout: float) -> dict[str, Any]:
    """Train ``cfg``'s seeds in ``cfg.procs`` spawned processes; effective s/run, accuracy, memory, utilization."""
    ctx = mp.get_context("spawn")
    shares = seeds_for(cfg, runs)
    barrier, queue = ctx.Barrier(cfg.procs + 1), ctx.Queue()
    procs = [ctx.Process(target=_worker, args=(recipe, str(data_dir), device, cfg, s, barrier, queue), daemon=True)
             for s in shares]
    out: dict[str, Any] = {**asdict(cfg), "name": cfg.name, "runs": sum(map(len, shares))}
    t_start = time.time()
    for p in procs:
        p.start()
    results: list[dict] = []
    try:
        barrier.wait(timeout=timeout)
        t0 = time.time()
        out["warmup_s"] = round(t0 - t_start, 2)
        with Sampler(device) as sampler:
            deadline = t_start + timeout
            while len(results) < len(procs) and time.time() < deadline:
                try:
                    results.append(queue.get(timeout=1.0))
                except Exception:  # queue.Empty: keep waiting while any worker lives
                    if not any(p.is_alive() for p in procs) and queue.empty():
                        break
        out.update(sampler.summary())
    except Exception as e:  # BrokenBarrierError: a worker failed in its warm-up
        results += _drain(queue)
        out["error"] = f"warm-up failed ({type(e).__name__})"
    finally:
        for p in procs:
            p.join(timeout=10)
            if p.is_alive():
                p.terminate()
    errors = [r["error"] for r in results if "error" in r]
    if errors or len(results) < len(procs):
        out["error"] = (errors[0] if errors else out.get("error") or f"timed out after {timeout:.0f} s")
        return out
    accs = {s: a for r in results for s, a in r["accs"].items()}
    wall = max(r["end"] for r in results) - t0
    out.update(s_per_run=wall / len(accs), wall_s=round(wall, 2), acc_mean=statistics.mean(accs.values()),
               acc_common=statistics.mean(accs[s] for s in range(runs)), diverged=sum(r["diverged"] for r in results),
               peak_gib=(round(sum(r["peak_gib"] for r in results), 2) if device.startswith("cuda") else None))
    return out


def _drain(queue) -> list[dict]:
    got = []
    while True:
        try:
            got.append(queue.get(timeout=0.5))
        except Exception:
            return got
