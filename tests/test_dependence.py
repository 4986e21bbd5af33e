"""The seed-independence check: silent on independent seeds, loud on seeds that share state."""
from __future__ import annotations

import numpy as np
import pytest

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


# indented, so that no line of this harness test reads as a module-level law (harness.plugin.xdist)
CHUNKY_LAW = '''
    import numpy as np
    from harness import Ensemble, Recipe
    from harness.law import lrlaw
    from harness.store.runs import RunResult
    from harness.stats import mean_result
    from harness.trainers import TRAINERS

    class Plugin:
        """A plug-in trainer; SHARED: one generator per chunk of 8 seeds instead of one per seed."""
        name, salt = "plugin", "plugin-v1"
        def validate(self, recipe): pass
        def check_data(self, recipe, ctx): pass
        def chunk_size(self, recipe, device): return 8
        def estimate_seconds(self, recipe, device): return 0.01
        def train(self, recipe, seeds, ctx):
            chunk = np.random.default_rng(seeds[0]).standard_normal() if SHARED else 0.0
            for s in seeds:
                acc = 0.8 + 0.05 * chunk + 0.01 * np.random.default_rng(10_000 + s).standard_normal()
                yield RunResult(s, {"out": np.zeros(2)}, {"acc": float(acc)})

    TRAINERS["plugin"] = Plugin()

    @lrlaw("acc", tiers={"smoke": {"runs": Ensemble(Recipe(trainer="plugin", dataset="none", model="none"), 64)}})
    def test_acc(law):
        law.check(mean_result("mean_acc", law.runs("runs").metric("acc"), 0.5, ">"))
'''


@pytest.mark.parametrize("shared", [True, False], ids=["shares-state-per-chunk", "independent-control"])
def test_a_plugin_trainer_sharing_state_across_a_chunk_fails_its_points(pytester, shared):
    import textwrap

    pytester.makeini("[pytest]\n")
    pytester.makepyfile(test_chunky=f"SHARED = {shared}\n" + textwrap.dedent(CHUNKY_LAW))
    r = pytester.runpytest_subprocess("-p", "no:cacheprovider", "--gpus=0", "--workers=1", "--store=s",
                                      "--report-dir=rep", "--compare-to=none", timeout=300)
    if shared:
        r.assert_outcomes(failed=1)
        r.stdout.fnmatch_lines(["*harness error: a check of law acc is broken*", "*runs:seed_independence_p*"])
    else:
        r.assert_outcomes(passed=1)
