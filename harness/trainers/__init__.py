"""The trainers recipes can name, by their ``trainer`` field."""
from __future__ import annotations

from pathlib import Path

from harness import identity
from harness.recipe import Recipe, RecipeError
from harness.trainers.base import DataUnavailable, RunResult, TrainContext, Trainer
from harness.trainers.airbench import AirbenchTrainer
from harness.trainers.gd import GDTrainer
from harness.trainers.mlp import MLPTrainer
from harness.trainers.paper_nets import PaperNetsTrainer
from harness.trainers.scale_invariant import ScaleInvariantTrainer, Toy2DTrainer
from harness.trainers.schedules import ScheduleTrainer

TRAINERS: dict[str, Trainer] = {t.name: t for t in (MLPTrainer(), AirbenchTrainer(), ScaleInvariantTrainer(), Toy2DTrainer(),
                                               GDTrainer(), ScheduleTrainer(), PaperNetsTrainer())}


def get_trainer(recipe: Recipe) -> Trainer:
    try:
        trainer = TRAINERS[recipe.trainer]
    except KeyError:
        raise RecipeError(f"unknown trainer {recipe.trainer!r}; known: {sorted(TRAINERS)}") from None
    trainer.validate(recipe)
    return trainer


def recipe_key(recipe: Recipe, data_dir: Path | None = None) -> str:
    """``harness.identity.recipe_key`` after the trainer validated the recipe (which imports torch)."""
    get_trainer(recipe)
    return identity.recipe_key(recipe, data_dir)


__all__ = ["TRAINERS", "get_trainer", "recipe_key", "DataUnavailable", "RunResult", "TrainContext", "Trainer"]
