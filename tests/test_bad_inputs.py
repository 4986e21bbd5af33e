"""Every bad input gets one line saying what to do, before anything is trained: no traceback, hang or silence."""
from __future__ import annotations

import gzip
import json
import os
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from harness.data import cifar10, mnist
from harness.data.formats import idx_bytes, write_cifar10, write_mnist
from harness.data.standin import learnable_images
from harness.data.catalog import DataUnavailable

FAKE_LAW = textwrap.dedent(
    """
    import errno, os
    import numpy as np
    from harness import Ensemble, Recipe
    from harness.law import lrlaw
    from harness.store.runs import RunResult
    from harness.stats import LawResult
    from harness.trainers import TRAINERS

    class Fake:
        name, salt = "fake", "fake-v1"
        def validate(self, recipe): pass
        def check_data(self, recipe, ctx): pass
        def chunk_size(self, recipe, device): return 4
        def estimate_seconds(self, recipe, device): return 0.01
        def train(self, recipe, seeds, ctx):
            with open("train_calls.txt", "a") as f:
                f.write(f"{list(seeds)}\\n")
            for s in seeds:
                yield RunResult(s, {"out": np.arange(3.0) + s}, {"acc": 1.0})

    TRAINERS["fake"] = Fake()
    if os.environ.get("FAKE_DISK_FULL"):
        def _full(fd):
            raise OSError(errno.ENOSPC, "No space left on device")
        os.fsync = _full

    R = Recipe(trainer="fake", dataset="none", model="none", lr=0.1)

    @lrlaw("fk", tiers={t: t for t in ("smoke", "gpu", "paper")}, reads=lambda tier: {"runs": Ensemble(R, 8)})
    def test_fk(law):
        acc = law.runs("runs").metric("acc")
        law.check(LawResult("acc", float(acc.mean()), (1.0, 1.0), 0.5, ">", "pass", n=len(acc)))
    """
)


def session(pytester, *args, env: dict | None = None, timeout: float = 120):
    pytester.makepyfile(test_fake_law=FAKE_LAW)
    old = {k: os.environ.get(k) for k in (env or {})}
    os.environ.update(env or {})
    try:
        # one worker: the fake trainer is registered in this process's conftest, which spawned workers never run
        return pytester.runpytest_subprocess("-p", "no:cacheprovider", "--workers=1", *args, timeout=timeout)
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def one_line_error(res, *needles: str) -> str:
    """The session failed with a usage error: one ERROR line holding ``needles``, no traceback, nothing trained."""
    out = res.stdout.str() + "\n" + res.stderr.str()
    assert res.ret not in (0, 3), out[-3000:]  # 3 = INTERNALERROR
    assert "Traceback" not in out and "INTERNALERROR" not in out, out[-3000:]
    errors = [line for line in out.splitlines() if line.startswith("ERROR")]
    assert len(errors) == 1, out[-3000:]
    for n in needles:
        assert n in errors[0], errors[0]
    assert "lrlaws: trained" not in out
    return errors[0]


# -------------------------------------------------------------- plugin options --

def test_store_empty_string_is_refused(pytester):
    one_line_error(session(pytester, "--store", ""), "--store is empty")


def test_report_dir_that_is_a_file_is_refused_before_training(pytester):
    (pytester.path / "afile").write_text("x")
    one_line_error(session(pytester, "--store", "st", "--report-dir", "afile/rep"), "--report-dir", "is a file")
    assert not (pytester.path / "st").exists()


MALFORMED = [
    {"entries": [{}]},
    {"entries": [{"nodeid": "a", "law": "l", "decision": "pass", "results": [{"statistic": "s", "ci": [0, 1]}]}]},
    {"entries": [{"nodeid": "a", "law": "l", "decision": "pass",
                  "results": [{"statistic": "s", "value": 1.0, "ci": None}]}]},
    {"version": 99, "entries": []},
]


@pytest.mark.parametrize("bad", MALFORMED)
def test_malformed_reports_are_refused_by_the_schema(tmp_path, bad):
    from harness.report.history import invalid_reason

    (tmp_path / "bad.json").write_text(json.dumps({"version": 1, "tier": "smoke", **bad}))
    why = invalid_reason(tmp_path / "bad.json")
    assert why is not None and "\n" not in why and ("not a valid lrlaws report" in why)


def test_compare_to_a_malformed_report_is_one_line(pytester):
    (pytester.path / "bad.json").write_text(json.dumps({"version": 1, "tier": "smoke", **MALFORMED[0]}))
    one_line_error(session(pytester, "--store", "st", "--compare-to", "bad.json"), "not a valid lrlaws report")


def test_a_malformed_previous_report_is_skipped_with_a_warning(pytester):
    res = session(pytester, "--store", "st", "--report-dir", "rep")
    res.assert_outcomes(passed=1)
    good = next((pytester.path / "rep").glob("*/report.json"))
    bad_dir = pytester.path / "rep" / "zz-bad"
    bad_dir.mkdir()
    data = json.loads(good.read_text())
    data["started"] += 1
    data["entries"] = [{}]
    (bad_dir / "report.json").write_text(json.dumps(data))
    time.sleep(1.1)  # a new run dir name
    res = session(pytester, "--store", "st", "--report-dir", "rep")
    out = res.stdout.str()
    assert res.ret == 0 and "Traceback" not in out + res.stderr.str()
    assert "skipped" in out and "zz-bad" in out and "no regressions" in out  # compared with the good one


def test_ray_address_without_executor_ray_warns(pytester):
    res = session(pytester, "--store", "st", "--ray-address", "127.0.0.1:6379", "-W", "default")
    assert "--ray-address is ignored without --executor ray" in res.stdout.str()


@pytest.mark.parametrize("address,needle", [("junk", "is not HOST:PORT"), ("127.0.0.1:99999", "is not HOST:PORT"),
                                            ("ray://:80", "is not HOST:PORT"), ("127.0.0.1:1", "cannot connect")])
def test_check_address(address, needle):
    from harness.execute.ray import check_address

    t0 = time.time()
    why = check_address(address)
    assert why is not None and needle in why and time.time() - t0 < 10


def test_bad_ray_address_is_one_line_and_quick(pytester):
    pytest.importorskip("ray", reason="the ray extra is not installed")
    t0 = time.time()
    one_line_error(session(pytester, "--store", "st", "--executor", "ray", "--ray-address", "127.0.0.1:1"),
                   "cannot connect")
    assert time.time() - t0 < 120


# ------------------------------------------------------------ faults in a session --

def test_training_that_fails_fails_the_session_without_retrying_a_full_disk(pytester):
    res = session(pytester, "--store", "st", "--compare-to", "none", "-rs", env={"FAKE_DISK_FULL": "1"})
    out = res.stdout.str()
    assert res.ret == 1, out[-3000:]
    assert "Traceback" not in out and "INTERNALERROR" not in out
    assert "disk full at" in out and "training failed for 8 run(s)" in out
    calls = (pytester.path / "train_calls.txt").read_text().splitlines()
    assert calls == ["[0, 1, 2, 3]", "[4, 5, 6, 7]"]  # one attempt per block


def test_a_damaged_index_is_one_line_even_with_plan(pytester):
    """Each kind of damage is tested on the store itself (test_faults); here: the session's line."""
    session(pytester, "--store", "st").assert_outcomes(passed=1)
    db = pytester.path / "st" / "index.sqlite"
    sqlite3.connect(db).execute("PRAGMA wal_checkpoint(TRUNCATE)").close()
    db.write_bytes(os.urandom(db.stat().st_size))
    for extra in ([], ["--plan"], ["--no-train"]):
        one_line_error(session(pytester, "--store", "st", *extra), "st/index.sqlite is damaged",
                       "python -m harness store rebuild --store st")


def test_read_only_store_works_with_no_train_and_plan(pytester):
    from test_faults import read_only

    session(pytester, "--store", "st").assert_outcomes(passed=1)
    with read_only(pytester.path / "st"):
        session(pytester, "--store", "st", "--no-train", "--compare-to", "none").assert_outcomes(passed=1)
        res = session(pytester, "--store", "st", "--plan")
        assert res.ret == 0 and "0 runs to train" in res.stdout.str()


# ---------------------------------------------------------------- data files --

@pytest.fixture
def cifar_dir(tmp_path):
    write_cifar10(tmp_path, learnable_images(20, 10))
    return tmp_path / cifar10.FOLDER


def test_truncated_cifar_batch_is_one_line_naming_the_file(cifar_dir):
    path = cifar_dir / "data_batch_3"
    path.write_bytes(path.read_bytes()[:200])
    with pytest.raises(DataUnavailable) as e:
        cifar10._read_batch(path)
    assert str(path) in str(e.value) and "download CIFAR-10 again" in str(e.value) and "\n" not in str(e.value)


@pytest.fixture
def mnist_dir(tmp_path):
    write_mnist(tmp_path, learnable_images(8, 4, shape=(1, 28, 28)))
    return tmp_path / mnist.FOLDER


@pytest.mark.parametrize("cut", ["body", "header"])
def test_idx_whose_header_promises_more_than_it_holds(mnist_dir, cut):
    path = mnist_dir / "train-images-idx3-ubyte"
    raw = path.read_bytes()
    path.write_bytes(raw[:100] if cut == "body" else raw[:9])
    with pytest.raises(DataUnavailable) as e:
        mnist.read_idx(path)
    assert str(path) in str(e.value) and "download MNIST again" in str(e.value)


def test_truncated_gz_is_one_line_naming_the_file(tmp_path):
    path = tmp_path / "train-labels-idx1-ubyte.gz"
    path.write_bytes(gzip.compress(idx_bytes(np.arange(100, dtype=np.uint8)))[:-12])
    with pytest.raises(DataUnavailable, match="truncated"):
        mnist.read_idx(path)


# ------------------------------------------------------------- commands --

def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "harness", *args], capture_output=True, text=True, timeout=180,
                          env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})


@pytest.mark.parametrize("args,needle", [
    (["make-data", "cifar10-synthetic", "D", "--n-train", "0"], "--n-train must be >= 5"),
    (["make-data", "mnist-synthetic", "D", "--n-test", "-3"], "--n-test must be >= 1"),
    (["make-data", "mnist-synthetic", "D", "--seed", "-1"], "--seed must be in"),
    (["make-data", "mnist-synthetic", "FILE/x", "--n-train", "4", "--n-test", "4"], "is a file"),
    (["bench", "--tiny", "--runs", "0"], "--runs must be >= 1"),
    (["bench", "--tiny", "--device", "nonsense"], "is not a torch device"),
    (["bench", "--tiny", "--threads", "0"], "--threads must be >= 1"),
    (["bench", "--tiny", "--set", "steps=-1"], "must be positive"),
    (["bench", "--tiny", "--set", "nosuch=1"], "unknown option"),
    (["store", "check", "--store", ""], "not a store"),
])
def test_commands_give_one_line_for_bad_values(tmp_path, args, needle):
    (tmp_path / "FILE").write_text("x")
    args = [a.replace("FILE", str(tmp_path / "FILE")).replace("D", str(tmp_path / "d")) if a in ("D", "FILE/x") else a
            for a in args]
    res = _cli(*args)
    assert res.returncode == 2, res.stdout + res.stderr
    assert "Traceback" not in res.stderr and len(res.stderr.strip().splitlines()) == 1, res.stderr
    assert needle in res.stderr


def test_trends_draw_what_older_or_damaged_reports_have(tmp_path):
    from harness.report.trends import collect, load_reports

    good = {"statistic": "r2", "value": 0.9, "ci": [0.8, 1.0], "threshold": 0.5, "direction": ">"}
    old = {"statistic": "r2", "value": 0.7, "ci": [0.6, 0.8]}  # before thresholds were recorded
    reports = [
        {"tier": "smoke", "started": 1, "entries": [{"nodeid": "t::a", "law": "lin", "results": [old]}]},
        {"version": 1, "tier": "smoke", "started": 2, "entries": [
            {}, {"nodeid": "t::a", "law": "lin", "results": [good, {"statistic": "r2", "value": 1.0, "ci": None}]},
            {"nodeid": "t::b", "law": "lin", "results": [{"statistic": "r2", "ci": [0, 1]}]}]},
    ]
    for i, r in enumerate(reports):
        (tmp_path / f"run{i}").mkdir()
        (tmp_path / f"run{i}" / "report.json").write_text(json.dumps(r))
    out = collect(load_reports(tmp_path))
    labels, series = out[("smoke", "lin", "r2")]
    assert list(series) == ["t::a"] and series["t::a"].value == [0.7, 0.9]
