"""Law `larger_lr_faster`: within a short budget, a 3x larger learning rate ends at a higher test accuracy."""
import pytest

from harness import Ensemble, Recipe
from harness.law import lrlaw
from harness.stats import paired_difference_result

# One recipe per tier; the law declares only the tiers it is tested at.
SMOKE = Recipe(trainer="mlp", dataset="teacher", model="mlp", lr=0.05, batch_size=16, steps=30,
               options={"n_train": 256, "n_test": 256})


@lrlaw("larger_lr_faster", tiers={"smoke": SMOKE},
       reads=lambda base, factor: {"base": Ensemble(base, 32), "larger": Ensemble(base.replace(lr=base.lr * factor), 32)})
@pytest.mark.parametrize("factor", [3.0])
def test_larger_lr_learns_faster(law, factor):
    # seed s is the same initialisation and data order in both ensembles: compare them pairwise
    base, larger = law.runs("base").metric("test_acc"), law.runs("larger").metric("test_acc")
    law.check(paired_difference_result("acc_larger_minus_base", larger, base, 0.0, ">"))
