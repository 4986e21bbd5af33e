"""``python -m harness bench`` on the CPU in its tiny configuration."""
from __future__ import annotations

import json
import re

import pytest
import torch

from harness.__main__ import main as harness_main
from harness.bench.bench import _parse_set
from harness.recipe import RecipeError
from harness.trainers.recipes import AIRBENCH94


@pytest.fixture(autouse=True)
def restore_threads():
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


def test_bench_tiny_cpu(capsys: pytest.CaptureFixture) -> None:
    assert harness_main(["bench", "--tiny", "--device", "cpu", "--runs", "2", "--threads", "1"]) == 0
    out = capsys.readouterr().out
    for field in ("s/run mean", "test acc", "TFLOP/s", "harness overhead:", "FLOPs per run", "device cpu"):
        assert field in out, field
    rows = {m.group(1): [float(v) for v in m.group(2).split()]
            for m in re.finditer(r"^(harness|bare)\s+([-\d.\s]+)$", out, flags=re.M)}
    assert set(rows) == {"harness", "bare"} and all(len(v) == 5 for v in rows.values())
    # the same seeds on the CPU: the harness path and the bare loop train the very same runs
    assert rows["harness"][3] == rows["bare"][3]
    # negative control of the accuracy column: random labels cannot be learned (chance is 0.1 on 256 images)
    assert rows["bare"][3] < 0.2
    assert all(v > 0 for v in rows["harness"][:3] + rows["bare"][:3])


def test_set_fields_and_options() -> None:
    r = _parse_set(["steps=12", "widths=[4,4,4]", "lr=2.5", "optimizer=sgd"], AIRBENCH94)
    assert (r.steps, r.lr, r.optimizer, r.option("widths")) == (12, 2.5, "sgd", (4, 4, 4))
    with pytest.raises(RecipeError, match="key=value"):
        _parse_set(["steps"], AIRBENCH94)


def test_acceptance_tiny_cpu_writes_one_json_and_one_table(tmp_path, capsys: pytest.CaptureFixture) -> None:
    out_json = tmp_path / "acceptance.json"
    kept = tmp_path / "kept" / "smoke.json"
    assert harness_main(["bench", "--acceptance", "--tiny", "--device", "cpu", "--runs", "2", "--json", str(out_json),
                         "--smoke-report", str(kept)]) == 0
    r = json.loads(out_json.read_text())
    assert json.loads(kept.read_text())["tier"] == "smoke"  # the smoke session's own report, kept
    assert r["device"] == "cpu" and r["compile"] is None
    sweep = {(c["pack"], c["procs"]): c for c in r["sweep"]}
    assert set(sweep) == {(1, 1), (4, 1), (1, 2), (4, 2)}
    assert all(c["s_per_run"] > 0 and c["gpu_util_mean_pct"] is None and c["runs"] >= 2 for c in sweep.values())
    # packed or alone, one process or two: the same seeds are the same runs (up to float rounding)
    assert all(abs(c["acc_common"] - sweep[1, 1]["acc_common"]) <= 0.01 for c in sweep.values())
    assert r["pick"] is not None and (r["pick"]["pack"], r["pick"]["procs"]) in sweep
    smoke = r["smoke_tier"]
    assert smoke["exit"] == 0 and smoke["runs_trained"] == 3 * 64  # one point, first look
    # the seed's point does not hold on MNIST-1D (a recorded finding beyond the spread: an xfail, exit 0); decided at 64 runs
    assert [(p["decision"], p["runs_used"], p["runs_max"]) for p in smoke["points"]] == [("fail", 64, 512)]
    table = capsys.readouterr().out
    for row in ("pack 1 x 1 proc", "pack 4 x 2 procs", "pick: pack", "harness/packing.py", "smoke tier", "json:"):
        assert row in table, row


def test_pick_is_the_fastest_that_learns() -> None:
    from harness.bench.acceptance import pick

    base = {"pack": 1, "procs": 1, "s_per_run": 2.0, "acc_common": 0.95}
    fast_wrong = {"pack": 16, "procs": 4, "s_per_run": 0.3, "acc_common": 0.10}  # control: fast, learns nothing
    ok = {"pack": 16, "procs": 2, "s_per_run": 0.5, "acc_common": 0.945}
    assert pick([base, fast_wrong, ok]) is ok
    assert pick([base, fast_wrong]) is base
    assert pick([fast_wrong, {"pack": 1, "procs": 1, "error": "x"}]) is None


@pytest.mark.parametrize("args, message", [
    (["--runs", "0"], "--runs must be >= 1"),
    (["--device", "tpu"], "--device 'tpu': use cpu, cuda or cuda:N"),
    (["--device", "cuda:7"], "no such CUDA device here"),
    (["--json", "."], "is a directory: pass a file path"),
    (["--smoke-report", "."], "--smoke-report .: is a directory"),
    # under a file, not a folder: this very test file
    (["--smoke-report", f"{__file__}/smoke.json"], f"--smoke-report {__file__}/smoke.json: cannot write under {__file__}"),
])
def test_acceptance_bad_arguments_are_one_line_before_training(args, message, capsys) -> None:
    with pytest.raises(SystemExit) as e:
        harness_main(["bench", "--acceptance", "--tiny", "--device", "cpu", *args])
    assert message in str(e.value) and "\n" not in str(e.value)


def test_sampler_reads_nvml_and_says_not_measured_without_it(monkeypatch: pytest.MonkeyPatch) -> None:
    import sys
    import time
    import types

    from harness.bench.sweep import Sampler

    fake = types.SimpleNamespace(
        nvmlInit=lambda: None, nvmlDeviceGetHandleByIndex=lambda i: i,
        nvmlDeviceGetUtilizationRates=lambda h: types.SimpleNamespace(gpu=75),
        nvmlDeviceGetMemoryInfo=lambda h: types.SimpleNamespace(used=2 * 2**30))
    monkeypatch.setitem(sys.modules, "pynvml", fake)
    with Sampler("cuda") as s:
        time.sleep(0.35)
    got = s.summary()
    assert got["gpu_util_mean_pct"] == 75 and got["gpu_mem_used_max_gib"] == 2 and "NVML samples" in got["gpu_util_note"]
    monkeypatch.setitem(sys.modules, "pynvml", None)  # the extra not installed: import fails
    with Sampler("cuda") as s:
        pass
    assert s.summary()["gpu_util_mean_pct"] is None and "not measured" in s.summary()["gpu_util_note"]
    assert "not measured" in Sampler("cpu").summary()["gpu_util_note"]


def test_a_failing_configuration_is_an_error_not_a_hang(tmp_path) -> None:
    from harness.bench.sweep import Config, measure_config

    r = measure_config(AIRBENCH94, tmp_path / "no-data", "cpu", Config(1, 2), 2, timeout=120)
    assert "error" in r and "s_per_run" not in r


def test_the_sweep_measures_the_reference_then_the_smallest_configurations_first() -> None:
    from harness.bench.acceptance import SWEEP, sweep_order

    order = sweep_order(*SWEEP["full"])
    assert order[:3] == [(1, 1), (1, 2), (4, 1)] and order[-1] == (16, 4)
    assert [p * k for p, k in order[1:]] == sorted(p * k for p, k in order[1:])  # never more in flight before less
    assert len(order) == len(set(order)) == 9
