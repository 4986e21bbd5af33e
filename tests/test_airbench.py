"""The airbench trainer on the CPU, in tiny configurations: shapes, determinism, learning, FLOPs, options."""
from __future__ import annotations

import json
import platform
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from harness.data.formats import write_cifar10, write_mnist
from harness.data.standin import learnable_images
from harness.trainers.models.airbench import AirbenchNet, NetSpec, forward_flops, whitening_weight
from harness.recipe import RecipeError
from harness.trainers import TRAINERS, get_trainer
from harness.trainers.recipes import AIRBENCH94
from harness.trainers.airbench import Run, lr_factor, run_flops
from harness.data.catalog import DataUnavailable
from harness.trainers.base import TrainContext

#: a run in about a second on one CPU core: every code path (TTA level 2 included), no accuracy to speak of
TINY = AIRBENCH94.replace(batch_size=32, steps=6, options=dict(widths=[8, 8, 8], n_train=256, n_test=64, tta=2))
#: the smallest configuration that visibly learns the synthetic stand-in: 64 steps of 64 images (2 epochs of
#: 2048), airbench94's hyperparameters otherwise. Measured on the 2-core CI box: test accuracy 0.44 (seed 0).
LEARN = AIRBENCH94.replace(batch_size=64, steps=64, options=dict(widths=[8, 16, 16], n_train=2048, n_test=512, tta=0))
#: "learns" = at least 3× the 10% of chance; a net that learned nothing cannot pass it (0.30 is ~16 binomial
#: standard errors above chance on 512 test images)
LEARN_MIN_ACC = 0.30


pytestmark = pytest.mark.usefixtures("one_torch_thread")



def ctx(root: Path, **kw) -> TrainContext:
    return TrainContext(device="cpu", data_dir=root, download=False, **kw)


def test_validate() -> None:
    t = get_trainer(AIRBENCH94)
    for bad in (dict(options={"widht": [8, 8, 8]}), dict(options={"widths": [8, 8]}), dict(options={"tta": 3}),
                dict(dataset="imagenet"), dict(schedule="cosine"), dict(optimizer="adam"),
                dict(options={"n_train": 100}), dict(optimizer="nesterov", momentum=0.0)):
        with pytest.raises(RecipeError):
            t.validate(AIRBENCH94.replace(**bad))
    t.validate(TINY)


def test_flops_match_torch_counter_and_airbench_reference() -> None:
    spec = NetSpec(widths=(8, 16, 16))
    net = AirbenchNet(spec)
    fwd, first = forward_flops(spec, (32, 32))
    with FlopCounterMode(display=False) as fc:
        net(torch.randn(2, 3, 32, 32)).sum().backward()
    assert fc.get_total_flops() == 2 * (3 * fwd - 2 * first)
    # airbench94: 0.36 PFLOP per run (its paper, two digits)
    assert abs(run_flops(AIRBENCH94) / 1e15 - 0.36) < 0.005


def test_whitening_decorrelates_patches() -> None:
    x = torch.randn(200, 3, 8, 8)
    x = x + 0.8 * x.roll(1, dims=3) + 0.5 * x[:, :1]  # correlated pixels and channels
    w = whitening_weight(x, kernel=2, eps=0.0)
    assert w.shape == (24, 3, 2, 2)
    out = torch.nn.functional.conv2d(x, w[:12]).permute(0, 2, 3, 1).reshape(-1, 12)
    cov = out.T @ out / len(out)
    assert torch.allclose(cov, torch.eye(12), atol=1e-3)
    assert torch.equal(w[12:], -w[:12])


def test_lr_schedule_airbench() -> None:
    assert lr_factor("airbench", 0, 100) == pytest.approx(0.2)
    assert lr_factor("airbench", 23, 100) == pytest.approx(1.0)
    assert lr_factor("airbench", 100, 100) == pytest.approx(0.07)
    assert lr_factor("linear_decay", 50, 100) == pytest.approx(0.5)


def test_tiny_run_shapes_and_determinism(cifar_dir: Path) -> None:
    t = get_trainer(TINY)
    pair = {r.seed: r for r in t.train(TINY, [0, 1], ctx(cifar_dir))}
    alone = next(iter(t.train(TINY, [1], ctx(cifar_dir))))
    again = next(iter(t.train(TINY, [0], ctx(cifar_dir))))
    logits = pair[0].arrays["logits"]
    assert logits.shape == (64, 10) and logits.dtype == np.float16
    assert pair[0].status == "ok" and 0 <= pair[0].metrics["test_acc"] <= 1
    assert np.array_equal(again.arrays["logits"], logits)             # same seed, reused cached model
    assert np.array_equal(alone.arrays["logits"], pair[1].arrays["logits"])  # independent of chunk-mates
    assert not np.array_equal(pair[1].arrays["logits"], logits)        # another seed is another run
    assert alone.metrics == pair[1].metrics


def test_learns_synthetic_standin(cifar_dir: Path) -> None:
    run = next(iter(get_trainer(LEARN).train(LEARN, [0], ctx(cifar_dir))))
    assert run.status == "ok"
    assert run.metrics["test_acc"] >= LEARN_MIN_ACC, run.metrics


def test_mnist_through_the_same_trainer(tmp_path: Path) -> None:
    write_mnist(tmp_path, learnable_images(256, 40, shape=(1, 28, 28)), gz=True)
    r = TINY.replace(dataset="mnist", options=dict(n_test=0))
    out = next(iter(get_trainer(r).train(r, [0], ctx(tmp_path))))
    assert out.arrays["logits"].shape == (40, 10) and out.status == "ok"


def test_missing_data_is_unavailable(tmp_path: Path) -> None:
    with pytest.raises(DataUnavailable, match="--data-dir"):
        get_trainer(TINY).check_data(TINY, ctx(tmp_path))


def test_divergence_is_data() -> None:
    ok = Run(torch.zeros(4, 10), torch.zeros(4, dtype=torch.long), torch.tensor(False), torch.tensor(1.0))
    assert not ok.diverged() and ok.test_acc() == 1.0
    assert Run(ok.logits, ok.labels, torch.tensor(True), ok.train_loss).diverged()
    assert Run(torch.full((4, 10), float("nan")), ok.labels, torch.tensor(False), ok.train_loss).diverged()


def test_compile_option_reaches_train_context(pytester: pytest.Pytester, fake_trainer) -> None:
    seen: list[bool] = []
    train = fake_trainer.train

    def recording(recipe, seeds, c):
        seen.append(c.compile)
        return train(recipe, seeds, c)

    fake_trainer.train = recording
    pytester.makepyfile(test_c=textwrap.dedent("""
        from harness import Ensemble, Recipe
        from harness.law import lrlaw
        from harness.stats import CHECK, PASS, LawResult

        @lrlaw("c", tiers={t: t for t in ("smoke", "gpu", "paper")}, reads=lambda tier: {"r": Ensemble(Recipe(trainer="fake", dataset="none", model="none"), 2)})
        def test_c(law):
            n = law.runs("r").n
            assert law.runs("r").seconds >= 0  # reads the runs' rows: the report lists where they were trained
            law.check(LawResult("n", n, (n, n), (2, 2), "in", PASS if n == 2 else "fail", n=n, kind=CHECK))
    """))
    store = pytester.path / "store"
    for flag in ([], ["--compile"]):
        # one store: a compiled session must not reuse the eager session's runs (other keys), so it trains
        result = pytester.runpytest_inprocess("-p", "no:cacheprovider", "--gpus", "0", "--workers", "1", "--store", str(store),
                                              "--report-dir", str(pytester.path / "results"), *flag)
        result.assert_outcomes(passed=1)
    assert seen == [False, True]
    report = json.loads(sorted((pytester.path / "results").glob("*/report.json"))[-1].read_text())
    assert report["entries"][0]["device_classes"] == [f"cpu:{platform.machine()}"]  # where its runs were trained
    assert "--compile" in "".join(pytester.runpytest_inprocess("--help").outlines)
    assert TRAINERS["airbench"].name == "airbench"
