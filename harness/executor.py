"""Train the runs a plan is missing: in-process on one device, or one worker process per device.

Work is split into *tasks*: the missing seeds of one recipe that fall in one
aligned block of ``chunk_size`` seeds. Each task takes a lock named after its
block, re-reads the store, and trains only what is still missing, so two
sessions on one store never train a run twice, and a killed session loses only
the tasks in flight.
"""
from __future__ import annotations

import dataclasses
import json
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

from harness.plan import Plan
from harness.recipe import Recipe
from harness.store import Store, StoreError
from harness.trainers import DataUnavailable, TrainContext, get_trainer, run_salt
from harness.trainers.output import YieldCheck

#: a task whose worker died or raised is tried this many more times, then recorded as failed
MAX_RETRIES = 2


@dataclass
class Task:
    key: str
    recipe_json: str
    seeds: tuple[int, ...]
    #: index of the aligned block of ``chunk_size`` seeds these seeds fall in
    block: int
    attempts: int = 0

    @property
    def lock_name(self) -> str:
        # Named after the block, not its first missing seed: two sessions missing
        # different seeds of one block must still take the same lock.
        return f"{self.key}.b{self.block}"

    def recipe(self) -> Recipe:
        return Recipe.from_dict(json.loads(self.recipe_json))


def split_blocks(key: str, recipe_json: str, seeds: Iterable[int], size: int) -> list[Task]:
    """One task per aligned block of ``size`` seeds that has any of ``seeds``."""
    blocks: dict[int, list[int]] = {}
    for s in sorted(seeds):
        blocks.setdefault(s // size, []).append(s)
    return [Task(key, recipe_json, tuple(b), block) for block, b in sorted(blocks.items())]


@dataclass
class Outcome:
    trained: int = 0
    failed: list[tuple[str, tuple[int, ...], str]] = field(default_factory=list)
    interrupted: bool = False

    def failure_lines(self) -> list[str]:
        """One line per distinct cause (a full disk fails every task the same way), then its traceback if any."""
        by_why: dict[str, list[tuple[str, tuple[int, ...]]]] = {}
        for key, seeds, why in self.failed:
            by_why.setdefault(why, []).append((key, seeds))
        lines = []
        for why, tasks in by_why.items():
            runs = sum(len(seeds) for _, seeds in tasks)
            first, *rest = why.strip().splitlines() or [""]
            where = f"{tasks[0][0][:12]} seeds {tasks[0][1][0]}..{tasks[0][1][-1]}" + (
                f" and {len(tasks) - 1} more task(s)" if len(tasks) > 1 else "")
            lines.append(f"lrlaws: training failed for {runs} run(s) ({where}): {rest[-1] if rest else first}")
            if rest:
                lines.append("\n".join([first, *rest]))
        return lines


def make_tasks(plan: Plan, device: str) -> list[Task]:
    """The plan's missing runs as aligned blocks, the longest (estimated) first.

    Longest-first keeps a pool from ending on one slow block while the other workers
    idle; which worker trains a block never changes its runs.
    """
    timed: list[tuple[float, Task]] = []
    for need in plan.needs:
        if need.missing:
            size = max(1, get_trainer(need.recipe).chunk_size(need.recipe, device))
            for t in split_blocks(need.key, json.dumps(need.recipe.to_dict(), sort_keys=True), need.missing, size):
                timed.append((len(t.seeds) * need.est_seconds_per_run, t))
    timed.sort(key=lambda x: -x[0])  # stable: equal estimates keep the plan's order
    return [t for _, t in timed]


def run_task(store: Store, task: Task, ctx: TrainContext, on_run: Callable[[str, int, str], None], blocking: bool = True) -> bool:
    """Train what is still missing of one task under its lock. Returns False if the lock was busy."""
    recipe = task.recipe()
    trainer = get_trainer(recipe)
    with store.lock(task.lock_name, blocking=blocking) as held:
        if not held:
            return False
        todo = store.missing(task.key, task.seeds, verify=False)
        store.clean_tmp(task.key, todo)  # a killed writer's leftovers; we hold the block, so none is live
        if todo:
            store.register(task.key, recipe, run_salt(recipe))
            check = YieldCheck(recipe.trainer, tuple(todo))
            for result in trainer.train(recipe, todo, ctx):
                store.put(task.key, check.run(result), ctx.device)
                on_run(task.key, result.seed, result.status)
            check.done()
    return True


# ------------------------------------------------------------------ in-process --

def _retry(task: Task, queue: deque[Task], out: Outcome, why: str) -> None:
    task.attempts += 1
    if task.attempts > MAX_RETRIES:
        out.failed.append((task.key, task.seeds, why))
    else:
        queue.append(task)


def _fail_on_data(task: Task, queue: deque[Task], out: Outcome, why: str) -> None:
    """Damaged or absent data fails its task and every queued task of the same data set once, untrained:
    each would meet the same error (one line, no traceback, no retry)."""
    dataset = task.recipe().dataset
    same = [t for t in queue if t.recipe().dataset == dataset]
    out.failed += [(t.key, t.seeds, why) for t in (task, *same)]
    kept = [t for t in queue if t not in same]
    queue.clear()
    queue.extend(kept)


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

    return cpu_threads(device, 1)


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
            _retry(task, queue, out, str(e))
            continue
        except DataUnavailable as e:
            _fail_on_data(task, queue, out, str(e))
            continue
        except Exception:
            _retry(task, queue, out, traceback.format_exc(limit=4))
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

        torch.set_num_threads(1)  # K workers share the cores; see _one_thread_on_cpu
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
            _retry(task, self.queue, self.out, payload)
        elif kind == "fatal" and task is not None:
            self.out.failed.append((task.key, task.seeds, payload))
        elif kind == "data" and task is not None:
            _fail_on_data(task, self.queue, self.out, payload)
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
            _retry(task, self.queue, self.out, f"worker on {spec.device} died (exit code {p.exitcode})")
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
