"""Law `transferability` — what LR decay learns, stage by stage (PS10 and transfer).

Source: seed 003 (You et al., "How does learning rate decay help modern neural
networks?"). "An initially large learning rate suppresses the network from
memorizing noisy data while decaying the learning rate improves the learning
of complex patterns" (§5, on the PS10 data set of ``harness.data.ps10``), and
"additional patterns learned in later stages of lrDecay are more complex and
thus less transferable" (§6): with acc_i the source accuracy and tacc_i the
target accuracy of the stage-i snapshot, the transferability of stage i is
(tacc_i − tacc_{i−1}) / (acc_i − acc_{i−1}); Table 2 (ImageNet → Caltech256,
CUB-200, MITIndoors, Sketch250): stage 2 ≈ 0.14–0.40, stage 3 ≈ −0.06–0.34,
"in all experiments ... stage 3 is less than that in stage 2".

Assertions (paired over seeds — same init and data order in every recipe):

* ``transferability-ps10_decay`` (§5.2, Fig. 9): lrDecay (÷10 at 1/3 and 2/3)
  vs a constant LR equal to stage 1: the complex-pattern test accuracy gain is
  > 0, and larger than the simple-pattern gain ("the boost in total accuracy
  mainly comes from the accuracy gain on complex patterns").
* ``transferability-ps10_noise`` (§5.3, Fig. 10): with 10% noisy data, lrDecay
  memorises fewer noisy examples (training accuracy on them) than the small
  constant LR — that of the last stage, Fig. 9's plot 4.
* ``transferability-stages`` (§6, Fig. 11): source = the first half of the
  classes, target = the second half (CIFAR-10 classes 0–4 → 5–9 at the gpu
  tier, PS10's at smoke); snapshots at the end of each stage, "fix" (linear
  probe) and "finetune" transfer; T₃ − T₂ < 0 for both (bootstrap over seeds).

PS10 at the smoke tier is seen by a ReLU MLP through a fixed random Fourier
embedding (``fourier`` = 10): without it the MLP reached 25% on the complex
patterns after 2000 steps, with it ≈ 90%. Stage-1 LR 0.3: of the ×3 grid
{0.1, 0.3, 1}, the largest at which stage 1 learns the simple patterns
(≥ 95%), which is what seed 003's Fig. 9 shows stage 1 doing (at 1 it did not).

Findings at the smoke tier (`pytest laws/ -k transferability --tier smoke`):

* decay vs constant: complex patterns +9 points (83% vs 74%), simple ≈ +1 —
  holds.
* noisy data: the claim does *not* hold at this scale. lrDecay memorises 63%
  of the noisy examples, the last-stage constant LR 14% (it also learns only
  24% of the complex patterns: at η₀/100 the budget is far too short), and
  even the stage-2 constant LR memorises less (55%); during stage 1 the large
  LR memorised *more* than a small one at equal steps. Recorded as a strict
  xfail at smoke.
* stages on MNIST-1D (real data, digits 0–4 → 5–9, N = 16; figures in the
  report): inconclusive for the same reason as on PS10 below — the source
  accuracy rises ≈ 5 points in stage 2 and ≈ 0.1 in stage 3, so T₃'s
  denominator is noise and its interval infinite. The claim is not decided at
  this scale on real data either.
* stages on PS10 (N = 16, before the smoke tier moved to MNIST-1D): the 5-class source half is easy — source accuracy 95.5%
  after stage 1, +1.4 points in stage 2, ≈ 0 (−0.02) in stage 3 — so T₃ is
  undefined (its denominator is noise) and the bootstrap interval infinite:
  inconclusive. T₂ = 0.20 (fix), 0.34 (finetune), in the range of seed 003's
  Table 2. Other smoke-sized variants we measured (teacher task with batch 16;
  a width-256 MLP with batch 32, 4× the cost) gained 0.6–1.8 points in stage 3
  and had point estimates T₃ > T₂ with intervals spanning 0. The claim is not
  decided at this scale.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest

from harness import Ensemble, Recipe
from harness.law import NotAtThisTier, lrlaw
from harness.stats import CLAIM
from harness.stats.schedules import (
    curve_band, drop_result, paired_difference_result, transferability,
)

#: the noise level of seed 003 §5.3: "adding 10% noisy data"
NOISE = 0.1
#: tiers where the noisy-data point is a recorded finding (the claim did not hold): strict xfail
NOISE_FAILS_AT = {"smoke": "lrDecay memorises 63% of noisy data, the small constant LR 14%"}
MODES = ("fix", "finetune")


@dataclass(frozen=True)
class TierConfig:
    ps10: Recipe     # lrDecay on PS10; its constant twins differ only in schedule (and LR)
    n_ps10: int
    transfer: Recipe
    n_transfer: int

    def ps10_recipes(self) -> dict[str, Recipe]:
        d = self.ps10
        last = d.lr * d.option("gamma", 0.1) ** len(d.option("milestones", (1 / 3, 2 / 3)))
        noisy = d.replace(options={"noise": NOISE})
        return {
            "decay": d,
            "const_stage1": d.replace(schedule="constant"),
            "noisy_decay": noisy,
            "noisy_const_small": noisy.replace(schedule="constant", lr=last),
        }


_PS10_SMOKE = Recipe(trainer="sched", dataset="ps10", model="mlp", optimizer="sgd", lr=0.3, momentum=0.9,
                     weight_decay=5e-4, batch_size=128, steps=1500, schedule="step",
                     options={"n_train": 10_000, "n_test": 4000, "width": 64, "depth": 3, "fourier": 10.0,
                              "fourier_dim": 64, "milestones": (1 / 3, 2 / 3), "gamma": 0.1, "eval_every": 100})

TIERS: dict[str, TierConfig] = {
    "smoke": TierConfig(
        ps10=_PS10_SMOKE, n_ps10=8,
        # MNIST-1D's real signals, digits 0–4 → 5–9 (PS10's constructed patterns stay for the PS10 claims)
        transfer=_PS10_SMOKE.replace(dataset="mnist1d", options={
            "n_train": 0, "n_test": 0, "fourier": 0.0, "transfer": "halves", "finetune_steps": 300,
            "finetune_lr": 0.01, "eval_every": 0}),
        n_transfer=16,
    ),
    # PS10 at CIFAR size through a BN conv net, and CIFAR-10 classes 0–4 → 5–9 (untested: no GPU lent).
    "gpu": TierConfig(
        ps10=Recipe(trainer="sched", dataset="ps10", model="bn_convnet", optimizer="sgd", lr=0.1, momentum=0.9,
                    weight_decay=5e-4, batch_size=128, steps=3000, schedule="step",
                    options={"n_train": 20_000, "n_test": 4000, "spatial": 32, "widths": (32, 64, 64),
                             "milestones": (1 / 3, 2 / 3), "gamma": 0.1, "eval_every": 150}),
        n_ps10=4,
        transfer=Recipe(trainer="sched", dataset="cifar10", model="bn_convnet", optimizer="sgd", lr=0.1,
                        momentum=0.9, weight_decay=5e-4, batch_size=128, steps=3000, schedule="step",
                        options={"n_train": 0, "n_test": 10_000, "widths": (32, 64, 64),
                                 "milestones": (1 / 3, 2 / 3), "gamma": 0.1, "transfer": "halves",
                                 "finetune_steps": 600, "finetune_lr": 0.01}),
        n_transfer=8,
    ),
}


def tier_config(tier: str) -> TierConfig:
    if tier not in TIERS:
        raise NotAtThisTier(f"transferability has no {tier} configuration (the gpu tier's is the largest)")
    return TIERS[tier]


def ps10_needs(tier: str, names: tuple[str, ...]) -> dict[str, Ensemble]:
    cfg = tier_config(tier)
    recipes = cfg.ps10_recipes()
    return {k: Ensemble(recipes[k], cfg.n_ps10) for k in names}


def _metric(law, name: str, metric: str) -> np.ndarray:
    runs = law.runs(name)
    return np.where(runs.status == "ok", runs.metric(metric), np.nan)


def _pattern_plot(law, name: str, pairs: tuple[tuple[str, str], ...], kinds: tuple[str, ...]) -> None:
    """Seed 003 Fig. 9/10: accuracy by pattern type over training, one panel per kind."""
    with law.figure(name, ncols=len(kinds), figsize=(4 * len(kinds), 3.5), sharex=True) as (fig, axes):
        for ax, kind in zip(np.atleast_1d(axes), kinds):
            for i, (run, label) in enumerate(pairs):
                runs = law.runs(run)
                x = runs.array("curve_steps")[0]
                mean, lo, hi = curve_band(runs.array(f"curve_{kind}"))
                ax.plot(x, mean, color=f"C{i}", label=label)
                ax.fill_between(x, lo, hi, color=f"C{i}", alpha=0.2)
            ax.set_title(f"{kind} {'(train, memorised)' if kind == 'noisy' else '(test)'}", fontsize=9)
            ax.set_xlabel("step")
        np.atleast_1d(axes)[0].set_ylabel("accuracy (mean, 10–90% of seeds)")
        np.atleast_1d(axes)[0].legend(fontsize=8)


# ------------------------------------------------------------------------------- PS10 --

@lrlaw("transferability", needs=lambda tier: ps10_needs(tier, ("decay", "const_stage1")))
def test_transferability_ps10_decay(law) -> None:
    gain = {k: _metric(law, "decay", f"acc_{k}") - _metric(law, "const_stage1", f"acc_{k}")
            for k in ("simple", "complex")}
    _pattern_plot(law, "patterns", (("decay", "lrDecay"), ("const_stage1", "constant = stage-1 LR")),
                  ("simple", "complex"))
    law.note(f"decay − constant: complex {np.nanmean(gain['complex']):+.4f}, simple {np.nanmean(gain['simple']):+.4f}")
    law.check(
        paired_difference_result("transferability", "decay_minus_const_complex_acc",
                                 _metric(law, "decay", "acc_complex"), _metric(law, "const_stage1", "acc_complex"),
                                 0.0, ">", kind=CLAIM),
        paired_difference_result("transferability", "complex_gain_minus_simple_gain", gain["complex"],
                                 gain["simple"], 0.0, ">", kind=CLAIM),
    )


@lrlaw("transferability", needs=lambda tier: ps10_needs(tier, ("noisy_decay", "noisy_const_small")))
def test_transferability_ps10_noise(law) -> None:
    decay, small = _metric(law, "noisy_decay", "acc_noisy"), _metric(law, "noisy_const_small", "acc_noisy")
    _pattern_plot(law, "noisy", (("noisy_decay", "lrDecay"), ("noisy_const_small", "constant = last-stage LR")),
                  ("simple", "complex", "noisy"))
    law.note(f"memorised noisy data: lrDecay {np.nanmean(decay):.4f}, small constant LR {np.nanmean(small):.4f}")
    if law.tier in NOISE_FAILS_AT:
        law.known_failure(NOISE_FAILS_AT[law.tier])
    law.check(paired_difference_result("transferability", "decay_minus_small_const_noisy_acc", decay, small, 0.0, "<", kind=CLAIM))


# --------------------------------------------------------------------------- transfer --

def transfer_needs(tier: str) -> dict[str, Ensemble]:
    cfg = tier_config(tier)
    return {"source": Ensemble(cfg.transfer, cfg.n_transfer)}


def _bars(law, t: dict[str, np.ndarray], acc: np.ndarray) -> None:
    """Seed 003 Fig. 11: transferability of the patterns added in stages 2 and 3, per transfer mode."""
    gains = np.diff(acc, axis=1).mean(0)
    with law.figure("transferability", figsize=(5, 3.5)) as (fig, ax):
        width = 0.35
        for i, mode in enumerate(MODES):
            ax.bar(np.arange(2) + (i - 0.5) * width, t[mode], width, label=mode, color=f"C{i}")
        ax.axhline(0, color="k", lw=0.8)
        # the denominator, shown because a near-zero source gain makes a ratio meaningless
        ax.set_xticks(range(2), [f"stage {i + 2}\nsource gain {100 * g:+.2f} pts" for i, g in enumerate(gains)])
        ax.set_ylabel("(tacc_i − tacc_{i−1}) / (acc_i − acc_{i−1})")
        ax.set_title("source: first half of the classes → target: second half", fontsize=9)
        ax.legend(fontsize=8)


@lrlaw("transferability", needs=lambda tier: transfer_needs(tier))
def test_transferability_stages(law) -> None:
    runs = law.runs("source")
    ok = runs.status == "ok"
    acc = runs.array("stage_acc")[ok]
    results, t = [], {}
    for mode in MODES:
        tacc = runs.array(f"tacc_{mode}")[ok]
        t[mode] = transferability(tacc, acc)
        results.append(drop_result("transferability", f"T3_minus_T2_{mode}", tacc, acc, kind=CLAIM, mode=mode))
    _bars(law, t, acc)
    law.note("source accuracy by stage " + np.array2string(acc.mean(0), precision=4)
             + "; transferability (stage 2, 3): " + ", ".join(f"{m} {np.array2string(t[m], precision=3)}" for m in MODES))
    law.check(*results)
