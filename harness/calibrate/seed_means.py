"""Calibration families of the per-seed t-intervals and the count intervals.

Paired difference, band and non-inferiority (Student-t over seeds), the
Clopper–Pearson proportion and the Garwood rate of spikes. Every generator
returns per-seed values whose population mean is known in closed form.
"""
from __future__ import annotations

import math

import numpy as np

from harness.calibrate.core import Family, Generator, register
from harness.stats import band_result, noninferiority_result, paired_difference_result, rate_result
from harness.stats import decide
from harness.stats.scale_invariance import spike_rate_ci

N = 16  # seeds per ensemble, as at the smoke tier
MINORITY = 0.2  # fraction of seeds in the other basin


def _minority(rng: np.random.Generator, mean: float, sd: float = 1.0, gap: float = 4.0) -> np.ndarray:
    """A majority basin and a minority 20% of seeds ``gap``·sd above it, mixed to mean ``mean``."""
    lo = mean - MINORITY * gap * sd
    return lo + sd * rng.standard_normal(N) + gap * sd * (rng.random(N) < MINORITY)


def _collapsing(rng: np.random.Generator, mean: float, sd: float = 1.0, gap: float = 4.0) -> np.ndarray:
    """The mirror image: a minority 20% of seeds ``gap``·sd *below* the majority (runs that collapse).

    Left skew is where a t-interval passes falsely: the samples that happen to miss the
    minority have a high mean and a small spread together.
    """
    return 2 * mean - _minority(rng, mean, sd, gap)


def _left_lognormal(rng: np.random.Generator, mean: float, sd: float = 1.0, sigma: float = 0.5) -> np.ndarray:
    """Mean ``mean``, sd ``sd``, a long left tail: minus a lognormal(0, sigma) (skewness −1.75 at 0.5)."""
    v = rng.lognormal(0.0, sigma, N)
    return mean - sd * (v - math.exp(sigma**2 / 2)) / math.sqrt((math.exp(sigma**2) - 1) * math.exp(sigma**2))


def _t3(rng: np.random.Generator, mean: float, sd: float = 1.0) -> np.ndarray:
    return mean + sd * rng.standard_t(3, N)


def _pairs(diff_of: "callable") -> "callable":
    """Data (a, b) for the paired builders from a draw of the differences alone (b is pure noise)."""
    def draw(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        b = 0.7 + 0.05 * rng.standard_normal(N)
        return b + diff_of(rng), b
    return draw


def _crn(mean: float) -> "callable":
    # common random numbers: a large seed effect shared by both recipes cancels in the pairing
    def draw(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        z = 5.0 * rng.standard_normal(N)
        return z + mean + rng.standard_normal(N), z + rng.standard_normal(N)
    return draw


def _unequal(mean: float) -> "callable":
    def draw(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        return mean + 0.3 * rng.standard_normal(N), 3.0 * rng.standard_normal(N)
    return draw


def _paired_family(statistic: str, build, boundary: float, inside: float) -> Family:
    def decide_(data):
        r = build(*data)
        return r.ci[0], r.ci[1], r.decision
    gens = (
        Generator("gaussian_at_threshold", boundary, "boundary", _pairs(lambda r: boundary + r.standard_normal(N))),
        Generator("heavy_tails_t3_at_threshold", boundary, "boundary", _pairs(lambda r: _t3(r, boundary))),
        Generator("minority_basin_at_threshold", boundary, "boundary", _pairs(lambda r: _minority(r, boundary)),
                  "20% of seeds 4 sd away"),
        Generator("collapsing_minority_at_threshold", boundary, "boundary",
                  _pairs(lambda r: _collapsing(r, boundary)), "20% of seeds 4 sd below: left skew"),
        Generator("left_skewed_lognormal_at_threshold", boundary, "boundary",
                  _pairs(lambda r: _left_lognormal(r, boundary)), "skewness -1.75"),
        Generator("unequal_noise_at_threshold", boundary, "boundary", _unequal(boundary), "sd 0.3 vs 3"),
        Generator("common_random_numbers_at_threshold", boundary, "boundary", _crn(boundary),
                  "seed effect sd 5 shared by both"),
        Generator("just_inside", inside, "inside", _pairs(lambda r: inside + r.standard_normal(N))),
        Generator("just_outside", 2 * boundary - inside, "boundary",
                  _pairs(lambda r: 2 * boundary - inside + r.standard_normal(N))),
    )
    # ~0.3 ms a trial: 4000 trials per cell in a full run, so a cell's own Monte-Carlo error is ±0.7%
    return Family(statistic, decide_, gens, N, trial_cost=0.1)


register(_paired_family("paired_difference_t",
                        lambda a, b: paired_difference_result("cal", "d", a, b, 0.0, ">"), 0.0, 0.5))
register(_paired_family("noninferiority_t",
                        lambda a, b: noninferiority_result("cal", "d", a, b, 0.5), -0.5, 0.0))

BAND = (0.8, 1.25)


def _band_decide(x: np.ndarray) -> tuple[float, float, str]:
    r = band_result("cal", "v", x, BAND)
    return r.ci[0], r.ci[1], r.decision


def _lognormal_ratio(rng: np.random.Generator) -> np.ndarray:
    # per-seed ratio x/y of two quantities sharing a seed effect: exp(e1 − e2), e ~ N(0, 0.2²) each
    z = rng.standard_normal(N)
    return 1.25 * np.exp(0.2 * rng.standard_normal(N) + z - (0.2 * rng.standard_normal(N) + z)) / np.exp(0.04)


def _unequal_ratio(rng: np.random.Generator) -> np.ndarray:
    # per-seed ratio x/y of two ensembles with unequal noise: x 30% lognormal noise, y 3%; E[x/y] = 1.25 exactly
    x = 1.25 * np.exp(0.3 * rng.standard_normal(N) - 0.045)
    y = np.exp(0.03 * rng.standard_normal(N) + 0.00045)
    return x / y


register(Family("band_t", _band_decide, (
    Generator("gaussian_at_upper_edge", 1.25, "boundary", lambda r: 1.25 + 0.1 * r.standard_normal(N)),
    Generator("heavy_tails_t3_at_upper_edge", 1.25, "boundary", lambda r: _t3(r, 1.25, 0.1)),
    Generator("minority_basin_at_lower_edge", 0.8, "boundary", lambda r: _minority(r, 0.8, 0.05)),
    Generator("collapsing_minority_at_lower_edge", 0.8, "boundary", lambda r: _collapsing(r, 0.8, 0.05),
              "20% of seeds 4 sd below: left skew"),
    Generator("right_skewed_lognormal_at_upper_edge", 1.25, "boundary",
              lambda r: 2 * 1.25 - _left_lognormal(r, 1.25, 0.1), "skewness +1.75: a low mean with a small spread"),
    Generator("crn_lognormal_ratio_at_upper_edge", 1.25, "boundary", _lognormal_ratio,
              "x/y with a shared seed effect"),
    Generator("unequal_noise_ratio_at_upper_edge", 1.25, "boundary", _unequal_ratio,
              "x/y, noise 30% in x and 3% in y"),
    Generator("heteroscedastic_seeds_at_lower_edge", 0.8, "boundary",
              lambda r: 0.8 + np.where(r.random(N) < 0.5, 0.02, 0.2) * r.standard_normal(N),
              "half the seeds 10x noisier"),
    Generator("just_inside", 1.0, "inside", lambda r: 1.0 + 0.1 * r.standard_normal(N)),
    Generator("just_outside", 1.3, "boundary", lambda r: 1.3 + 0.1 * r.standard_normal(N)),
), N, trial_cost=0.1))


def _rate_decide(flags: np.ndarray) -> tuple[float, float, str]:
    r = rate_result("cal", "p", flags, 0.5, ">")
    return r.ci[0], r.ci[1], r.decision


def _bernoulli(p: float):
    return lambda r: r.random(N) < p


def _heterogeneous(r: np.random.Generator) -> np.ndarray:
    # seeds in two basins (p = 0.2 or 0.8, half each): marginally Bernoulli(0.5)
    p = np.where(r.random(N) < 0.5, 0.2, 0.8)
    return r.random(N) < p


register(Family("proportion_clopper_pearson", _rate_decide, (
    Generator("p_at_threshold", 0.5, "boundary", _bernoulli(0.5)),
    Generator("heterogeneous_seeds_at_threshold", 0.5, "boundary", _heterogeneous, "basins p=0.2 / 0.8"),
    Generator("just_outside", 0.45, "boundary", _bernoulli(0.45)),
    Generator("just_inside", 0.75, "inside", _bernoulli(0.75)),
    Generator("near_one", 0.97, "away", _bernoulli(0.97)),
    Generator("near_zero", 0.03, "away", _bernoulli(0.03)),
), N))


def _spike_decide(counts: np.ndarray) -> tuple[float, float, str]:
    ci = spike_rate_ci(counts)
    return ci[0], ci[1], decide(ci, 1.0, ">")


SPIKE_N = 8
register(Family("spike_rate", _spike_decide, (
    Generator("poisson_at_threshold", 1.0, "boundary", lambda r: r.poisson(1.0, SPIKE_N)),
    Generator("regular_spikes_at_threshold", 1.0, "boundary", lambda r: r.binomial(2, 0.5, SPIKE_N),
              "under-dispersed (binomial 2, ½)"),
    Generator("minority_basin_at_threshold", 1.0, "boundary",
              lambda r: np.where(r.random(SPIKE_N) < 0.2, r.poisson(3.0, SPIKE_N), r.poisson(0.5, SPIKE_N)),
              "20% of runs spike 6x as often"),
    Generator("heavy_tails_negbin_at_threshold", 1.0, "boundary", lambda r: r.negative_binomial(1, 0.5, SPIKE_N),
              "over-dispersed (geometric, mean 1)"),
    Generator("just_outside", 0.7, "boundary", lambda r: r.poisson(0.7, SPIKE_N)),
    Generator("just_inside", 3.0, "inside", lambda r: r.poisson(3.0, SPIKE_N)),
    Generator("rare", 0.1, "away", lambda r: r.poisson(0.1, SPIKE_N)),
), SPIKE_N))
