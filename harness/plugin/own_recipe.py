"""``--recipe LAW=MODULE:NAME``: run a shipped law on your own recipe, without copying the law.

The law keeps its manipulation, your recipe supplies the model: in every point of LAW, each
ensemble's recipe becomes your recipe with the fields that vary between the point's ensembles
(the law's manipulation: the LRs of ``linearity``, the LR and weight decay pairs of
``intrinsic_lr``...) taken from the law. A point whose ensembles are all one recipe gets
yours as it is. Ensemble sizes and seeds stay the law's. Recorded findings (``FAILS_AT``,
``law.known_failure``) were measured on the shipped recipes, so they do not apply to a point
run on yours: it passes or fails on its own.
"""
from __future__ import annotations

import dataclasses
import importlib
from typing import Iterable, Mapping

import pytest

from harness.recipe import Ensemble, Recipe

USAGE = "--recipe takes LAW=MODULE:NAME, a law's name and an importable Recipe (e.g. linearity=myproject.recipes:MINE)"


def _split(value: str) -> tuple[str, str, str]:
    law, _, target = value.partition("=")
    module, _, name = target.partition(":")
    if not (law and module and name):
        raise pytest.UsageError(f"{USAGE}; got {value!r}")
    return law, module, name


def recipe_option(value: str) -> str:
    """The form of one ``--recipe`` value (its argparse ``type``); ``parse`` imports it later."""
    _split(value)
    return value


def parse(values: Iterable[str] | None) -> dict[str, Recipe]:
    """law -> the user's recipe; a bad value is a one-line usage error."""
    out: dict[str, Recipe] = {}
    for value in values or ():
        law, module, name = _split(value)
        try:
            recipe = getattr(importlib.import_module(module), name)
        except ImportError as e:
            raise pytest.UsageError(f"--recipe {value}: cannot import {module!r} ({e}); is it on the path?") from None
        except AttributeError:
            raise pytest.UsageError(f"--recipe {value}: module {module!r} has no {name!r}") from None
        if not isinstance(recipe, Recipe):
            raise pytest.UsageError(f"--recipe {value}: {module}:{name} is a {type(recipe).__name__}, not a harness Recipe")
        out[law] = recipe
    return out


def _varying(recipes: list[Recipe]) -> tuple[set[str], set[str]]:
    """Fields (and options) whose value differs between ``recipes``: the law's manipulation."""
    fields = {f.name for f in dataclasses.fields(Recipe) if f.name != "options"
              and len({repr(getattr(r, f.name)) for r in recipes}) > 1}
    options = [dict(r.options) for r in recipes]
    keys = {k for o in options for k in o if len({repr(o.get(k)) for o in options}) > 1}
    return fields, keys


def apply(own: Recipe | None, ensembles: Mapping[str, Ensemble]) -> dict[str, Ensemble]:
    """The point's ensembles on ``own``: the law's varying fields and options kept, the rest ``own``'s
    (``None``: the law's own ensembles)."""
    if own is None:
        return dict(ensembles)
    fields, keys = _varying([e.recipe for e in ensembles.values()])
    out = {}
    for name, e in ensembles.items():
        options = {**dict(own.options), **{k: v for k, v in e.recipe.options if k in keys}}
        changes = {f: getattr(e.recipe, f) for f in fields}
        out[name] = dataclasses.replace(e, recipe=own.replace(**changes, options=options))
    return out
