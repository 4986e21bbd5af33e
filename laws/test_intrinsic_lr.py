"""Law `intrinsic_lr` — for normalised nets trained with SGD + WD, what matters is the product ηλ.

Source: seed 002 (Li, Lyu & Arora, "Reconciling modern deep learning with
traditional optimization analyses: the intrinsic learning rate"), in its
notation: η = learning rate, λ = weight decay (recipe ``lr``, ``weight_decay``;
seed 001 calls them λ and α). For a scale-invariant loss
∇L(c·w) = ∇L(w)/c, so

1. **equivalence** (Li & Arora's lemma, quoted by the seed): training from
   (η, λ, w₀) and from (c²η, λ/c², c·w₀) gives w'_t = c·w_t at every step, i.e.
   the same function. It is exact when *every trained weight* is scale invariant
   (``si_convnet``: BN without γ, β, head frozen — the seed's "fixing the top
   layer"); the law checks the test logits agree to EXACT_REL_TOL in float64
   with BN's ε = 0. What breaks exactness (measured while building this, float64,
   200 steps, c = 2): BN's ε = 1e-5 (not scale invariant; chaotic training
   amplifies the asymmetry to a 0.11 relative logit difference), trained BN γ, β
   (relative difference ≈ 1: they take c² larger steps), a trained head (the
   same). The *approximate* version is tested on seed 002's normalised net
   (``normalized_convnet``: BN γ, β trained, head frozen): ensembles with equal ηλ
   are indistinguishable in function space, ensembles with ηλ four times larger
   are not. Finding: with a *trained* head (``bn_convnet``) (η, λ) = (0.25, 0.04)
   and (1, 0.01, 2w₀) are clearly distinguishable (distance ≈ 0.3 at the smoke
   scale: the head has no scale symmetry and its step grows c²-fold) — the
   seed's approximation needs the fixed top layer it assumes.
2. **function-space equilibrium**: "mixing happens after O(1/λ_e) iterations" (λ_e
   = ηλ): ensembles started from different init scales or schedules converge to
   the same output distribution once their ηλ are equal (the seed's Figure 4:
   three schedules on MNIST, equal intrinsic LR from epoch 81 on, distances from
   500 Monte-Carlo trials). Asserted: the distance is large half a relaxation
   time in (t = 1/(2ηλ); at t = 0 the ensembles share their init directions and
   are identical) and small at T = 6/(ηλ) — 5/(ηλ) after the schedule's LR
   drop at 1/(ηλ), and 4.6/(ηλ) after the norm transient of a 4× init scale
   (weight decay shrinks |w| by e^{−ηλt}: ln 4/(ηλ) ≈ 1.4/(ηλ) steps).
3. **full-batch GD + WD never settles** (the seed's Figure 1): on the toy
   L(x, y) = x²/(x²+y²) and on a small BN net on 1000 examples the loss falls
   near zero, then spikes, repeatedly; with WD off it converges.

Function-space distance (``harness.stats.scale_invariance.excess_disagreement``):
the rms l2 distance between the two ensembles' predicted-label distributions
over the test set, estimated without bias from pairs of runs with different
seeds (the ensembles share seeds: common random numbers), with a bootstrap
interval over seeds. It bounds how far the ensembles' mean accuracies can differ
under any labelling of the test set. The seed's own statistic, the l1 distance
between mean predicted-label distributions, is plotted with its permutation null.

Findings at the smoke tier on real data (the conv nets on scikit-learn's 1×8×8
digits, 10 classes, the BN MLP on MNIST-1D; figures in the report): exact
equivalence and "GD + WD never settles" hold; both function-space points are
*inconclusive* on digits: equal-ηλ ensembles end ≈ 0.11 apart (CI straddling
0.1) while 4× ηλ is ≈ 0.33 away, and at t = 50 the schedule ensemble is not yet
distinguishable from the base (≈ 0.12, CI from 0). The rest of this paragraph
was measured on the synthetic template images (4 classes) the smoke tier used
before (3-conv BN net, widths 8-16-16, batch 32, ηλ = 0.01, 16 seeds): the rescaled logits agree to 0 (c = 2, bitwise) and 5.5e-13 (c = 3);
equal-ηλ ensembles at c = 2 end 0.063 apart [CI 0, 0.085], 4× ηλ 0.35
[0.26, 0.41]; at t = 50 the 4× init-scale ensemble is 0.29 [0.14, 0.36] away and
the schedule ensemble 0.36 [0.26, 0.42]; at T = 600 they are 0.05 [0, 0.077]
and 0 [0, 0.018]. The init-scale ensemble converges last (Figure 4): it first
sheds its norm and then learns at the equilibrium rate; the schedule ensemble
is within noise of the base from ≈ 2/(ηλ) on. Full-batch GD + WD spikes 8 times
per run in 600 steps on the BN MLP (toy: 12.8 in 2000 steps); without WD no run
spikes and the loss ends at 10⁻³ of its start (the toy's underflows to 0,
counted as 10⁻³⁰⁰). Disclosure: the check times were fixed after a first
exploratory run, which checked at t = 1/(ηλ) (the schedule ensemble was 0.18
[0.03, 0.24] away: inconclusive) and at T = 5/(ηλ) (the init-scale one was 0.07
[0.02, 0.09]); the rules above are the principles they were then set by.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pytest

from harness import Ensemble, Recipe
from harness.law import NotAtThisTier, lrlaw
from harness.stats import CHECK, CLAIM, LawResult, decide, mean_ci
from harness.stats.scale_invariance import (
    count_spikes, excess_disagreement, l1_distance, l1_permutation_null, spike_rate_ci,
)

# Exactness "up to float error": float64 rounds at 1.1e-16 and this training amplifies
# perturbations by ~1e6 over 200 steps (float32's 1e-7 grows to ~0.1), so float error stays
# near 1e-10; anything that breaks the symmetry (ε = 1e-5, trained γ, β) gives 0.1–1.
# Provenance: from float error bounds, a check's tolerance, not a smoke margin.
EXACT_REL_TOL = 1e-6
# Seed 002 expects the disagreement between equilibrium ensembles to be "almost 0", against
# the ~10% an error rate of 5% would give two independent classifiers. We call ensembles the
# same when their predicted-label distributions are within an rms l2 distance of 0.1 — so
# their mean accuracies under any labelling differ by less than 0.1 — and different beyond it.
# Provenance: committed with the law and its smoke findings, so not shown to predate the smoke data: treat as
# set after they were seen (the --seed-base confirmatory table tests it).
FN_DISTANCE = 0.1
# Seed 002's Figure 1: the loss gets "near zero" and then "veers off". Near zero: below 1% of
# the run's initial loss; a spike: back above half of it (most of what was learnt is lost).
# Provenance: committed with the law and its smoke findings, so not shown to predate the smoke data: treat as
# set after they were seen (the --seed-base confirmatory table tests it).
LOW_FRAC, SPIKE_FRAC = 0.01, 0.5
# "Repeatedly": more than one spike per run on average; converged runs have fewer than one.
# Provenance: from the seed's wording, set before any run was seen.
SPIKES_PER_RUN = 1.0


@dataclass(frozen=True)
class FnConfig:
    """Ensembles compared in function space; all at intrinsic LR eta·lam once their schedules agree."""

    base: Recipe
    eta: float
    lam: float
    n: int
    c: float = 2.0              # the equivalence's scale
    init_scale: float = 4.0     # the off-equilibrium init of the equilibrium check
    lr_factor: float = 4.0      # the schedule: lr_factor·η for the first 1/(ηλ) steps

    @property
    def relax(self) -> int:
        return int(round(1.0 / (self.eta * self.lam)))

    @property
    def steps(self) -> int:
        return 6 * self.relax

    @property
    def before(self) -> int:
        return self.relax // 2

    def recipes(self) -> dict[str, Recipe]:
        r = self.base.replace(lr=self.eta, weight_decay=self.lam, steps=self.steps,
                              options={"snapshot_every": self.before})
        c2 = self.c * self.c
        return {
            "base": r,
            "rescaled": r.replace(lr=self.eta * c2, weight_decay=self.lam / c2,
                                  options={"init_scale": self.c}),
            "higher_intrinsic": r.replace(weight_decay=self.lam * self.lr_factor),
            "init_scale": r.replace(options={"init_scale": self.init_scale}),
            "schedule": r.replace(schedule="piecewise", options={"lr_points": ((0, self.lr_factor), (self.relax, 1))}),
        }


@dataclass(frozen=True)
class ExactConfig:
    base: Recipe
    eta: float
    lam: float
    n: int
    steps: int
    cs: tuple[float, ...] = (2.0, 3.0)

    def recipes(self) -> dict[str, Recipe]:
        r = self.base.replace(lr=self.eta, weight_decay=self.lam, steps=self.steps)
        out = {"base": r}
        for c in self.cs:
            out[f"c{c:g}"] = r.replace(lr=self.eta * c * c, weight_decay=self.lam / (c * c),
                                       options={"init_scale": c})
        return out


@dataclass(frozen=True)
class GDConfig:
    """Full-batch GD with weight decay ``lam`` and without, same LR and start."""

    base: Recipe
    n: int

    def recipes(self) -> dict[str, Recipe]:
        return {"wd": self.base, "no_wd": self.base.replace(weight_decay=0.0)}


#: scikit-learn's digits, the whole 1500/297 split (real 1×8×8 images)
_DIGITS = {"n_train": 0, "n_test": 0}
TIERS: dict[str, dict[str, object]] = {
    "smoke": {
        # 5 ensembles × 16 seeds × 600 steps of the 8-16-16 net on 8×8×3 images
        "fn": FnConfig(Recipe(trainer="scale_invariant", dataset="digits", model="normalized_convnet",
                              batch_size=32, probes=("snapshots",), options=_DIGITS), eta=0.25, lam=0.04, n=16),
        "exact": ExactConfig(Recipe(trainer="scale_invariant", dataset="digits", model="si_convnet", batch_size=32,
                                    probes=("logits",), options={**_DIGITS, "dtype": "float64", "bn_eps": 0.0}),
                             eta=0.25, lam=0.04, n=8, steps=200),
        "toy": GDConfig(Recipe(trainer="toy2d", dataset="none", model="x2_over_r2", optimizer="gd", lr=0.1,
                               weight_decay=0.1, batch_size=1, steps=2000, probes=("loss",)), n=8),
        # decay on the scale-invariant weights only: a decayed head would put a floor under the loss
        # the first 1000 MNIST-1D training signals, full batch
        "bn_net": GDConfig(Recipe(trainer="scale_invariant", dataset="mnist1d", model="bn_mlp", optimizer="gd", lr=1.0,
                                  weight_decay=0.02, batch_size=1000, steps=600, probes=("loss",),
                                  options={"n_train": 1000, "wd_on": "invariant"}), n=8),
    },
    "gpu": {
        # seed 002's Figure 4 setting: a 4-layer normalised CNN on MNIST (head frozen), ηλ = 1e-3
        "fn": FnConfig(Recipe(trainer="scale_invariant", dataset="mnist", model="cnn4", batch_size=128,
                              probes=("snapshots",),
                              options={"train_head": False, "n_train": 0, "n_test": 2000}), eta=0.1, lam=0.01, n=16),
        "exact": ExactConfig(Recipe(trainer="scale_invariant", dataset="mnist", model="cnn4", batch_size=128,
                                    probes=("logits",),
                                    options={"affine": False, "train_head": False, "dtype": "float64", "bn_eps": 0.0,
                                             "n_train": 0, "n_test": 1000}),
                             eta=0.1, lam=0.01, n=4, steps=1000),
        "toy": GDConfig(Recipe(trainer="toy2d", dataset="none", model="x2_over_r2", optimizer="gd", lr=0.1,
                               weight_decay=0.1, batch_size=1, steps=2000, probes=("loss",)), n=8),
        # the seed's Figure 1(b, c): a conv BN net on 1000 CIFAR-10 images, full batch
        "bn_net": GDConfig(Recipe(trainer="scale_invariant", dataset="cifar10", model="bn_convnet", optimizer="gd",
                                  lr=1.0, weight_decay=0.02, batch_size=1000, steps=3000, probes=("loss",),
                                  options={"widths": (32, 64, 128), "strides": (1, 2, 2), "n_train": 1000,
                                           "n_test": 1000, "wd_on": "invariant"}), n=4),
    },
}


def config(tier: str, part: str):
    if tier not in TIERS:
        raise NotAtThisTier("the intrinsic_lr law has no configuration for this tier (the paper tier would be "
                            "seed 002's ResNet on CIFAR-10 and its MNIST CNN at full length)")
    return TIERS[tier][part]


def ensembles(tier: str, part: str, names: tuple[str, ...] | None = None) -> dict[str, Ensemble]:
    cfg = config(tier, part)
    return {k: Ensemble(r, cfg.n) for k, r in cfg.recipes().items() if names is None or k in names}


# ------------------------------------------------------------------------ (1) exact --

def exact_results(base: np.ndarray, others: dict[str, np.ndarray], seeds: tuple[int, int]) -> list[LawResult]:
    """Largest relative l2 difference of test logits over seeds, per rescaled recipe."""
    out = []
    for name, logits in others.items():
        diff = np.linalg.norm((logits - base).reshape(len(base), -1), axis=1)
        rel = float(np.max(diff / np.linalg.norm(base.reshape(len(base), -1), axis=1)))
        out.append(LawResult("intrinsic_lr", f"exact_{name}:max_rel_logit_diff", rel, (rel, rel), EXACT_REL_TOL, "<",
                             decide((rel, rel), EXACT_REL_TOL, "<"), n=len(base), seeds=seeds, kind=CHECK))
    return out


@lrlaw("intrinsic_lr", needs=lambda tier: ensembles(tier, "exact"))
def test_intrinsic_exact_equivalence(law) -> None:
    """(η, λ, w₀) ≡ (c²η, λ/c², c·w₀) when every trained weight is scale invariant: same logits."""
    cfg = config(law.tier, "exact")
    logits = {k: law.runs(k).array("logits").astype(np.float64) for k in cfg.recipes()}
    base = logits.pop("base")
    results = exact_results(base, logits, (0, cfg.n))
    law.note("relative logit differences: " + ", ".join(f"{r.statistic.split(':')[0]} {r.value:.2e}" for r in results))
    law.check(*results)


# --------------------------------------------------------------- function space --

def distance_result(stat: str, a: np.ndarray, b: np.ndarray, classes: int, direction: str, n: int,
                    rng: int = 0) -> LawResult:
    """``direction`` "<": the ensembles are the same (within FN_DISTANCE); ">": they differ."""
    d = excess_disagreement(a, b, classes, rng=rng)
    ci = d.ci()
    return LawResult("intrinsic_lr", stat, d.distance, ci, FN_DISTANCE, direction, decide(ci, FN_DISTANCE, direction),
                     n=d.n, seeds=(0, n), extra={"excess": d.excess, "d_ab": d.d_ab, "d_aa": d.d_aa, "d_bb": d.d_bb},
                     kind=CLAIM)


def _predictions(law, names) -> tuple[dict[str, np.ndarray], np.ndarray, int]:
    preds = {k: law.runs(k).array("snap_pred") for k in names}
    bad = {k: int((law.runs(k).status != "ok").sum()) for k in names}
    if any(bad.values()):
        raise AssertionError(f"function-space comparisons need every run; diverged: {bad}")
    steps = law.runs(names[0]).array("snap_steps")[0]
    classes = int(max(p.max() for p in preds.values())) + 1
    return preds, steps, classes


@lrlaw("intrinsic_lr", needs=lambda tier: ensembles(tier, "fn", ("base", "rescaled", "higher_intrinsic")))
def test_intrinsic_equivalence_in_function_space(law) -> None:
    """Equal ηλ (c = 2 rescaling) → same output distribution at the end; 4× ηλ → a different one."""
    cfg = config(law.tier, "fn")
    preds, steps, k = _predictions(law, ("base", "rescaled", "higher_intrinsic"))
    end = len(steps) - 1
    law.check(
        distance_result("same_intrinsic_lr:distance", preds["base"][:, end], preds["rescaled"][:, end], k, "<", cfg.n),
        distance_result("higher_intrinsic_lr:distance", preds["base"][:, end], preds["higher_intrinsic"][:, end], k, ">", cfg.n),
    )


@lrlaw("intrinsic_lr", needs=lambda tier: ensembles(tier, "fn"))
def test_intrinsic_function_space_equilibrium(law) -> None:
    """Different init scale / schedule at equal ηλ: far apart at 1/(2ηλ), the same at 6/(ηλ)."""
    cfg = config(law.tier, "fn")
    names = tuple(cfg.recipes())
    preds, steps, k = _predictions(law, names)
    t_before = int(np.flatnonzero(steps == cfg.before)[0])
    end = len(steps) - 1
    results = []
    for other in ("init_scale", "schedule"):
        a, b = preds["base"], preds[other]
        results.append(distance_result(f"{other}@{steps[t_before]}:distance", a[:, t_before], b[:, t_before], k, ">",
                                       cfg.n))
        results.append(distance_result(f"{other}@{steps[end]}:distance", a[:, end], b[:, end], k, "<", cfg.n))
    _figure4(law, preds, steps, k, cfg)
    law.check(*results)


def _figure4(law, preds: dict[str, np.ndarray], steps: np.ndarray, k: int, cfg: FnConfig) -> None:
    """Seed 002's Figure 4: distances between ensembles over training."""
    others = [n for n in preds if n != "base"]
    with law.figure("fn-distance", nrows=1, ncols=2, figsize=(11, 3.8)) as (fig, (ax1, ax2)):
        for i, name in enumerate(others):
            dist = [excess_disagreement(preds["base"][:, j], preds[name][:, j], k, n_boot=400) for j in range(len(steps))]
            lo, hi = np.array([d.ci() for d in dist]).T
            ax1.plot(steps, [d.distance for d in dist], f"C{i}-o", ms=3, label=name)
            ax1.fill_between(steps, lo, hi, color=f"C{i}", alpha=0.15)
            l1 = [l1_distance(preds["base"][:, j], preds[name][:, j], k) for j in range(len(steps))]
            null = [np.mean(l1_permutation_null(preds["base"][:, j], preds[name][:, j], k, n_perm=50))
                    for j in range(len(steps))]
            ax2.plot(steps, l1, f"C{i}-o", ms=3, label=name)
            ax2.plot(steps, null, f"C{i}:", lw=1)
        for ax in (ax1, ax2):
            ax.axvline(cfg.relax, color="0.5", lw=0.8, ls="--")
            ax.set_xlabel("step")
        ax1.axhline(FN_DISTANCE, color="k", lw=1)
        ax1.set_ylabel("rms l2 distance to base ensemble (95% CI)")
        ax1.legend(fontsize=7)
        ax2.set_ylabel("l1 distance of mean label distributions\n(dotted: permutation null)")
        fig.suptitle(f"seed 002 Fig. 4: ηλ = {cfg.eta * cfg.lam:g}; schedule ensemble at {cfg.lr_factor:g}×η until "
                     f"step {cfg.relax} (dashed); N = {cfg.n}")


# ----------------------------------------------------------- (3) GD never settles --

def gd_results(system: str, wd_loss: np.ndarray, no_wd_loss: np.ndarray, seeds: tuple[int, int]) -> list[LawResult]:
    """Spikes per run with and without weight decay, and where the decay-free runs end. Rows are runs."""
    def spikes(losses: np.ndarray) -> np.ndarray:
        return np.array([count_spikes(L, LOW_FRAC * L[0], SPIKE_FRAC * L[0]) for L in losses])

    s_wd, s_free = spikes(wd_loss), spikes(no_wd_loss)
    out = []
    for stat, s, direction in (("spikes_per_run_wd", s_wd, ">"), ("spikes_per_run_no_wd", s_free, "<")):
        ci = spike_rate_ci(s)
        out.append(LawResult("intrinsic_lr", f"{system}:{stat}", float(s.mean()), ci, SPIKES_PER_RUN, direction,
                             decide(ci, SPIKES_PER_RUN, direction), n=len(s), seeds=seeds,
                             extra={"per_run": s.tolist()}, kind=CLAIM))
    # converged: the final loss is "near zero" — log10 of final/initial below log10(LOW_FRAC)
    final = np.log10(np.maximum(no_wd_loss[:, -1], 1e-300) / no_wd_loss[:, 0])
    m, ci = mean_ci(final)
    thr = math.log10(LOW_FRAC)
    out.append(LawResult("intrinsic_lr", f"{system}:log10_final_loss_ratio_no_wd", m, ci, thr, "<",
                         decide(ci, thr, "<"), n=len(final), seeds=seeds, kind=CLAIM))
    return out


@lrlaw("intrinsic_lr", needs=lambda tier, system: ensembles(tier, system))
@pytest.mark.parametrize("system", ["toy", "bn_net"], ids=lambda s: f"intrinsic-gd-{s}")
def test_intrinsic_gd_never_settles(law, system: str) -> None:
    """Full-batch GD + WD on a scale-invariant loss spikes repeatedly; without WD it converges."""
    cfg = config(law.tier, system)
    wd, free = law.runs("wd"), law.runs("no_wd")
    if (wd.status != "ok").any() or (free.status != "ok").any():
        raise AssertionError("a full-batch GD run produced a non-finite loss")
    wd_loss, free_loss = wd.array("loss"), free.array("loss")
    steps = wd.array("loss_steps")[0]
    results = gd_results(system, wd_loss, free_loss, (0, cfg.n))
    with law.figure(f"gd-{system}", figsize=(7, 3.4)) as (fig, ax):
        ax.semilogy(steps, wd_loss[0], "C3", lw=0.8, label=f"WD λ = {cfg.base.weight_decay:g}")
        ax.semilogy(steps, free_loss[0], "C0", lw=0.8, label="WD off")
        ax.axhline(LOW_FRAC * wd_loss[0, 0], color="k", lw=0.5, ls=":")
        ax.axhline(SPIKE_FRAC * wd_loss[0, 0], color="k", lw=0.5, ls="--")
        ax.set_xlabel("step (full-batch GD)")
        ax.set_ylabel("training loss (seed 0)")
        ax.set_title(f"seed 002 Fig. 1: {system}, η = {cfg.base.lr:g}")
        ax.legend(fontsize=8)
    law.check(*results)
