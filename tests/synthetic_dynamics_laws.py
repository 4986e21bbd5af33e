"""Synthetic runs, and the decisions their rows must take, for the laws that read training dynamics:
lars_equilibrium, gd_divergence and intrinsic_lr (tests/test_law_bodies.py drives their bodies).

As in ``tests/synthetic_accuracy_laws.py``: a ``true`` case per law point where every row passes, and
``false-<row>`` cases where that row's claim (or check) is clearly false. The arrays are those of
``harness.trainers.probes.LayerStats`` (``si_*``), ``harness.trainers.gd`` (``loss``, ``sharpness``, …),
``harness.trainers.scale_invariant`` (``snap_pred``, ``logits``, ``loss``) and ``toy2d``.
"""
from __future__ import annotations

import numpy as np

import laws.test_gd_divergence as gd
import laws.test_intrinsic_lr as intrinsic
import laws.test_lars_equilibrium as lars
from harness.recipe import Ensemble
from harness.stats import FAIL, INCONCLUSIVE, PASS, UNTESTABLE
from tests.fake_law import Case, Data, Runs, noise, rng

# ------------------------------------------------------------------------------------- lars --

#: |w|² per tracked conv layer of ``bn_convnet`` (three convs)
W_NORM2 = np.array([4.0, 9.0, 16.0])


def _lars(step_factor: float = 1.0, radial: float = 0.0, growth: float = 0.0, corr: float = 0.0) -> Data:
    """LayerStats series [T, 3] every ``probe_every`` steps: λ|g|/|w| at ``step_factor`` × √(2λα(1−ρ)),
    2w·g/(λ|g|²) near ``radial``, |w|² growing as exp(``growth``·t/τ), gradient–EMA correlation near ``corr``."""
    def data(name: str, e: Ensemble) -> Runs:
        pt = lars.Point.of(e.recipe)
        steps = np.arange(0, e.recipe.steps, e.recipe.option("probe_every"))
        shape = (e.n, steps.size, W_NORM2.size)
        w2 = W_NORM2 * np.exp(growth * steps / pt.tau)[None, :, None] * (1 + 0.001 * noise(f"lars-w-{name}", *shape))
        step = pt.lars_lr * step_factor * (1 + 0.02 * noise(f"lars-step-{name}", *shape))
        g = step * np.sqrt(w2) / pt.lr
        wg = (radial + 0.001 * noise(f"lars-wg-{name}", *shape)) * pt.lr * g**2 / 2
        ema = corr + 0.01 * noise(f"lars-corr-{name}", *shape)
        ema[:, 0] = np.nan  # no earlier gradient at the first step
        return Runs({"test_acc": np.full(e.n, 0.9), "train_loss": np.full(e.n, 0.3)}, {
            "si_steps": np.broadcast_to(steps, (e.n, steps.size)).copy(), "si_w_norm2": w2, "si_g_norm": g,
            "si_cos_wg": wg / (np.sqrt(w2) * g), "si_wg": wg, "si_step": step, "si_lr": np.full(shape, pt.lr),
            "si_shrink": 2 * pt.lr * pt.wd * w2, "si_growth": (pt.lr * g) ** 2, "si_grad_ema_corr": ema})
    return data


def lars_cases() -> list[Case]:
    out = []
    for name in ("rho0-a", "rho0-b", "rho0.9"):
        stats = ["step_over_lars", "radial", "growth_over_shrink"] + (["grad_ema_corr"] if name == "rho0.9" else [])
        rows = {s: [f"conv{j}:{s}" for j in range(W_NORM2.size)] for s in stats}
        false = {"step_over_lars": _lars(step_factor=2.0), "radial": _lars(radial=1.0),
                 "growth_over_shrink": _lars(growth=1.0), "grad_ema_corr": _lars(corr=0.5)}
        p = (("name", name),)
        out.append(Case(lars.test_lars_equilibrium, "true", _lars(), {r: PASS for rs in rows.values() for r in rs}, p,
                        complete=True))
        out += [Case(lars.test_lars_equilibrium, f"false-{s}", false[s], dict.fromkeys(rows[s], FAIL), p) for s in stats]
    return out


# ---------------------------------------------------------------------------- gd_divergence --

#: λ_max at the start of every run: η_f = f·2/λ₀
LAMBDA0 = 10.0


def _gd(diverges: set[float], late: dict[float, float] | None = None, probe_error: float = 1e-6) -> Data:
    """Full-batch GD at η = f·2/λ₀: the runs at f in ``diverges`` diverge; the loss falls as |1 − 2f|^2t
    (the quadratic's top direction); sharpness moves from λ₀ to ``late[f]`` by mid-training and stays
    there; the probe's λ₀ is off the exact eigenvalue by ``probe_error`` (relative)."""
    def data(name: str, e: Ensemble) -> Runs:
        f, r = e.recipe.lr, e.recipe
        every = r.option("sharpness_every", 0)
        sharp_steps = np.arange(0, r.steps + 1, every) if every else np.array([0])
        exact = LAMBDA0 * (1 + 0.01 * np.abs(noise(f"gd-lambda-{name}", e.n)))
        lam0 = exact * (1 + probe_error)
        ramp = np.minimum(1.0, sharp_steps / (r.steps / 2))
        sharp = lam0[:, None] + ((late or {}).get(f, LAMBDA0) - lam0[:, None]) * ramp
        sharp *= 1 + 0.01 * noise(f"gd-sharp-{name}", e.n, sharp_steps.size)
        t = np.arange(r.steps + 1)
        loss = np.broadcast_to(np.maximum(abs(1 - 2 * min(f, 0.95)) ** (2 * t), 1e-8), (e.n, t.size)).copy()
        bad = np.full(e.n, f in diverges)
        loss[bad, 5:] = np.nan  # above 10× the start within a few steps, then frozen
        loss[bad, 4] = 100.0
        sharp[bad, 1:] = np.nan
        eta = 2 * f / lam0
        metrics = {"lambda0": lam0, "eta": eta, "final_loss": loss[:, -1], "lambda_final": sharp[:, -1]}
        if r.dataset == "quadratic":
            metrics["lambda_exact"] = exact
        return Runs(metrics, {"loss": loss, "sharp_steps": np.broadcast_to(sharp_steps, (e.n, sharp_steps.size)).copy(),
                              "sharpness": sharp, "eta": eta}, diverged=bad)
    return data


ABOVE = {f for f in gd.F_GRID if f > 1}
RATE = {f: f"diverged_fraction_f{f:g}" for f in gd.F_GRID}
PROBE = "probe_max_rel_error"
AT_EDGE, BAND = "diverged_fraction_at_edge_f{:g}", "late_eta_sharpness_over_2_f{:g}"
#: late sharpness per f where the law holds: the reference run (f = 0.5) sharpens to 15, past 2/η for
#: f ≥ 0.9 (η·15/2 = 1.35 at f = 0.9) but not past the band at its own η (0.75); the others sit at 2/η
AT_THE_EDGE = {0.5: 15.0, **{f: LAMBDA0 / f for f in gd.F_GRID if f != 0.5}}
#: the reference stays at λ₀: only f > 1 reach 2/η; f = 0.9 stays below the edge (η·λ/2 = 0.9)
NO_SHARPENING = {f: min(LAMBDA0, LAMBDA0 / f) for f in gd.F_GRID}


def gd_cases() -> list[Case]:
    quad, net, eos = gd.test_gd_divergence_quadratic, gd.test_gd_divergence_net, gd.test_gd_divergence_edge_of_stability
    below = [f for f in gd.F_GRID if f < 1]
    edge = [f for f in gd.F_GRID if f != gd.REF_F]
    at_edge = {s.format(f): PASS for f in edge for s in (AT_EDGE, BAND)}
    return [
        Case(quad, "true", _gd(ABOVE), {**{s: PASS for s in RATE.values()}, PROBE: PASS}, complete=True),
        Case(quad, "false-below", _gd(set(gd.F_GRID)), {RATE[f]: FAIL for f in below}),
        Case(quad, "false-above", _gd(set()), {RATE[f]: FAIL for f in ABOVE}),
        Case(quad, f"false-{PROBE}", _gd(ABOVE, probe_error=0.01), {PROBE: FAIL}),
        Case(net, "true", _gd(ABOVE), {RATE[f]: PASS for f in below}, complete=True),
        Case(net, "false-below", _gd(set(gd.F_GRID)), {RATE[f]: FAIL for f in below}),
        Case(eos, "true", _gd(set(), AT_THE_EDGE), at_edge, complete=True),
        Case(eos, "true-no-sharpening", _gd(set(), NO_SHARPENING),
             {s.format(f): PASS for f in ABOVE for s in (AT_EDGE, BAND)}, complete=True),
        *(Case(eos, f"false-{AT_EDGE.format(f)}", _gd({f}, AT_THE_EDGE), {AT_EDGE.format(f): FAIL}) for f in edge),
        *(Case(eos, f"false-{BAND.format(f)}", _gd(set(), {**AT_THE_EDGE, f: 1.5 * LAMBDA0 / f}), {BAND.format(f): FAIL})
          for f in edge),
    ]


# ----------------------------------------------------------------------------- intrinsic_lr --

EXACT = {c: f"exact_{c}:max_rel_logit_diff" for c in ("c2", "c3")}


def _exact(rel: dict[str, float]) -> Data:
    """Float64 test logits [297, 10]: the rescaled runs' equal to the base run's up to ``rel[name]`` (relative)."""
    def data(name: str, e: Ensemble) -> Runs:
        base = noise("exact-logits", e.n, 297, 10)
        logits = base * (1 + rel.get(name, 0.0) * noise(f"exact-{name}", e.n, 297, 10))
        return Runs({"test_acc": np.full(e.n, 0.9), "train_loss": np.full(e.n, 0.3)}, {"logits": logits})
    return data


#: test points and classes of the predicted labels (digits has 297 test images; fewer keep the figure's
#: permutation nulls cheap, the statistic's rules do not depend on them)
POINTS, CLASSES = 120, 10
TRUTH = rng("fn-truth").integers(0, CLASSES, POINTS)


def _fn(early: dict[str, float], late: dict[str, float]) -> Data:
    """Predicted labels per snapshot: each run errs on 10% of the points at random; the ensemble's mode is
    the true label, moved to the next class on a fraction of the points — ``early[name]`` in the first half
    of training (none at step 0: every ensemble starts from the same init directions), ``late[name]`` after."""
    def data(name: str, e: Ensemble) -> Runs:
        r = e.recipe
        steps = np.arange(0, r.steps + 1, r.option("snapshot_every"))
        frac = np.where(steps == 0, 0.0, np.where(steps < r.steps / 2, early.get(name, 0.0), late.get(name, 0.0)))
        mode = np.where(rng(f"fn-moved-{name}").random(POINTS)[None] < frac[:, None], (TRUTH + 1) % CLASSES, TRUTH)
        g = rng(f"fn-runs-{name}")
        pred = np.where(g.random((e.n, steps.size, POINTS)) < 0.1, g.integers(0, CLASSES, (e.n, steps.size, POINTS)),
                        mode[None])
        return Runs({"test_acc": np.full(e.n, 0.9), "train_loss": np.full(e.n, 0.3)},
                    {"snap_pred": pred.astype(np.uint8), "snap_steps": np.broadcast_to(steps, (e.n, steps.size)).copy()})
    return data


SAME, DIFFERENT = "same_intrinsic_lr:distance", "higher_intrinsic_lr:distance"
EQUIL = {(k, when): f"{k}@{50 if when == 'early' else 600}:distance" for k in ("init_scale", "schedule")
         for when in ("early", "late")}
#: the law where it holds: a 4× higher ηλ moves the ensemble for good, init scale and schedule only early
MOVED = {"early": {"higher_intrinsic": 0.5, "init_scale": 0.5, "schedule": 0.5}, "late": {"higher_intrinsic": 0.5}}
#: seeds of the function-space ensembles at the gpu tier
GPU_N = intrinsic.TIERS["gpu"]["fn"]["base"].n
#: why rows of the function-space points are not decided at the smoke tier's 16 seeds
SMOKE_N_WHY = ("'same' (distance < 0.1) is untestable below 51 seeds: a minority basin unseen among 16 runs could "
               "carry a distance up to 0.29; for the same reason 'different' (> 0.1) cannot fail there")


def _moved(**changes: dict[str, float]) -> Data:
    return _fn({**MOVED["early"], **changes.get("early", {})}, {**MOVED["late"], **changes.get("late", {})})


def _fn_cases() -> list[Case]:
    eqv, eql = intrinsic.test_intrinsic_equivalence_in_function_space, intrinsic.test_intrinsic_function_space_equilibrium
    unmoved = _moved(early={"higher_intrinsic": 0.0}, late={"higher_intrinsic": 0.0})
    early = [((k, when), s) for (k, when), s in EQUIL.items() if when == "early"]
    return [
        Case(eqv, "true", _moved(), {SAME: UNTESTABLE, DIFFERENT: PASS}, complete=True, why=SMOKE_N_WHY),
        Case(eqv, f"false-{DIFFERENT}", unmoved, {DIFFERENT: INCONCLUSIVE}, why=SMOKE_N_WHY),
        Case(eql, "true", _moved(), {s: UNTESTABLE if when == "late" else PASS for (_, when), s in EQUIL.items()},
             complete=True, why=SMOKE_N_WHY),
        *(Case(eql, f"false-{s}", _moved(early={k: 0.0}), {s: INCONCLUSIVE}, why=SMOKE_N_WHY) for (k, _), s in early),
        # at the gpu tier's 64 seeds both directions of the distance are decided (the equilibrium point's
        # figure, 13 snapshots × 4 ensembles of bootstraps and permutations, is too slow to add it there)
        Case(eqv, "true", _moved(), {SAME: PASS, DIFFERENT: PASS}, n=GPU_N, complete=True),
        Case(eqv, f"false-{SAME}", _moved(late={"rescaled": 0.5}), {SAME: FAIL}, n=GPU_N),
        Case(eqv, f"false-{DIFFERENT}", unmoved, {DIFFERENT: FAIL}, n=GPU_N),
    ]


def _spiky(spikes: np.ndarray, steps: int, flat: bool = False) -> np.ndarray:
    """Loss curves [N, steps] from 1: each run decays to ~e⁻¹⁰ between ``spikes[i]`` returns to 1 (a flat
    loss near 1 with ``flat``)."""
    t = np.arange(steps)
    if flat:
        return np.stack([1.0 + 0.01 * np.cos(t + s) for s in range(len(spikes))])
    out = []
    for k in spikes:
        gap = steps / (k + 1)
        out.append(np.exp(-10 * (t % gap) / gap))
    return np.stack(out)


def _settles(wd_spikes: int, free_spikes: int, free_flat: bool = False) -> Data:
    """Full-batch GD losses with weight decay (``wd``) and without (``no_wd``); a run spikes k or k + 1 times."""
    def data(name: str, e: Ensemble) -> Runs:
        k = wd_spikes if name == "wd" else free_spikes
        loss = _spiky(k + np.arange(e.n) % 2 * (k > 0), e.recipe.steps, free_flat and name == "no_wd")
        steps = np.broadcast_to(np.arange(e.recipe.steps), loss.shape).copy()
        return Runs({"train_loss": loss[:, -1]}, {"loss": loss, "loss_steps": steps, "train_err": 0 * loss})
    return data


def intrinsic_cases() -> list[Case]:
    settle, exact = intrinsic.test_intrinsic_gd_never_settles, intrinsic.test_intrinsic_exact_equivalence
    out = []
    for system in ("toy", "bn_net"):
        wd, free, final = (f"{system}:{k}" for k in ("spikes_per_run_wd", "spikes_per_run_no_wd",
                                                    "log10_final_loss_ratio_no_wd"))
        p = (("system", system),)
        out += [Case(settle, "true", _settles(5, 0), dict.fromkeys((wd, free, final), PASS), p, complete=True),
                Case(settle, f"false-{wd}", _settles(0, 0), {wd: FAIL}, p),
                Case(settle, f"false-{free}", _settles(5, 5), {free: FAIL}, p),
                Case(settle, f"false-{final}", _settles(5, 0, free_flat=True), {final: FAIL}, p)]
    out += [Case(exact, "true", _exact({}), dict.fromkeys(EXACT.values(), PASS), complete=True),
            *(Case(exact, f"false-{s}", _exact({c: 0.1}), {s: FAIL}) for c, s in EXACT.items())]
    return out + _fn_cases()
