"""The trainers recipes can name, by their ``trainer`` field: built-ins, then ``lrlaws.trainers`` entry points."""
from __future__ import annotations

from harness import plugins
from harness.recipe import Recipe, RecipeError
from harness.trainers.base import DataUnavailable, RunResult, TrainContext, Trainer
from harness.trainers.airbench import AirbenchTrainer
from harness.trainers.gd import GDTrainer
from harness.trainers.mlp import MLPTrainer
from harness.trainers.scale_invariant import ScaleInvariantTrainer
from harness.trainers.toy2d import Toy2DTrainer
from harness.trainers.schedules import ScheduleTrainer

TRAINERS: dict[str, Trainer] = {t.name: t for t in (MLPTrainer(), AirbenchTrainer(), ScaleInvariantTrainer(), Toy2DTrainer(),
                                               GDTrainer(), ScheduleTrainer())}


def get_trainer(recipe: Recipe) -> Trainer:
    trainer = TRAINERS.get(recipe.trainer) or plugins.load(plugins.TRAINER_GROUP, recipe.trainer)
    if trainer is None:
        known = sorted(set(TRAINERS) | set(plugins.names(plugins.TRAINER_GROUP)))
        raise RecipeError(f"unknown trainer {recipe.trainer!r}; known: {known} "
                          f"(a package adds one through a {plugins.TRAINER_GROUP!r} entry point)")
    trainer.validate(recipe)
    return trainer


def run_salt(recipe: Recipe) -> str:
    """The code salt in a run's key: the trainer's, plus a plugin data set's (part of the run's identity too)."""
    salt = get_trainer(recipe).salt
    data_salt = plugins.dataset_salt(recipe.dataset)
    return salt if data_salt is None else f"{salt}+{recipe.dataset}:{data_salt}"


def recipe_key(recipe: Recipe) -> str:
    return recipe.key(run_salt(recipe))


__all__ = ["TRAINERS", "get_trainer", "recipe_key", "run_salt", "DataUnavailable", "RunResult", "TrainContext", "Trainer"]
