"""``python -m harness baseline RUN_DIR|latest``: make a report the committed baseline of its tier.

The smoke-tier baseline lives in ``results/baseline/`` (report.json, report.md,
plots); a baseline of another tier goes to ``results/baseline/<tier>/``, where
``--compare-to previous`` finds it when the report dir holds no earlier report
of that tier. ``.gitignore`` keeps ``results/baseline/`` and ignores the rest
of ``results/``.
"""
from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

from harness.report.compare import strip_comparison
from harness.report.history import BASELINE_DIR, ReportError, find_previous, load_report, report_path
from harness.store.errors import confined, read_regular
from harness.store.jsonfile import dumps, read_json


#: the tiers a baseline can be of (harness.plugin.hooks.TIERS; not imported, so this command needs no pytest)
TIERS = ("smoke", "gpu", "paper")


def baseline_dir(root: Path, tier: str) -> Path:
    """Where the baseline of ``tier`` goes; only a known tier names a directory, so no report can aim elsewhere."""
    if tier not in TIERS:
        raise ReportError(f"report has tier {tier!r}, not one of {', '.join(TIERS)}: not an lrlaws report of a known tier")
    return Path(root) / BASELINE_DIR / ("" if tier == "smoke" else tier)


def _inside(path: Path, root: Path) -> Path:
    """``path`` if it lies below the repository ``root`` through no symlink (``results/``, ``results/baseline``
    and what is below them included); a link anywhere on the way is refused, never followed."""
    if not confined(Path(root), path):
        raise ReportError(f"{path} is reached through a symlink or lies outside {root}: remove that link and run again")
    return path


def _no_links(folder: str, names: list[str]) -> list[str]:
    # plots are plain files; a link in a run dir would copy whatever it points at into the baseline
    return [n for n in names if Path(folder, n).is_symlink()]


def promote(run_dir: Path, root: Path) -> Path:
    data = load_report(run_dir)
    src = report_path(run_dir).parent
    dest = _inside(baseline_dir(root, str(data.get("tier"))), Path(root))
    dest.mkdir(parents=True, exist_ok=True)
    plots = dest / "plots"
    if plots.is_symlink():
        plots.unlink()
    shutil.rmtree(plots, ignore_errors=True)
    # a baseline is a reference, not a comparison: drop the one its session made
    data.pop("comparison", None)
    for name in ("report.json", "report.md"):
        if (dest / name).is_symlink():
            (dest / name).unlink()  # write the file itself, not what a planted link points at
    (dest / "report.json").write_text(dumps(data))
    if (src / "report.md").exists():
        (dest / "report.md").write_text(strip_comparison(read_regular(src / "report.md", follow_links=True).decode()))
    if (src / "plots").is_dir() and not (src / "plots").is_symlink():
        shutil.copytree(src / "plots", plots, ignore=_no_links)
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
    except OSError as e:
        print(f"python -m harness baseline: cannot write the baseline: {e}", file=sys.stderr)
        return 2
    except ReportError as e:
        print(f"python -m harness baseline: {e}", file=sys.stderr)
        return 2
    data = read_json(dest / "report.json")
    print(f"baseline for tier {data.get('tier')}: {dest} (from {data.get('run_id')}, {len(data['entries'])} law points)")
    return 0
