"""The per-law summary of a session: which claims held, which sanity rows held, which checks were ok.

One line per law and a total line, in the terminal and at the top of
``report.md``. A point that never reached a decision (it was not run, or the
test errored before ``law.check``) is counted as a point, not as claims.
"""
from __future__ import annotations

from typing import Any, Iterable

COUNTS = ("holding", "failing", "undecided", "fragile", "untestable", "not_run", "errors", "checks_ok",
          "checks_broken", "sanity_holding", "sanity_failing", "sanity_undecided")


def law_summary(entries: Iterable[dict[str, Any]]) -> dict[str, dict[str, int]]:
    """{law: counts} from report entries (dicts with ``law``, ``decision`` and ``results``)."""
    out: dict[str, dict[str, int]] = {}
    for e in entries:
        c = out.setdefault(e["law"], dict.fromkeys(COUNTS, 0))
        if e["decision"] == "not_run":
            c["not_run"] += 1
            continue
        if not e["results"]:
            c["errors"] += 1
            continue
        for r in e["results"]:
            if r["decision"] == "untestable":  # not a claim at this N: counted apart, neither held nor undecided
                c["untestable"] += 1
                continue
            kind = r.get("kind", "claim")
            if kind == "sanity":  # cannot discriminate the claim: never counted as one (fragile: undecided)
                c["sanity_" + ({"pass": "holding", "fail": "failing"}.get(r["decision"], "undecided")
                               if not r.get("fragile") else "undecided")] += 1
            # a row whose decision could move on another machine counts as fragile, not by its decision
            elif r.get("fragile") and (kind == "claim" or r["decision"] != "pass"):
                c["fragile"] += 1
            elif kind == "check":
                c["checks_ok" if r["decision"] == "pass" else "checks_broken"] += 1
            else:
                c[{"pass": "holding", "fail": "failing"}.get(r["decision"], "undecided")] += 1
    return out


def _line(name: str, c: dict[str, int]) -> str:
    errors = f", {c['errors']} point(s) errored" if c["errors"] else ""
    fragile = f", {c['fragile']} fragile" if c.get("fragile") else ""
    untestable = f"; {c['untestable']} row(s) untestable at this N" if c.get("untestable") else ""
    return (f"{name:16} claims: {c['holding']} holding, {c['failing']} failing, {c['undecided']} undecided{fragile}"
            f"{untestable}, {c['not_run']} point(s) not run{errors}{_sanity(c)} | checks: {c['checks_ok']} ok, "
            f"{c['checks_broken']} broken")


def _sanity(c: dict[str, int]) -> str:
    if not any(c.get(k) for k in ("sanity_holding", "sanity_failing", "sanity_undecided")):
        return ""
    return (f" | sanity: {c['sanity_holding']} holding, {c['sanity_failing']} failing, "
            f"{c['sanity_undecided']} undecided")


def law_summary_lines(summary: dict[str, dict[str, int]]) -> list[str]:
    lines = [_line(law, c) for law, c in sorted(summary.items())]
    total = {k: sum(c.get(k, 0) for c in summary.values()) for k in COUNTS}
    return lines + [_line("total", total)]
