"""``--budget DURATION``: sequential looks past the tier's N while training time is left.

Every point's looks become open-ended (``harness.stats.sequential.spending_level``). A point
still undecided at its last look may look again at twice the runs; after each round the
undecided points are ranked by the device time their projection says deciding would cost
(``harness.stats.projection``), and the next looks go to the cheapest while the budget lasts
(``choose_extensions``: at most one look over it). What is still undecided when the budget is
spent keeps its projection in the report.
"""
from __future__ import annotations

import math

from harness.law.context import LawContext
from harness.stats.projection import facing_side, point_projection
from harness.stats.sequential import choose_extensions


def point_costs(ctx: LawContext) -> tuple[float, float]:
    """(device seconds its projection says deciding the point would take, seconds of its next look)."""
    loaded = [e for e in ctx.ensembles.values() if e.loaded]
    runs = sum(e.n for e in loaded)
    s_run = sum(e.seconds for e in loaded) / max(1, runs)
    histories = {k: [*v] for k, v in ctx.history.items()}
    for r in ctx.claims:
        histories.setdefault(r.statistic, []).append((ctx.runs_used, facing_side(r)[1]))
    p = point_projection(ctx.results, ctx.runs_used, histories)
    next_look = runs * s_run  # doubling every ensemble trains as many runs again
    if p is None or not p.reachable:
        return (math.inf, next_look)
    return (runs * max(0.0, p.runs / max(1, ctx.runs_used) - 1) * s_run, next_look)


def extend_within_budget(budget: float, spent: float, costs: dict[str, tuple[float, float]],
                         undecided: list[str]) -> list[str]:
    """The undecided points that look again, cheapest to decide first, while the ``budget`` seconds of
    training last (``spent`` so far; ``costs``: each point's from ``point_costs`` at its latest look)."""
    return choose_extensions({n: costs.get(n, (math.inf, math.inf)) for n in undecided}, budget - spent)
