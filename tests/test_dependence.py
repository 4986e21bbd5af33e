"""The seed-independence check: silent on independent seeds, loud on seeds that share state."""
from __future__ import annotations

import numpy as np

from harness.stats import FAIL, PASS
from harness.stats.dependence import ALPHA, dependence_p, independence_result


def _rate(draw, trials: int = 300) -> float:
    rng = np.random.default_rng(1)
    return float(np.mean([dependence_p(draw(rng)) < ALPHA for _ in range(trials)]))


def test_independent_seeds_do_not_alarm_even_when_skewed():
    assert _rate(lambda r: r.standard_normal(64)) == 0.0
    assert _rate(lambda r: r.lognormal(0, 1.0, 64)) == 0.0
    assert independence_result("e", np.random.default_rng(0).standard_normal(64)).decision == PASS


def _shared_chunk_state(r: np.random.Generator, n: int = 64, chunk: int = 8) -> np.ndarray:
    """A trainer whose seeds in a chunk share most of their randomness (one generator for the chunk)."""
    return np.repeat(r.standard_normal(n // chunk), chunk) + 0.2 * r.standard_normal(n)


def _drift(r: np.random.Generator, n: int = 64, phi: float = 0.9) -> np.ndarray:
    """State carried from seed to seed: AR(1) along the seed index."""
    x = np.zeros(n)
    for i in range(1, n):
        x[i] = phi * x[i - 1] + r.standard_normal()
    return x


def test_a_trainer_sharing_state_within_a_chunk_is_caught():
    assert _rate(_shared_chunk_state) > 0.9
    r = independence_result("e", _shared_chunk_state(np.random.default_rng(0)))
    assert r.decision == FAIL and r.kind == "check"


def test_state_carried_along_the_seeds_is_caught():
    assert _rate(_drift) > 0.5


def test_constant_or_tiny_ensembles_are_not_tested():
    assert dependence_p(np.ones(16)) == 1.0 and dependence_p(np.arange(4.0)) == 1.0
