from __future__ import annotations

import json

import pytest
from hypothesis import given, strategies as st

from harness.recipe import Ensemble, Recipe, RecipeError
from harness.identity import recipe_key
from harness.trainers import get_trainer

BASE = Recipe(trainer="mlp", dataset="teacher", model="mlp", lr=0.4, steps=10, probes=("logits",))


def test_equal_recipes_share_a_key():
    assert BASE.key("s") == Recipe(trainer="mlp", dataset="teacher", model="mlp", lr=0.4, steps=10, probes=("logits",)).key("s")


def test_any_field_change_or_salt_change_changes_the_key():
    keys = {BASE.key("s"), BASE.key("t"), BASE.replace(lr=0.5).key("s"), BASE.replace(steps=11).key("s"),
            BASE.replace(options={"width": 32}).key("s"), BASE.replace(probes=()).key("s")}
    assert len(keys) == 6


def test_integral_floats_hash_like_ints_and_probes_order_is_irrelevant():
    assert BASE.replace(lr=1.0).key("s") == BASE.replace(lr=1).key("s")
    a = BASE.replace(probes=("b", "a"))
    assert a.key("s") == BASE.replace(probes=("a", "b", "a")).key("s")


def test_known_key_is_stable_across_versions():
    # Guards the canonical form: changing it silently orphans every stored run.
    r = Recipe(trainer="mlp", dataset="teacher", model="mlp", lr=0.1, steps=5)
    assert r.canonical_json() == (
        '{"batch_size":64,"dataset":"teacher","lr":"0.1","model":"mlp","momentum":0,"optimizer":"sgd",'
        '"options":{},"probes":[],"schedule":"constant","steps":5,"trainer":"mlp","weight_decay":0}'
    )


def test_unknown_field_is_an_error_naming_options():
    with pytest.raises(RecipeError, match="unknown recipe field.*'lrr'.*options"):
        Recipe.from_dict({**BASE.to_dict(), "lrr": 0.1})
    with pytest.raises(RecipeError):
        BASE.replace(lrr=0.1)


def test_unknown_trainer_option_is_an_error():
    with pytest.raises(RecipeError, match="unknown option"):
        get_trainer(BASE.replace(options={"widht": 3}))


def test_options_merge_on_replace():
    r = BASE.replace(options={"width": 8}).replace(options={"depth": 4})
    assert r.option("width") == 8 and r.option("depth") == 4


def test_ensemble_needs_runs():
    with pytest.raises(RecipeError):
        Ensemble(BASE, 0)
    assert list(Ensemble(BASE, 3).seeds) == [0, 1, 2]


@given(
    lr=st.floats(min_value=1e-6, max_value=10, allow_nan=False),
    wd=st.floats(min_value=0, max_value=1, allow_nan=False),
    steps=st.integers(1, 10_000),
    width=st.integers(1, 512),
)
def test_roundtrip_through_json_keeps_the_key(lr, wd, steps, width):
    r = BASE.replace(lr=lr, weight_decay=wd, steps=steps, options={"width": width})
    back = Recipe.from_dict(json.loads(json.dumps(r.to_dict())))
    assert back == r
    assert back.key("x") == r.key("x")


def test_float_fields_are_normalised_before_hashing():
    assert 0.4 + 0.2 != 0.6  # the premise: binary floating point
    a, b = BASE.replace(lr=0.4 + 0.2), BASE.replace(lr=0.6)
    assert a == b and a.key("s") == b.key("s") and a.lr == 0.6
    assert BASE.replace(weight_decay=0.1 * 3).key("s") == BASE.replace(weight_decay=0.3).key("s")
    assert BASE.replace(options={"scale": 0.25 * 4 + 0.1 + 0.2}).key("s") == BASE.replace(options={"scale": 1.3}).key("s")
    assert BASE.replace(options={"points": [(0, 0.1 + 0.2)]}).key("s") == BASE.replace(options={"points": [(0, 0.3)]}).key("s")


def test_normalisation_keeps_distinct_hyper_parameters_distinct():
    assert BASE.replace(lr=0.1).key("s") != BASE.replace(lr=0.1000001).key("s")
    assert BASE.replace(lr=1e-7).key("s") != BASE.replace(lr=1.1e-7).key("s")
