"""The ``calibrate`` command: run every registered family, print the table, write JSON and Markdown."""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from harness.calibrate import FULL_TRIALS, MAX_FALSE_PASS, MIN_COVERAGE, QUICK_TRIALS, REGISTRY, markdown_table, run_all


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m harness calibrate",
                                description="coverage and false-pass rate of every statistic that decides a claim")
    p.add_argument("--quick", action="store_true", help=f"{QUICK_TRIALS} trials per cell (fewer for costly "
                   f"statistics) instead of {FULL_TRIALS}: a few minutes on 2 cores")
    p.add_argument("--trials", type=int, default=None, help="trials per cell (overrides --quick)")
    p.add_argument("--only", action="append", default=None, metavar="STATISTIC",
                   help=f"calibrate only this statistic (repeatable); known: {', '.join(sorted(REGISTRY))}")
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
    out = Path(args.out)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        print(f"calibrate: cannot create --out {out}: {e.strerror}; pass a writable directory", file=sys.stderr)
        return 2
    t0 = time.perf_counter()

    def show(c):
        flag = "" if c.ok else "   <-- misses the bars"
        print(f"{c.statistic:28} {c.generator:38} cover {100 * c.coverage:5.1f}%  pass {100 * c.pass_rate:5.1f}% "
              f"({c.role}, {c.trials} trials, {c.seconds:.1f} s){flag}", flush=True)

    cells = run_all(trials, args.only, progress=show)
    seconds = time.perf_counter() - t0
    table = markdown_table(cells)
    bad = [c for c in cells if not c.ok]
    head = (f"bars: coverage >= {100 * MIN_COVERAGE:.0f}% in every cell, false pass <= {100 * MAX_FALSE_PASS:.0f}% "
            f"where the truth is on the threshold; {len(cells) - len(bad)}/{len(cells)} cells meet them "
            f"({seconds:.0f} s, {'quick' if trials < FULL_TRIALS else 'full'} run)")
    print("\n" + table + "\n" + head)
    (out / "calibration.json").write_text(json.dumps(
        {"trials": trials, "seconds": seconds, "bars": {"min_coverage": MIN_COVERAGE, "max_false_pass": MAX_FALSE_PASS},
         "cells": [c.to_dict() for c in cells]}, indent=1))
    (out / "calibration.md").write_text(f"# lrlaws calibration\n\n{head}\n\n{table}")
    print(f"written: {out / 'calibration.json'}, {out / 'calibration.md'}")
    return 0
