"""``python -m harness confirm FIXED HELDOUT [--md OUT]``: claims decided on tuning vs held-out seeds;
``python -m harness confirm --perturb BASE OTHER``: which decisions are fragile;
``python -m harness confirm --union R1 R2 R3 ...``: each claim decided over several seed bases at once.

FIXED is a session at ``--seed-base 0`` (the seeds the constants were tuned on),
HELDOUT one at another base (fresh seeds). Per claim row: the decision and CI
at both seed bases, flagged where the decisions differ. Checks are left out:
they are identities, the same on any seed; sanity rows are in.

With ``--perturb``, BASE and OTHER are sessions of the *same* seeds and code whose
floating point differs: another CPU or device class, or OTHER = ``threads``, which
recomputes BASE's tier here under ``LRLAWS_PERTURB=threads`` (two intra-op threads
instead of one, in a fresh temporary store). Per row, claims and checks: both
decisions, and how far the interval's edges moved in half-widths of BASE's interval;
a row decided differently is fragile. The largest shift is the measured machine
spread (``harness.stats.fragility.MACHINE_SPREAD``).

With ``--union``, R1 R2 ... are sessions of one tier at distinct seed bases. Per claim row: how often
each decision occurs (a fragile one apart), and the union's verdict: the decision where every base
agrees, else *mixed*.
A verdict that holds on one seed base only is no verdict.
"""
from __future__ import annotations

import math
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from harness.cli import OneLineParser
from harness.report.history import ReportError, load_report


def claim_rows(report: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    rows = {}
    for e in report["entries"]:
        for r in e.get("results", []):
            if r.get("kind", "claim") != "check":  # claims, and sanity rows (they decide points without claims)
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


def union_table(reports: list[dict[str, Any]]) -> tuple[str, int]:
    """The Markdown table of claim decisions over seed bases, and how many rows are mixed."""
    rows = [claim_rows(r) for r in reports]
    bases = ", ".join(str(r.get("seed_base", 0)) for r in reports)
    out = [f"| claim | union verdict | decisions over seed bases {bases} |", "|---|---|---|"]
    mixed = 0
    for key in sorted(set().union(*rows)):
        found = [_decided(rs.get(key)) for rs in rows]
        counts = {d: found.count(d) for d in dict.fromkeys(found)}
        verdict = found[0] if len(counts) == 1 else "mixed"
        mixed += verdict == "mixed"
        name = f"`{key[0]}` {key[1]}".strip()
        out.append(f"| {name} | {verdict} | {', '.join(f'{d} {k}/{len(found)}' for d, k in counts.items())} |")
    return "\n".join(out) + "\n", mixed


def _decided(r: dict[str, Any] | None) -> str:
    """A row's decision as the union counts it; one within the machine spread of its threshold is fragile."""
    if r is None:
        return "absent"
    return f"{r['decision']} (fragile)" if r.get("fragile") else r["decision"]


def union_main(args: Any) -> int:
    reports = [load_report(p, schema=False) for p in (args.first, args.second, *args.more)]
    bases = [r.get("seed_base", 0) for r in reports]
    if len(set(bases)) < len(bases) or len({r.get("tier") for r in reports}) > 1:
        print(f"confirm --union: pass sessions of one tier at distinct seed bases; got seed bases {bases}, "
              f"tiers {sorted({str(r.get('tier')) for r in reports})}", file=sys.stderr)
        return 2
    try:
        table, mixed = union_table(reports)
    except MALFORMED as e:
        return _malformed(args, e)
    head = f"{mixed} claim(s) decided differently across seed bases {', '.join(map(str, bases))}"
    print(table + "\n" + head)
    return _write_md(args.md, f"# Verdicts over seed bases\n\n{head}\n\n{table}")


def all_rows(report: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    return {(e["nodeid"], r["statistic"]): r for e in report["entries"] for r in e.get("results", [])}


def edge_shift(a: dict[str, Any], b: dict[str, Any]) -> float:
    """How far ``b``'s interval edges lie from ``a``'s, in half-widths of ``a``'s interval."""
    (lo, hi), (lo2, hi2) = a["ci"], b["ci"]
    if not all(math.isfinite(v) for v in (lo, hi, lo2, hi2)):
        return 0.0 if (lo, hi) == (lo2, hi2) else math.inf
    moved = max(abs(lo2 - lo), abs(hi2 - hi))
    half = (hi - lo) / 2
    return moved / half if half > 0 else (0.0 if moved == 0 else math.inf)


def perturb_table(base: dict[str, Any], other: dict[str, Any]) -> tuple[str, list[str], float]:
    """The Markdown table, the rows decided differently and the largest finite edge shift."""
    a, b = all_rows(base), all_rows(other)
    out = ["| row | kind | decision (base) | CI (base) | decision (perturbed) | CI (perturbed) | "
           "edge shift (half-widths) | fragile |", "|---|---|---|---|---|---|---|---|"]
    fragile, worst = [], 0.0
    for key in sorted(set(a) & set(b)):
        ra, rb = a[key], b[key]
        shift = edge_shift(ra, rb)
        if math.isfinite(shift):
            worst = max(worst, shift)
        moved = ra["decision"] != rb["decision"]
        name = f"`{key[0]}` {key[1]}"
        if moved:
            fragile.append(name)
        out.append(f"| {name} | {ra.get('kind', 'claim')} | {_cell(ra)} {_cell(rb)} {shift:.2f} | "
                   f"{'**yes**' if moved else ''} |")
    return "\n".join(out) + "\n", fragile, worst


def recompute(base: dict[str, Any], perturbation: str, laws: str) -> dict[str, Any]:
    """BASE's tier and seeds recomputed here under ``perturbation``, in a fresh temporary store."""
    from harness.identity import PERTURB_ENV

    tmp = Path(tempfile.mkdtemp(prefix="lrlaws-perturb-"))
    cmd = [sys.executable, "-m", "pytest", laws, "--tier", base["tier"], "--seed-base", str(base.get("seed_base", 0)),
           "--workers", "1", "--store", str(tmp / "store"), "--report-dir", str(tmp / "reports"),
           "--compare-to", "none", "-q", "-p", "no:cacheprovider"]
    print(f"confirm: recomputing under {PERTURB_ENV}={perturbation}: {' '.join(cmd)}", file=sys.stderr)
    subprocess.run(cmd, env={**os.environ, PERTURB_ENV: perturbation}, check=False)
    reports = sorted((tmp / "reports").glob("*/report.json"))
    if not reports:
        raise ReportError(f"the perturbed session wrote no report under {tmp / 'reports'}")
    return load_report(reports[-1], schema=False)


def perturb_main(args: Any) -> int:
    from harness.identity import PERTURBATIONS

    base = load_report(args.first, schema=False)
    if args.second in PERTURBATIONS:
        other = recompute(base, args.second, args.laws)
    else:
        other = load_report(args.second, schema=False)
    if base.get("seed_base", 0) != other.get("seed_base", 0):
        print("confirm --perturb: the two reports used other seeds; a perturbation compares the same seeds",
              file=sys.stderr)
        return 2
    try:
        table, fragile, worst = perturb_table(base, other)
    except MALFORMED as e:
        return _malformed(args, e)
    head = (f"{len(fragile)} row(s) decided differently under the perturbation (fragile); largest edge shift "
            f"{worst:.2f} half-widths")
    print(table + "\n" + head + "".join(f"\n  fragile: {f}" for f in fragile))
    return _write_md(args.md, f"# Fragile rows\n\n{head}\n\n{table}")


#: what a report with a malformed entry raises when a table is built from it
MALFORMED = (KeyError, TypeError, ValueError, AttributeError, IndexError)


def _malformed(args: Any, e: Exception) -> int:
    print(f"confirm: {args.first} or {args.second} has a malformed entry ({type(e).__name__}: {str(e)[:120]}); "
          "pass reports written by an lrlaws session", file=sys.stderr)
    return 2


def _write_md(path: str | None, text: str) -> int:
    if path:
        try:
            Path(path).write_text(text)
        except OSError as e:
            print(f"confirm: cannot write --md {path}: {e.strerror}; pass a writable path", file=sys.stderr)
            return 2
    return 0


def main(argv: list[str] | None = None) -> int:
    p = OneLineParser(prog="python -m harness confirm", description=__doc__.splitlines()[0])
    p.add_argument("first", metavar="FIXED|BASE",
                   help="report.json (or run dir) of the session on the tuning seeds (--seed-base 0); with "
                        "--perturb, the unperturbed session")
    p.add_argument("second", metavar="HELDOUT|OTHER",
                   help="report.json (or run dir) of the session on held-out seeds (--seed-base K); with "
                        "--perturb, the same seeds on perturbed floating point, or 'threads' to recompute them here")
    p.add_argument("more", nargs="*", metavar="REPORT", help="with --union: further sessions at other seed bases")
    p.add_argument("--perturb", action="store_true", help="find fragile rows: decisions that move with floating point")
    p.add_argument("--union", action="store_true",
                   help="decide each claim over several seed bases at once (two or more sessions of one tier)")
    p.add_argument("--laws", default="laws/", help="with --perturb threads: the law tests to recompute (default laws/)")
    p.add_argument("--md", default=None, metavar="OUT", help="also write the table to this Markdown file")
    args = p.parse_args(argv)
    if args.more and not args.union:
        print("confirm: more than two reports go with --union", file=sys.stderr)
        return 2
    try:
        if args.union:
            return union_main(args)
        if args.perturb:
            return perturb_main(args)
        fixed, held = load_report(args.first, schema=False), load_report(args.second, schema=False)
    except ReportError as e:
        print(f"confirm: {e}", file=sys.stderr)
        return 2
    if fixed.get("seed_base", 0) == held.get("seed_base", 0):
        print(f"confirm: both reports used seeds from {fixed.get('seed_base', 0)}; the second must be a "
              "--seed-base K session with another K", file=sys.stderr)
        return 2
    try:
        table, differ = confirm_table(fixed, held)
    except MALFORMED as e:
        return _malformed(args, e)
    head = f"{differ} claim(s) decided differently on held-out seeds"
    print(table + "\n" + head)
    return _write_md(args.md, f"# Confirmatory table\n\n{head}\n\n{table}")
