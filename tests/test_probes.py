"""Probes of scale-invariant layers, and the trainer that records them.

The probes must only *read*: the same seed trained with and without them ends
with bitwise the same weights. A seed must also be the same run in any chunk.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch

from harness import Recipe
from harness.trainers.models.convnets import model_spec, stack_params
from harness.trainers.probes import LayerStats
from harness.recipe import RecipeError
from harness.trainers import TrainContext, get_trainer

TINY = Recipe(trainer="scale_invariant", dataset="templates", model="bn_convnet", lr=0.5, weight_decay=0.02,
              momentum=0.9, batch_size=16, steps=30,
              options={"channels": 3, "classes": 4, "n_train": 256, "n_test": 64, "widths": (4, 8), "strides": (1, 2),
                       "probe_every": 3, "snapshot_every": 10})
ALL_PROBES = ("final_weights", "layer_stats", "snapshots", "loss", "logits")


def _train(recipe: Recipe, seeds) -> dict[int, dict[str, np.ndarray]]:
    return {r.seed: r.arrays for r in get_trainer(recipe).train(recipe, list(seeds), TrainContext())}


@pytest.mark.parametrize("optimizer", ["sgd", "lars"])
def test_probes_do_not_change_the_trajectory(optimizer):
    r = TINY.replace(optimizer=optimizer, options={"sgd_lr": 0.1})
    bare = _train(r.replace(probes=("final_weights",)), [0, 1])
    probed = _train(r.replace(probes=ALL_PROBES), [0, 1])
    for s in (0, 1):
        assert np.array_equal(bare[s]["final_weights"], probed[s]["final_weights"])
        assert probed[s]["si_step"].shape == (10, 2)  # steps 0, 3, …, 27 × 2 conv layers


@pytest.mark.parametrize("recipe", [
    TINY.replace(options={"widths": (8, 16, 16), "strides": (1, 2, 1)}),
    TINY.replace(options={"widths": (16, 32), "strides": (1, 2)}),
    Recipe(trainer="scale_invariant", dataset="teacher", model="bn_mlp", lr=0.5, weight_decay=0.02, batch_size=16,
           steps=30, options={"n_train": 256, "n_test": 64}),
], ids=["smoke-widths", "wider", "mlp"])
def test_a_seed_is_the_same_run_in_any_chunk(recipe):
    r = recipe.replace(probes=("final_weights",))
    chunks = [_train(r, seeds) for seeds in ([1], [0, 1, 2], list(range(8)), [1, 9, 10, 11, 12, 13, 14, 15, 16])]
    for c in chunks[1:]:
        assert np.array_equal(chunks[0][1]["final_weights"], c[1]["final_weights"])
    assert not np.array_equal(chunks[1][0]["final_weights"], chunks[1][1]["final_weights"])


def test_layer_stats_match_direct_computation():
    g = torch.Generator().manual_seed(0)
    ws = [torch.randn(3, 4, 5, generator=g, dtype=torch.float64)]
    grads = [torch.randn(3, 4, 5, generator=g, dtype=torch.float64) for _ in range(3)]
    lr, wd = 0.3, 0.05
    stats = LayerStats(["conv0"], every=2, weight_decay=wd)
    for t, gr in enumerate(grads):
        stats.observe(t, lr, ws, [gr])
    out = stats.arrays()
    assert list(out[0]["si_steps"]) == [0, 2]
    for i in range(3):
        w, g0, g2 = ws[0][i].flatten(), grads[0][i].flatten(), grads[2][i].flatten()
        a = out[i]
        np.testing.assert_allclose(a["si_w_norm2"][:, 0], [w @ w] * 2)
        np.testing.assert_allclose(a["si_g_norm"][:, 0], [g0.norm(), g2.norm()])
        np.testing.assert_allclose(a["si_cos_wg"][1, 0], (w @ g2) / (w.norm() * g2.norm()))
        np.testing.assert_allclose(a["si_step"][0, 0], lr * g0.norm() / w.norm())
        np.testing.assert_allclose(a["si_shrink"][0, 0], 2 * lr * wd * (w @ w))
        np.testing.assert_allclose(a["si_growth"][0, 0], lr**2 * (g0 @ g0))
        assert np.isnan(a["si_grad_ema_corr"][0, 0])  # no earlier gradient at step 0
        v = 0.9 * g0 + grads[1][i].flatten()  # the EMA before step 2
        np.testing.assert_allclose(a["si_grad_ema_corr"][1, 0], (g2 @ v) / (g2.norm() * v.norm()))


@pytest.mark.parametrize("model,invariant", [("bn_convnet", True), ("plain_convnet", False), ("bn_mlp", True)])
def test_conv_weights_are_scale_invariant_exactly_when_followed_by_bn(model, invariant):
    in_ch, size = (32, 1) if model == "bn_mlp" else (3, 8)
    spec = model_spec(model, in_ch, 4, bn_eps=0.0)
    p = stack_params([spec.init(s, torch.float64) for s in (0, 1)], "cpu")
    x = torch.randn(2, 16, in_ch, size, size, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    scaled = dict(p, conv1=3.0 * p["conv1"])
    same = torch.allclose(spec.forward(p, x), spec.forward(scaled, x), rtol=1e-6, atol=1e-6)
    assert same == invariant
    assert spec.invariant_names == (spec.conv_names if invariant else [])


def test_trainer_rejects_unknown_options_and_bad_combinations():
    t = get_trainer(TINY)
    for bad in (TINY.replace(options={"widht": 3}), TINY.replace(optimizer="adam"),
                TINY.replace(optimizer="gd", momentum=0.0), TINY.replace(optimizer="lars"),
                TINY.replace(dataset="teacher"), TINY.replace(options={"lr_points": ((5, 1.0), (2, 1.0))})):
        with pytest.raises(RecipeError):
            t.validate(bad)


def test_full_batch_gd_records_the_full_training_loss():
    r = TINY.replace(optimizer="gd", momentum=0.0, batch_size=256, steps=5, probes=("loss",))
    runs = _train(r, [0])
    assert runs[0]["loss"].shape == (5,) and np.all(np.isfinite(runs[0]["loss"]))
