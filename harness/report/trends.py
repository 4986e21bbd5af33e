"""Trend plots: ``python -m harness trends DIR`` draws one PNG per (tier, law, statistic).

Each plot has one line per law point, the reports of ``DIR`` (every
``*/report.json`` below it, the committed baseline included) in the order they
started on the x axis, the CI as error bars and the threshold as a dashed line
(or band) in the point's colour, so a claim creeping towards its threshold over
the nights is visible before it flips.
"""
from __future__ import annotations

import argparse
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.report.history import earlier_reports
from harness.report.schema import result_ok

TRENDS_DIR = "trends"


@dataclass
class Series:
    """One law point's values of one statistic across reports."""

    nodeid: str
    x: list[int] = field(default_factory=list)
    value: list[float] = field(default_factory=list)
    lo: list[float] = field(default_factory=list)
    hi: list[float] = field(default_factory=list)
    threshold: Any = None
    direction: str = ""


def load_reports(report_dir: Path) -> list[dict[str, Any]]:
    """Every readable report below ``report_dir``, oldest first."""
    return [data for _, data in reversed(list(earlier_reports(report_dir, below=True, skip_dirs=(TRENDS_DIR,))))]


def collect(reports: list[dict[str, Any]]) -> dict[tuple[str, str, str], tuple[list[str], dict[str, Series]]]:
    """(tier, law, statistic) → (x labels, series by node id); x indexes the reports of that tier."""
    out: dict[tuple[str, str, str], tuple[list[str], dict[str, Series]]] = {}
    by_tier: dict[str, list[dict[str, Any]]] = {}
    for r in reports:
        by_tier.setdefault(str(r.get("tier")), []).append(r)
    for tier, rs in by_tier.items():
        labels = [str(r.get("run_id", i)) for i, r in enumerate(rs)]
        for i, r in enumerate(rs):
            for e in r["entries"]:
                # Older reports (and damaged ones) may lack fields: draw what is there, skip the rest.
                if not isinstance(e, dict) or not isinstance(e.get("nodeid"), str):
                    continue
                results = e.get("results") if isinstance(e.get("results"), list) else []
                for res in filter(result_ok, results):
                    key = (tier, str(e.get("law", "?")), res["statistic"])
                    _, series = out.setdefault(key, (labels, {}))
                    s = series.setdefault(e["nodeid"], Series(e["nodeid"]))
                    s.x.append(i)
                    s.value.append(float(res["value"]))
                    s.lo.append(float(res["ci"][0]))
                    s.hi.append(float(res["ci"][1]))
                    s.threshold, s.direction = res.get("threshold"), res.get("direction", "")
    return out


def _short(nodeid: str) -> str:
    return nodeid.split("::")[-1]


def plot(labels: list[str], series: dict[str, Series], title: str, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    fig, ax = plt.subplots(figsize=(max(6.0, 0.5 * len(labels) + 3), 4))
    try:
        for i, s in enumerate(series.values()):
            color = f"C{i % 10}"
            v, lo, hi = (np.array(a, dtype=float) for a in (s.value, s.lo, s.hi))
            # an infinite CI bound is drawn as no bar rather than an axis-wrecking one
            err = np.vstack([np.where(np.isfinite(lo), v - lo, 0), np.where(np.isfinite(hi), hi - v, 0)])
            ax.errorbar(s.x, v, yerr=err, color=color, marker="o", ms=3, capsize=3, label=_short(s.nodeid))
            if isinstance(s.threshold, (list, tuple)):
                ax.axhspan(s.threshold[0], s.threshold[1], color=color, alpha=0.08)
            elif s.threshold is not None:
                ax.axhline(float(s.threshold), color=color, ls="--", lw=1)
        ax.set_xticks(range(len(labels)))
        ax.set_xticklabels([lab[:15] for lab in labels], rotation=45, ha="right", fontsize=7)
        ax.set_title(title, fontsize=9)
        ax.legend(fontsize=7, loc="best")
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, dpi=100, bbox_inches="tight")
    finally:
        plt.close(fig)


def write_trends(report_dir: Path, out_dir: Path | None = None) -> list[Path]:
    out_dir = Path(out_dir) if out_dir is not None else Path(report_dir) / TRENDS_DIR
    written = []
    for (tier, law, stat), (labels, series) in sorted(collect(load_reports(Path(report_dir))).items()):
        name = re.sub(r"[^A-Za-z0-9_.-]+", "_", f"{tier}-{law}-{stat}") + ".png"
        dirs = {s.direction for s in series.values()}
        plot(labels, series, f"{law}: {stat} (tier {tier}; threshold dashed or band shaded; needs {'/'.join(sorted(dirs))})",
             out_dir / name)
        written.append(out_dir / name)
    if written:
        written.append(_index(Path(report_dir), out_dir, written))
    return written


def _index(report_dir: Path, out_dir: Path, images: list[Path]) -> Path:
    """``out_dir/index.html``: every session, newest first, linked to its report.html, then the plots."""
    import os

    from harness.report.html import index_page

    rows = []
    for path, data in earlier_reports(report_dir, below=True, skip_dirs=(TRENDS_DIR,)):
        page = path.parent / "report.html"
        link = os.path.relpath(page, out_dir) if page.is_file() else ""
        rows.append((str(data.get("run_id") or path.parent.name), str(data.get("tier")), link))
    return index_page(rows, images, out_dir)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m harness trends", description=__doc__.split("\n\n")[0])
    ap.add_argument("report_dir", help="directory of run directories, each with a report.json")
    ap.add_argument("--out", default=None, help=f"where the PNGs go (default REPORT_DIR/{TRENDS_DIR})")
    args = ap.parse_args(argv)
    if not Path(args.report_dir).is_dir():
        print(f"python -m harness trends: {args.report_dir} is not a directory", file=sys.stderr)
        return 2
    try:
        paths = write_trends(Path(args.report_dir), Path(args.out) if args.out else None)
    except OSError as e:
        print(f"python -m harness trends: cannot write {e.filename or args.out} ({e.strerror}); "
              "pass --out DIR, a writable directory", file=sys.stderr)
        return 2
    if not paths:
        print(f"python -m harness trends: no report with results under {args.report_dir}", file=sys.stderr)
        return 1
    for p in paths:
        print(p)
    return 0
