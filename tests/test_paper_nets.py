"""The MNIST-1D paper's nets (``paper_nets``) and the agreement statistic of the ``reference`` law."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from harness.recipe import Recipe, RecipeError
from harness.stats import FAIL, INCONCLUSIVE, PASS
from harness.stats.reference import agreement
from harness.trainers import TrainContext, get_trainer
from harness.trainers import paper_nets
from harness.trainers.paper_nets import forward, init_params

OPTS = {"hidden": 100, "channels": 25}
TINY = Recipe(trainer="paper_nets", dataset="mnist1d", model="mnist1d_mlp", optimizer="adam", lr=1e-2,
              batch_size=100, steps=300)


def reference_forward(model: str, p: list[torch.Tensor], x: torch.Tensor) -> torch.Tensor:
    """The repository's LinearBase / MLPBase / ConvBase, layer by layer with torch.nn.functional, for one seed."""
    if model == "mnist1d_logreg":
        return F.linear(x, p[0].T, p[1])
    if model == "mnist1d_mlp":
        h = F.relu(F.linear(x, p[0].T, p[1]))
        h = h + F.relu(F.linear(h, p[2].T, p[3]))
        return F.linear(h, p[4].T, p[5])
    h = x[:, None, :]
    for i in range(3):
        h = F.relu(F.conv1d(h, p[2 * i], p[2 * i + 1], stride=2, padding=1))
    return F.linear(h.reshape(len(x), -1), p[6].T, p[7])


@pytest.mark.parametrize("model", ["mnist1d_logreg", "mnist1d_mlp", "mnist1d_cnn"])
def test_batched_nets_compute_the_papers_nets_for_every_seed(model):
    per_seed = [init_params(model, s, OPTS) for s in range(3)]
    stacked = [torch.stack([q[i] for q in per_seed]) for i in range(len(per_seed[0]))]
    x = torch.randn(7, 40)
    out = forward(model, stacked, x)
    for s, q in enumerate(per_seed):
        torch.testing.assert_close(out[s], reference_forward(model, q, x), rtol=1e-5, atol=1e-5)


def unfold_conv(h: torch.Tensor, w: torch.Tensor, b: torch.Tensor, stride: int = 2, pad: int = 1) -> torch.Tensor:
    """The trainer's convolution as it was before the strided slices: ``unfold`` patches."""
    m, bsz, _, c = h.shape
    patches = F.pad(h, (0, 0, pad, pad)).unfold(2, w.shape[-1], stride)
    out = torch.bmm(patches.reshape(m, bsz * patches.shape[2], -1), w.flatten(2).transpose(1, 2)) + b[:, None]
    return out.view(m, bsz, patches.shape[2], -1)


def cnn_steps(monkeypatch: pytest.MonkeyPatch, conv, steps: int = 20, foreach: bool = False) -> list[torch.Tensor]:
    """Parameters of 4 CNN seeds after ``steps`` Adam steps with ``conv`` as the trainer's convolution."""
    monkeypatch.setattr(paper_nets, "_conv", conv)
    params = [torch.stack(q).requires_grad_() for q in zip(*(init_params("mnist1d_cnn", s, OPTS) for s in range(4)))]
    opt = torch.optim.Adam(params, lr=1e-2, foreach=foreach)
    g = torch.Generator().manual_seed(0)
    for _ in range(steps):
        x, y = torch.randn(16, 40, generator=g), torch.randint(10, (16,), generator=g)
        loss = F.cross_entropy(forward("mnist1d_cnn", params, x).flatten(0, 1), y.repeat(4))
        opt.zero_grad()
        loss.backward()
        opt.step()
    return [p.detach() for p in params]


def test_strided_slice_patches_train_bitwise_as_unfold(monkeypatch):
    ours, unfolded = cnn_steps(monkeypatch, paper_nets._conv), cnn_steps(monkeypatch, unfold_conv)
    assert all(torch.equal(a, b) for a, b in zip(ours, unfolded))


def test_foreach_adam_trains_bitwise_as_the_single_tensor_loop(monkeypatch):
    """The trainer asks for foreach Adam on the CPU (faster), where PyTorch's default is the loop."""
    assert all(torch.equal(a, b) for a, b in zip(cnn_steps(monkeypatch, paper_nets._conv, foreach=True),
                                                 cnn_steps(monkeypatch, paper_nets._conv, foreach=False)))


def test_control_bitwise_comparison_sees_a_rounding_change(monkeypatch):
    """The comparison above can fail: the unfold convolution off by one rounding (× (1 + 2⁻²³)) differs."""
    def reordered(h, w, b, stride=2, pad=1):
        return unfold_conv(h, w, torch.zeros_like(b), stride, pad) * 1.0000001 + b[:, None, None]
    ours, other = cnn_steps(monkeypatch, paper_nets._conv), cnn_steps(monkeypatch, reordered)
    assert not all(torch.equal(a, b) for a, b in zip(ours, other))


def test_default_init_is_pytorchs_uniform_bound():
    p = init_params("mnist1d_cnn", 0, OPTS)
    assert p[0].abs().max() <= 1 / np.sqrt(5) and p[0].abs().max() > 0.9 / np.sqrt(5)  # conv1: fan_in 1·5
    assert p[6].shape == (125, 10)  # 25 channels × 5 positions, as ConvBase's linear_in


def test_a_seed_is_the_same_run_alone_or_in_a_chunk_and_learns():
    alone = list(get_trainer(TINY).train(TINY, [1], TrainContext()))[0]
    chunk = list(get_trainer(TINY).train(TINY, [0, 1], TrainContext()))[1]
    np.testing.assert_allclose(alone.arrays["logits"], chunk.arrays["logits"], rtol=1e-4, atol=1e-4)
    assert alone.metrics["test_acc"] > 30  # 300 steps: well above chance (10%)


def test_paper_nets_reject_other_settings():
    for change in (dict(dataset="digits"), dict(optimizer="sgd"), dict(model="mlp"), dict(options={"width": 3})):
        with pytest.raises(RecipeError):
            get_trainer(TINY.replace(**change))


def test_agreement_passes_near_fails_far_and_is_inconclusive_at_the_edge():
    rng = np.random.default_rng(0)
    assert agreement(68 + rng.normal(0, 1, 8), 68, 5, statistic="acc").decision == PASS
    assert agreement(50 + rng.normal(0, 1, 8), 68, 5, statistic="acc").decision == FAIL
    assert agreement(80 + rng.normal(0, 1, 8), 68, 5, statistic="acc").decision == FAIL
    assert agreement(63 + rng.normal(0, 2, 8), 68, 5, statistic="acc").decision == INCONCLUSIVE


def test_a_broken_trainer_fails_the_reference():
    """Negative control: a net that does not learn (LR 0) is far from the paper's 68% and must fail."""
    broken = TINY.replace(lr=0.0, steps=5)
    acc = [r.metrics["test_acc"] for r in get_trainer(broken).train(broken, list(range(8)), TrainContext())]
    result = agreement(acc, 68.0, 5.0, statistic="acc")
    assert result.decision == FAIL and result.extra["reported"] == 68.0
    with pytest.raises(ValueError):
        agreement(acc, 68.0, 0.0, statistic="acc")
