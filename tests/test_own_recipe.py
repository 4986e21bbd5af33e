"""--recipe LAW=MODULE:NAME: a law on the user's recipe, the law's manipulation kept, its findings left behind."""
from __future__ import annotations

import json
import textwrap

import pytest

from harness.plugin.own_recipe import apply, parse
from harness.recipe import Ensemble, Recipe

LAW = textwrap.dedent(
    """
    from harness import Ensemble, Recipe
    from harness.law import lrlaw
    from harness.stats import LawResult, decide, mean_ci

    SHIPPED = Recipe(trainer="mlp", dataset="teacher", model="mlp", lr=0.1, batch_size=16, steps=5,
                     options={"n_train": 64, "n_test": 16, "width": 8, "dim": 4})
    TIERS = {"smoke": {"slow": Ensemble(SHIPPED, 4), "fast": Ensemble(SHIPPED.replace(lr=0.2), 4)}}

    @lrlaw("two_lrs", tiers=TIERS, reads=("slow", "fast"))
    def test_two_lrs(law):
        law.known_failure("measured on the shipped MLP: does not hold")
        acc = law.runs("fast").metric("test_acc")
        m, ci = mean_ci(acc)
        law.check(LawResult("mean_acc", m, ci, -1.0, ">", decide(ci, -1.0, ">"), n=len(acc)))
    """
)
OWN = textwrap.dedent(
    """
    from harness import Recipe

    MINE = Recipe(trainer="mlp", dataset="teacher", model="mlp", lr=0.05, batch_size=8, steps=3,
                  options={"n_train": 32, "n_test": 16, "width": 4, "dim": 4})
    """
)


def test_the_law_keeps_its_manipulation_and_takes_the_rest_from_the_users_recipe():
    shipped = Recipe(trainer="mlp", dataset="teacher", model="mlp", lr=0.1, steps=50, options={"width": 8, "depth": 2})
    mine = Recipe(trainer="logreg", dataset="blobs", model="linear", lr=0.05, steps=20, options={"l2": 1.0})
    ens = {"a": Ensemble(shipped, 16), "b": Ensemble(shipped.replace(lr=0.3, options={"depth": 3}), 32)}
    got = apply(mine, ens)
    assert got["a"].recipe == mine.replace(lr=0.1, options={"depth": 2}) and got["a"].n == 16
    assert got["b"].recipe == mine.replace(lr=0.3, options={"depth": 3}) and got["b"].n == 32
    assert apply(mine, {"only": Ensemble(shipped, 4)})["only"].recipe == mine  # nothing varies: all yours
    assert apply(None, ens) == ens


@pytest.mark.parametrize("value, msg", [
    ("linearity", "--recipe takes LAW=MODULE:NAME"),
    ("linearity=nosuchmodule_xyz:R", "cannot import 'nosuchmodule_xyz'"),
    ("linearity=harness.recipe:NOPE", "module 'harness.recipe' has no 'NOPE'"),
    ("linearity=harness.recipe:Ensemble", "is a type, not a harness Recipe"),
])
def test_a_bad_recipe_option_is_one_line(value, msg):
    with pytest.raises(pytest.UsageError, match=msg):
        parse([value])


def test_a_shipped_law_runs_on_the_users_recipe_without_its_finding(pytester):
    pytester.makepyfile(test_law=LAW, own=OWN)
    args = ["-p", "no:cacheprovider", "--store", str(pytester.path / "s"), "--report-dir", "rep",
            "--compare-to", "none", "--fixed-n"]
    shipped = pytester.runpytest_subprocess(*args, timeout=300)
    # control: on the shipped recipe the finding applies, and the point now passing fails loudly
    shipped.assert_outcomes(failed=1)
    assert "no longer holds" in shipped.stdout.str()
    pytester.syspathinsert()
    mine = pytester.runpytest_subprocess(*args, "--recipe", "two_lrs=own:MINE", timeout=300)
    mine.assert_outcomes(passed=1)  # the finding of the shipped recipe is not the user's
    reports = sorted((pytester.path / "rep").glob("*/report.json"), key=lambda p: json.loads(p.read_text())["started"])
    keys = [json.loads(p.read_text())["entries"][0]["recipes"] for p in reports]
    assert set(keys[0].values()).isdisjoint(keys[1].values())  # other runs: the user's model
    assert "8 runs to train" in mine.stdout.str()
