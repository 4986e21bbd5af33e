"""What the training bar says: the laws (or the recipe) it trains for, the look, and where runs diverged.

A bar that says only "lrlaws train (smoke)" hides what is being trained, and "diverged=32" reads
like an error when divergence is what a law (``gd_divergence``) measures; so the bar names the laws
whose points are training, the look ("look 2 of 4"), and counts diverged runs per law that reads them.
"""
from __future__ import annotations

from collections import Counter
from typing import TYPE_CHECKING, Any, Mapping

if TYPE_CHECKING:
    from harness.stats.sequential import PointState


def _names(names: list[str], most: int = 2) -> str:
    return ", ".join(names[:most]) + (f" +{len(names) - most}" if len(names) > most else "")


def bar_title(points: "Mapping[str, PointState]", needs: Mapping[str, Any], tier: str) -> str:
    """'lrlaws linearity (smoke, look 2 of 4)': the laws of the points this round trains, and their look
    (``needs``: node id -> what the point needs, its ``law`` named)."""
    training = {i: p for i, p in points.items() if not p.done}
    laws = sorted({needs[i].law for i in training if i in needs})
    looks = sorted({(p.k + 1, len(p.plan)) for p in training.values()})
    if not looks:
        return f"lrlaws train ({tier})"
    (k_lo, n), (k_hi, n_hi) = looks[0], looks[-1]
    look = (f"look {k_lo} of {n}" if looks[0] == looks[-1]
            else f"looks {k_lo}-{k_hi} of up to {max(n, n_hi)}")
    return f"lrlaws {_names(laws) or 'train'} ({tier}, {look})"


class Divergence:
    """Diverged runs so far, per law that reads their recipe: divergence is data, and some laws expect it."""

    def __init__(self, needs: Mapping[str, Any]) -> None:
        self.readers: dict[str, set[str]] = {}
        for need in needs.values():
            for key in need.keys.values():
                self.readers.setdefault(key, set()).add(need.law)
        self.counts: Counter[str] = Counter()

    def add(self, key: str) -> None:
        self.counts[", ".join(sorted(self.readers.get(key, {"?"})))] += 1

    def postfix(self) -> str:
        return "; ".join(f"{n} of {laws}" for laws, n in self.counts.most_common())
