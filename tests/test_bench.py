"""``python -m harness bench`` on the CPU in its tiny configuration."""
from __future__ import annotations

import re

import pytest
import torch

from harness.__main__ import main as harness_main
from harness.bench import _parse_set
from harness.recipe import RecipeError
from harness.trainers.airbench import AIRBENCH94


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
