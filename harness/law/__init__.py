"""The API law modules use: declare tiers and reads with ``@lrlaw``, read runs and decide through ``law``.

A law declares its ensembles per tier, and which of them each test reads::

    TIERS = {"smoke": {"eta": Ensemble(SMOKE, 512), "eta_a": Ensemble(SMOKE.replace(lr=0.5), 512)},
             "gpu": {...}}

    @lrlaw("linearity", tiers=TIERS, reads=("eta", "eta_a"))
    def test_linearity(law):
        logits = law.runs("eta").array("logits")        # N x ... stacked over seeds (small N)
        chunks = law.runs("eta").chunks("logits")       # the same, 256 seeds at a time (any N)
        law.check(mean_result(...), band_result(...))    # pass / fail / inconclusive

A tier the law does not declare is reported as not tested there. When the tier's
configuration is not just ensembles (a parametrised point derives its own), give
``needs`` instead of ``reads``: it gets the session tier's configuration (any
object; the test reads it back as ``law.config``) and the test's parameters, and
returns a mapping name -> ``Ensemble``; it may raise ``NotAtThisTier(reason)``.
Without ``tiers``, ``@lrlaw(name, needs=lambda tier, **params: ...)`` gets the
tier's name.

``needs`` is called at collection time with the test's parameters, so the plugin
knows every run the selected tests read before any test starts. A ``needs`` that
raises (a wrong signature, a bug) fails its own test with one line; the other
tests run.
"""
from __future__ import annotations

import functools
import inspect
from typing import Any, Callable, Mapping

import pytest

from harness.recipe import Ensemble

NeedsFn = Callable[..., Mapping[str, Ensemble]]


class NotAtThisTier(Exception):
    """Raised by a ``needs`` function: this law point is not tested at this tier."""


class NeedsError(Exception):
    """A law's ``needs`` could not say what the point reads; the message is one line."""


def lrlaw(name: str, needs: NeedsFn | None = None, *, tiers: Mapping[str, Any] | None = None,
          reads: tuple[str, ...] | None = None) -> pytest.MarkDecorator:
    """Mark a test as a point of law ``name``; see the module docstring for ``needs``, ``tiers`` and ``reads``."""
    if needs is None and tiers is None:
        raise TypeError(f"@lrlaw({name!r}) needs `tiers=` or `needs=`: say which runs the law reads")
    if tiers is not None and not isinstance(tiers, Mapping):
        raise TypeError(f"@lrlaw({name!r}, tiers=...) takes a dict tier name -> configuration, got {type(tiers).__name__}")
    if reads is not None:
        if needs is not None or tiers is None:
            raise TypeError(f"@lrlaw({name!r}, reads=...) picks ensembles from `tiers=`; it goes without `needs=`")
        reads = (reads,) if isinstance(reads, str) else tuple(reads)
        needs = functools.partial(_pick, reads)
    return pytest.mark.lrlaw(name=name, needs=needs, tiers=None if tiers is None else dict(tiers))


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
    """The ensembles an ``@lrlaw`` point reads at ``tier``, and the tier's configuration (None in the old form).

    Raises ``NotAtThisTier`` for a tier the law does not test and ``NeedsError``
    (one line) when ``needs`` raises or returns something that is not ensembles.
    """
    name, needs, tiers = mark.kwargs["name"], mark.kwargs.get("needs"), mark.kwargs.get("tiers")
    config: Any = None
    if tiers is not None:
        if tier not in tiers:
            raise NotAtThisTier(f"{name} declares tiers {', '.join(tiers)} only")
        config = tiers[tier]
    first = config if tiers is not None else tier
    try:
        found = config if needs is None else needs(first, **params)
    except NotAtThisTier:
        raise
    except Exception as e:
        args = ", ".join(["<configuration>" if tiers is not None else "<tier name>", *(f"{k}=..." for k in params)])
        raise NeedsError(f"needs of law {name!r} failed: {type(e).__name__}: {e} — it is called as "
                         f"needs({args}); it is {_describe(needs)}") from None
    if not isinstance(found, Mapping) or not all(isinstance(v, Ensemble) for v in found.values()):
        raise NeedsError(f"needs of law {name!r} must give a dict name -> Ensemble, got {type(found).__name__}"
                         + ("" if needs is not None else f" as the configuration of tier {tier!r}"))
    return dict(found), config
