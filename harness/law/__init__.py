"""The API law modules use: declare tiers and reads with ``@lrlaw``, read runs and decide through ``law``.

A law declares, per tier, its ensembles (or any configuration object), and each test says which of them
it reads — the one way to declare what a point needs::

    TIERS = {"smoke": {"eta": Ensemble(SMOKE, 512), "eta_a": Ensemble(SMOKE.replace(lr=0.5), 512)},
             "gpu": {...}}

    @lrlaw("linearity", tiers=TIERS, reads=("eta", "eta_a"))
    def test_linearity(law):
        logits = law.runs("eta").array("logits")        # N x ... stacked over seeds (small N)
        chunks = law.runs("eta").chunks("logits")       # the same, 256 seeds at a time (any N)
        law.check(mean_result(...), band_result(...))    # pass / fail / inconclusive

``reads`` is one of:

* left out: the tier's configuration is itself the dict name -> ``Ensemble`` the test reads;
* names: those ensembles of the tier's dict;
* a function ``reads(config, **params)`` of the tier's configuration (any object, e.g. a
  ``NamedTuple``; the test reads it back as ``law.config``) and the test's parameters, returning
  a dict name -> ``Ensemble``, for parametrised points that derive their own ensembles.

A tier the law does not declare is reported as not tested there. ``reads`` is called at
collection time, so the plugin knows every run the selected tests read before any test starts. A
``reads`` that raises (a wrong signature, a bug) fails its own test with one line; the other tests
run. The law's name and the seeds of every row are filled in by ``law.check``.
"""
from __future__ import annotations

import functools
import inspect
from typing import Any, Callable, Mapping

import pytest

from harness.recipe import Ensemble

#: ``reads=``: ensemble names of the tier's dict, or a function (config, **params) -> ensembles
ReadsSpec = str | tuple[str, ...] | list[str] | Callable[..., Mapping[str, Ensemble]] | None


class NotAtThisTier(Exception):
    """Raised by a ``reads`` function: this law point is not tested at this tier."""


class NeedsError(Exception):
    """A law's ``reads`` could not say what the point reads; the message is one line."""


def lrlaw(name: str, *, tiers: Mapping[str, Any] | None = None, reads: ReadsSpec = None) -> pytest.MarkDecorator:
    """Mark a test as a point of law ``name``; see the module docstring for ``tiers`` and ``reads``."""
    if tiers is None:
        raise TypeError(f"@lrlaw({name!r}) needs `tiers=`: a dict tier name -> the ensembles (or configuration) "
                        "the law reads at that tier")
    if not isinstance(tiers, Mapping):
        raise TypeError(f"@lrlaw({name!r}, tiers=...) takes a dict tier name -> configuration, got {type(tiers).__name__}")
    if isinstance(reads, (str, tuple, list)):
        names = (reads,) if isinstance(reads, str) else tuple(reads)
        reads = functools.partial(_pick, names)
    elif reads is not None and not callable(reads):
        raise TypeError(f"@lrlaw({name!r}, reads=...) takes ensemble names or a function (config, **params) -> "
                        f"ensembles, got {type(reads).__name__}")
    return pytest.mark.lrlaw(name=name, reads=reads, tiers=dict(tiers))


def _pick(names: tuple[str, ...], config: Mapping[str, Ensemble]) -> dict[str, Ensemble]:
    if missing := [k for k in names if k not in config]:
        raise KeyError(f"the tier declares no ensemble {missing[0]!r}; it declares {sorted(config)}")
    return {k: config[k] for k in names}


def _describe(fn: Callable[..., Any]) -> str:
    try:
        return f"{getattr(fn, '__qualname__', fn)}{inspect.signature(fn)}"
    except (TypeError, ValueError):
        return repr(fn)


def resolve_needs(mark: pytest.Mark, tier: str, params: Mapping[str, Any]) -> tuple[dict[str, Ensemble], Any]:
    """The ensembles an ``@lrlaw`` point reads at ``tier``, and the tier's configuration.

    Raises ``NotAtThisTier`` for a tier the law does not test and ``NeedsError``
    (one line) when ``reads`` raises or gives something that is not ensembles.
    """
    name, reads, tiers = mark.kwargs["name"], mark.kwargs.get("reads"), mark.kwargs["tiers"]
    if tier not in tiers:
        raise NotAtThisTier(f"{name} declares tiers {', '.join(tiers)} only")
    config = tiers[tier]
    try:
        found = config if reads is None else reads(config, **params)
    except NotAtThisTier:
        raise
    except Exception as e:
        args = ", ".join(["<configuration>", *(f"{k}=..." for k in params)])
        raise NeedsError(f"reads of law {name!r} failed: {type(e).__name__}: {e} — it is called as "
                         f"reads({args}); it is {_describe(reads)}") from None
    if not isinstance(found, Mapping) or not all(isinstance(v, Ensemble) for v in found.values()):
        raise NeedsError(f"reads of law {name!r} must give a dict name -> Ensemble, got {type(found).__name__}"
                         + ("" if reads is not None else f" as the configuration of tier {tier!r}"))
    return dict(found), config
