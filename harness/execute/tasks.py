"""What both executors share: tasks (aligned blocks of seeds), claiming a block, retry bookkeeping.

A task is the missing seeds of one recipe that fall in one aligned block of ``chunk_size``
seeds. Whoever trains it first *claims* the block: takes the lock named after the block,
re-reads the store and keeps only what is still missing, so two sessions on one store never
train a run twice. A task that fails is queued again at most ``MAX_RETRIES`` times.
"""
from __future__ import annotations

import json
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Iterable

from harness.execute.plan import Plan
from harness.identity import run_salt
from harness.recipe import Recipe
from harness.store.index import Store
from harness.trainers import get_trainer

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

    def retry(self, task: Task, queue: deque[Task], why: str, max_retries: int = MAX_RETRIES,
              seeds: tuple[int, ...] | None = None) -> None:
        """Queue ``task`` again, or record it (``seeds``, default all of its seeds) as failed once its retries are spent."""
        task.attempts += 1
        if task.attempts > max_retries:
            self.failed.append((task.key, task.seeds if seeds is None else seeds, why))
        else:
            queue.append(task)


def fail_on_data(task: Task, queue: deque[Task], out: Outcome, why: str) -> None:
    """Damaged or absent data fails its task and every queued task of the same data set once, untrained:
    each would meet the same error (one line, no traceback, no retry)."""
    dataset = task.recipe().dataset
    same = [t for t in queue if t.recipe().dataset == dataset]
    out.failed += [(t.key, t.seeds, why) for t in (task, *same)]
    kept = [t for t in queue if t not in same]
    queue.clear()
    queue.extend(kept)


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




@dataclass
class Claim:
    """A held block: its lock (released by ``release``) and its seeds still missing from the store."""

    lock: Any
    todo: list[int]

    def release(self) -> None:
        self.lock.__exit__(None, None, None)


def claim(store: Store, task: Task, blocking: bool = True) -> Claim | None:
    """Take the task's block and what is still missing of it; None when another session holds the block."""
    lock = store.lock(task.lock_name, blocking=blocking)
    if not lock.__enter__():
        lock.__exit__(None, None, None)
        return None
    todo = store.missing(task.key, task.seeds, verify=False)
    store.clean_tmp(task.key, todo)  # a killed writer's leftovers; we hold the block, so none is live
    if todo:
        recipe = task.recipe()
        store.register(task.key, recipe, run_salt(recipe))
    return Claim(lock, todo)
