"""``--compile`` trains the same airbench runs as eager (on the CPU through ``aot_eager``), under other keys.

Tolerance: the compiled graph computes the whitening bias's gradient in another order, so float32
results part by rounding that 64 steps amplify: logits agree within ``LOGIT_TOL`` (measured on
LEARN with aot_eager: 0.012 at most, on logits of size ~0.5) and test accuracy within ``ACC_TOL``;
two seeds of one recipe differ by ~0.5.
"""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

from harness.identity import recipe_key
from harness.trainers import airbench
from harness.trainers.recipes import AIRBENCH94
from harness.trainers.airbench import AirbenchTrainer
from harness.trainers.base import TrainContext

#: two epochs, the whitening bias trained in the first only: every switch of the loop happens
LEARN = AIRBENCH94.replace(batch_size=64, steps=64, options=dict(widths=[8, 16, 16], n_train=2048, n_test=512, tta=1,
                                                                  whiten_bias_epochs=1))
LOGIT_TOL, ACC_TOL = 0.05, 0.01

pytestmark = pytest.mark.usefixtures("one_torch_thread")



def runs(root: Path, compile: bool, seeds=(0, 1)) -> list[airbench.Run]:
    trainer = AirbenchTrainer()  # a fresh module cache: nothing carried over from another test
    ctx = TrainContext(device="cpu", data_dir=root, download=False, compile=compile)
    return [trainer.run(LEARN, s, ctx) for s in seeds]


def same_runs(a: list[airbench.Run], b: list[airbench.Run]) -> None:
    for x, y in zip(a, b, strict=True):
        assert abs(x.test_acc() - y.test_acc()) <= ACC_TOL, (x.test_acc(), y.test_acc())
        assert float((x.logits - y.logits).abs().max()) <= LOGIT_TOL


@pytest.fixture(scope="module")
def eager(cifar_dir: Path) -> list[airbench.Run]:
    return runs(cifar_dir, compile=False)


def test_compiled_runs_are_the_eager_runs(cifar_dir: Path, eager, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(airbench, "COMPILE_BACKEND", "aot_eager")
    compiled = runs(cifar_dir, compile=True)
    assert min(r.test_acc() for r in eager) >= 0.3  # both learn (chance is 0.1)
    same_runs(eager, compiled)


def test_control_another_seed_fails(cifar_dir: Path, eager) -> None:
    with pytest.raises(AssertionError):
        same_runs(eager, eager[::-1])


def test_control_compiled_loop_that_loses_bn_statistics_fails(cifar_dir: Path, eager,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """A compiled loop whose batch-norm buffer updates never reach the module (one way to end at chance)."""
    monkeypatch.setattr(airbench, "COMPILE_BACKEND", "aot_eager")
    fit = airbench._fit

    def losing(net, *args, **kw):
        out = fit(net, *args, **kw)
        for m in net.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.reset_running_stats()
        return out

    monkeypatch.setattr(airbench, "_fit", losing)
    with pytest.raises(AssertionError):
        same_runs(eager, runs(cifar_dir, compile=True))


def test_compiled_runs_have_other_keys() -> None:
    assert recipe_key(LEARN, absent_ok=True, compiled=True) != recipe_key(LEARN, absent_ok=True)
    assert recipe_key(LEARN, absent_ok=True, compiled=False) == recipe_key(LEARN, absent_ok=True)
