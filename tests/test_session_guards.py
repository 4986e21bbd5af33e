"""A session trains nothing it should not: not after a collection error, not for --collect-only, not with
more workers than cores; and what it says about failures counts what was lost."""
from __future__ import annotations

import os
import stat

import numpy as np

from harness.executor import usable_cores
from harness.plugin import _still_missing
from harness.store import Store
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
    assert _still_missing(store, [(key, tuple(range(8)), "boom")]) == [(key, (5, 6, 7), "boom")]


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
