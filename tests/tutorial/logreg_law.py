"""Law `logreg_lr`: on the blobs, 20 SGD steps of logistic regression with LR 0.5 reach a lower test loss than LR 0.05."""
from harness import Ensemble, Recipe
from harness.law import lrlaw
from harness.stats import paired_difference_result

SMOKE = Recipe(trainer="logreg", dataset="blobs", model="linear", lr=0.05, batch_size=16, steps=20)


@lrlaw("logreg_lr", tiers={"smoke": {"slow": Ensemble(SMOKE, 32), "fast": Ensemble(SMOKE.replace(lr=0.5), 32)}})
def test_larger_lr_fits_the_blobs_sooner(law):
    slow, fast = law.runs("slow").metric("test_loss"), law.runs("fast").metric("test_loss")
    law.check(paired_difference_result("loss_fast_minus_slow", fast, slow, 0.0, "<"))
