"""``Training``: a round's missing runs trained by the executor the options ask for, behind a progress bar,
and what the session trained and lost over all its rounds."""
from __future__ import annotations

import contextlib
import time
from typing import TYPE_CHECKING, Any, Callable

import pytest

from harness.plugin.progress import Divergence, bar_title

if TYPE_CHECKING:
    from harness.execute.plan import Plan
    from harness.execute.tasks import Outcome
    from harness.plugin.planning import Planned
    from harness.store.index import Store


class Training:
    """Trains each round's plan; counts the runs trained, the time it took and the tasks that failed."""

    def __init__(self, planned: "Planned", config: pytest.Config) -> None:
        self.planned = planned
        self.config = config
        self.seconds = 0.0  # training time over all rounds
        self.trained = 0
        self.failed_tasks = 0  # training tasks that failed over all rounds: they fail the session

    def train(self, plan: "Plan") -> None:
        """Train ``plan``'s missing runs; Ctrl-C stops the session once what was trained is stored."""
        # torch: a session whose runs are all stored never imports it
        from harness.execute.local import progress
        from harness.execute.tasks import make_tasks
        from harness.trainers import TrainContext

        o, planned = self.planned.options, self.planned
        tasks = make_tasks(plan, o.device)
        capman = self.config.pluginmanager.get_plugin("capturemanager")
        ctx = TrainContext(device="cuda:0" if o.gpus else "cpu", data_dir=o.data_dir, download=not o.offline,
                           compile=o.compile)
        t0 = time.perf_counter()
        with (capman.global_and_fixture_disabled() if capman else contextlib.nullcontext()):
            bar = progress(plan.runs_missing, desc=bar_title(planned.points, planned.needs, str(o.tier)))
            diverged = Divergence(planned.needs)

            def on_run(key: str, seed: int, status: str) -> None:
                bar.update(1)
                if status != "ok":
                    diverged.add(key)
                    bar.set_postfix_str(f"diverged: {diverged.postfix()}", refresh=False)

            try:
                outcome = self._execute(tasks, ctx, on_run)
            finally:
                bar.close()
        self.seconds += time.perf_counter() - t0
        outcome.failed = still_missing(planned.store, outcome.failed)
        self.trained += outcome.trained
        self.failed_tasks += len(outcome.failed)
        if outcome.interrupted:
            raise KeyboardInterrupt
        tr = self.config.pluginmanager.get_plugin("terminalreporter")
        if tr is not None and outcome.failed:
            tr.write_line(f"lrlaws: {len(outcome.failed)} training tasks failed", red=True)
            for line in outcome.failure_lines():
                tr.write_line(line, red=True)

    def _execute(self, tasks: list[Any], ctx: Any, on_run: Callable[[str, int, str], None]) -> "Outcome":
        """Hand the tasks to the executor the session asked for."""
        from harness.execute.local import train_in_process, train_pool

        o, store = self.planned.options, self.planned.store
        if o.executor == "ray":
            from harness.execute.ray import train_ray

            return train_ray(store, tasks, ctx, on_run, address=o.ray_address)
        workers = o.workers()
        if len(workers) == 1:
            return train_in_process(store, tasks, ctx, on_run)
        return train_pool(store, tasks, workers, ctx, on_run)


def still_missing(store: "Store", failed: list) -> list:
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
