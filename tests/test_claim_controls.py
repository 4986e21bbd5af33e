"""Every claim row has a negative control, and replacing any claim statistic by a constant breaks a test.

``CONTROLS`` pairs, per claim row of ``laws/``, data on which the row must PASS
with data on which it must FAIL, fed through the law's own result builder. A
constant in place of the statistic gives the same decision on both, so each
mutation in ``MUTATIONS`` (a statistic replaced by a constant, twice: 0 and 1)
must make at least one control fail — the mutation test.
"""
from __future__ import annotations

import ast
import sys
from pathlib import Path
from typing import Callable

import numpy as np
import pytest

import harness.stats.builders as builders
import harness.stats.core as core
import harness.stats.linearity as lin_stats
import harness.stats.schedules as schedules
import laws.test_gd_divergence as gd
import laws.test_intrinsic_lr as intrinsic
import laws.test_lars_equilibrium as lars
import laws.test_lr_linearity as linearity
from harness.stats import CLAIM, FAIL, PASS, LawResult
from harness.stats.linearity import bootstrap_weights, linearity_estimate, paired_difference_ci

ROOT = Path(__file__).resolve().parent.parent
N = 16
R = np.random.default_rng


# ---------------------------------------------------------------- per-seed means --

def _pd(shift: float) -> LawResult:
    b = 0.7 + 0.01 * R(1).standard_normal(N)
    return builders.paired_difference_result("d", b + shift + 0.01 * R(2).standard_normal(N), b, 0.0, ">")


def _ni(shift: float) -> LawResult:
    b = 0.7 + 0.01 * R(3).standard_normal(N)
    return builders.noninferiority_result("d", b + shift + 0.01 * R(4).standard_normal(N), b, 0.02)


def _band(center: float) -> LawResult:
    return builders.band_result("v", center + 0.02 * R(5).standard_normal(N), (0.8, 1.25))


def _rate(p: float) -> LawResult:
    return builders.rate_result("p", R(6).random(N) < p, 0.5, ">")


def _drop(t3_gain: float) -> LawResult:
    acc = np.array([0.5, 0.7, 0.8]) + 0.005 * R(7).standard_normal((8, 3))
    tacc = np.array([0.3, 0.4, 0.4 + t3_gain]) + 0.005 * R(8).standard_normal((8, 3))
    return schedules.drop_result("T3_minus_T2", tacc, acc)


# ------------------------------------------------------------------- linearity --

def _lin(curv: float, slope: float = 2.0) -> list[LawResult]:
    rng = R(9)
    v1, v2 = rng.standard_normal(40), rng.standard_normal(40)
    noise = lambda: 0.01 * rng.standard_normal((64, 40))  # noqa: E731
    f0 = np.zeros(40) + noise()
    fa = 0.1 * v1 + curv * v2 + noise()
    fb = slope * 0.1 * v1 + 4 * curv * v2 + noise()
    return linearity.results_of(lin_stats.linearity_estimate(f0, fa, fb, 0.1, 0.2), linearity.Point(0.4, 0.1, 0.2),
                                "smoke")


def _breakdown(small_first: bool) -> LawResult:
    rng = R(10)
    v1, v2 = rng.standard_normal(40), rng.standard_normal(40)
    noise = lambda: 0.01 * rng.standard_normal((64, 40))  # noqa: E731
    w = bootstrap_weights(64)
    lin = [np.zeros(40) + noise(), 0.1 * v1 + noise(), 0.2 * v1 + noise()]
    curved = [np.zeros(40) + noise(), 0.1 * v1 + 0.1 * v2 + noise(), 0.2 * v1 + 0.8 * v2 + noise()]
    a, b = (lin, curved) if small_first else (curved, lin)
    ea = linearity_estimate(*a, 0.1, 0.2, boot_weights=w)
    eb = linearity_estimate(*b, 0.1, 0.2, boot_weights=w)
    d, ci = paired_difference_ci(ea, eb, "r2")
    from harness.stats import decide
    return LawResult("r2_small_minus_large", d, ci, 0.0, ">", decide(ci, 0.0, ">"), n=64, kind=CLAIM)


# -------------------------------------------------------------- function space --

def _labels(n: int, shift: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Ensembles A, B [n, 300] of 4-class labels; B's runs relabel a fraction ``shift`` of points."""
    rng = R(seed)
    truth = rng.integers(0, 4, 300)
    a = np.where(rng.random((n, 300)) < 0.05, rng.integers(0, 4, (n, 300)), truth)
    moved = rng.random(300) < shift
    b_truth = np.where(moved, (truth + 1) % 4, truth)
    b = np.where(rng.random((n, 300)) < 0.05, rng.integers(0, 4, (n, 300)), b_truth)
    return a, b


def _distance(direction: str, shift: float) -> LawResult:
    # "same" needs N >= 51 to rule out an unseen minority basin (see Disagreement.unseen_minority_bound)
    a, b = _labels(64, shift, 11)
    return intrinsic.distance_result("d", a, b, 4, direction)


def _spikes(wd_spiky: bool) -> list[LawResult]:
    t = np.arange(400)
    smooth = np.exp(-t / 20.0) + 1e-9
    spiky = smooth + (np.sin(t / 7.0) > 0.95) * 1.0
    wd = np.stack([spiky if wd_spiky else smooth] * 8)
    free = np.stack([smooth if wd_spiky else spiky] * 8)
    return intrinsic.gd_results("toy", wd, free)


def _final_loss(converges: bool) -> LawResult:
    t = np.arange(400)
    free = np.stack([np.exp(-t / 20.0) + 1e-9 if converges else 1.0 + 0.01 * np.cos(t + s) for s in range(8)])
    return intrinsic.gd_results("toy", free, free)[2]


EOS_UNUSED = 0.0


def _at_edge(level: float) -> LawResult:
    """gd_divergence's edge-of-stability band row for f = 1.1 runs that reach the edge, at η·λ_max/2 ≈ ``level``."""
    steps, n = np.arange(0, 100, 10), 8
    eta = {gd.REF_F: np.full(n, 2 * gd.REF_F), 1.1: np.full(n, 2.2)}
    sharp = {gd.REF_F: np.full((n, steps.size), 10.0),  # the reference sharpened past 2/η of f = 1.1
             1.1: (level + 0.01 * R(7).standard_normal(n))[:, None] * 2 / 2.2 * np.ones(steps.size)}
    runs = {f: {"sharp_steps": steps, "sharpness": sharp[f], "eta": eta[f], "ok": np.ones(n, bool)} for f in eta}
    rows = [r for r in gd.eos_results(runs, 100)[0] if r.statistic == "late_eta_sharpness_over_2_f1.1"]
    # no row at all (nothing reached the edge) is a broken control too: an undecidable stand-in
    return rows[0] if rows else LawResult("missing", float("nan"), (-np.inf, np.inf), EOS_UNUSED, ">")


# ------------------------------------------------------------------------ lars --

def _lars_arrays(step_factor: float = 1.0, growth: float = 0.0, corr: float = 0.0) -> dict[str, np.ndarray]:
    pt = lars.Point(0.1, 0.01, 0.9)
    rng = R(12)
    steps = np.arange(0, 401, 10)
    shape = (8, steps.size, 2)
    return {
        "si_steps": steps,
        "si_step": pt.lars_lr * step_factor * (1 + 0.02 * rng.standard_normal(shape)),
        "si_wg": 1e-6 * rng.standard_normal(shape), "si_lr": np.full(shape, 0.1), "si_g_norm": np.ones(shape),
        "si_w_norm2": np.exp(growth * steps / pt.tau)[None, :, None] * (1 + 0.001 * rng.standard_normal(shape)),
        "si_grad_ema_corr": corr + 0.01 * rng.standard_normal(shape),
    }


def _lars(stat: str, **kw: float) -> LawResult:
    rows = lars.lars_results(_lars_arrays(**kw), lars.Point(0.1, 0.01, 0.9), ["conv0", "conv1"])
    return next(r for r in rows if r.statistic == f"conv0:{stat}")


#: claim row → (must pass, must fail)
CONTROLS: dict[str, tuple[Callable[[], LawResult], Callable[[], LawResult]]] = {
    "paired_difference": (lambda: _pd(0.05), lambda: _pd(-0.05)),
    "noninferiority": (lambda: _ni(0.0), lambda: _ni(-0.1)),
    "band": (lambda: _band(1.0), lambda: _band(1.5)),
    "rate": (lambda: _rate(1.0), lambda: _rate(0.0)),
    "transfer_drop": (lambda: _drop(0.02), lambda: _drop(0.09)),
    "linearity_r2_inf": (lambda: _lin(0.0)[0], lambda: _lin(0.05)[0]),
    "linearity_slope_inf": (lambda: _lin(0.0)[1], lambda: _lin(0.0, slope=3.0)[1]),
    "linearity_breakdown": (lambda: _breakdown(True), lambda: _breakdown(False)),
    "fn_distance_same": (lambda: _distance("<", 0.0), lambda: _distance("<", 0.5)),
    "fn_distance_different": (lambda: _distance(">", 0.5), lambda: _distance(">", 0.0)),
    "spikes_wd": (lambda: _spikes(True)[0], lambda: _spikes(False)[0]),
    "spikes_no_wd": (lambda: _spikes(True)[1], lambda: _spikes(False)[1]),
    "final_loss_no_wd": (lambda: _final_loss(True), lambda: _final_loss(False)),
    "eos_at_edge": (lambda: _at_edge(1.0), lambda: _at_edge(2.0)),
    "lars_step_over_lars": (lambda: _lars("step_over_lars"), lambda: _lars("step_over_lars", step_factor=2.0)),
    "lars_growth_over_shrink": (lambda: _lars("growth_over_shrink"), lambda: _lars("growth_over_shrink", growth=1.0)),
    "lars_grad_ema_corr": (lambda: _lars("grad_ema_corr"), lambda: _lars("grad_ema_corr", corr=0.5)),
}


def broken_controls() -> str | None:
    """The first control whose decision is wrong, or None."""
    for name, (good, bad_data) in CONTROLS.items():
        if good().decision != PASS or bad_data().decision != FAIL:
            return name
    return None


@pytest.mark.parametrize("name", sorted(CONTROLS))
def test_claim_passes_on_its_control_and_fails_on_its_negative_control(name):
    good, bad = CONTROLS[name]
    assert good().decision == PASS, good().summary()
    assert bad().decision == FAIL, bad().summary()


def _const_mean_ci(c: float):
    return lambda values, confidence=None: (c, (c - 1e-3, c + 1e-3))


#: (module, attribute, constant replacement for c) — every statistic a claim row is decided by
MUTATIONS = {
    "t-interval (builders.mean_ci)": (builders, "mean_ci", _const_mean_ci),
    "t_interval (core, behind mean_ci)": (core, "t_interval", lambda c: lambda x, confidence: (c - 1e-3, c + 1e-3)),
    "late_median (gd)": (gd, "late_median", lambda c: lambda values, *a: np.full(np.shape(values)[0], c)),
    "proportion_ci": (builders, "proportion_ci", lambda c: lambda k, n, confidence=None: (c, c)),
    "transferability_drop": (schedules, "transferability_drop",
                             lambda c: lambda tacc, acc, **kw: (c, (c, c), np.array([c, c]))),
    "linearity_estimate": (lin_stats, "linearity_estimate",
                           lambda c: lambda *a, **k: type("E", (), {"r2": c, "slope": c, "r2_raw": c, "r2_law": c,
                                                                    "n": 64, "ci": lambda self, name: (c, c)})()),
    "paired_difference_ci (linearity)": (sys.modules[__name__], "paired_difference_ci",
                                         lambda c: lambda *a, **k: (c, (c, c))),
    "excess_disagreement ci": (intrinsic, "excess_disagreement",
                               lambda c: lambda *a, **k: type("D", (), {"distance": c, "excess": c, "d_ab": c, "d_aa": c,
                                                                        "d_bb": c, "n": 16, "ci": lambda self: (c, c),
                                                                        "testable_at": lambda self, t: 0})()),
    "spike_rate_ci": (intrinsic, "spike_rate_ci", lambda c: lambda counts, confidence=None: (c, c)),
    "lars per_seed": (lars, "per_seed", lambda c: lambda s, m, how="median": np.full((s.shape[0], s.shape[2]), c)),
    "lars measured_growth_over_shrink": (lars, "measured_growth_over_shrink",
                                         lambda c: lambda w, *a: np.full((w.shape[0], w.shape[2]), c)),
}


@pytest.mark.parametrize("const", [0.0, 1.0])
@pytest.mark.parametrize("name", sorted(MUTATIONS))
def test_a_constant_in_place_of_any_statistic_breaks_a_control(name, const, monkeypatch):
    module, attr, make = MUTATIONS[name]
    monkeypatch.setattr(module, attr, make(const))
    assert broken_controls(), f"{name} replaced by {const} leaves every claim control green"


def test_every_row_in_laws_says_whether_it_is_a_claim_or_a_check():
    builders_ = {"LawResult", "rate_result", "band_result", "noninferiority_result", "paired_difference_result",
                 "drop_result", "ratio_result", "mean_result", "exact_result"}
    missing = []
    for path in sorted((ROOT / "laws").glob("test_*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call):
                name = getattr(node.func, "id", None) or getattr(node.func, "attr", None)
                if name in builders_ and not any(k.arg == "kind" for k in node.keywords):
                    missing.append(f"{path.name}:{node.lineno} {name}")
    assert not missing, missing
