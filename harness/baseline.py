"""``python -m harness baseline RUN_DIR|latest``: make a report the committed baseline of its tier.

The smoke-tier baseline lives in ``results/baseline/`` (report.json, report.md,
plots); a baseline of another tier goes to ``results/baseline/<tier>/``, where
``--compare-to previous`` finds it when the report dir holds no earlier report
of that tier. ``.gitignore`` keeps ``results/baseline/`` and ignores the rest
of ``results/``.
"""
from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

from harness.compare import BASELINE_DIR, CompareError, find_previous, load_report, report_path, strip_comparison


def baseline_dir(root: Path, tier: str) -> Path:
    return Path(root) / BASELINE_DIR / ("" if tier == "smoke" else tier)


def promote(run_dir: Path, root: Path) -> Path:
    data = load_report(run_dir)
    src = report_path(run_dir).parent
    dest = baseline_dir(root, str(data.get("tier")))
    dest.mkdir(parents=True, exist_ok=True)
    shutil.rmtree(dest / "plots", ignore_errors=True)
    # a baseline is a reference, not a comparison: drop the one its session made
    data.pop("comparison", None)
    (dest / "report.json").write_text(json.dumps(data, indent=1))
    if (src / "report.md").exists():
        (dest / "report.md").write_text(strip_comparison((src / "report.md").read_text()))
    if (src / "plots").is_dir():
        shutil.copytree(src / "plots", dest / "plots")
    return dest


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m harness baseline", description=__doc__.split("\n\n")[0])
    ap.add_argument("run", help="a run directory (or its report.json), or 'latest' for the newest in --report-dir")
    ap.add_argument("--tier", default="smoke", help="with 'latest': the tier to take (default smoke)")
    ap.add_argument("--report-dir", default="results", help="with 'latest': where to look (default results/)")
    ap.add_argument("--root", default=".", help="repository root holding results/baseline (default .)")
    args = ap.parse_args(argv)
    run = args.run
    if run == "latest":
        found = find_previous(Path(args.report_dir), args.tier, before=float("inf"))
        if found is None:
            print(f"python -m harness baseline: no {args.tier} report in {args.report_dir}", file=sys.stderr)
            return 2
        run = str(found.parent)
    try:
        dest = promote(Path(run), Path(args.root))
    except CompareError as e:
        print(f"python -m harness baseline: {e}", file=sys.stderr)
        return 2
    data = json.loads((dest / "report.json").read_text())
    print(f"baseline for tier {data.get('tier')}: {dest} (from {data.get('run_id')}, {len(data['entries'])} law points)")
    return 0
