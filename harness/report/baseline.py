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


#: the tiers a baseline can be of (harness.plugin.options.TIERS; not imported, so this command needs no pytest)
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


class BaselineRefused(ReportError):
    """The report would shrink the baseline or change its seeds; ``--force`` overrides."""


def changes(old: dict | None, new: dict) -> tuple[list[str], list[str]]:
    """(why the replacement is refused without --force, what it changes), one line each."""
    if old is None:
        return [], [f"new baseline of tier {new.get('tier')}: {len(new['entries'])} law points"]
    o = {e["nodeid"]: e for e in old["entries"]}
    n = {e["nodeid"]: e for e in new["entries"]}
    dropped, added = [k for k in o if k not in n], [k for k in n if k not in o]
    flips = [f"{k} ({o[k]['decision']} → {n[k]['decision']})" for k in n if k in o and o[k]["decision"] != n[k]["decision"]]
    said = [f"{len(o)} → {len(n)} law points" + (f"; {len(dropped)} dropped (with their plots): "
                                                  f"{', '.join(dropped[:3])}{' …' if len(dropped) > 3 else ''}" if dropped else "")
            + (f"; {len(added)} added" if added else "")]
    said += [f"decision changes: {', '.join(flips)}"] if flips else []
    refused = []
    if dropped:
        refused.append(f"the report covers {len(n)} of the baseline's {len(o)} law points")
    for what in ("tier", "seed_base"):
        if old.get(what, 0) != new.get(what, 0):
            refused.append(f"its {what.replace('_', ' ')} is {new.get(what, 0)}, the baseline's {old.get(what, 0)}")
            said.append(f"{what.replace('_', ' ')}: {old.get(what, 0)} → {new.get(what, 0)}")
    return refused, said


def promote(run_dir: Path, root: Path, force: bool = False) -> tuple[Path, list[str]]:
    """Copy the report into the baseline of its tier; returns where, and what changed.

    Raises ``BaselineRefused`` for a report that covers fewer points than the current baseline, or
    another tier or seed base, unless ``force``.
    """
    data = load_report(run_dir)
    src = report_path(run_dir).parent
    dest = _inside(baseline_dir(root, str(data.get("tier"))), Path(root))
    current = load_report(dest, schema=False) if (dest / "report.json").is_file() else None
    refused, said = changes(current, data)
    if refused and not force:
        raise BaselineRefused(f"not replacing the baseline in {dest}: {'; '.join(refused)} "
                              f"({'; '.join(said)}); pass --force to replace it anyway")
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
    return dest, said


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m harness baseline", description=__doc__.split("\n\n")[0])
    ap.add_argument("run", help="a run directory (or its report.json), or 'latest' for the newest in --report-dir")
    ap.add_argument("--tier", default="smoke", help="with 'latest': the tier to take (default smoke)")
    ap.add_argument("--report-dir", default="results", help="with 'latest': where to look (default results/)")
    ap.add_argument("--root", default=".", help="repository root holding results/baseline (default .)")
    ap.add_argument("--force", action="store_true",
                    help="replace the baseline even with a report of fewer law points, or of another tier or seed base")
    args = ap.parse_args(argv)
    run = args.run
    if run == "latest":
        found = find_previous(Path(args.report_dir), args.tier, before=float("inf"))
        if found is None:
            print(f"python -m harness baseline: no {args.tier} report in {args.report_dir}", file=sys.stderr)
            return 2
        run = str(found.parent)
    try:
        dest, said = promote(Path(run), Path(args.root), force=args.force)
    except OSError as e:
        print(f"python -m harness baseline: cannot write the baseline: {e}", file=sys.stderr)
        return 2
    except ReportError as e:
        print(f"python -m harness baseline: {e}", file=sys.stderr)
        return 2
    data = read_json(dest / "report.json")
    print(f"baseline for tier {data.get('tier')}: {dest} (from {data.get('run_id')}, {len(data['entries'])} law points)")
    for line in said:
        print(f"  {line}")
    return 0
