"""``python -m harness confirm FIXED HELDOUT [--md OUT]``: claims decided on tuning vs held-out seeds.

FIXED is a session at ``--seed-base 0`` (the seeds the constants were tuned on),
HELDOUT one at another base (fresh seeds). Per claim row: the decision and CI
at both seed bases, flagged where the decisions differ. Checks are left out:
they are identities, the same on any seed.
"""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from harness.cli import OneLineParser
from harness.report_find import CompareError, load_report


def claim_rows(report: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    rows = {}
    for e in report["entries"]:
        for r in e.get("results", []):
            if r.get("kind", "claim") == "claim":
                rows[(e["nodeid"], r["statistic"])] = r
        if not e.get("results"):
            rows[(e["nodeid"], "")] = {"decision": e.get("decision", "?"), "ci": None}
    return rows


def _cell(r: dict[str, Any] | None) -> str:
    if r is None:
        return "absent |"
    ci = r.get("ci")
    ci_s = f"[{ci[0]:.4g}, {ci[1]:.4g}]" if ci else ""
    return f"{r['decision']} | {ci_s}"


def confirm_table(fixed: dict[str, Any], held: dict[str, Any]) -> tuple[str, int]:
    """The Markdown table and how many claims' decisions differ."""
    a, b = claim_rows(fixed), claim_rows(held)
    fb, hb = fixed.get("seed_base", 0), held.get("seed_base", 0)
    out = [f"| claim | decision (seeds from {fb}) | CI | decision (seeds from {hb}) | CI | differs |",
           "|---|---|---|---|---|---|"]
    differ = 0
    for key in sorted(set(a) | set(b)):
        ra, rb = a.get(key), b.get(key)
        diff = (ra or {}).get("decision") != (rb or {}).get("decision")
        differ += diff
        name = f"`{key[0]}` {key[1]}".strip()
        out.append(f"| {name} | {_cell(ra)} | {_cell(rb)} | {'**yes**' if diff else ''} |")
    return "\n".join(out) + "\n", differ


def main(argv: list[str] | None = None) -> int:
    p = OneLineParser(prog="python -m harness confirm", description=__doc__.splitlines()[0])
    p.add_argument("fixed", help="report.json (or run dir) of the session on the tuning seeds (--seed-base 0)")
    p.add_argument("heldout", help="report.json (or run dir) of the session on held-out seeds (--seed-base K)")
    p.add_argument("--md", default=None, metavar="OUT", help="also write the table to this Markdown file")
    args = p.parse_args(argv)
    try:
        fixed, held = load_report(args.fixed, schema=False), load_report(args.heldout, schema=False)
    except CompareError as e:
        print(f"confirm: {e}", file=sys.stderr)
        return 2
    if fixed.get("seed_base", 0) == held.get("seed_base", 0):
        print(f"confirm: both reports used seeds from {fixed.get('seed_base', 0)}; the second must be a "
              "--seed-base K session with another K", file=sys.stderr)
        return 2
    try:
        table, differ = confirm_table(fixed, held)
    except (KeyError, TypeError, ValueError, AttributeError, IndexError) as e:
        print(f"confirm: {args.fixed} or {args.heldout} has a malformed entry ({type(e).__name__}: {str(e)[:120]}); "
              "pass reports written by an lrlaws session", file=sys.stderr)
        return 2
    head = f"{differ} claim(s) decided differently on held-out seeds"
    print(table + "\n" + head)
    if args.md:
        try:
            Path(args.md).write_text(f"# Confirmatory table\n\n{head}\n\n{table}")
        except OSError as e:
            print(f"confirm: cannot write --md {args.md}: {e.strerror}; pass a writable path", file=sys.stderr)
            return 2
    return 0
