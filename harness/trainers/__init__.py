"""The trainers recipes can name, by their ``trainer`` field: built-ins, then ``lrlaws.trainers`` entry points."""
from __future__ import annotations

from pathlib import Path

from harness import identity
from harness import extensions as plugins
from harness.recipe import Recipe, RecipeError
from harness.data.catalog import DataUnavailable
from harness.trainers.base import RunResult, TrainContext, Trainer
from harness.trainers.airbench import AirbenchTrainer
from harness.trainers.gd import GDTrainer
from harness.trainers.mlp import MLPTrainer
from harness.trainers.paper_nets import PaperNetsTrainer
from harness.trainers.scale_invariant import ScaleInvariantTrainer
from harness.trainers.schedules import ScheduleTrainer
from harness.trainers.toy2d import Toy2DTrainer

TRAINERS: dict[str, Trainer] = {t.name: t for t in (MLPTrainer(), AirbenchTrainer(), ScaleInvariantTrainer(), Toy2DTrainer(),
                                               GDTrainer(), ScheduleTrainer(), PaperNetsTrainer())}


def get_trainer(recipe: Recipe) -> Trainer:
    trainer = TRAINERS.get(recipe.trainer) or plugins.load(plugins.TRAINER_GROUP, recipe.trainer)
    if trainer is None:
        known = sorted(set(TRAINERS) | set(plugins.names(plugins.TRAINER_GROUP)))
        raise RecipeError(f"unknown trainer {recipe.trainer!r}; known: {known} "
                          f"(a package adds one through a {plugins.TRAINER_GROUP!r} entry point)")
    trainer.validate(recipe)
    return trainer


#: the code salt in a run's key (derived for built-ins; see harness.identity)
run_salt = identity.run_salt


def recipe_key(recipe: Recipe, data_dir: Path | None = None) -> str:
    """``harness.identity.recipe_key`` after the trainer validated the recipe (which imports torch)."""
    get_trainer(recipe)
    return identity.recipe_key(recipe, data_dir)


__all__ = ["TRAINERS", "get_trainer", "recipe_key", "run_salt", "DataUnavailable", "RunResult", "TrainContext", "Trainer"]
