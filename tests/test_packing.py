"""Packed airbench seeds (grouped convolutions, ``NetSpec.pack``) are the runs each seed trains alone.

Tolerances: a grouped convolution sums in another order than a plain one, so float32 logits
of a packed seed agree with its run alone within ``F32_TOL`` (measured: 2.4e-7), float64 ones
within ``F64_TOL``; across packs of the same size a seed's run is bitwise the same whoever its
pack-mates are. The distribution check pairs 32 seeds: rounding may flip a test image or two.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch
from scipy import stats

from harness.data.formats import write_cifar10
from harness.data.standin import learnable_images
from harness.packing import PACK_ENV, pack_size
from harness.trainers.recipes import AIRBENCH94
from harness.trainers.airbench import AirbenchTrainer
from harness.trainers.base import TrainContext

TINY = AIRBENCH94.replace(batch_size=32, steps=6, options=dict(widths=[8, 8, 8], n_train=256, n_test=64, tta=2))
#: ~0.8 s a run on one core of the CI box; 2 epochs
SMALL = AIRBENCH94.replace(batch_size=64, steps=16, options=dict(widths=[8, 8, 8], n_train=512, n_test=256, tta=0))
F32_TOL, F64_TOL = 1e-5, 1e-12
SEEDS = 32

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    r = tmp_path_factory.mktemp("cifar")
    write_cifar10(r, learnable_images(512, 256))
    return r


def ctx(root: Path) -> TrainContext:
    return TrainContext(device="cpu", data_dir=root, download=False)


def float64(trainer: AirbenchTrainer, recipe, root: Path) -> AirbenchTrainer:
    """The trainer with its data (hence its nets) in float64."""
    d = trainer.data(recipe, ctx(root))
    key = next(iter(trainer._data))
    trainer._data[key] = dataclasses.replace(d, dtype=torch.float64, x_test=d.x_test.double())
    return trainer


@pytest.mark.parametrize("dtype,tol", [("float32", F32_TOL), ("float64", F64_TOL)])
def test_packed_is_alone(root: Path, dtype: str, tol: float) -> None:
    t = AirbenchTrainer()
    if dtype == "float64":
        float64(t, TINY, root)
    alone = [t.run(TINY, s, ctx(root)) for s in range(4)]
    packed = t.run_pack(TINY, list(range(4)), ctx(root))
    assert packed[0].logits.dtype == torch.float32  # evaluate returns float32 logits whatever the compute dtype
    for a, p in zip(alone, packed):
        assert float((a.logits - p.logits).abs().max()) <= tol
        assert abs(float(a.train_loss) - float(p.train_loss)) <= F32_TOL  # the loss is summed in float32
    # a seed's run does not depend on its pack-mates (same pack size): bitwise
    mates = t.run_pack(TINY, [2, 7, 9, 11], ctx(root))
    assert torch.equal(mates[0].logits, packed[2].logits)
    # and every seed is its own run
    assert not torch.allclose(packed[0].logits, packed[1].logits)


def test_train_yields_each_seed_of_the_pack(root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(PACK_ENV, "3")
    assert pack_size("cpu") == 3 and AirbenchTrainer().chunk_size(TINY, "cpu") == 3
    r = TINY.replace(probes=("logits",))
    out = list(AirbenchTrainer().train(r, [0, 1, 2, 3], ctx(root)))  # one pack of 3, one of 1
    alone = list(AirbenchTrainer().train(r, [3, 1], TrainContext(device="cpu", data_dir=root, download=False, pack=1)))
    assert [x.seed for x in out] == [0, 1, 2, 3] and all(x.status == "ok" for x in out)
    assert np.abs(out[1].arrays["logits"].astype(float) - alone[1].arrays["logits"].astype(float)).max() <= 1e-3
    assert np.array_equal(out[3].arrays["logits"], alone[0].arrays["logits"])  # a pack of one is the unpacked loop
    monkeypatch.setenv(PACK_ENV, "0")
    with pytest.raises(ValueError, match="pack size"):
        pack_size("cuda")


def same_distribution(alone: np.ndarray, packed: np.ndarray, n_test: int) -> None:
    """Final accuracy of the same seeds, alone and packed: one distribution, and per seed at most 2 test images apart."""
    assert stats.ks_2samp(alone, packed).pvalue > 0.05
    assert np.quantile(np.abs(packed - alone), 0.9) <= 2 / n_test + 1e-9


def shared_bn(pack: int):
    """A broken pack: batch norm pools its statistics over the pack's seeds (channel c of every seed)."""
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, pc, h, w = x.shape
        c = pc // pack
        if self.training:
            xs = x.view(b, pack, c, h, w).transpose(0, 1).reshape(pack * b, c, h, w)
            mean, var = xs.mean((0, 2, 3)).repeat(pack), xs.var((0, 2, 3), unbiased=False).repeat(pack)
            with torch.no_grad():
                self.running_mean.lerp_(mean, self.momentum)
                self.running_var.lerp_(var, self.momentum)
        else:
            mean, var = self.running_mean, self.running_var
        shape = (1, pc, 1, 1)
        return (x - mean.view(shape)) / torch.sqrt(var.view(shape) + self.eps) * self.weight.view(shape) \
            + self.bias.view(shape)
    return forward


@pytest.fixture(scope="module")
def alone_accs(root: Path) -> np.ndarray:
    t = AirbenchTrainer()
    return np.array([t.run(SMALL, s, ctx(root)).test_acc() for s in range(SEEDS)])


def packed_accs(root: Path, pack: int) -> np.ndarray:
    t = AirbenchTrainer()
    return np.array([r.test_acc() for i in range(0, SEEDS, pack) for r in t.run_pack(SMALL, list(range(i, i + pack)), ctx(root))])


def test_accuracy_distribution_packed_vs_alone(root: Path, alone_accs: np.ndarray) -> None:
    same_distribution(alone_accs, packed_accs(root, 8), 256)


def test_control_pack_sharing_bn_statistics_fails(root: Path, alone_accs: np.ndarray,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.nn.BatchNorm2d, "forward", shared_bn(8))
    with pytest.raises(AssertionError):
        same_distribution(alone_accs, packed_accs(root, 8), 256)
