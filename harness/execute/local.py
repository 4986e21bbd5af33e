"""Train the runs a plan is missing: in-process on one device, or one worker process per device.

Work comes as *tasks* (``harness.execute.tasks``): each claims its block of seeds and trains only
what is still missing, so a killed session loses only the tasks in flight.
"""
from __future__ import annotations

import dataclasses
import multiprocessing as mp
import os
import signal
import sys
import time
import traceback
from collections import deque
from dataclasses import dataclass, field
from multiprocessing.connection import Connection, wait
from typing import Any, Callable, Iterable

from harness.execute.tasks import Outcome, Task, claim, fail_on_data
from harness.store.index import Store, StoreError
from harness.trainers import DataUnavailable, TrainContext, get_trainer
from harness.trainers.output import YieldCheck

def run_task(store: Store, task: Task, ctx: TrainContext, on_run: Callable[[str, int, str], None], blocking: bool = True) -> bool:
    """Train what is still missing of one task under its lock. Returns False if the lock was busy."""
    recipe = task.recipe()
    trainer = get_trainer(recipe)
    held = claim(store, task, blocking)
    if held is None:
        return False
    try:
        if held.todo:
            check = YieldCheck(recipe.trainer, tuple(held.todo))
            for result in trainer.train(recipe, held.todo, ctx):
                store.put(task.key, check.run(result), ctx.device)
                on_run(task.key, result.seed, result.status)
            check.done()
    finally:
        held.release()
    return True


# ------------------------------------------------------------------ in-process --

def usable_cores() -> int:
    """CPU cores this process may run on (its affinity mask, not the machine's count)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # no affinity API (macOS)
        return max(1, os.cpu_count() or 1)


def _one_thread_on_cpu(device: str):
    """CPU workers train with one intra-op thread each, in-process or in the pool, so a seed is
    the same run (bitwise) whichever worker trains it and however many there are."""
    from harness.trainers.base import cpu_threads

    return cpu_threads(device)


def train_in_process(store: Store, tasks: Iterable[Task], ctx: TrainContext, on_run: Callable[[str, int, str], None]) -> Outcome:
    """One device, no worker processes: the path for single-GPU sessions and ``--workers 1``."""
    with _one_thread_on_cpu(ctx.device):
        return _train_queue(store, tasks, ctx, on_run)


def _train_queue(store: Store, tasks: Iterable[Task], ctx: TrainContext, on_run: Callable[[str, int, str], None]) -> Outcome:
    out = Outcome()
    queue = deque(tasks)
    busy_streak = 0

    def counted(key: str, seed: int, status: str) -> None:
        out.trained += 1
        on_run(key, seed, status)
    while queue:
        task = queue.popleft()
        # Skip past blocks another session holds; wait only when every block left is held.
        blocking = busy_streak >= len(queue) + 1
        try:
            done = run_task(store, task, ctx, counted, blocking=blocking)
        except KeyboardInterrupt:
            out.interrupted = True
            return out
        except StoreError as e:
            if e.deterministic:  # disk full, read-only, damaged index: a retry meets the same error
                out.failed.append((task.key, task.seeds, str(e)))
                continue
            out.retry(task, queue, str(e))
            continue
        except DataUnavailable as e:
            fail_on_data(task, queue, out, str(e))
            continue
        except Exception:
            out.retry(task, queue, traceback.format_exc(limit=4))
            continue
        if done:
            busy_streak = 0
        else:
            busy_streak += 1
            queue.append(task)
    return out


# ------------------------------------------------------------------------ pool --

def _die_with_parent() -> None:
    """A killed session must not leave workers training on (Linux: PR_SET_PDEATHSIG)."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # 1 = PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass  # not Linux: the worker stops at its next message instead


def _worker_main(conn: Connection, store_root: str, device: str, physical: str | None, ctx: TrainContext) -> None:
    _die_with_parent()
    # Pin before anything touches CUDA, so this process only ever sees its device.
    if physical is not None:
        os.environ["CUDA_VISIBLE_DEVICES"] = physical
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides when we stop
    store = Store(store_root)
    ctx = dataclasses.replace(ctx, device=device)
    if device.startswith("cpu"):
        import torch

        from harness.trainers.base import cpu_thread_count

        torch.set_num_threads(cpu_thread_count())  # K workers share the cores; see _one_thread_on_cpu
    conn.send(("ready", None))
    while True:
        msg = conn.recv()
        if msg is None:
            return
        task: Task = msg
        try:
            run_task(store, task, ctx, lambda k, s, st: conn.send(("run", (k, s, st))))
            conn.send(("done", None))
        except StoreError as e:
            conn.send(("fatal" if e.deterministic else "error", str(e)))
        except DataUnavailable as e:
            conn.send(("data", str(e)))
        except Exception:
            conn.send(("error", traceback.format_exc(limit=6)))


@dataclass
class WorkerSpec:
    """One worker: the device string it trains on, and the physical CUDA id to pin (None on CPU)."""

    device: str
    physical: str | None = None


def train_pool(
    store: Store,
    tasks: Iterable[Task],
    workers: list[WorkerSpec],
    ctx: TrainContext,
    on_run: Callable[[str, int, str], None],
    start_method: str = "spawn",
) -> Outcome:
    """One process per worker spec, fed one task at a time; a dead worker's task is retried.

    GPUs get one worker each; the CPU gets ``--workers K`` specs of device ``cpu``.
    """
    pool = _Pool(mp.get_context(start_method), store, ctx, on_run, deque(tasks))
    for spec in workers:
        pool.start(spec)
    try:
        pool.run()
    except KeyboardInterrupt:
        pool.out.interrupted = True
    finally:
        pool.shutdown()
    return pool.out


@dataclass
class _Pool:
    """The pool's live workers (id -> process, pipe, spec, task in hand) and what is left to do."""

    mpctx: Any
    store: Store
    ctx: TrainContext
    on_run: Callable[[str, int, str], None]
    queue: deque
    out: Outcome = field(default_factory=Outcome)
    live: dict = field(default_factory=dict)
    next_id: int = 0

    def start(self, spec: WorkerSpec) -> None:
        parent, child = self.mpctx.Pipe()
        p = self.mpctx.Process(
            target=_worker_main,
            args=(child, str(self.store.root), spec.device, spec.physical, self.ctx),
            daemon=True,
        )
        p.start()
        child.close()
        self.live[self.next_id] = (p, parent, spec, None)
        self.next_id += 1

    def run(self) -> None:
        while self.live and (self.queue or any(t is not None for (_, _, _, t) in self.live.values())):
            conns = {c: wid for wid, (_, c, _, _) in self.live.items()}
            sentinels = {p.sentinel: wid for wid, (p, _, _, _) in self.live.items()}
            for ready in wait(list(conns) + list(sentinels)):
                if ready in conns:
                    self._message(conns[ready])
                else:
                    self._death(sentinels[ready])
        # Every worker died (e.g. before taking a task): what is left was not trained, and must say so.
        self.out.failed += [(t.key, t.seeds, "every worker process died before training it") for t in self.queue]
        self.queue.clear()

    def _message(self, wid: int) -> None:
        if wid not in self.live:
            return
        p, c, spec, task = self.live[wid]
        try:
            kind, payload = c.recv()
        except (EOFError, OSError):
            return  # the sentinel branch handles the death
        if kind == "run":
            self.out.trained += 1
            self.on_run(*payload)
            return
        if kind == "error" and task is not None:
            self.out.retry(task, self.queue, payload)
        elif kind == "fatal" and task is not None:
            self.out.failed.append((task.key, task.seeds, payload))
        elif kind == "data" and task is not None:
            fail_on_data(task, self.queue, self.out, payload)
        task = self.queue.popleft() if self.queue else None
        self.live[wid] = (p, c, spec, task)
        if task is not None:
            c.send(task)

    def _death(self, wid: int) -> None:
        if wid not in self.live:
            return
        p, c, spec, task = self.live.pop(wid)
        p.join()
        c.close()
        if task is not None:
            self.out.retry(task, self.queue, f"worker on {spec.device} died (exit code {p.exitcode})")
            if self.queue:
                self.start(spec)

    def shutdown(self) -> None:
        for p, c, _, _ in self.live.values():
            try:
                c.send(None)
            except (OSError, BrokenPipeError):
                pass
        deadline = time.time() + (0 if self.out.interrupted else 10)
        for p, _, _, _ in self.live.values():
            p.join(max(0.0, deadline - time.time()))
            if p.is_alive():
                p.terminate()
                p.join(5)


def visible_cuda_devices() -> list[str]:
    """Physical ids this process may use, honouring an existing CUDA_VISIBLE_DEVICES."""
    env = os.environ.get("CUDA_VISIBLE_DEVICES")
    try:
        import torch

        count = torch.cuda.device_count()
    except Exception:
        count = 0
    if env is not None and env.strip() != "":
        ids = [d.strip() for d in env.split(",") if d.strip()]
        return ids[:count] if count else []
    return [str(i) for i in range(count)]


def progress(total: int, desc: str = "training"):
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit="run", file=sys.stderr, dynamic_ncols=True, mininterval=0.5)
