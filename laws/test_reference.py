"""reference: the harness's trainers reproduce a published table (sanity rows, not claims).

Greydanus & Kobak, "Scaling Down Deep Learning" (arXiv:2011.14439, 2020/2024),
Table 1 ("Comparing MNIST and MNIST-1D", also the README of
github.com/greydanus/mnist1d), reports test accuracies on MNIST-1D's default
4000/1000 split: **logistic regression 32%**, **MLP 68%**, **CNN 94%**, GRU 91%.
The repository builds the nets as ``LinearBase``, ``MLPBase`` and ``ConvBase``
(``models.py``); the table's MLP has ``hidden_size = 256`` (``get_model_args``),
not the notebooks' default of 100. It trains them with ``train.py``'s defaults:
Adam, LR 1e-2, batch 100 taken in order through the training set, no weight
decay, ``total_steps`` = 8000 (its loop takes 8001 steps).
``harness.trainers.paper_nets`` writes the three nets in PyTorch the same way
(the MLP at 256 hidden units here, like with like; the CNN with 25 channels), and
the data come from the ``mnist1d`` package's own generator (``harness.data.mnist1d``).

Asserted, per net: the 95% CI of the mean test accuracy over N ≥ 8 seeds lies
within the paper's figure ± TOLERANCE_PP percentage points (fail when it lies
wholly outside). This shows that our trainers are ordinary trainers — a law
verified with a broken trainer proves nothing — so each row is *sanity*, not a
claim about training. The paper's figures and ours stand side by side in
``report.md`` (the point's note and the result's ``extra``); what was measured is
in ``docs/findings.md`` and the report, not here.
"""
from __future__ import annotations

import pytest

from harness.law import lrlaw
from harness.recipe import Ensemble, Recipe
from harness.stats import SANITY
from harness.stats.reference import agreement

#: Table 1 of Greydanus & Kobak, MNIST-1D row: test accuracy in percent
PAPER = {"mnist1d_logreg": 32.0, "mnist1d_mlp": 68.0, "mnist1d_cnn": 94.0}
#: the table's nets: its MLP is MLPBase at hidden_size = 256 (the repository's get_model_args)
OPTIONS = {"mnist1d_mlp": {"hidden": 256}}
#: Agreement band, in percentage points. Fixed on 2026-12-05 before any run of the 256-wide MLP or
#: the logistic regression: the table's figures are single runs rounded to whole percent, a single
#: run lies within ± 2 seed-sd of its mean 95% of the time, the seed sd is ≈ 2 pp (the spread of
#: the 100-wide MLP, the one we had measured), and the rounding adds 0.5. It replaces a ± 5 that
#: was chosen after a first look at the 100-wide MLP.
TOLERANCE_PP = 4.5
PAPER_RECIPE = Recipe(trainer="paper_nets", dataset="mnist1d", model="mnist1d_mlp", optimizer="adam", lr=1e-2,
                      batch_size=100, steps=8001)
#: per tier, each net's ensemble; seeds per net ≥ 8: a CI needs a spread
TIERS = {tier: {model: Ensemble(PAPER_RECIPE.replace(model=model, options=OPTIONS.get(model, {})), n)
                for model in PAPER}
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
