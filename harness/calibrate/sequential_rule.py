"""Calibration families of the sequential rule: Bonferroni looks at 64, 128, 256, 512 runs, and
open-ended looks (``--budget``) at 64 … 4096 runs with α_k = 0.05·2^−k.

A trial draws 512 runs, applies ``harness.stats.sequential.sequential_interval`` to the claim
"mean > 0" and reports the interval of the look it stopped at. That interval must cover
the truth (the union bound over the looks promises ≥ 95%), and at the threshold the rule
must pass at most 5% of the time, whatever the noise.

Measured with the Student-t interval alone (4000 trials a cell): under strong skew
(lognormal σ = 1, skewness 6.2) the stopped interval covered only 90.7% with a long
right tail, and with a long left tail the rule passed falsely 9.3% of the time: 64
skewed runs make a low (high) mean come with a small spread. The rule now uses
``harness.stats.t_interval`` (Student-t joined with Hall's skewness correction); the
README's calibration table has its cells.
"""
from __future__ import annotations

import math

import numpy as np

from harness.calibrate.core import Family, Generator, register
from harness.stats.sequential import look_level, looks, sequential_interval, spending_level

N_MAX = 512
PLAN = looks(N_MAX)
LEVEL = look_level(len(PLAN))
#: open-ended looks (--budget): 64 … 4096 runs, the k-th at level 1 − 0.05·2^−k
OPEN_N_MAX = 4096
OPEN_PLAN = looks(OPEN_N_MAX)
OPEN_LEVELS = [spending_level(k + 1) for k in range(len(OPEN_PLAN))]


def _decide(runs: np.ndarray) -> tuple[float, float, str]:
    lo, hi, decision, _ = sequential_interval(runs, 0.0, PLAN, LEVEL)
    return lo, hi, decision


def _decide_open(runs: np.ndarray) -> tuple[float, float, str]:
    lo, hi, decision, _ = sequential_interval(runs, 0.0, OPEN_PLAN, OPEN_LEVELS)
    return lo, hi, decision


def _normal(mean: float, n: int = N_MAX):
    return lambda rng: mean + rng.standard_normal(n)


def _t3(mean: float, n: int = N_MAX):
    return lambda rng: mean + rng.standard_t(3, n) / math.sqrt(3.0)


def _skewed(mean: float, n: int = N_MAX):
    # lognormal(0, 1) centred on ``mean``: a long right tail that a t-interval must survive
    return lambda rng: mean + (rng.lognormal(0.0, 1.0, n) - math.exp(0.5)) / math.sqrt((math.e - 1) * math.e)


def _left_skewed(mean: float, n: int = N_MAX):
    # the mirror image: a long left tail, where a t-interval's errors are false *passes*
    right = _skewed(0.0, n)
    return lambda rng: mean - right(rng)


def _collapsing(mean: float):
    # 20% of runs 4 sd *below* the majority (runs that collapse), mixed to mean ``mean``
    return lambda rng: mean + 0.8 - rng.standard_normal(N_MAX) - 4.0 * (rng.random(N_MAX) < 0.2)


def _unequal_pairs(mean: float):
    # per-run differences of two ensembles with unequal noise (sd 0.3 and 3) sharing nothing
    return lambda rng: mean + 0.3 * rng.standard_normal(N_MAX) - 3.0 * rng.standard_normal(N_MAX)


def _crn_pairs(mean: float):
    # per-run differences of two recipes that share a heavy-tailed seed effect, which cancels
    def draw(rng: np.random.Generator) -> np.ndarray:
        z = 5.0 * rng.standard_t(2, N_MAX)
        return (z + mean + rng.standard_normal(N_MAX)) - (z + rng.standard_normal(N_MAX))
    return draw


def _minority(mean: float, n: int = N_MAX):
    # 20% of runs in another basin 4 sd above the majority, mixed to mean ``mean``
    return lambda rng: mean - 0.8 + rng.standard_normal(n) + 4.0 * (rng.random(n) < 0.2)


def _collapsing_n(mean: float, n: int):
    return lambda rng: mean + 0.8 - rng.standard_normal(n) - 4.0 * (rng.random(n) < 0.2)


register(Family("sequential_t_looks", _decide, (
    Generator("gaussian_at_threshold", 0.0, "boundary", _normal(0.0)),
    Generator("heavy_tails_t3_at_threshold", 0.0, "boundary", _t3(0.0)),
    Generator("skewed_lognormal_at_threshold", 0.0, "boundary", _skewed(0.0), "a long right tail"),
    Generator("left_skewed_lognormal_at_threshold", 0.0, "boundary", _left_skewed(0.0), "a long left tail"),
    Generator("minority_basin_at_threshold", 0.0, "boundary", _minority(0.0), "20% of runs 4 sd away"),
    Generator("collapsing_minority_at_threshold", 0.0, "boundary", _collapsing(0.0), "20% of runs 4 sd below"),
    Generator("unequal_noise_at_threshold", 0.0, "boundary", _unequal_pairs(0.0), "a - b, sd 0.3 vs 3"),
    Generator("common_random_numbers_at_threshold", 0.0, "boundary", _crn_pairs(0.0),
              "a t2 seed effect (sd 5x) shared by a and b"),
    Generator("just_outside", -0.15, "boundary", _normal(-0.15), "0.15 sd below the threshold"),
    Generator("just_inside", 0.15, "inside", _normal(0.15), "0.15 sd above the threshold"),
    Generator("away", 0.5, "away", _normal(0.5)),
), N_MAX, trial_cost=0.1))  # ~5 ms a trial: 4000 trials per cell in a full run


register(Family("sequential_open_ended", _decide_open, (
    Generator("gaussian_at_threshold", 0.0, "boundary", _normal(0.0, OPEN_N_MAX)),
    Generator("heavy_tails_t3_at_threshold", 0.0, "boundary", _t3(0.0, OPEN_N_MAX)),
    Generator("skewed_lognormal_at_threshold", 0.0, "boundary", _skewed(0.0, OPEN_N_MAX), "a long right tail"),
    Generator("left_skewed_lognormal_at_threshold", 0.0, "boundary", _left_skewed(0.0, OPEN_N_MAX),
              "a long left tail"),
    Generator("minority_basin_at_threshold", 0.0, "boundary", _minority(0.0, OPEN_N_MAX), "20% of runs 4 sd away"),
    Generator("collapsing_minority_at_threshold", 0.0, "boundary", _collapsing_n(0.0, OPEN_N_MAX),
              "20% of runs 4 sd below"),
    Generator("just_inside", 0.1, "inside", _normal(0.1, OPEN_N_MAX), "0.1 sd above the threshold"),
    Generator("away", 0.5, "away", _normal(0.5, OPEN_N_MAX)),
), OPEN_N_MAX, trial_cost=0.5))  # 7 looks at up to 4096 runs: 64 … 4096, α_k = 0.05·2^−k
