"""Synthetic runs, and the decisions their rows must take, for the laws that read accuracies and logits:
small_lr, reference, transferability and lr_linearity (tests/test_law_bodies.py drives their bodies).

Each law point has a ``true`` case (the law holds clearly: every row passes) and, per claim row, a
``false-<row>`` case (that row's claim is clearly false: the row fails). The data have the names and
shapes the trainers store (``harness.trainers.schedules``, ``paper_nets``, ``mlp``).
"""
from __future__ import annotations

import math
from typing import Callable

import numpy as np

import laws.test_lr_linearity as linearity
import laws.test_reference as reference
import laws.test_small_lr as small_lr
import laws.test_transferability as transfer
from harness.recipe import Ensemble
from harness.stats import FAIL, PASS
from tests.fake_law import Case, Data, Runs, noise


def curves(final: np.ndarray, e: Ensemble) -> tuple[np.ndarray, np.ndarray]:
    """``curve_steps`` [N, T] (every ``eval_every`` steps to the end) and accuracy curves rising to ``final``."""
    steps = np.arange(0, e.recipe.steps + 1, e.recipe.option("eval_every"))
    rise = (1 - np.exp(-3 * steps / steps[-1])) / (1 - math.exp(-3))
    return np.broadcast_to(steps, (e.n, steps.size)).copy(), 0.1 + (final[:, None] - 0.1) * rise


# ---------------------------------------------------------------------------------- small_lr --

NONINF, BEHIND = "small_long_minus_base_acc", "small_short_minus_base_acc"


def _small_lr(long_shift: float, short_shift: float) -> Data:
    """Final test accuracy of each ensemble: the baseline's plus a shift (paired by seed)."""
    shift = {"base": 0.0, "small_short": short_shift, "small_long": long_shift}

    def data(name: str, e: Ensemble) -> Runs:
        acc = 0.93 + 0.01 * noise("small_lr", e.n) + shift[name] + 0.002 * noise(f"small_lr-{name}", e.n)
        steps, curve = curves(acc, e)
        return Runs({"test_acc": acc, "train_loss": 1 - acc}, {"curve_steps": steps, "curve_acc": curve})
    return data


def small_lr_cases() -> list[Case]:
    ni, bs = small_lr.test_small_lr_noninferior, small_lr.test_small_lr_behind_short
    true = _small_lr(0.0, -0.1)
    return [Case(ni, "true", true, {NONINF: PASS}, complete=True),
            Case(ni, f"false-{NONINF}", _small_lr(-0.05, -0.1), {NONINF: FAIL}),
            Case(bs, "true", true, {BEHIND: PASS}, complete=True),
            Case(bs, f"false-{BEHIND}", _small_lr(0.0, 0.05), {BEHIND: FAIL})]


# --------------------------------------------------------------------------------- reference --

def _reference(offset: float) -> Data:
    """Test accuracies in percent (``paper_nets``): the paper's figure plus ``offset``, 0.3 pp spread."""
    def data(name: str, e: Ensemble) -> Runs:
        acc = reference.PAPER[e.recipe.model] + offset + 0.3 * noise(f"reference-{e.recipe.model}", e.n)
        return Runs({"test_acc": acc, "train_loss": 0.1 + 0 * acc})
    return data


def reference_cases() -> list[Case]:
    out = []
    for model in sorted(reference.PAPER):
        stat = f"MNIST-1D {model.split('_')[1].upper()} test accuracy (%)"
        p = (("model", model),)
        out += [Case(reference.test_reference_mnist1d_accuracy, "true", _reference(0.0), {stat: PASS}, p, complete=True),
                Case(reference.test_reference_mnist1d_accuracy, f"false-{stat}", _reference(-15.0), {stat: FAIL}, p)]
    return out


# --------------------------------------------------------------------------- transferability --

def _ps10(final: dict[str, dict[str, float]]) -> Data:
    """``final[name][kind]``: each run's final accuracy on PS10's simple / complex test patterns (and on the
    noisy training examples), with the curves ``sched`` records every ``eval_every`` steps."""
    def data(name: str, e: Ensemble) -> Runs:
        out = Runs()
        for kind, level in final[name].items():
            acc = level + 0.005 * noise(f"ps10-{name}-{kind}", e.n)
            out.arrays["curve_steps"], out.arrays[f"curve_{kind}"] = curves(acc, e)
            out.metrics[f"acc_{kind}"] = acc
        out.metrics["test_acc"] = (out.metrics["acc_simple"] + out.metrics["acc_complex"]) / 2
        out.arrays["curve_acc"] = (out.arrays["curve_simple"] + out.arrays["curve_complex"]) / 2
        return out
    return data


def _decay(simple: float, complex_: float) -> Data:
    """lrDecay ends at (simple, complex); the constant LR at (0.8, 0.6)."""
    return _ps10({"decay": {"simple": simple, "complex": complex_}, "const_stage1": {"simple": 0.8, "complex": 0.6}})


def _noisy(decay: float, small: float) -> Data:
    """Memorised noisy examples: lrDecay's and the small constant LR's."""
    return _ps10({"noisy_decay": {"simple": 0.9, "complex": 0.7, "noisy": decay},
                  "noisy_const_small": {"simple": 0.9, "complex": 0.6, "noisy": small}})


def _stages(t3_gain: dict[str, float]) -> Data:
    """Source accuracy by stage 0.5, 0.7, 0.8 (stage gains 0.2, 0.1); target 0.3, 0.4, 0.4 + gain per mode:
    transferability T₂ = 0.5 and T₃ = gain / 0.1."""
    def data(name: str, e: Ensemble) -> Runs:
        acc = np.array([0.5, 0.7, 0.8]) + 0.005 * noise("stages-source", e.n, 3)
        arrays = {"stage_acc": acc.astype(np.float32)}
        for mode in transfer.MODES:
            tacc = np.array([0.3, 0.4, 0.4 + t3_gain[mode]]) + 0.005 * noise(f"stages-{mode}", e.n, 3)
            arrays[f"tacc_{mode}"] = tacc.astype(np.float32)
        return Runs({"test_acc": acc[:, -1], "train_loss": 1 - acc[:, -1]}, arrays)
    return data


COMPLEX, GAIN = "decay_minus_const_complex_acc", "complex_gain_minus_simple_gain"
NOISY = "decay_minus_small_const_noisy_acc"
DROP = {mode: f"T3_minus_T2_{mode}" for mode in transfer.MODES}


def transferability_cases() -> list[Case]:
    dec, noi, stg = (transfer.test_transferability_ps10_decay, transfer.test_transferability_ps10_noise,
                     transfer.test_transferability_stages)
    drops = [Case(stg, f"false-{stat}", _stages({m: 0.09 if m == mode else 0.02 for m in transfer.MODES}),
                  {stat: FAIL}) for mode, stat in DROP.items()]
    return [Case(dec, "true", _decay(0.82, 0.7), {COMPLEX: PASS, GAIN: PASS}, complete=True),
            Case(dec, f"false-{COMPLEX}", _decay(0.7, 0.55), {COMPLEX: FAIL}),
            Case(dec, f"false-{GAIN}", _decay(0.95, 0.65), {GAIN: FAIL, COMPLEX: PASS}),
            Case(noi, "true", _noisy(0.15, 0.6), {NOISY: PASS}, complete=True),
            Case(noi, f"false-{NOISY}", _noisy(0.63, 0.14), {NOISY: FAIL}),
            Case(stg, "true", _stages({m: 0.02 for m in transfer.MODES}), {s: PASS for s in DROP.values()},
                 complete=True),
            *drops]


# ------------------------------------------------------------------------------- lr_linearity --

#: two directions in the space of test logits ([test points, classes]); fewer test points than MNIST-1D's 1000
V = noise("linearity-directions", 2, 50, 10)
#: mean logits as a function of d = η − 0.4, as coefficients along the two directions
Shape = Callable[[float], tuple[float, float]]
LINEAR: Shape = lambda d: (d, 0.0)  # noqa: E731  (the law exactly: slope b/a, R² 1)
CURVED: Shape = lambda d: (d, 10 * d * d)  # noqa: E731  (R² ≈ 0.9 at a/η = 0.25 and 0.125)
STEEP: Shape = lambda d: (d + 10 * d * d, 0.0)  # noqa: E731  (R² 1, slope 3 and 2.7 where b/a = 2)
BREAKS_LARGE: Shape = lambda d: (d, 10 * max(d - 0.2, 0.0) ** 2)  # noqa: E731  (linear up to η = 0.6, then not)
BREAKS_SMALL: Shape = lambda d: (d, 0.1 * math.isclose(d, 0.1))  # noqa: E731  (a kink at η = 0.5 only)


def _linearity(shape: Shape) -> Data:
    """Test logits of the runs at LR η: the mean ``shape(η − 0.4)`` plus per-run noise (a function of η and
    the seed, so two names for one recipe read the same runs, as in the store)."""
    def data(name: str, e: Ensemble) -> Runs:
        d = round(e.recipe.lr / linearity.TIERS["smoke"].lr_unit - linearity.SMALL.eta, 6)
        c1, c2 = shape(d)
        logits = c1 * V[0] + c2 * V[1] + 0.01 * noise(f"linearity-{d}", e.n, *V.shape[1:])
        return Runs({"test_acc": 0.5 + 0 * logits[:, 0, 0]}, {"logits": logits.astype(np.float32)})
    return data


#: linearity reads 512 runs per LR at smoke; 64 keep every rule of its statistic (groups = min(N, 256), N ≥ 4)
#: at an eighth of the bootstrap's cost, which grows with the square of the groups
LINEARITY_N = 64
R2, SLOPE, BREAKDOWN = "r2_inf", "slope_inf", "r2_inf_small_minus_large"


def linearity_cases() -> list[Case]:
    lin, brk, n = linearity.test_linearity, linearity.test_linearity_breakdown, LINEARITY_N
    out = []
    for point in (linearity.SMALL, linearity.FINE):
        p = (("point", point),)
        out += [Case(lin, "true", _linearity(LINEAR), {R2: PASS, SLOPE: PASS}, p, n, complete=True),
                Case(lin, f"false-{R2}", _linearity(CURVED), {R2: FAIL}, p, n),
                Case(lin, f"false-{SLOPE}", _linearity(STEEP), {SLOPE: FAIL, R2: PASS}, p, n)]
    return [*out, Case(brk, "true", _linearity(BREAKS_LARGE), {BREAKDOWN: PASS}, (), n, complete=True),
            Case(brk, f"false-{BREAKDOWN}", _linearity(BREAKS_SMALL), {BREAKDOWN: FAIL}, (), n)]
