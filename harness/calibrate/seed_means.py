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
from harness.stats import MIN_MEAN_N, decide
from harness.stats.scale_invariance import spike_rate_ci

N = 16  # seeds per ensemble, as at the smoke tier
#: every N a law decides a mean over seeds at: the smoke tier's 4, 8 and 16, the gpu tier's 32 and 64, the
#: paper tier's 100 (measured at 128), and the fewest a mean row decides on (``MIN_MEAN_N``)
MEAN_SIZES = (MIN_MEAN_N, 4, 8, 16, 32, 64, 128)
MINORITY = 0.2  # fraction of seeds in the other basin


def _minority(rng: np.random.Generator, mean: float, sd: float = 1.0, gap: float = 4.0, n: int = N,
              frac: float = MINORITY) -> np.ndarray:
    """A majority basin and a minority ``frac`` of seeds ``gap``·sd above it, mixed to mean ``mean``."""
    lo = mean - frac * gap * sd
    return lo + sd * rng.standard_normal(n) + gap * sd * (rng.random(n) < frac)


def _collapsing(rng: np.random.Generator, mean: float, sd: float = 1.0, gap: float = 4.0, n: int = N,
                frac: float = MINORITY) -> np.ndarray:
    """The mirror image: a minority of seeds ``gap``·sd *below* the majority (runs that collapse).

    Left skew is where a t-interval passes falsely: the samples that happen to miss the
    minority have a high mean and a small spread together.
    """
    return 2 * mean - _minority(rng, mean, sd, gap, n, frac)


def _lognormal(rng: np.random.Generator, mean: float, sd: float = 1.0, sigma: float = 0.5, n: int = N) -> np.ndarray:
    """Mean ``mean``, sd ``sd``, a long right tail: a lognormal(0, sigma) (skewness 1.75 at 0.5, 6.2 at 1)."""
    v = rng.lognormal(0.0, sigma, n)
    return mean + sd * (v - math.exp(sigma**2 / 2)) / math.sqrt((math.exp(sigma**2) - 1) * math.exp(sigma**2))


def _left_lognormal(rng: np.random.Generator, mean: float, sd: float = 1.0, sigma: float = 0.5,
                    n: int = N) -> np.ndarray:
    """Mean ``mean``, sd ``sd``, a long left tail: minus a lognormal(0, sigma)."""
    return 2 * mean - _lognormal(rng, mean, sd, sigma, n)


def _chi2(rng: np.random.Generator, mean: float, sd: float = 1.0, sign: float = 1.0, n: int = N) -> np.ndarray:
    """χ²₁ standardised (skewness 2.83), its long tail on the side of ``sign``."""
    return mean + sign * sd * (rng.chisquare(1, n) - 1) / math.sqrt(2)


def _t3(rng: np.random.Generator, mean: float, sd: float = 1.0, n: int = N) -> np.ndarray:
    return mean + sd * rng.standard_t(3, n)


def _skewed_generators(t: float, sd: float, n: int, low: str, high: str) -> tuple[Generator, ...]:
    """The skewed seeds a mean interval must survive at ``n`` seeds, truth ``t``: rare minorities (1 in N,
    and 10% of seeds 5 sd away) and skew ≥ 2 on both tails (lognormal σ = 1, χ²₁). ``low``/``high`` name the
    generators whose long tail points below/above the truth."""
    return (
        Generator(f"one_in_n_minority_{low}", t, "boundary", lambda r: _collapsing(r, t, sd, 4.0, n, 1 / n),
                  "1 in N seeds 4 sd away, on the side a missing minority fakes a pass"),
        Generator(f"rare_minority_10pct_{low}", t, "boundary", lambda r: _collapsing(r, t, sd, 5.0, n, 0.1),
                  "10% of seeds 5 sd away"),
        Generator(f"lognormal_sigma1_{low}", t, "boundary", lambda r: _left_lognormal(r, t, sd, 1.0, n),
                  "skewness 6.2, long tail on the passing side's far end"),
        Generator(f"lognormal_sigma1_{high}", t, "boundary", lambda r: _lognormal(r, t, sd, 1.0, n),
                  "skewness 6.2, the other tail"),
        Generator(f"chi2_1_{low}", t, "boundary", lambda r: _chi2(r, t, sd, -1.0, n), "skewness 2.83"),
        Generator(f"chi2_1_{high}", t, "boundary", lambda r: _chi2(r, t, sd, 1.0, n), "skewness 2.83, the other tail"),
    )


def _pairs(diff_of, n: int = N):
    """Data (a, b) for the paired builders from a draw of the differences alone (b is pure noise)."""
    def draw(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        b = 0.7 + 0.05 * rng.standard_normal(n)
        return b + diff_of(rng), b
    return draw


def _crn(mean: float, n: int = N):
    # common random numbers: a large seed effect shared by both recipes cancels in the pairing
    def draw(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        z = 5.0 * rng.standard_normal(n)
        return z + mean + rng.standard_normal(n), z + rng.standard_normal(n)
    return draw


def _unequal(mean: float, n: int = N):
    def draw(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        return mean + 0.3 * rng.standard_normal(n), 3.0 * rng.standard_normal(n)
    return draw


def _paired_generators(boundary: float, inside: float, n: int) -> tuple[Generator, ...]:
    def gauss(m: float):
        return _pairs(lambda r: m + r.standard_normal(n), n)
    skewed = tuple(Generator(g.name, g.truth, g.role, _pairs(g.draw, n), g.note)
                   for g in _skewed_generators(boundary, 1.0, n, "low", "high"))
    return (
        Generator("gaussian_at_threshold", boundary, "boundary", gauss(boundary)),
        Generator("heavy_tails_t3_at_threshold", boundary, "boundary", _pairs(lambda r: _t3(r, boundary, n=n), n)),
        Generator("minority_basin_at_threshold", boundary, "boundary",
                  _pairs(lambda r: _minority(r, boundary, n=n), n), "20% of seeds 4 sd away"),
        Generator("collapsing_minority_at_threshold", boundary, "boundary",
                  _pairs(lambda r: _collapsing(r, boundary, n=n), n), "20% of seeds 4 sd below: left skew"),
        Generator("left_skewed_lognormal_at_threshold", boundary, "boundary",
                  _pairs(lambda r: _left_lognormal(r, boundary, n=n), n), "skewness -1.75"),
        Generator("unequal_noise_at_threshold", boundary, "boundary", _unequal(boundary, n), "sd 0.3 vs 3"),
        Generator("common_random_numbers_at_threshold", boundary, "boundary", _crn(boundary, n),
                  "seed effect sd 5 shared by both"),
        *skewed,
        Generator("just_inside", inside, "inside", gauss(inside)),
        Generator("just_outside", 2 * boundary - inside, "boundary", gauss(2 * boundary - inside)),
    )


def _paired_family(statistic: str, build, boundary: float, inside: float) -> Family:
    def decide_(data):
        r = build(*data)
        return r.ci[0], r.ci[1], r.decision
    # ~0.3 ms a trial: 4000 trials per cell in a full run, so a cell's own Monte-Carlo error is ±0.7%
    return Family(statistic, decide_, _paired_generators(boundary, inside, N), N, trial_cost=0.1,
                  sizes=MEAN_SIZES, generators_at=lambda n: _paired_generators(boundary, inside, n))


register(_paired_family("paired_difference_t",
                        lambda a, b: paired_difference_result("d", a, b, 0.0, ">"), 0.0, 0.5))
register(_paired_family("noninferiority_t",
                        lambda a, b: noninferiority_result("d", a, b, 0.5), -0.5, 0.0))

BAND = (0.8, 1.25)


def _band_decide(x: np.ndarray) -> tuple[float, float, str]:
    r = band_result("v", x, BAND)
    return r.ci[0], r.ci[1], r.decision


def _lognormal_ratio(n: int):
    # per-seed ratio x/y of two quantities sharing a seed effect: exp(e1 − e2), e ~ N(0, 0.2²) each
    def draw(rng: np.random.Generator) -> np.ndarray:
        z = rng.standard_normal(n)
        return 1.25 * np.exp(0.2 * rng.standard_normal(n) + z - (0.2 * rng.standard_normal(n) + z)) / np.exp(0.04)
    return draw


def _unequal_ratio(n: int):
    # per-seed ratio x/y of two ensembles with unequal noise: x 30% lognormal noise, y 3%; E[x/y] = 1.25 exactly
    def draw(rng: np.random.Generator) -> np.ndarray:
        x = 1.25 * np.exp(0.3 * rng.standard_normal(n) - 0.045)
        y = np.exp(0.03 * rng.standard_normal(n) + 0.00045)
        return x / y
    return draw


def _band_generators(n: int) -> tuple[Generator, ...]:
    def gauss(m: float):
        return lambda r: m + 0.1 * r.standard_normal(n)
    # at the upper edge a false pass comes from a long *upper* tail that the sample misses: the mirror of "low"
    upper = tuple(Generator(g.name.replace("_low", "_above").replace("_high", "_below") + "_upper_edge", g.truth,
                            g.role, (lambda d: lambda r: 2 * 1.25 - d(r))(g.draw), g.note)
                  for g in _skewed_generators(1.25, 0.1, n, "low", "high"))
    return (
        Generator("gaussian_at_upper_edge", 1.25, "boundary", gauss(1.25)),
        Generator("heavy_tails_t3_at_upper_edge", 1.25, "boundary", lambda r: _t3(r, 1.25, 0.1, n)),
        Generator("minority_basin_at_lower_edge", 0.8, "boundary", lambda r: _minority(r, 0.8, 0.05, n=n)),
        Generator("collapsing_minority_at_lower_edge", 0.8, "boundary", lambda r: _collapsing(r, 0.8, 0.05, n=n),
                  "20% of seeds 4 sd below: left skew"),
        Generator("right_skewed_lognormal_at_upper_edge", 1.25, "boundary",
                  lambda r: _lognormal(r, 1.25, 0.1, n=n), "skewness +1.75: a low mean with a small spread"),
        Generator("crn_lognormal_ratio_at_upper_edge", 1.25, "boundary", _lognormal_ratio(n),
                  "x/y with a shared seed effect"),
        Generator("unequal_noise_ratio_at_upper_edge", 1.25, "boundary", _unequal_ratio(n),
                  "x/y, noise 30% in x and 3% in y"),
        Generator("heteroscedastic_seeds_at_lower_edge", 0.8, "boundary",
                  lambda r: 0.8 + np.where(r.random(n) < 0.5, 0.02, 0.2) * r.standard_normal(n),
                  "half the seeds 10x noisier"),
        *upper,
        Generator("just_inside", 1.0, "inside", gauss(1.0)),
        Generator("just_outside", 1.3, "boundary", gauss(1.3)),
    )


register(Family("band_t", _band_decide, _band_generators(N), N, trial_cost=0.1, sizes=MEAN_SIZES,
                generators_at=_band_generators))


def _rate_decide(flags: np.ndarray) -> tuple[float, float, str]:
    r = rate_result("p", flags, 0.5, ">")
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
