"""``python -m harness runs``: the store's recipes, their seeds, metrics, seconds, devices and readers; curves."""
from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from harness.recipe import Recipe
from harness.report import runs as R
from harness.store.index import Store
from harness.store.runs import RunResult

GD = Recipe(trainer="gd", dataset="teacher", model="mlp", lr=0.5, steps=10)
PROBE = Recipe(trainer="mlp", dataset="digits", model="mlp", lr=0.1, batch_size=16, steps=20)


def make_store(root: Path) -> None:
    store = Store(root)
    store.register("k_gd", GD, "salt")
    store.register("k_probe", PROBE, "salt")
    for s in range(4):
        loss = np.linspace(1, 0, 10) * (s + 1)
        store.put("k_gd", RunResult(s, {"loss": loss, "loss_steps": np.arange(10) * 5, "hess": np.eye(2)},
                                    {"final_loss": float(loss[-1])}, "diverged" if s == 3 else "ok", 1.5), "cpu")
    for s in range(2):
        store.put("k_probe", RunResult(s, {"logits": np.zeros((5, 3))}, {"test_acc": 0.5, "train_loss": 0.1},
                                       "ok", 0.25), "NVIDIA H200")
    store.close()


def make_report(results: Path) -> None:
    d = results / "20260101-000000-smoke-1"
    d.mkdir(parents=True)
    entries = [{"nodeid": "laws/test_gd_divergence.py::test_edge", "law": "gd_divergence", "decision": "pass",
                "results": [], "recipes": {"runs": "k_gd"}}]
    (d / "report.json").write_text(json.dumps({"version": 1, "tier": "smoke", "started": 1.0, "entries": entries}))


def test_list_shows_seeds_metrics_seconds_devices_and_readers(tmp_path, capsys):
    make_store(tmp_path / "s")
    make_report(tmp_path / "results")
    args = ["--store", str(tmp_path / "s"), "--report-dir", str(tmp_path / "results")]
    assert R.main(args) == 0
    out = capsys.readouterr().out.splitlines()
    gd = next(line for line in out if line.startswith("k_gd"))
    for part in ("gd", "teacher/mlp lr=0.5", "4 (0..3)", "final_loss", "6.0", "cpu",
                 "smoke: laws/test_gd_divergence.py::test_edge"):
        assert part in gd, (part, gd)
    assert "4 (0..3)  1 " in gd  # the diverged seed is counted
    probe = next(line for line in out if line.startswith("k_probe"))
    assert "test_acc, train_loss" in probe and "NVIDIA H200" in probe and probe.rstrip().endswith("-")
    assert out[-1].startswith("2 recipes, 6 runs")
    # filters
    assert R.main([*args, "--law", "gd_divergence"]) == 0
    assert [line[:7] for line in capsys.readouterr().out.splitlines()[1:-1]] == ["k_gd   "]
    assert R.main([*args, "--recipe", "k_pr"]) == 0
    assert "k_gd" not in capsys.readouterr().out
    assert R.main([*args, "--law", "nosuch"]) == 0
    assert "no stored runs of law nosuch" in capsys.readouterr().out


def test_show_plots_the_stored_curves_and_says_when_there_are_none(tmp_path, capsys):
    make_store(tmp_path / "s")
    png = tmp_path / "gd.png"
    assert R.main(["show", "k_g", "--store", str(tmp_path / "s"), "--seeds", "0-1,3", "--out", str(png)]) == 0
    assert "k_gd: loss of seeds 0..3" in capsys.readouterr().out
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    steps, loss = R.curves({"loss": np.ones(4), "loss_steps": np.arange(4) * 5, "hess": np.eye(2)})["loss"]
    assert steps.tolist() == [0, 5, 10, 15] and list(R.curves({"hess": np.eye(2), "logits": np.zeros((3, 2))})) == []
    assert R.main(["show", "k_probe", "--store", str(tmp_path / "s"), "--out", str(tmp_path / "p.png")]) == 0
    assert "records no curves (arrays: logits)" in capsys.readouterr().out and not (tmp_path / "p.png").exists()


@pytest.mark.parametrize("argv, msg", [
    (["--store", "{s}/nope"], "no run store at"),
    (["show", "--store", "{s}"], "show needs a recipe KEY"),
    (["show", "k_", "--store", "{s}"], "matches 2 stored recipes"),
    (["show", "zz", "--store", "{s}"], "no stored runs of recipe 'zz'"),
    (["show", "k_gd", "--store", "{s}", "--seeds", "a-b"], "--seeds takes seeds like 0-7"),
    (["show", "k_gd", "--store", "{s}", "--seeds", "50"], "none of seeds [50]"),
])
def test_bad_input_is_one_line(tmp_path, capsys, argv, msg):
    make_store(tmp_path / "s")
    with pytest.raises(SystemExit) if msg.startswith("show needs") else _nothing():
        assert R.main([a.format(s=tmp_path / "s") for a in argv]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and msg in err[0], err


class _nothing:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def test_listing_a_store_takes_under_two_seconds(tmp_path):
    make_store(tmp_path / "s")
    t0 = time.perf_counter()
    res = subprocess.run([sys.executable, "-m", "harness", "runs", "--store", str(tmp_path / "s"),
                          "--report-dir", str(tmp_path)], capture_output=True, text=True, timeout=60)
    assert res.returncode == 0 and "2 recipes" in res.stdout, res.stderr
    assert time.perf_counter() - t0 <= 2.0


def test_the_training_bar_names_the_laws_the_look_and_who_reads_diverged_runs():
    from types import SimpleNamespace as NS

    from harness.plugin.progress import Divergence, bar_title
    from harness.stats.sequential import PointState

    a, b, c = PointState(512, [64, 128, 256, 512], k=1), PointState(512, [64, 128, 256, 512], k=1), PointState(8, [8])
    c.done = True
    items = {"a": NS(law="linearity", keys={"x": "k1"}), "b": NS(law="gd_divergence", keys={"y": "k2"}),
             "c": NS(law="lars", keys={"z": "k3"})}
    points = {"a": a, "b": b, "c": c}
    assert bar_title(points, items, "smoke") == "lrlaws gd_divergence, linearity (smoke, look 2 of 4)"  # lars is decided
    b.k = 2
    assert bar_title(points, items, "smoke") == "lrlaws gd_divergence, linearity (smoke, looks 2-3 of up to 4)"
    a.done = b.done = True
    assert bar_title(points, items, "smoke") == "lrlaws train (smoke)"
    div = Divergence(items)
    for key in ("k2", "k2", "k1"):
        div.add(key)
    assert div.postfix() == "2 of gd_divergence; 1 of linearity"
