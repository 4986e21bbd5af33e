"""The ``calibrate`` command: run every registered family, print the table, write JSON and Markdown."""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from harness.calibrate import (
    FULL_TRIALS, MAX_FALSE_PASS, MIN_COVERAGE, QUICK_TRIALS, REGISTRY, Cell, markdown_table, run_all,
)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m harness calibrate",
                                description="coverage and false-pass rate of every statistic that decides a claim")
    p.add_argument("--quick", action="store_true", help=f"{QUICK_TRIALS} trials per cell (fewer for costly "
                   f"statistics) instead of {FULL_TRIALS}: a few minutes on 2 cores")
    p.add_argument("--trials", type=int, default=None, help="trials per cell (overrides --quick)")
    p.add_argument("--only", action="append", default=None, metavar="STATISTIC",
                   help=f"calibrate only this statistic (repeatable); known: {', '.join(sorted(REGISTRY))}")
    p.add_argument("--generator", action="append", default=None, metavar="NAME",
                   help="only the generators of this name (repeatable), e.g. to re-run one cell with more --trials")
    p.add_argument("--out", default="results/calibration", metavar="DIR",
                   help="where calibration.json and calibration.md go (default results/calibration)")
    return p


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    trials = args.trials if args.trials is not None else (QUICK_TRIALS if args.quick else FULL_TRIALS)
    if trials < 1:
        print(f"calibrate: --trials must be >= 1, got {trials}", file=sys.stderr)
        return 2
    unknown = sorted(set(args.only or []) - set(REGISTRY))
    if unknown:
        print(f"calibrate: unknown statistic(s) {', '.join(unknown)}; known: {', '.join(sorted(REGISTRY))}",
              file=sys.stderr)
        return 2
    known_gens = {g.name for name, f in REGISTRY.items() if not args.only or name in args.only for g in f.generators}
    unknown = sorted(set(args.generator or []) - known_gens)
    if unknown:
        print(f"calibrate: unknown generator(s) {', '.join(unknown)} for these statistics; known: "
              f"{', '.join(sorted(known_gens))}", file=sys.stderr)
        return 2
    out = Path(args.out)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        print(f"calibrate: cannot create --out {out}: {e.strerror}; pass a writable directory", file=sys.stderr)
        return 2
    t0 = time.perf_counter()
    full = trials >= FULL_TRIALS

    def show(c: Cell) -> None:
        flag = "" if c.ok else ("   <-- misses the bars" if full or c.surely_misses
                                else "   <-- below a bar, within a quick run's noise")
        print(f"{c.statistic:28} {c.generator:38} N={c.n:<4} cover {100 * c.coverage:5.1f}%  pass {100 * c.pass_rate:5.1f}% "
              f"({c.role}, {c.trials} trials{', re-measured' if c.note.startswith('re-measured') else ''}, "
              f"{c.seconds:.1f} s){flag}", flush=True)

    cells = run_all(trials, args.only, progress=show, generators=args.generator)
    seconds = time.perf_counter() - t0
    table = markdown_table(cells)
    bad = [c for c in cells if not c.ok]
    head = (f"bars: coverage >= {100 * MIN_COVERAGE:.0f}% in every cell, false pass <= {100 * MAX_FALSE_PASS:.0f}% "
            f"where the truth is on the threshold; {len(cells) - len(bad)}/{len(cells)} cells meet them "
            f"({seconds:.0f} s, {'full' if full else 'quick'} run)")
    print("\n" + table + "\n" + head)
    projection = projection_section(trials) if not args.only and not args.generator else ""
    print(projection)
    (out / "calibration.json").write_text(json.dumps(
        {"trials": trials, "full": full, "seconds": seconds,
         "bars": {"min_coverage": MIN_COVERAGE, "max_false_pass": MAX_FALSE_PASS},
         "cells": [c.to_dict() for c in cells]}, indent=1))
    (out / "calibration.md").write_text(f"# lrlaws calibration\n\n{head}\n\n{table}\n{projection}")
    print(f"written: {out / 'calibration.json'}, {out / 'calibration.md'}")
    return _verdict(cells, trials)


def projection_section(trials: int) -> str:
    """How often the runs projected for an undecided claim decide it (reported, not a bar)."""
    from harness.calibrate.projection import projection_table, run_projection

    cells = run_projection(max(trials, 100))
    return ("## Projections\n\nundecided claims at N = 16 whose truth lies >= 1 SE from the threshold: "
            "how often the projected N decides them (aim >= 75%)\n\n" + projection_table(cells))


def _verdict(cells: list[Cell], trials: int) -> int:
    """Exit status: a full run fails on any cell that misses a bar; a quick run (too few trials to
    prove the bars) fails only on cells whose 95% interval lies wholly on the wrong side of one."""
    full = trials >= FULL_TRIALS
    failing = [c for c in cells if not c.ok] if full else [c for c in cells if c.surely_misses]
    if not full:
        print(f"quick run ({trials} < {FULL_TRIALS} trials asked per cell): it cannot prove the bars (the full "
              "run does); it fails only on a cell whose 95% interval lies wholly on the wrong side of a bar")
    for c in failing:
        print(f"calibrate: {c.statistic} x {c.generator} misses the bars at N={c.n}: coverage {100 * c.coverage:.1f}% "
              f"[{100 * c.coverage_ci[0]:.1f}, {100 * c.coverage_ci[1]:.1f}], pass {100 * c.pass_rate:.1f}% "
              f"[{100 * c.pass_ci[0]:.1f}, {100 * c.pass_ci[1]:.1f}] ({c.role})", file=sys.stderr)
    if failing:
        print(f"calibrate: {len(failing)} cell(s) miss the bars", file=sys.stderr)
    return 1 if failing else 0
