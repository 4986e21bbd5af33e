"""The trainers recipes can name, by their ``trainer`` field."""
from __future__ import annotations

from harness.recipe import Recipe, RecipeError
from harness.trainers.base import DataUnavailable, RunResult, TrainContext, Trainer
from harness.trainers.mlp import MLPTrainer

TRAINERS: dict[str, Trainer] = {t.name: t for t in (MLPTrainer(),)}


def get_trainer(recipe: Recipe) -> Trainer:
    try:
        trainer = TRAINERS[recipe.trainer]
    except KeyError:
        raise RecipeError(f"unknown trainer {recipe.trainer!r}; known: {sorted(TRAINERS)}") from None
    trainer.validate(recipe)
    return trainer


def recipe_key(recipe: Recipe) -> str:
    return recipe.key(get_trainer(recipe).salt)


__all__ = ["TRAINERS", "get_trainer", "recipe_key", "DataUnavailable", "RunResult", "TrainContext", "Trainer"]
