"""Law `linearity` — the learning rate has a locally linear effect on mean network outputs.

Source: seed 000 (Keller Jordan, "a locally linear effect of the learning rate").
Let f̄_η be the mean output over repeated runs trained with LR η. Then

    f̄_{η+b} ≈ f̄_η + (b/a)·(f̄_{η+a} − f̄_η)     for small a, b.

The seed measures R² = 0.9991 between the two sides at N = 40 000 runs per LR,
η = 0.4, a = 0.1, b = 0.2 on CIFAR-10 test logits, and reports that the law
"holds whenever b/η and a/η are relatively small. It begins to break down when
you increase either much beyond 0.5", and that the correlation rises as a/η and
b/η shrink.

What is asserted, per (η, a, b) point, on the N→∞ values estimated by
``harness.stats.linearity_estimate`` (cross-fitted over pairs of different runs,
so finite-N noise neither deflates R² nor biases the slope):

* small ratios (a/η, b/η ≤ 0.5): R²∞ > R2_MIN[tier] and slope∞ within
  ±SLOPE_REL_TOL of b/a, each with its 95% bootstrap CI wholly on the right side;
* breakdown: R²∞ at a/η = 1, b/η = 2 is *lower* than at (0.25, 0.5), a paired
  bootstrap test on the same η runs (CI of the difference above 0).

Findings — what the law measured at each tier, and on which data: ``docs/findings.md`` (linearity).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import pytest

from harness import Ensemble, Recipe
from harness.law import lrlaw
from harness.stats import CLAIM, MAX_GROUPS, LawResult
from harness.stats.linearity import bootstrap_weights, linearity_estimate_chunks, paired_difference_ci
from harness.trainers.recipes import AIRBENCH94

# The seed's R² = 0.9991 is a raw (finite-N, hence lower-bound) value on CIFAR-10
# with its airbench net; the gpu/paper tiers hold the law to 0.999. A 3-layer MLP
# is a different function class, so the smoke tier asks only that the linear term
# explain 99% of the variance of the response. It can fail: at the breakdown point R²∞ ≈ 0.79 on MNIST-1D.
# Provenance: smoke set after the smoke data were seen (the --seed-base table tests it); gpu/paper: the
# seed's 0.999, set before.
R2_MIN = {"smoke": 0.99, "gpu": 0.999, "paper": 0.999}
# The seed states the law with "≈" and reports no slope. We call a slope within
# ±10% of b/a "≈ b/a": a second-order term (b−a)·f''/(2f') of up to 10% at
# b/η ≤ 0.5, the edge of the regime the seed says the law covers.
# Provenance: set after the smoke data were seen (not shown to predate them); the --seed-base table tests it.
SLOPE_REL_TOL = 0.10


@dataclass(frozen=True)
class Point:
    eta: float
    a: float
    b: float

    @property
    def id(self) -> str:
        return f"eta{self.eta:g}-a{self.a:g}-b{self.b:g}"

    def ensembles(self, base: Ensemble, lr_unit: float, prefix: str = "") -> dict[str, Ensemble]:
        """η, η+a, η+b in units of ``lr_unit`` (a recipe normalises its floats: 0.4 + 0.2 is 0.6)."""
        lrs = {"eta": self.eta, "a": self.eta + self.a, "b": self.eta + self.b}
        return {prefix + k: Ensemble(base.recipe.replace(lr=lr_unit * lr), base.n) for k, lr in lrs.items()}


SMALL = Point(0.4, 0.1, 0.2)      # the seed's Figure 1 point: a/η = 0.25, b/η = 0.5
FINE = Point(0.4, 0.05, 0.1)      # half the ratios: should hold at least as well
LARGE = Point(0.4, 0.4, 0.8)      # a/η = 1, b/η = 2: where the seed says the law breaks

class Tier(NamedTuple):
    """A tier of the law: the ensemble whose recipe each LR varies, and the unit the η values above are multiples of."""

    base: Ensemble
    lr_unit: float


TIERS = {
    # MNIST-1D's real 4000/1000 split (logits on its 1000 test signals)
    "smoke": Tier(Ensemble(Recipe(trainer="mlp", dataset="mnist1d", model="mlp", lr=0.4, batch_size=64, steps=400,
                                  schedule="linear_decay", probes=("logits",), options={"n_train": 0, "n_test": 0}), 512),
                  lr_unit=1.0),
    # airbench94 on CIFAR-10 test logits (N × 10000 × 10 per LR, fp16). lr_unit = default/0.5, so η+a is
    # the recipe's default LR and η, η+a, η+b stand in the seed's 0.4 : 0.5 : 0.6. gpu N: budget 15 GPU-min;
    # `-k linearity` needs 6 distinct LRs (0.4, 0.45, 0.5, 0.6, 0.8, 1.2 units): 6 × 64 runs × 1.96 s (airbench
    # measured on an H200) = 753 s ≈ 12.5 min. Deciding costs far more: at 64 runs per LR the H200 session read
    # R²∞ 0.39 [−8.1, 8.6], which projects (harness.stats.projection, N^-1/2) to ~70 000 runs per LR (~116
    # GPU-hours at 1.96 s/run), the paper tier's scale; `--budget` looks past 64 within a budget you set.
    "gpu": Tier(Ensemble(AIRBENCH94, 64), lr_unit=AIRBENCH94.lr / 0.5),
    # the seed's protocol: 40 000 runs per LR (6 × 40 000 × ~2.3 s ≈ 150 GPU-hours)
    "paper": Tier(Ensemble(AIRBENCH94, 40_000), lr_unit=AIRBENCH94.lr / 0.5),
}


def _estimate(law, prefix: str, point: Point, ok: np.ndarray, **kw):
    """The N→∞ estimate from the store's runs, streamed in chunks of seeds (memory flat in N)."""
    chunks = law.chunks("logits", *(prefix + k for k in ("eta", "a", "b")), mask=ok)
    return linearity_estimate_chunks(chunks, int(ok.sum()), point.a, point.b, **kw)


def _scatter(law, name: str, point: Point, est) -> None:
    x, y = est.mean_dx, est.mean_dy
    with law.figure(name, figsize=(5, 5), xlabel=f"f̄(η+a) − f̄(η)   [η={point.eta:g}, a={point.a:g}]",
                    ylabel=f"f̄(η+b) − f̄(η)   [b={point.b:g}]", legend=8,
                    title=f"R² raw {est.r2_raw:.4f} (N={est.n}), R²∞ {est.r2:.4f}") as (fig, ax):
        ax.scatter(x, y, s=1, alpha=0.5)
        lim = np.array([x.min(), x.max()])
        ax.plot(lim, point.b / point.a * lim, "r-", lw=1, label=f"law: slope b/a = {point.b / point.a:g}")
        ax.plot(lim, est.slope * lim, "k--", lw=1, label=f"fit N→∞: slope {est.slope:.3f}")


def results_of(est, point: Point, tier: str) -> list[LawResult]:
    """The two assertions of a small-ratio point, from its estimate (tests feed it synthetic ensembles')."""
    k = point.b / point.a
    extra = {"r2_raw": est.r2_raw, "r2_law": est.r2_law, "r2_law_ci": list(est.ci("r2_law")), "b_over_a": k}
    return [LawResult("r2_inf", est.r2, est.ci("r2"), R2_MIN[tier], ">", n=est.n,
                      extra=extra, kind=CLAIM),
            LawResult("slope_inf", est.slope, est.ci("slope"), (k * (1 - SLOPE_REL_TOL),
                      k * (1 + SLOPE_REL_TOL)), "in", n=est.n, extra={"b_over_a": k}, kind=CLAIM)]


#: (tier, point id) where the law did not hold, a recorded finding (`law.known_failure`)
FAILS_AT = {("smoke", SMALL.id): "on MNIST-1D R²∞ ≈ 0.971, slope∞ ≈ 1.60 (b/a = 2)",
            ("smoke", FINE.id): "on MNIST-1D slope∞ ≈ 1.77 (b/a = 2), R²∞ ≈ 0.991"}


@lrlaw("linearity", tiers=TIERS, reads=lambda tier, point: point.ensembles(tier.base, tier.lr_unit))
@pytest.mark.parametrize("point", [SMALL, FINE], ids=lambda p: f"linearity-{p.id}")
def test_linearity(law, point: Point) -> None:
    law.known_failure(FAILS_AT.get((law.tier, point.id)))
    est = _estimate(law, "", point, law.ok_seeds("eta", "a", "b"))
    results = results_of(est, point, law.tier)
    law.note(f"raw R² at N={est.n}: {est.r2_raw:.5f} (the seed's statistic); N→∞: {est.r2:.5f}; "
             f"law-R² with the prescribed slope b/a: {est.r2_law:.5f}")
    _scatter(law, "scatter", point, est)
    law.check(*results)


@lrlaw("linearity", tiers=TIERS, reads=lambda tier: {**SMALL.ensembles(*tier, prefix="small_"),
                                                  **LARGE.ensembles(*tier, prefix="large_")})
def test_linearity_breakdown(law) -> None:
    """R²∞ at a/η = 1, b/η = 2 is lower than at a/η = 0.25, b/η = 0.5 (paired bootstrap)."""
    ok = law.ok_seeds(*(p + k for p in ("small_", "large_") for k in ("eta", "a", "b")))
    w = bootstrap_weights(min(MAX_GROUPS, int(ok.sum())), rng=1)
    small = _estimate(law, "small_", SMALL, ok, boot_weights=w)
    large = _estimate(law, "large_", LARGE, ok, boot_weights=w)
    diff, ci = paired_difference_ci(small, large, "r2")
    ci_s, ci_l = small.ci("r2"), large.ci("r2")
    law.note(f"R²∞ small ratio {small.r2:.5f} [{ci_s[0]:.5f}, {ci_s[1]:.5f}], "
             f"large ratio {large.r2:.5f} [{ci_l[0]:.5f}, {ci_l[1]:.5f}]; "
             f"slope∞ small {small.slope:.3f}, large {large.slope:.3f} (b/a = 2 for both)")
    _scatter(law, "scatter-large", LARGE, large)
    law.check(LawResult("r2_inf_small_minus_large", diff, ci, 0.0, ">", n=small.n,
                        extra={"r2_small": small.r2, "r2_large": large.r2}, kind=CLAIM))
