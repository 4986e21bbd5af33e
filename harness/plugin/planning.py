"""What the selected law tests need, and the session's plan (``Planned``), made at collection.

Every selected law test's ``reads`` is called at the session's tier, its data checked, its
ensembles keyed (data fingerprints included) and their union planned against the store;
each point that will run gets its sequential looks (``harness.stats.sequential.PointState``).
Collection never downloads: an absent on-disk data set is fetched before training
(``Planned.fetch_data``), and only by a session that trains and may download.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Callable

import pytest

from harness.data import catalog
from harness.execute.plan import Plan, make_plan, plan_keyed
from harness.identity import recipe_key
from harness.law import NeedsError, NotAtThisTier, resolve_needs
from harness.plugin.options import Options
from harness.plugin.own_recipe import apply as apply_own
from harness.recipe import Ensemble, RecipeError
from harness.stats.sequential import PointState, scaled
from harness.store.cache import RunCache
from harness.store.index import Store, StoreError, open_store


@dataclass
class ItemNeeds:
    """One selected law test's ensembles and their keys, or why it does not run."""

    law: str
    ensembles: dict[str, Ensemble] = field(default_factory=dict)
    keys: dict[str, str] = field(default_factory=dict)
    not_run: str | None = None  # reason the point cannot run this session
    refused: str | None = None  # reason the point must fail without running (a misuse)
    config: Any = None  # the tier's configuration from @lrlaw(tiers=...)


@dataclass
class Planned:
    """The selected law points once collected: what each needs, the store, the plan and each point's looks."""

    options: Options  # resolved: the tier and the GPUs are known
    store: Store
    #: runs read by several tests of the session are loaded once (bounded, see harness.store.cache.RunCache)
    run_cache: RunCache
    needs: dict[str, ItemNeeds]
    plan: Plan
    points: dict[str, PointState]  # sequential state per law test that will run
    to_download: set[str]  # absent on-disk data sets, fetched before training
    data_warnings: list[str]  # why a data set cannot be read, with the fix: one line each

    def fetch_data(self, warn: Callable[[str], None]) -> None:
        """Download the absent on-disk data sets, then re-key and re-plan: their fingerprints are now known."""
        from harness.data.images import load_images  # torch: only a session that downloads pays it
        from harness.trainers import DataUnavailable

        for dataset in sorted(self.to_download):
            try:
                load_images(dataset, self.options.data_dir, download=True)
            except DataUnavailable as e:
                for need in self.needs.values():
                    if need.not_run is None and any(x.recipe.dataset == dataset for x in need.ensembles.values()):
                        need.not_run = f"not run: {e}"
                warn(f"lrlaws: {e}")
        self.to_download.clear()
        self.plan = _make_plan(self.options, self.store, self.needs)

    def round_plan(self) -> Plan:
        """What the current look of every point needs (decided points stay at their stop)."""
        # the keys of collection, not recomputed: a round trains exactly the runs the tests will read
        keyed = [(self.needs[nodeid].keys[name], e) for nodeid, p in self.points.items()
                 for name, e in ensembles_at(self.needs[nodeid], p).items()]
        return plan_keyed(keyed, self.store, self.options.device, verify=False)

    def runs_missing(self, nodeid: str) -> str | None:
        """Why the point's test cannot read its runs at its look (None: all are stored)."""
        need = self.needs[nodeid]
        ens = ensembles_at(need, self.points.get(nodeid))
        total = sum(len(self.run_cache.missing(need.keys[name], e.seeds)) for name, e in ens.items())
        if not total:
            return None
        why = "--no-train" if self.options.no_train else "training failed or was interrupted"
        return f"not run: {total} of {sum(e.n for e in ens.values())} runs missing ({why})"


def ensembles_at(need: ItemNeeds, point: PointState | None, n: int | None = None) -> dict[str, Ensemble]:
    """The point's ensembles cut to a look of ``n`` runs (default: the point's current look)."""
    if point is None:
        return dict(need.ensembles)
    look = point.n if n is None else n
    return {name: dataclasses.replace(e, n=scaled(e.n, look, point.n_max)) for name, e in need.ensembles.items()}


def params_of(item: pytest.Item) -> dict[str, Any]:
    """A parametrised test's parameters ({} for a plain one)."""
    return dict(item.callspec.params) if hasattr(item, "callspec") else {}


def plan_session(options: Options, items: list[pytest.Item], readonly: bool) -> Planned:
    """Open the store (``readonly``: create and write nothing), call every test's ``reads``, plan."""
    try:
        store = open_store(options.store_root, readonly, options.no_train)
    except StoreError as e:
        raise pytest.UsageError(str(e)) from None
    run_cache = RunCache(store)
    to_download: set[str] = set()
    needs, data_errors = _declare_needs(options, items, to_download)
    plan = _make_plan(options, store, needs)
    return Planned(options, store, run_cache, needs, plan, _init_points(options, needs), to_download,
                   sorted({m for m in data_errors.values() if m}))


def _declare_needs(options: Options, items: list[pytest.Item],
                   to_download: set[str]) -> tuple[dict[str, ItemNeeds], dict[str, str]]:
    """Every selected law test's ensembles at the session's tier, and each data set's problem ("" = none)."""
    needs: dict[str, ItemNeeds] = {}
    data_errors: dict[str, str] = {}
    for item in items:
        mark = item.get_closest_marker("lrlaw")
        need = ItemNeeds(law=mark.kwargs["name"])
        try:
            ensembles, need.config = resolve_needs(mark, options.tier, params_of(item))
            ensembles = apply_own(options.own_recipes.get(need.law), ensembles)  # --recipe LAW=MODULE:NAME
            need.ensembles = {name: dataclasses.replace(e, seed_base=options.seed_base) for name, e in ensembles.items()}
        except NotAtThisTier as e:
            need.not_run = f"not tested at tier {options.tier}: {e}"
        except NeedsError as e:
            need.ensembles, need.refused = {}, str(e)
        except RecipeError as e:
            need.ensembles, need.refused = {}, f"{item.nodeid}: bad recipe: {e}"
        for ens in need.ensembles.values():
            dataset = ens.recipe.dataset
            if dataset not in data_errors:
                data_errors[dataset] = _data_status(options, dataset, to_download)
            if data_errors[dataset] and need.not_run is None:
                need.not_run = f"not run: {data_errors[dataset]}"
        needs[item.nodeid] = need
    return needs, data_errors


def _data_status(options: Options, dataset: str, to_download: set[str]) -> str:
    """"" when ``dataset`` can be read (or is added to ``to_download``, to fetch before training), else why not."""
    if not catalog.known(dataset):
        return ""  # the trainer rejects it, with the list of known ones
    why = "downloads disabled (--offline)" if options.offline else ""
    msg = catalog.missing(dataset, options.data_dir, why) or ""
    if msg and dataset in catalog.ON_DISK and not (options.offline or options.plan_only or options.no_train):
        to_download.add(dataset)
        return ""
    return msg


def _make_plan(options: Options, store: Store, needs: dict[str, ItemNeeds]) -> Plan:
    """Keys of every law point's ensembles (data fingerprints included), then the plan; a point whose
    recipe its trainer rejects is refused at its test, and the others are planned."""
    for nodeid, need in needs.items():
        try:
            need.keys = {name: recipe_key(e.recipe, options.data_dir, absent_ok=True, compiled=options.compile)
                         for name, e in need.ensembles.items()}
        except RecipeError as e:  # fails this point alone, at its test
            need.ensembles, need.keys, need.refused = {}, {}, f"{nodeid}: bad recipe: {e}"

    def planned(chosen: list[ItemNeeds]) -> Plan:
        # --plan lists runs whose data is missing too (a GPU-less box planning a gpu-tier night)
        return make_plan([e for n in chosen if options.plan_only or n.not_run is None for e in n.ensembles.values()],
                         store, options.plan_device, data_dir=options.data_dir, compiled=options.compile)

    try:
        return planned(list(needs.values()))
    except RecipeError:  # a trainer rejects a recipe: find its points, and plan the others
        for nodeid, need in needs.items():
            try:
                planned([need])
            except RecipeError as e:
                need.ensembles, need.keys, need.refused = {}, {}, f"{nodeid}: bad recipe: {e}"
        return planned(list(needs.values()))


def _init_points(options: Options, needs: dict[str, ItemNeeds]) -> dict[str, PointState]:
    """One ``PointState`` per law point that will run; a single look with ``--fixed-n``."""
    points = {}
    for nodeid, need in needs.items():
        # --plan counts points whose data is missing here too, as the plan itself does
        if (need.not_run is None or options.plan_only) and need.refused is None and need.ensembles:
            n_max = max(e.n for e in need.ensembles.values())
            points[nodeid] = PointState.new(n_max, fixed=options.fixed_n, open_ended=options.budget is not None)
    return points
