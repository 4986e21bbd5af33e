"""harness.trainers.optim: SGD as PyTorch's, LARS as seed 001 writes it, full-batch GD, schedules."""
from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings, strategies as st

from harness.trainers.optim import check_points, gd_step, lars_step, lr_at, sgd_step


def _tensors(seed: int, shapes=((3, 4, 5), (3, 7))) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(*s, generator=g, dtype=torch.float64) for s in shapes]


@settings(max_examples=20, deadline=None)
@given(seed=st.integers(0, 10_000), lr=st.floats(1e-3, 1.0), mom=st.sampled_from([0.0, 0.5, 0.9]),
       wd=st.sampled_from([0.0, 1e-3, 0.1]))
def test_sgd_step_matches_torch_sgd(seed, lr, mom, wd):
    params = _tensors(seed)
    ref = [p.clone().requires_grad_() for p in params]
    opt = torch.optim.SGD(ref, lr=lr, momentum=mom, weight_decay=wd)
    bufs = [torch.zeros_like(p) for p in params]
    for step in range(4):
        grads = _tensors(seed + 100 + step)
        sgd_step(params, grads, bufs, lr=lr, momentum=mom, weight_decay=wd)
        for r, g in zip(ref, grads):
            r.grad = g.clone()
        opt.step()
    for p, r in zip(params, ref):
        torch.testing.assert_close(p, r.detach(), rtol=1e-12, atol=1e-12)


def test_gd_step_is_decay_then_gradient():
    w, g = _tensors(1), _tensors(2)
    expect = [(1 - 0.3 * 0.2) * a - 0.3 * b for a, b in zip(w, g)]
    gd_step(w, g, lr=0.3, weight_decay=0.2)
    for a, b in zip(w, expect):
        torch.testing.assert_close(a, b)


def test_mask_freezes_models():
    w, g = _tensors(3), _tensors(4)
    before = [p.clone() for p in w]
    mask = torch.tensor([True, False, True])
    sgd_step(w, g, None, lr=0.1, weight_decay=0.1, mask=mask)
    for p, b in zip(w, before):
        assert torch.equal(p[1], b[1]) and not torch.equal(p[0], b[0])


def test_lars_step_moves_each_layer_and_model_by_lr_times_its_norm():
    """Without momentum the seed's eq. (4) step has norm λ_LARS·|w|, per tensor and per stacked model."""
    w, g = _tensors(5), _tensors(6)
    before = [p.clone() for p in w]
    lars_step(w, g, None, lr=0.05)
    for p, b in zip(w, before):
        step = (p - b).flatten(1).norm(dim=1)
        torch.testing.assert_close(step, 0.05 * b.flatten(1).norm(dim=1))


def test_lars_direction_is_minus_gradient():
    w, g = _tensors(7, ((2, 10),)), _tensors(8, ((2, 10),))
    before = w[0].clone()
    lars_step(w, g, None, lr=0.1)
    d = before - w[0]
    cos = (d * g[0]).sum(1) / (d.norm(dim=1) * g[0].norm(dim=1))
    torch.testing.assert_close(cos, torch.ones(2, dtype=torch.float64))


def _si_grad(w: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Gradient of the scale-invariant loss L(w) = -cos(w, target) per stacked model."""
    w = w.clone().requires_grad_()
    loss = -((w * target).sum(1) / w.norm(dim=1)).sum()
    return torch.autograd.grad(loss, w)[0]


@pytest.mark.parametrize("mom", [0.0, 0.9])
def test_lars_trajectory_is_scale_invariant(mom):
    """On a scale-invariant loss LARS from c·w₀ stays c times the run from w₀ (SGD does not)."""
    target = _tensors(9, ((2, 6),))[0]
    w1 = _tensors(10, ((2, 6),))[0]
    w2 = 3.0 * w1.clone()
    b1, b2 = [torch.zeros_like(w1)], [torch.zeros_like(w2)]
    for _ in range(20):
        lars_step([w1], [_si_grad(w1, target)], b1, lr=0.1, momentum=mom)
        lars_step([w2], [_si_grad(w2, target)], b2, lr=0.1, momentum=mom)
    torch.testing.assert_close(w2, 3.0 * w1, rtol=1e-10, atol=1e-12)
    s1, s2 = 3.0 * _tensors(10, ((2, 6),))[0], _tensors(10, ((2, 6),))[0]
    for _ in range(20):
        sgd_step([s1], [_si_grad(s1, target)], None, lr=0.1)
        sgd_step([s2], [_si_grad(s2, target)], None, lr=0.1)
    assert not torch.allclose(s1, 3.0 * s2, rtol=1e-3)


def test_lars_zero_gradient_gives_zero_step_and_weight_decay_is_decoupled():
    w = _tensors(11, ((2, 5),))
    before = w[0].clone()
    lars_step(w, [torch.zeros_like(w[0])], None, lr=0.1)
    assert torch.equal(w[0], before)
    lars_step(w, [torch.zeros_like(w[0])], None, lr=0.1, weight_decay=0.5)
    torch.testing.assert_close(w[0], (1 - 0.05) * before)


def test_schedules():
    assert lr_at("constant", 0.4, 7, 10) == 0.4
    assert math.isclose(lr_at("linear_decay", 0.4, 5, 10), 0.2)
    pts = ((0, 4.0), (100, 1.0))
    assert lr_at("piecewise", 0.25, 99, 600, pts) == 1.0
    assert lr_at("piecewise", 0.25, 100, 600, pts) == 0.25
    assert lr_at("piecewise", 0.25, 3, 600, ((10, 2.0),)) == 0.25
    with pytest.raises(ValueError):
        lr_at("cosine", 0.1, 0, 10)


@pytest.mark.parametrize("bad", [((10, 1.0), (5, 2.0)), ((0, -1.0),), ((1, 2, 3),), ((3, 1.0), (3, 2.0))])
def test_check_points_rejects_bad_schedules(bad):
    with pytest.raises(ValueError):
        check_points(bad)


def test_step_schedule_divides_at_each_milestone_and_unknown_names_are_refused():
    from harness.trainers.optim import lr_at, lr_factor

    got = [lr_at("step", 0.5, s, 100, milestones=(0.5, 0.75), gamma=0.1) for s in (0, 49, 50, 74, 75, 99)]
    assert got == pytest.approx([0.5, 0.5, 0.05, 0.05, 0.005, 0.005])
    assert lr_factor("step", 99, 100) == 1.0  # no milestones: constant
    with pytest.raises(ValueError, match="unknown schedule 'cosine'"):
        lr_factor("cosine", 0, 10)
