"""Named recipes from the literature, torch-free so that laws can name them at collection time."""
from __future__ import annotations

from harness.recipe import Recipe

#: airbench94 (Keller Jordan) as a recipe: 476 steps = ceil(9.9 epochs × ⌊50000/1024⌋ steps)
AIRBENCH94 = Recipe(trainer="airbench", dataset="cifar10", model="airbench94", optimizer="nesterov", lr=11.5,
                    momentum=0.85, weight_decay=0.0153, batch_size=1024, steps=476, schedule="airbench",
                    probes=("logits",))
