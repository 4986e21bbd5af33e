"""reference: the harness's trainers reproduce a published table.

Greydanus & Kobak, "Scaling Down Deep Learning" (arXiv:2011.14439, 2020/2024),
Table 1 ("Comparing MNIST and MNIST-1D", also the README of
github.com/greydanus/mnist1d), reports test accuracies on MNIST-1D's default
4000/1000 split: logistic regression 32%, **MLP 68%**, **CNN 94%**, GRU 91%.
The repository builds the MLP and the CNN as ``MLPBase`` and ``ConvBase``
(``models.py``) and trains them with ``train.py``'s defaults: Adam, LR 1e-2,
batch 100 taken in order through the training set, no weight decay,
``total_steps`` = 8000 (its loop takes 8001 steps). ``harness.trainers.paper_nets``
writes both nets in PyTorch the same way (``MLPBase`` with its default 100
hidden units, ``ConvBase`` with 25 channels) and the data come from the
``mnist1d`` package's own generator (``harness.data.mnist1d``).

Asserted, per net: the 95% CI of the mean test accuracy over N ≥ 8 seeds lies
within the paper's figure ± TOLERANCE_PP percentage points (fail when it lies
wholly outside). This checks that our trainers are ordinary trainers — a law
verified with a broken trainer proves nothing. The paper's figures and ours
stand side by side in ``report.md`` (the point's note and the result's
``extra``); the measured values are in the report, not here.

Finding (`pytest laws/ -k reference --tier smoke`, see the committed report):
the CNN's mean lands on the paper's figure, but at seeds 0–7 one run ends at
88.6% (the others 92.9–94.2%), and the skew-robust interval of the mean
reaches below the band: inconclusive; at seeds 1000000… it passes. Our MLP
sits a few points below 68% (the paper's figure is one run, seed 42, rounded
to a whole percent).
"""
from __future__ import annotations

import pytest

from harness.law import lrlaw
from harness.recipe import Ensemble, Recipe
from harness.stats import SANITY
from harness.stats.reference import agreement

#: Table 1 of Greydanus & Kobak, MNIST-1D row: test accuracy in percent
PAPER = {"mnist1d_mlp": 68.0, "mnist1d_cnn": 94.0}
#: Agreement band, in percentage points. The paper's figures are single runs rounded to whole
#: percent; the MLP's seed-to-seed std is ≈ 2 pp, so one run lands within ± 4 pp of its mean
#: 95% of the time; 5 pp adds the rounding. Chosen after a first 8-seed look at 6000 steps (MLP
#: 63.8%, CNN 93.5%), so the smoke verdict is not confirmatory: re-decide with --seed-base.
TOLERANCE_PP = 5.0
PAPER_RECIPE = Recipe(trainer="paper_nets", dataset="mnist1d", model="mnist1d_mlp", optimizer="adam", lr=1e-2,
                      batch_size=100, steps=8001)
#: per tier, each net's ensemble; seeds per net ≥ 8: a CI needs a spread
TIERS = {tier: {model: Ensemble(PAPER_RECIPE.replace(model=model), n) for model in PAPER}
         for tier, n in (("smoke", 8), ("gpu", 32), ("paper", 100))}


@lrlaw("reference", tiers=TIERS, reads=lambda nets, model: {"net": nets[model]})
@pytest.mark.parametrize("model", sorted(PAPER), ids=lambda m: m.split("_")[1])
def test_reference_mnist1d_accuracy(law, model):
    acc = law.runs("net").metric("test_acc")
    # sanity: our setup reproduces the paper's table; it is no claim about training
    result = agreement(acc, PAPER[model], TOLERANCE_PP, kind=SANITY,
                       statistic=f"MNIST-1D {model.split('_')[1].upper()} test accuracy (%)")
    law.note(f"{model.split('_')[1].upper()} on MNIST-1D: paper {PAPER[model]:.0f}% (Greydanus & Kobak, Table 1) | "
             f"ours {result.value:.1f}% (95% CI {result.ci[0]:.1f}–{result.ci[1]:.1f}, N = {result.n}) | "
             f"tolerance ± {TOLERANCE_PP:g} pp")
    law.check(result)
