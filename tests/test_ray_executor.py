"""The Ray executor on a local 2-CPU Ray cluster started here: same runs as local, retries, Ctrl-C, the plugin."""
from __future__ import annotations

import importlib.util
import json
import os
import signal
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from harness import Ensemble, Recipe
from harness.execute.local import train_in_process
from harness.execute.tasks import MAX_RETRIES, make_tasks
from harness.execute.plan import make_plan
from harness.store.index import Store
from harness.identity import recipe_key
from harness.trainers import TrainContext

from conftest import loopback_ray_cluster

# Keep every Ray process of these tests on loopback: Ray binds its node IP (eth0 here)
# unless clusters are "disabled", as it does on macOS/Windows. Read once, when ray is imported.
os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
ray = pytest.importorskip("ray", reason="the ray extra is not installed: pip install -e '.[dev,ray]'")
from harness.execute.ray import ray_missing, rechunk, train_ray  # noqa: E402

BASE = Recipe(trainer="mlp", dataset="teacher", model="mlp", lr=0.3, batch_size=16, steps=40, probes=("logits",),
              options={"n_train": 256, "n_test": 32})


@pytest.fixture(scope="module")
def cluster():
    # loopback only: the test cluster must not listen on (or talk to) any other address
    with loopback_ray_cluster() as c:
        yield c


def _train(store: Store, ensembles: list[Ensemble], executor, **kw):
    seen: list[tuple[str, int, str]] = []
    on_run = kw.pop("on_run", None) or (lambda k, s, st: seen.append((k, s, st)))
    tasks = make_tasks(make_plan(ensembles, store, "cpu"), "cpu")
    return executor(store, tasks, TrainContext("cpu"), on_run, **kw), seen


def _same_runs(a: Store, b: Store, ensembles: list[Ensemble]) -> None:
    for e in ensembles:
        key = recipe_key(e.recipe)
        for s in e.seeds:
            (ra, xa), (rb, xb) = a.load(key, s), b.load(key, s)
            assert ra.status == rb.status and ra.metrics == rb.metrics
            assert xa.keys() == xb.keys()
            for name in xa:
                np.testing.assert_array_equal(xa[name], xb[name], err_msg=f"{key[:8]} seed {s} {name}")


def test_ray_stores_the_same_runs_as_the_local_executor(cluster, tmp_path):
    ensembles = [Ensemble(BASE.replace(lr=lr), 6) for lr in (0.2, 0.3, 0.45)]
    local, ray_store = Store(tmp_path / "local"), Store(tmp_path / "ray")
    out_l, _ = _train(local, ensembles, train_in_process)
    out_r, seen = _train(ray_store, ensembles, train_ray, address=cluster.address)
    assert out_l.trained == out_r.trained == 18 and not out_r.failed and not out_r.interrupted
    assert sorted((k, s) for k, s, _ in seen) == sorted((recipe_key(e.recipe), s) for e in ensembles for s in e.seeds)
    _same_runs(local, ray_store, ensembles)
    assert ray_store.records(recipe_key(ensembles[0].recipe))[0].device.startswith("ray:")
    # nothing left to do: a second session submits nothing
    out, seen = _train(ray_store, ensembles, train_ray, address=cluster.address)
    assert out.trained == 0 and seen == []


def test_rechunk_uses_the_cluster_device_block_size():
    r = BASE.replace(lr=0.2)
    tasks = rechunk([*make_tasks(make_plan([Ensemble(r, 300)], _EmptyStore(), "cpu"), "cpu")], "cuda:0")
    assert [len(t.seeds) for t in tasks] == [300]  # mlp trains 1024 seeds at once on a GPU, 64 on a CPU
    assert [len(t.seeds) for t in rechunk(tasks, "cpu")] == [64, 64, 64, 64, 44]


class _EmptyStore:
    def missing(self, key, seeds, verify=True):
        return list(seeds)

    def median_seconds(self, key):
        return None


def _ancestors(pid: int) -> set[int]:
    out = set()
    while pid > 1:
        try:
            pid = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            break
        out.add(pid)
    return out


def _busy_workers(cluster) -> list[int]:
    """Pids of this cluster's worker processes that are executing a train_block task now."""
    raylet = cluster.head_node.all_processes["raylet"][0].process.pid
    pids = []
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                cmd = (d / "cmdline").read_bytes()
            except OSError:
                continue
            if cmd.startswith(b"ray::train_block") and raylet in _ancestors(int(d.name)):
                pids.append(int(d.name))
    return pids


def test_a_killed_worker_loses_no_finished_run_and_trains_none_twice(cluster, tmp_path):
    fast = Ensemble(BASE.replace(lr=0.2, steps=20), 4)
    slow = Ensemble(BASE.replace(lr=0.25, steps=8000), 4)
    fk, sk = recipe_key(fast.recipe), recipe_key(slow.recipe)
    store = Store(tmp_path / "s")
    seen: list[tuple[str, int]] = []
    killed: list[int] = []

    def on_run(key: str, seed: int, status: str) -> None:
        seen.append((key, seed))
        if key == fk and not killed:
            assert (sk, 0) not in [(k, s) for k, s in seen], "the slow task finished first; make it slower"
            # wait for the fast task's worker to go idle, then kill the one still training
            deadline = time.time() + 60
            while len(busy := _busy_workers(cluster)) != 1 and time.time() < deadline:
                time.sleep(0.05)
            assert len(busy) == 1, f"expected one busy worker, found {busy}"
            os.kill(busy[0], signal.SIGKILL)
            killed.append(busy[0])

    out, _ = _train(store, [fast, slow], train_ray, address=cluster.address, on_run=on_run)
    assert killed, "no worker was killed"
    assert not out.failed and not out.interrupted and out.trained == 8
    assert sorted(seen) == sorted([(fk, s) for s in range(4)] + [(sk, s) for s in range(4)])  # each once
    assert store.missing(fk, range(4)) == [] and store.missing(sk, range(4)) == []
    assert killed[0] not in _busy_workers(cluster)


def test_a_task_that_always_fails_is_retried_then_recorded(cluster, tmp_path):
    bad = Ensemble(BASE.replace(lr=0.2, steps=3, options={"logits_dtype": "no-such-dtype"}), 2)
    good = Ensemble(BASE.replace(lr=0.2, steps=3), 2)
    store = Store(tmp_path / "s")
    out, seen = _train(store, [bad, good], train_ray, address=cluster.address, max_retries=1)
    assert out.trained == 2 and {k for k, _, _ in seen} == {recipe_key(good.recipe)}
    ((key, seeds, why),) = out.failed
    assert key == recipe_key(bad.recipe) and seeds == (0, 1) and "no-such-dtype" in why
    assert store.missing(key, range(2)) == [0, 1]
    assert MAX_RETRIES >= 1  # the default bound the plugin uses


def test_ctrl_c_keeps_finished_runs_and_a_rerun_trains_only_the_rest(cluster, tmp_path):
    fast = Ensemble(BASE.replace(lr=0.2, steps=20), 4)
    slow = Ensemble(BASE.replace(lr=0.25, steps=40000), 4)  # ≳ 20 s: longer than the 10 s allowed to cancel it
    store = Store(tmp_path / "s")
    first: list[tuple[str, int]] = []

    def interrupt(key: str, seed: int, status: str) -> None:
        first.append((key, seed))
        raise KeyboardInterrupt

    # stay connected, as a long-lived driver would: the slow task must be cancelled by the
    # executor itself, not by Ray cleaning up after a driver that went away
    ray.init(address=cluster.address, log_to_driver=False)
    try:
        out, _ = _train(store, [fast, slow], train_ray, address=cluster.address, on_run=interrupt)
        assert out.interrupted and out.trained >= 1
        deadline = time.time() + 10
        while _busy_workers(cluster) and time.time() < deadline:
            time.sleep(0.2)
        assert not _busy_workers(cluster), "an interrupted session left its tasks running"
        have = {(k, s) for e in (fast, slow) for k in [recipe_key(e.recipe)] for s in e.seeds if not store.missing(k, [s])}
        assert set(first) <= have and len(have) < 8
        out, seen = _train(store, [fast, slow], train_ray, address=cluster.address)
        assert not out.interrupted and not out.failed
        assert {(k, s) for k, s, _ in seen} == {(recipe_key(e.recipe), s) for e in (fast, slow) for s in e.seeds} - have
    finally:
        ray.shutdown()


# ------------------------------------------------------------- through pytest --

LAW = textwrap.dedent("""
    import numpy as np
    import pytest
    from harness import Ensemble, Recipe
    from harness.law import lrlaw
    from harness.stats import LawResult, decide, mean_ci

    BASE = Recipe(trainer="mlp", dataset="teacher", model="mlp", lr=0.3, batch_size=16, steps=30,
                  probes=("logits",), options={"n_train": 256, "n_test": 32})

    @lrlaw("toy", tiers={t: t for t in ("smoke", "gpu", "paper")}, reads=lambda tier, lr: {"runs": Ensemble(BASE.replace(lr=lr), 5)})
    @pytest.mark.parametrize("lr", [0.1, 0.3], ids=lambda lr: f"toy-lr{lr}")
    def test_toy(law, lr):
        acc = law.runs("runs").metric("test_acc")
        m, ci = mean_ci(acc)
        law.check(LawResult("mean_acc", m, ci, 0.1, ">", decide(ci, 0.1, ">"), n=len(acc)))
""")


def test_plugin_ray_executor_matches_local(cluster, pytester):
    pytester.makeini("[pytest]\n")
    pytester.makepyfile(test_toy_law=LAW)

    def run(name: str, *args: str):
        # a fresh process: in-process runs share (and restore) sys.modules, and numpy's C modules
        # first imported inside such a run cannot be imported again by the next one
        r = pytester.runpytest_subprocess("-p", "no:cacheprovider", f"--store={pytester.path / name}",
                                          f"--report-dir={pytester.path / ('results-' + name)}", "--compare-to=none",
                                          *args, timeout=300)
        (report,) = [json.loads(p.read_text()) for p in (pytester.path / f"results-{name}").glob("*/report.json")]
        return r, {e["nodeid"]: (e["decision"], [x["value"] for x in e["results"]]) for e in report["entries"]}

    r_local, local = run("local")
    r_ray, on_ray = run("ray", "--executor=ray", f"--ray-address={cluster.address}")
    assert r_local.ret == r_ray.ret and local == on_ray and len(local) == 2
    r_ray.stdout.fnmatch_lines(["*lrlaws: trained 10 runs*"])
    from harness.law import lrlaw  # noqa: F401  (the law module's recipes, rebuilt here)
    base = Recipe(trainer="mlp", dataset="teacher", model="mlp", lr=0.3, batch_size=16, steps=30,
                  probes=("logits",), options={"n_train": 256, "n_test": 32})
    ensembles = [Ensemble(base.replace(lr=lr), 5) for lr in (0.1, 0.3)]
    _same_runs(Store(pytester.path / "local"), Store(pytester.path / "ray"), ensembles)


def test_executor_ray_without_ray_is_a_one_line_usage_error(pytester, monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "ray" else real(name, *a))
    assert ray_missing() == "--executor ray needs Ray, which is not installed: pip install 'lrlaws[ray]'"
    pytester.makepyfile(test_x="def test_x():\n    pass\n")
    r = pytester.runpytest("--executor=ray")
    assert r.ret == pytest.ExitCode.USAGE_ERROR
    assert [line for line in r.stderr.lines if line.strip()] == [
        "ERROR: --executor ray needs Ray, which is not installed: pip install 'lrlaws[ray]'"]
    r = pytester.runpytest("--executor=dask")
    assert r.ret == pytest.ExitCode.USAGE_ERROR
    r.stderr.fnmatch_lines(["ERROR: --executor must be local or ray; got 'dask'"])


SLOW_LAW = textwrap.dedent("""
    from harness import Ensemble, Recipe
    from harness.law import lrlaw

    BASE = Recipe(trainer="mlp", dataset="teacher", model="mlp", lr=0.3, batch_size=16, steps=30,
                  probes=("logits",), options={"n_train": 256, "n_test": 32})

    @lrlaw("toy", tiers={t: t for t in ("smoke", "gpu", "paper")}, reads=lambda tier: {"fast": Ensemble(BASE, 4), "slow": Ensemble(BASE.replace(steps=200000), 4)})
    def test_toy(law):
        pass
""")


def test_sigint_cancels_the_ray_tasks_and_keeps_finished_runs(cluster, pytester):
    """A real Ctrl-C (SIGINT to the pytest process) while one task is still training on the cluster."""
    import sqlite3
    import subprocess
    import sys

    pytester.makeini("[pytest]\n")
    pytester.makepyfile(test_slow_law=SLOW_LAW)
    db = pytester.path / "store" / "index.sqlite"

    def stored() -> int:
        return sqlite3.connect(db).execute("SELECT COUNT(*) FROM runs").fetchone()[0] if db.exists() else 0

    p = subprocess.Popen([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "--store=store", "--report-dir=results",
                          "--compare-to=none", "--executor=ray", f"--ray-address={cluster.address}"],
                         cwd=pytester.path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.time() + 180
        while stored() < 4 and time.time() < deadline and p.poll() is None:
            time.sleep(0.2)
        assert stored() == 4, "the fast runs never arrived"
        # the slow block may still be starting on a worker when the fast runs land
        while not _busy_workers(cluster) and time.time() < deadline:
            time.sleep(0.2)
        assert _busy_workers(cluster), "the slow task is not running"
        p.send_signal(signal.SIGINT)
        out, _ = p.communicate(timeout=60)
    finally:
        if p.poll() is None:
            p.kill()
    assert p.returncode == pytest.ExitCode.INTERRUPTED, out
    assert stored() == 4  # the fast runs are kept, the slow ones never finished
    deadline = time.time() + 30
    while _busy_workers(cluster) and time.time() < deadline:  # the slow task is cancelled, not left running
        time.sleep(0.2)
    assert not _busy_workers(cluster)
