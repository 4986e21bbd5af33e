"""Law `small_lr` — a 100× smaller initial LR, all else fixed, reaches the baseline's accuracy given ≈10× more training.

Source: seed 002 (Arora, Li, Lyu, "Intrinsic learning rate"), "(Against CW 2)
Small LR can generalize equally well as large LR": a ResNet on CIFAR-10 with
the normal schedule vs "a schedule with 100 times smaller initial LR. The
latter matches performance of baseline after one more LR decay! Note it needs
5000 epochs which is 10x higher! (Batch size is 128, WD is 0.0005, and LR is
divided by 10 for each decay.)" — "even when no other hyperparameter changes".
The seed's mechanism is normalisation + weight decay: for scale-invariant
weights the dynamics run on the clock of the intrinsic LR ηλ, and a small-η
run catches up once WD has shrunk its weights (raised its effective LR).

Protocol (issue 6): the baseline schedule (LR η₀, ÷10 at 1/2 and 3/4 of T
steps) vs the *same* schedule with η₀/100, trained for 10·T steps (decays at
the same fractions), everything else fixed; N seeds, paired by seed (same init
and data order).

* ``small_lr-noninferior``: final test accuracy, small-LR-long minus baseline,
  paired over seeds; non-inferior if the lower end of its 95% interval lies
  above −NONINFERIORITY_MARGIN.
* ``small_lr-behind_short``: the claim is about time: with the baseline's
  budget T the small-LR run is *behind* (paired difference < 0).

The smoke tier maps the seed's clock, not its step counts: the seed's baseline
runs ηλ·T ≈ 0.1 · 5e-4 · (500 epochs · 391 steps) ≈ 9.8 intrinsic time units
and the small-LR run ≈ 0.98. A CPU cannot afford 2·10⁶ steps, so the smoke
tier keeps η₀ = 0.1 and raises λ to 0.1, with T = 1000 (ηλT = 10, small run
1.0): the fully scale-invariant MLP of ``harness.models.small_nets``
(``si_mlp``: weight-normalised hidden layers, top layer frozen — the seed's
stated condition) on scikit-learn's digits (real 8×8 handwritten digits,
flattened; the whole 1500/297 split): an MLP, so an image set it can take.

Findings at the smoke tier on digits (`pytest laws/ -k small_lr --tier smoke`,
N = 8; figures in the report): both claims hold — the baseline ends near 97%,
the small-LR run with the same budget is ≈ 3 points behind (CI below 0) and
with 10× the steps it is non-inferior (≈ +0.7 points, CI above the −1-point
margin). On the synthetic teacher task used before, the non-inferiority point
was inconclusive; those measurements follow: the baseline ends at 77.0% test accuracy;
the small-LR run with the same budget at 54.2% (behind: −22.8 points, CI
[−24.8, −20.9], as the claim's "needs 10× more" implies); with 10× the steps
it reaches 73% within its first T steps and ends at 75.7%: −1.35 points, 95%
CI [−1.77, −0.94] against the −1-point margin — *inconclusive*, with the point
estimate on the wrong side: under the same schedule the small-LR run does not
clearly match the baseline (the seed's own figure needs "one more LR decay"
for the match); more seeds would likely turn this into a fail. With the seed's
own λ = 5e-4 (intrinsic clock not matched) the gap was −8.7 points.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from harness import Ensemble, Recipe
from harness.law import NotAtThisTier, lrlaw
from harness.stats import CLAIM
from harness.stats.schedules import curve_band, noninferiority_result, paired_difference_result

#: seed 002: "100 times smaller initial LR"
LR_FACTOR = 0.01
#: seed 002: "it needs 5000 epochs which is 10x higher"
LONG_FACTOR = 10
#: "matches performance": read as within 1 percentage point of test accuracy, the resolution at
#: which CIFAR-10 accuracies are conventionally called equal; fixed before any run, at every tier
# Provenance: before any run (see above).
NONINFERIORITY_MARGIN = 0.01


@dataclass(frozen=True)
class TierConfig:
    base: Recipe
    n: int
    curve_points: int = 10  # accuracy evaluations per run, at every budget

    def recipes(self) -> dict[str, Recipe]:
        b = self.base
        every = b.steps // self.curve_points
        small = b.replace(lr=b.lr * LR_FACTOR)
        return {
            "base": b.replace(options={"eval_every": every}),
            "small_short": small.replace(options={"eval_every": every}),
            "small_long": small.replace(steps=b.steps * LONG_FACTOR, options={"eval_every": every * LONG_FACTOR}),
        }


TIERS: dict[str, TierConfig] = {
    "smoke": TierConfig(
        # scikit-learn's digits (real 8×8 handwritten digits, flattened), the whole 1500/297 split
        base=Recipe(trainer="sched", dataset="digits", model="si_mlp", optimizer="sgd", lr=0.1, momentum=0.9,
                    weight_decay=0.1, batch_size=64, steps=1000, schedule="step",
                    options={"n_train": 0, "n_test": 0, "width": 64, "depth": 3,
                             "milestones": (0.5, 0.75), "gamma": 0.1}),
        n=8,
    ),
    # CIFAR-10, fully scale-invariant conv net (BN without affine, head frozen), the seed's
    # batch size, momentum and ÷10 decays; λ raised so that ηλT = 10 as in the seed (untested: no GPU lent).
    "gpu": TierConfig(
        base=Recipe(trainer="sched", dataset="cifar10", model="si_convnet", optimizer="sgd", lr=0.1, momentum=0.9,
                    weight_decay=0.05, batch_size=128, steps=2000, schedule="step",
                    options={"n_train": 0, "n_test": 10_000, "widths": (32, 64, 64),
                             "milestones": (0.5, 0.75), "gamma": 0.1}),
        n=4,
    ),
}


def tier_config(tier: str) -> TierConfig:
    if tier not in TIERS:
        raise NotAtThisTier(f"small_lr has no {tier} configuration (the gpu tier's is the largest)")
    return TIERS[tier]


def needs(tier: str, names: tuple[str, ...]) -> dict[str, Ensemble]:
    cfg = tier_config(tier)
    recipes = cfg.recipes()
    return {k: Ensemble(recipes[k], cfg.n) for k in names}


def _final(law, name: str) -> np.ndarray:
    runs = law.runs(name)
    return np.where(runs.status == "ok", runs.metric("test_acc"), np.nan)


def _curves_plot(law, steps: int) -> None:
    with law.figure("accuracy", figsize=(6, 4)) as (fig, ax):
        for i, (name, label) in enumerate((("base", "baseline η₀"), ("small_short", "η₀/100, same budget"),
                                           ("small_long", f"η₀/100, {LONG_FACTOR}× budget"))):
            runs = law.runs(name)
            x = runs.array("curve_steps")[0] / steps
            mean, lo, hi = curve_band(runs.array("curve_acc"))
            ax.plot(x, mean, color=f"C{i}", label=label, marker=".")
            ax.fill_between(x, lo, hi, color=f"C{i}", alpha=0.2)
        ax.set_xscale("symlog", linthresh=0.1)
        ax.set_xlabel("training steps / baseline budget T")
        ax.set_ylabel("test accuracy (mean, 10–90% of seeds)")
        ax.set_title("seed 002: 100× smaller initial LR, same schedule shape", fontsize=9)
        ax.legend(fontsize=8)


@lrlaw("small_lr", needs=lambda tier: needs(tier, ("base", "small_short", "small_long")))
def test_small_lr_noninferior(law) -> None:
    base, long_ = _final(law, "base"), _final(law, "small_long")
    _curves_plot(law, tier_config(law.tier).base.steps)
    law.note(f"final test accuracy: baseline {np.nanmean(base):.4f}, small LR at {LONG_FACTOR}× budget "
             f"{np.nanmean(long_):.4f}")
    law.check(noninferiority_result("small_lr", "small_long_minus_base_acc", long_, base, NONINFERIORITY_MARGIN,
                                   kind=CLAIM))


@lrlaw("small_lr", needs=lambda tier: needs(tier, ("base", "small_short")))
def test_small_lr_behind_short(law) -> None:
    base, short = _final(law, "base"), _final(law, "small_short")
    law.note(f"with the baseline's budget: baseline {np.nanmean(base):.4f}, small LR {np.nanmean(short):.4f}")
    law.check(paired_difference_result("small_lr", "small_short_minus_base_acc", short, base, 0.0, "<", kind=CLAIM))
