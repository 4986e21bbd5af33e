"""The verdict and thresholds drawn into a law point's plots, so a plot read alone says what was decided.

A law draws its figures before it decides, and each law draws its own axes, so the plugin adds
a banner above each saved PNG once the point is decided: the verdict, in its colour, and every
row's statistic, value, CI and threshold.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

#: banner colours per verdict class (as on report.html's badges)
COLOURS = {"pass": "#2e7d32", "fail": "#c62828", "xfail": "#8e24aa", "inconclusive": "#b28704",
           "fragile": "#ef6c00", "error": "#000000", "not_run": "#757575"}
_LINE_IN = 0.2  # banner height per text line, inches
#: inches per character of a row line (7.5 pt monospace) and of the verdict (11 pt bold): the banner is
#: made wide enough that no line is cut at the figure's edge
_ROW_CHAR_IN, _VERDICT_CHAR_IN = 0.0625, 0.1
DPI = 110


def row_line(r: dict[str, Any]) -> str:
    thr = r.get("threshold")
    thr_s = f"[{thr[0]:.4g}, {thr[1]:.4g}]" if isinstance(thr, list) else f"{thr:.4g}"
    return (f"[{r.get('kind', 'claim')}] {r['statistic']} = {r['value']:.4g}, CI [{r['ci'][0]:.4g}, {r['ci'][1]:.4g}], "
            f"threshold {r.get('direction', '')} {thr_s}: {r.get('decision', '')}")


def stamp(path: Path, verdict: str, css: str, rows: list[dict[str, Any]]) -> None:
    """Redraw the PNG at ``path`` with a banner: ``verdict`` (coloured by ``css``) and one line per row."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    img = plt.imread(path)
    h, w = img.shape[0] / DPI, img.shape[1] / DPI
    lines = [row_line(r) for r in rows]
    banner = _LINE_IN * (1.6 + len(lines))
    width = max(w, 5.0, 0.2 + _ROW_CHAR_IN * max(map(len, lines), default=0), 0.2 + _VERDICT_CHAR_IN * len(verdict))
    fig = plt.figure(figsize=(width, h + banner), dpi=DPI)
    ax = fig.add_axes((0, 0, w / width, h / (h + banner)))
    ax.imshow(img)
    ax.axis("off")
    top = 1 - 0.3 * _LINE_IN / (h + banner)
    fig.text(0.01, top, verdict, color=COLOURS.get(css, "#000"), fontsize=11, weight="bold", va="top")
    for i, line in enumerate(lines):
        fig.text(0.01, top - (1.3 + i) * _LINE_IN / (h + banner), line, fontsize=7.5, va="top", family="monospace")
    fig.savefig(path, dpi=DPI)
    plt.close(fig)


def stamp_entry(entry: Any, run_dir: Path) -> None:
    """Stamp every plot of a report entry with its verdict and rows (claims and checks)."""
    from harness.report.html import verdict_class
    from harness.report.report import verdict_of

    e = entry.__dict__
    label = verdict_of(e) + (" (fragile: within the machine spread of a threshold)" if e.get("fragile") else "")
    for p in entry.plots:
        stamp(Path(run_dir) / p, f"{entry.law}: {label}", verdict_class(e), e.get("results") or [])
