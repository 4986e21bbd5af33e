"""The ``Trainer`` base class: a subclass states only what differs (options, rules, salt, data, chunks),
and a plug-in trainer that provides the methods without subclassing trains the same runs."""
from __future__ import annotations

import sys
import textwrap
from typing import Any, Iterable, Iterator, Sequence

import numpy as np
import pytest

from harness import extensions as plugins
from harness.data.formats import write_cifar10
from harness.data.standin import learnable_images
from harness.execute.local import train_in_process
from harness.execute.plan import make_plan
from harness.execute.tasks import make_tasks
from harness.identity import BUILTIN_TRAINERS, code_salt, recipe_key
from harness.recipe import Ensemble, Recipe, RecipeError
from harness.store.index import Store
from harness.trainers import TRAINERS, DataUnavailable, TrainContext, Trainer, get_trainer
from harness.trainers.base import RunResult


class Walk(Trainer):
    """A Gaussian random walk per seed, stating only what differs from the defaults."""

    name = "walk"
    salt = "walk-v1"
    options = {"scale": 1.0, "drift": 0.0}

    def rules(self, recipe: Recipe, o: dict[str, Any]) -> Iterable[tuple[bool, str]]:
        yield o["scale"] <= 0, f"option scale must be > 0, got {o['scale']}"
        yield recipe.steps > 1000, "steps must be <= 1000"

    def estimate_seconds(self, recipe: Recipe, device: str) -> float:
        return 1e-6 * recipe.steps

    def train(self, recipe: Recipe, seeds: Sequence[int], ctx: TrainContext) -> Iterator[RunResult]:
        o = self.opts(recipe)
        for s in seeds:
            steps = np.random.default_rng(s).normal(o["drift"], o["scale"], recipe.steps)
            yield RunResult(int(s), {"path": np.cumsum(steps)}, {"end": float(steps.sum())})


def walk(dataset: str = "none", **kw) -> Recipe:
    return Recipe(trainer="walk", dataset=dataset, model="none", steps=20, **kw)


# ------------------------------------------------------------------ options and rules --

def test_opts_overlay_the_recipes_options_on_the_defaults():
    assert Walk().opts(walk()) == {"scale": 1.0, "drift": 0.0}
    assert Walk().opts(walk(options={"drift": 0.5})) == {"scale": 1.0, "drift": 0.5}


def test_an_unknown_option_is_one_line_listing_the_known():
    Walk().validate(walk(options={"scale": 2.0}))  # control: a known option passes
    with pytest.raises(RecipeError, match=r"^walk trainer: unknown option\(s\) \['scael'\]; known: \['drift', 'scale'\]$"):
        Walk().validate(walk(options={"scael": 2.0}))


def test_a_trainer_that_declares_no_options_rejects_any():
    class Bare(Trainer):  # no options, no rules
        name = "bare"
        salt = "bare-v1"
        estimate_seconds, train = Walk.estimate_seconds, Walk.train

    Bare().validate(walk())  # control: no options at all passes
    with pytest.raises(RecipeError, match=r"^bare trainer: unknown option\(s\) \['scale'\]; known: \[\]$"):
        Bare().validate(walk(options={"scale": 2.0}))


@pytest.mark.parametrize("recipe, message", [
    (walk(options={"scale": -0.5}), "walk trainer: option scale must be > 0, got -0.5"),
    (walk().replace(steps=5000), "walk trainer: steps must be <= 1000"),
    # both violated: the first rule decides
    (walk(options={"scale": -0.25}).replace(steps=5000), "walk trainer: option scale must be > 0, got -0.25"),
])
def test_a_violated_rule_is_one_line_naming_the_trainer(recipe, message):
    with pytest.raises(RecipeError) as e:
        Walk().validate(recipe)
    assert str(e.value) == message


def test_a_recipe_within_the_rules_passes():
    """Control of the above: the same trainer accepts the recipes that violate nothing."""
    Walk().validate(walk(options={"scale": 0.1}).replace(steps=1000))


# ------------------------------------------------------------------------------ salt --

def test_a_builtin_derives_its_salt_from_its_code_and_a_plugin_declares_its_own():
    assert TRAINERS["toy2d"].salt == code_salt("toy2d") and "toy2d" in BUILTIN_TRAINERS
    assert Walk().salt == "walk-v1"


def test_a_plugin_without_a_salt_is_one_line_with_the_fix(monkeypatch):
    class Saltless(Walk):
        name = "saltless"
        salt = Trainer.salt  # the base's: derived, which only a built-in can be

    monkeypatch.setitem(TRAINERS, "saltless", Saltless())
    with pytest.raises(RecipeError, match=r'^saltless trainer: declares no salt; add salt = "saltless-v1" to its class'):
        recipe_key(Recipe(trainer="saltless", dataset="none", model="none"))
    monkeypatch.setitem(TRAINERS, "walk", Walk())  # control: the declared one keys the runs
    assert recipe_key(walk()) == walk().key("walk-v1")


# ---------------------------------------------------------------------- data, chunks --

def test_default_check_data_loads_a_data_set_read_from_disk(tmp_path):
    ctx = TrainContext(data_dir=tmp_path, download=False)
    Walk().check_data(walk(), ctx)  # a constructed data set: nothing to load
    with pytest.raises(DataUnavailable):
        Walk().check_data(walk("cifar10"), ctx)
    write_cifar10(tmp_path, learnable_images(64, 32))  # control: once the files are there, it passes
    Walk().check_data(walk("cifar10"), ctx)


def test_default_chunk_is_one_seed_and_train_and_estimate_have_no_default():
    assert Walk().chunk_size(walk(), "cpu") == 1

    class NoEstimate(Trainer):
        name = "none"
        salt = "none-v1"

        def train(self, recipe, seeds, ctx):
            yield from ()

    with pytest.raises(TypeError, match="estimate_seconds"):
        NoEstimate()


# ----------------------------------------------------- plug-ins: subclass or duck type --

PLUGINS = textwrap.dedent('''
    import numpy as np
    from harness.recipe import RecipeError
    from harness.trainers import RunResult, Trainer


    def walk(recipe, seeds, scale):
        for s in seeds:
            steps = np.random.default_rng(s).normal(0.0, scale, recipe.steps)
            yield RunResult(int(s), {"path": np.cumsum(steps)}, {"end": float(steps.sum())})


    class SubWalk(Trainer):
        name = "walk_sub"
        salt = "walk_sub-v1"
        options = {"scale": 1.0}

        def estimate_seconds(self, recipe, device):
            return 1e-6

        def train(self, recipe, seeds, ctx):
            return walk(recipe, seeds, self.opts(recipe)["scale"])


    class DuckWalk:  # every method written out, no base class
        name = "walk_duck"
        salt = "walk_duck-v1"

        def validate(self, recipe):
            if set(dict(recipe.options)) - {"scale"}:
                raise RecipeError("walk_duck trainer: the only option is scale")

        def check_data(self, recipe, ctx):
            return None

        def chunk_size(self, recipe, device):
            return 3

        def estimate_seconds(self, recipe, device):
            return 1e-6

        def train(self, recipe, seeds, ctx):
            return walk(recipe, seeds, recipe.option("scale", 1.0))
''')


@pytest.fixture
def walk_plugins(tmp_path, monkeypatch):
    """Both trainers installed as ``lrlaws.trainers`` entry points of a module on the path."""
    (tmp_path / "walk_plugins.py").write_text(PLUGINS)
    monkeypatch.syspath_prepend(str(tmp_path))
    plugins.install({plugins.TRAINER_GROUP: {"walk_sub": "walk_plugins:SubWalk", "walk_duck": "walk_plugins:DuckWalk"}})
    yield
    for name in ("walk_sub", "walk_duck"):
        plugins._INSTALLED[plugins.TRAINER_GROUP].pop(name, None)
        plugins._LOADED.pop((plugins.TRAINER_GROUP, name), None)
    sys.modules.pop("walk_plugins", None)


def _trained(store: Store, recipe: Recipe, n: int) -> dict[int, np.ndarray]:
    tasks = make_tasks(make_plan([Ensemble(recipe, n)], store, "cpu"), "cpu")
    out = train_in_process(store, tasks, TrainContext(), lambda key, seed, status: None)
    assert out.trained == n and not out.failed, out.failed
    key = recipe_key(recipe)
    return {s: store.load(key, s)[1]["path"] for s in range(n)}


def test_a_subclassed_and_a_duck_typed_plugin_train_the_same_runs(walk_plugins, tmp_path):
    base = Recipe(trainer="walk_sub", dataset="none", model="none", steps=30, options={"scale": 0.5})
    sub, duck = get_trainer(base), get_trainer(base.replace(trainer="walk_duck"))
    assert isinstance(sub, Trainer) and not isinstance(duck, Trainer)
    assert sub.chunk_size(base, "cpu") == 1 and duck.chunk_size(base, "cpu") == 3
    store = Store(tmp_path / "store")
    by_sub, by_duck = _trained(store, base, 5), _trained(store, base.replace(trainer="walk_duck"), 5)
    assert all(np.array_equal(by_sub[s], by_duck[s]) for s in range(5))
    assert not np.array_equal(by_sub[0], by_sub[1])  # control: the comparison tells seeds apart
    assert recipe_key(base) == base.key("walk_sub-v1")  # each keyed by its declared salt
    # both reject an unknown option before anything trains, each in its own words
    for trainer, match in (("walk_sub", r"unknown option\(s\) \['x'\]; known: \['scale'\]"),
                           ("walk_duck", "the only option is scale")):
        with pytest.raises(RecipeError, match=match):
            get_trainer(base.replace(trainer=trainer, options={"x": 1}))
