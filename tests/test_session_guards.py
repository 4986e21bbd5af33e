"""A session trains nothing it should not: not after a collection error, not for --collect-only, not with
more workers than cores; and what it says about failures counts what was lost."""
from __future__ import annotations

import os
import stat
import textwrap

import numpy as np

from harness.execute.local import usable_cores
from harness.plugin.training import still_missing
from harness.store.index import Store
from harness.trainers.base import RunResult

from conftest import fake_recipe
from test_bad_inputs import one_line_error, session


def test_a_collection_error_trains_nothing(pytester):
    pytester.makepyfile(test_broken="def test_x(:\n    pass\n")
    res = session(pytester, "--store", "st", "--report-dir", "rep")
    out = res.stdout.str()
    assert res.ret == 2 and "error" in out.lower(), out[-2000:]
    assert not (pytester.path / "train_calls.txt").exists()  # the fake trainer was never called


def test_collect_only_creates_no_store_and_reads_a_read_only_one(pytester):
    res = session(pytester, "--store", "st", "--collect-only")
    assert res.ret == 0 and not (pytester.path / "st").exists(), res.stdout.str()[-2000:]
    session(pytester, "--store", "st").assert_outcomes(passed=1)
    st = pytester.path / "st"
    modes = {p: p.stat().st_mode for p in [st, *st.rglob("*")]}
    try:
        for p in modes:
            p.chmod(p.stat().st_mode & ~(stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH))
        res = session(pytester, "--store", "st", "--collect-only")
        assert res.ret == 0 and "test_fk" in res.stdout.str(), res.stdout.str()[-2000:]
    finally:
        for p, m in modes.items():
            p.chmod(m)


def test_more_workers_than_cores_is_one_line(pytester):
    n = usable_cores() + 1
    one_line_error(session(pytester, "--store", "st", "--gpus", "0", f"--workers={n}"), f"--workers {n}",
                   f"{n - 1} CPU core(s)")
    assert not (pytester.path / "st").exists()


def test_a_failed_task_counts_only_the_runs_it_did_not_store(tmp_path):
    store = Store(tmp_path / "st")
    recipe = fake_recipe(lr=0.1)
    key = recipe.key("fake-v1")
    store.register(key, recipe, "fake-v1")
    for s in range(5):
        store.put(key, RunResult(s, {"out": np.zeros(2)}), "cpu")
    assert still_missing(store, [(key, tuple(range(8)), "boom")]) == [(key, (5, 6, 7), "boom")]


MALFORMED_EARLIER = [
    [1, 2],
    {"tier": "smoke", "started": 1.0, "entries": [{"nodeid": "a", "runs_used": "many"}]},
    {"tier": "smoke", "started": "yesterday", "entries": [{"nodeid": "a", "runs_used": 4}]},
    {"tier": "smoke", "entries": "none"},
]


def test_plan_skips_each_malformed_earlier_report_with_one_line(pytester):
    import json

    for i, bad in enumerate(MALFORMED_EARLIER):
        (pytester.path / "rep" / f"bad{i}").mkdir(parents=True)
        (pytester.path / "rep" / f"bad{i}" / "report.json").write_text(json.dumps(bad))
    res = session(pytester, "--store", "st", "--report-dir", "rep", "--plan")
    out = res.stdout.str() + res.stderr.str()
    assert res.ret == 0 and "INTERNALERROR" not in out and "Traceback" not in out, out[-3000:]
    skipped = [line for line in out.splitlines() if "skipped the malformed report" in line]
    assert len(skipped) == len(MALFORMED_EARLIER), out[-3000:]


def _cli(*args: str, cwd=None):
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    return subprocess.run([sys.executable, "-m", "harness", *args], capture_output=True, text=True, timeout=300,
                          cwd=cwd or root, env={**os.environ, "PYTHONPATH": str(root)})


def test_confirm_refuses_a_malformed_report_with_one_line(tmp_path):
    import json

    (tmp_path / "a.json").write_text(json.dumps({"seed_base": 0, "entries": [{"nodeid": "x", "results": [{"kind": "claim"}]}]}))
    (tmp_path / "b.json").write_text(json.dumps({"seed_base": 5, "entries": [{"nodeid": "x", "results": "no"}]}))
    r = _cli("confirm", str(tmp_path / "a.json"), str(tmp_path / "b.json"))
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1 and "malformed" in r.stderr, r.stderr


def test_bench_acceptance_checks_device_and_json_before_running(tmp_path):
    (tmp_path / "adir").mkdir()
    for args, needle in [(("--device", "tpu:0"), "--device"), (("--device", "cuda:7"), "--device cuda:7"),
                         (("--device", "cpu", "--json", str(tmp_path / "adir")), "is a directory"),
                         (("--device", "cpu", "--json", "/proc/x/acc.json"), "--json")]:
        r = _cli("bench", "--acceptance", "--tiny", *args, cwd=tmp_path)
        assert r.returncode != 0 and len(r.stderr.strip().splitlines()) == 1 and needle in r.stderr, (args, r.stderr)
        assert "s/run" not in r.stdout  # nothing was run


def _listener(host: str, reply: bytes | None = None):
    """A TCP port that accepts connections and answers ``reply`` (or nothing): not a Ray head."""
    import socket
    import threading

    s = socket.socket()
    s.bind((host, 0))
    s.listen(8)
    conns = []

    def serve() -> None:
        while True:
            try:
                c, _ = s.accept()
            except OSError:
                return
            conns.append(c)
            if reply:
                c.sendall(reply)
    threading.Thread(target=serve, daemon=True).start()
    return s


def test_a_ray_address_that_is_not_ray_is_one_line_within_seconds(pytester):
    import time

    for reply in (None, b"HTTP/1.1 400 Bad Request\r\n\r\n"):
        s = _listener("127.0.0.1", reply)
        try:
            t0 = time.monotonic()
            port = s.getsockname()[1]
            one_line_error(session(pytester, "--store", "st", "--executor", "ray", f"--ray-address=127.0.0.1:{port}"),
                           f"127.0.0.1:{port}", "no answer" if reply is None else "not as Ray")
            assert time.monotonic() - t0 < 60  # a session start plus the 5 s bound, not Ray's endless wait
        finally:
            s.close()


def test_a_head_bound_to_loopback_only_is_told_apart():
    from harness.execute.ray import loopback_only

    inside = _listener("127.0.0.1")
    everywhere = _listener("0.0.0.0")
    try:
        assert loopback_only(f"127.0.0.1:{inside.getsockname()[1]}")
        assert not loopback_only(f"127.0.0.1:{everywhere.getsockname()[1]}")  # control: reachable as the node too
        assert not loopback_only(f"ray://127.0.0.1:{inside.getsockname()[1]}")  # the client protocol needs no node
    finally:
        inside.close()
        everywhere.close()


def test_a_plugin_that_calls_sys_exit_at_import_is_a_plugin_error(tmp_path, monkeypatch):
    import pytest

    from harness import extensions as plugins

    (tmp_path / "lrlaws_exiting.py").write_text("import sys\nsys.exit(3)\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setitem(plugins._INSTALLED, plugins.TRAINER_GROUP, {"exiting": "lrlaws_exiting:T"})
    with pytest.raises(plugins.PluginError, match="'exiting'.*failed to load .SystemExit: 3"):
        plugins.load(plugins.TRAINER_GROUP, "exiting")


# indented, so that no line of this harness test reads as a module-level law (harness.plugin.xdist)
SLOW_LAW = textwrap.dedent('''
    import time
    import numpy as np
    from harness import Ensemble, Recipe
    from harness.law import lrlaw
    from harness.store.runs import RunResult
    from harness.trainers import TRAINERS

    class Slow:
        name, salt = "slow", "slow-v1"
        def validate(self, recipe): pass
        def check_data(self, recipe, ctx): pass
        def chunk_size(self, recipe, device): return 1
        def estimate_seconds(self, recipe, device): return 5.0
        def train(self, recipe, seeds, ctx):
            open("training", "w").close()
            time.sleep(60)
            for s in seeds:
                yield RunResult(s, {"out": np.zeros(2)})

    TRAINERS["slow"] = Slow()

    @lrlaw("slow", tiers={t: t for t in ("smoke", "gpu", "paper")}, reads=lambda tier: {"runs": Ensemble(Recipe(trainer="slow", dataset="none", model="none", lr=0.1), 2)})
    def test_slow(law):
        pass
''')


def test_a_session_killed_while_training_leaves_no_empty_run_dir(pytester):
    import signal
    import subprocess
    import sys
    import time

    pytester.makepyfile(test_slow_law=SLOW_LAW)
    proc = subprocess.Popen([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "--workers=1", "--store", "st",
                             "--report-dir", "rep", "test_slow_law.py"], cwd=pytester.path,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while not (pytester.path / "training").exists() and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.2)
        assert (pytester.path / "training").exists()
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
    assert (pytester.path / "rep").is_dir() and list((pytester.path / "rep").iterdir()) == []


def test_an_error_entry_says_what_went_wrong(pytester):
    import json

    from test_bad_inputs import FAKE_LAW

    broken = FAKE_LAW.replace('acc = law.runs("runs").metric("acc")', 'raise RuntimeError("the statistic broke")')
    pytester.makepyfile(test_fake_law=broken)
    res = pytester.runpytest_subprocess("-p", "no:cacheprovider", "--workers=1", "--store", "st", "--report-dir", "rep")
    assert res.ret == 1
    entry = json.loads(next((pytester.path / "rep").glob("*/report.json")).read_text())["entries"][0]
    assert entry["decision"] == "error" and entry["reason"] == "RuntimeError: the statistic broke"


def test_a_trainer_yielding_nan_with_status_ok_fails_the_session_by_name(pytester):
    from test_bad_inputs import FAKE_LAW

    nan = FAKE_LAW.replace('yield RunResult(s, {"out": np.arange(3.0) + s}, {"acc": 1.0})',
                           'yield RunResult(s, {"out": np.full(3, np.nan)}, {"acc": 1.0})')
    assert nan != FAKE_LAW
    pytester.makepyfile(test_fake_law=nan)
    res = pytester.runpytest_subprocess("-p", "no:cacheprovider", "--workers=1", "--store", "st", "--report-dir", "rep")
    out = res.stdout.str()
    assert res.ret == 1 and "trainer 'fake'" in out and "holding no finite value" in out, out[-3000:]
