"""The plan: everything the selected tests need, minus what the store holds.

Built once per session before any test runs, from the ensembles each selected
test declares. Ensembles of one recipe are merged by taking the largest N, so
two tests asking for N=64 and N=256 of one recipe cost 256 runs, not 320.

Torch-free: keys come from ``harness.identity``, and a trainer (which imports
torch) is consulted only for a recipe with runs to train and no stored timing,
so planning a full store never imports torch.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Iterable

from harness.identity import recipe_key
from harness.recipe import Ensemble, Recipe

if TYPE_CHECKING:
    from harness.store.index import Store


@dataclass
class Need:
    key: str
    recipe: Recipe
    n: int
    missing: list[int] = field(default_factory=list)
    est_seconds_per_run: float = 0.0

    @property
    def est_seconds(self) -> float:
        return len(self.missing) * self.est_seconds_per_run


@dataclass
class Plan:
    needs: list[Need]

    @property
    def runs_total(self) -> int:
        return sum(n.n for n in self.needs)

    @property
    def runs_missing(self) -> int:
        return sum(len(n.missing) for n in self.needs)

    @property
    def est_seconds(self) -> float:
        return sum(n.est_seconds for n in self.needs)

    def table(self) -> str:
        lines = [f"{'key':12}  {'have':>6}  {'train':>6}  {'est s':>8}  recipe"]
        for need in self.needs:
            lines.append(
                f"{need.key[:12]}  {need.n - len(need.missing):>6}  {len(need.missing):>6}  "
                f"{need.est_seconds:>8.1f}  {need.recipe.describe()}"
            )
        return "\n".join(lines)

    def summary(self, devices: int = 1) -> str:
        return (
            f"lrlaws plan: {len(self.needs)} recipes, {self.runs_total} runs needed, "
            f"{self.runs_missing} runs to train, est. {format_seconds(self.est_seconds / max(devices, 1))}"
            + (f" on {devices} devices" if devices > 1 else "")
        )


def format_seconds(s: float) -> str:
    if s < 90:
        return f"{s:.0f} s"
    if s < 5400:
        return f"{s / 60:.1f} min"
    return f"{s / 3600:.1f} h"


def merge(ensembles: Iterable[Ensemble], data_dir: Path | None = None, compiled: bool = False) -> dict[str, Ensemble]:
    """De-duplicate by recipe key, keeping the largest N of each recipe."""
    return _merge_keyed((recipe_key(e.recipe, data_dir, absent_ok=True, compiled=compiled), e) for e in ensembles)


def _merge_keyed(keyed: Iterable[tuple[str, Ensemble]]) -> dict[str, Ensemble]:
    merged: dict[str, Ensemble] = {}
    for key, ens in keyed:
        if key not in merged or merged[key].n < ens.n:
            merged[key] = ens
    return merged


def make_plan(ensembles: Iterable[Ensemble], store: "Store", device: str, verify: bool = True,
              data_dir: Path | None = None, compiled: bool = False) -> Plan:
    """Raises ``RecipeError`` for a recipe with runs to train that its trainer rejects."""
    return plan_keyed(merge(ensembles, data_dir, compiled).items(), store, device, verify)


def plan_keyed(keyed: Iterable[tuple[str, Ensemble]], store: "Store", device: str, verify: bool = True) -> Plan:
    """The plan of ensembles whose keys the session computed once (its later rounds reuse them)."""
    needs = []
    for key, ens in _merge_keyed(keyed).items():
        missing = store.missing(key, ens.seeds, verify=verify)
        per_run = store.median_seconds(key) if missing else 0.0
        if missing and not per_run:
            from harness.trainers import get_trainer  # imports torch: only for runs still to train

            per_run = get_trainer(ens.recipe).estimate_seconds(ens.recipe, device)
        needs.append(Need(key, ens.recipe, ens.n, missing, per_run or 0.0))
    return Plan(needs)
