"""Recipes: frozen, hashable descriptions of one training run, minus its seed.

A recipe's key is the sha256 of its canonical JSON plus a salt: the trainer's
code salt and the data's fingerprint (``harness.identity.recipe_key``), so runs
of other code or other data are never reused. Float fields are normalised to
FLOAT_DIGITS significant digits first, so ``0.4 + 0.2`` and ``0.6`` are one recipe.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass, field
from typing import Any, Mapping


#: significant digits a recipe's floats keep: 0.4 + 0.2 (0.6000000000000001) is 0.6; no
#: hyper-parameter is meaningful beyond 12 digits, and 15 would keep that rounding error
FLOAT_DIGITS = 12


def normalise_float(value: float) -> float:
    return float(f"{value:.{FLOAT_DIGITS}g}")


class RecipeError(ValueError):
    """A recipe that cannot be built: unknown field, bad value, unknown trainer."""


def _freeze(value: Any) -> Any:
    if isinstance(value, Mapping):
        return tuple(sorted((str(k), _freeze(v)) for k, v in value.items()))
    if isinstance(value, (list, tuple)):
        return tuple(_freeze(v) for v in value)
    if isinstance(value, float) and value.is_integer() and abs(value) < 2**53:
        # 1.0 and 1 must hash alike: users write both.
        return int(value)
    if isinstance(value, float) and value == value and abs(value) != float("inf"):
        return normalise_float(value)
    return value


@dataclass(frozen=True)
class Recipe:
    """One training run without its seed.

    ``options`` holds trainer-specific settings (e.g. model width, data size);
    each trainer validates them, so a typo is an error rather than a silently
    ignored knob that nonetheless changes the key.
    """

    trainer: str
    dataset: str
    model: str
    optimizer: str = "sgd"
    lr: float = 0.1
    momentum: float = 0.0
    weight_decay: float = 0.0
    batch_size: int = 64
    steps: int = 100
    schedule: str = "constant"
    probes: tuple[str, ...] = ()
    options: tuple[tuple[str, Any], ...] = field(default_factory=tuple)

    def __post_init__(self) -> None:
        object.__setattr__(self, "probes", tuple(sorted(set(self.probes))))
        opts = self.options
        if isinstance(opts, Mapping):
            opts = opts.items()
        object.__setattr__(self, "options", _freeze(dict(opts)))
        for name in ("lr", "momentum", "weight_decay"):
            v = getattr(self, name)
            if not isinstance(v, (int, float)) or v != v:
                raise RecipeError(f"recipe field {name!r} must be a number, got {v!r}")
            if isinstance(v, float) and abs(v) != float("inf"):
                object.__setattr__(self, name, normalise_float(v))
        if self.batch_size <= 0 or self.steps <= 0:
            raise RecipeError("recipe fields 'batch_size' and 'steps' must be positive")

    # -- construction -------------------------------------------------------
    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "Recipe":
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise RecipeError(
                f"unknown recipe field(s) {unknown}; known fields are {sorted(known)} "
                "(trainer-specific settings go under 'options')"
            )
        return cls(**dict(data))

    def replace(self, **changes: Any) -> "Recipe":
        """A copy with fields changed; ``options={...}`` is merged, not replaced."""
        if "options" in changes:
            merged = dict(self.options)
            merged.update(dict(changes.pop("options")))
            changes["options"] = merged
        known = {f.name for f in dataclasses.fields(self)}
        unknown = sorted(set(changes) - known)
        if unknown:
            raise RecipeError(f"unknown recipe field(s) {unknown}")
        return dataclasses.replace(self, **changes)

    def option(self, name: str, default: Any = None) -> Any:
        return dict(self.options).get(name, default)

    # -- identity -------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["probes"] = list(self.probes)
        d["options"] = {k: _thaw(v) for k, v in self.options}
        return d

    def canonical_json(self) -> str:
        return json.dumps(_canon(self.to_dict()), sort_keys=True, separators=(",", ":"))

    def key(self, salt: str) -> str:
        h = hashlib.sha256()
        h.update(salt.encode())
        h.update(b"\0")
        h.update(self.canonical_json().encode())
        return h.hexdigest()

    def describe(self) -> str:
        opts = ",".join(f"{k}={_thaw(v)}" for k, v in self.options)
        return (
            f"{self.trainer}/{self.dataset}/{self.model} {self.optimizer} lr={self.lr:g} "
            f"wd={self.weight_decay:g} mom={self.momentum:g} bs={self.batch_size} "
            f"steps={self.steps} {self.schedule}" + (f" [{opts}]" if opts else "")
        )


def _thaw(v: Any) -> Any:
    if isinstance(v, tuple) and v and all(isinstance(p, tuple) and len(p) == 2 and isinstance(p[0], str) for p in v):
        return {k: _thaw(x) for k, x in v}
    if isinstance(v, tuple):
        return [_thaw(x) for x in v]
    return v


def _canon(v: Any) -> Any:
    """Floats as repr strings so 0.1 hashes the same on every platform and version."""
    if isinstance(v, bool) or v is None or isinstance(v, (int, str)):
        return v
    if isinstance(v, float):
        return int(v) if v.is_integer() else repr(v)
    if isinstance(v, Mapping):
        return {str(k): _canon(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_canon(x) for x in v]
    raise RecipeError(f"recipe value {v!r} of type {type(v).__name__} is not JSON-serialisable")


@dataclass(frozen=True)
class Ensemble:
    """``n`` runs of one recipe: seeds ``seed_base .. seed_base + n - 1``.

    ``seed_base`` is 0 for the seeds the laws' constants were tuned on; the
    plugin's ``--seed-base K`` moves every ensemble of a session to fresh seeds
    (a confirmatory session). A run's identity is its recipe and seed, so runs
    stay cached per seed whatever base asked for them.

    Seeds are shared across recipes on purpose (common random numbers): seed s
    gives the same initialisation and data order at every learning rate, which
    leaves every per-recipe mean unbiased while making differences between
    recipes far less noisy.
    """

    recipe: Recipe
    n: int
    seed_base: int = 0

    def __post_init__(self) -> None:
        if self.n <= 0:
            raise RecipeError(f"an ensemble needs n >= 1 runs, got {self.n}")
        if self.seed_base < 0:
            raise RecipeError(f"an ensemble's seed base must be >= 0, got {self.seed_base}")

    @property
    def seeds(self) -> range:
        return range(self.seed_base, self.seed_base + self.n)
