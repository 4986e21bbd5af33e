"""The trainers recipes can name, by their ``trainer`` field: built-ins, then ``lrlaws.trainers`` entry points."""
from __future__ import annotations

import importlib

from harness import extensions as plugins
from harness.data.catalog import DataUnavailable
from harness.identity import BUILTIN_TRAINERS
from harness.recipe import Recipe, RecipeError
from harness.trainers.base import RunResult, TrainContext, Trainer


def _builtin(path: str) -> Trainer:
    module, cls = path.split(":")
    return getattr(importlib.import_module(module), cls)()


TRAINERS: dict[str, Trainer] = {name: _builtin(path) for name, path in BUILTIN_TRAINERS.items()}


def get_trainer(recipe: Recipe) -> Trainer:
    trainer = TRAINERS.get(recipe.trainer) or plugins.load(plugins.TRAINER_GROUP, recipe.trainer)
    if trainer is None:
        known = sorted(set(TRAINERS) | set(plugins.names(plugins.TRAINER_GROUP)))
        raise RecipeError(f"unknown trainer {recipe.trainer!r}; known: {known} "
                          f"(a package adds one through a {plugins.TRAINER_GROUP!r} entry point)")
    trainer.validate(recipe)
    return trainer


__all__ = ["TRAINERS", "get_trainer", "DataUnavailable", "RunResult", "TrainContext", "Trainer"]
