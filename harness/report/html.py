"""``report.html``: one self-contained page per session, beside ``report.md``; and the index page of ``trends``.

Per law: its claim in one sentence and its source's title (from the law module's docstring,
stored in each entry as ``claim`` and ``source``), then each point with a verdict badge,
its rows (value, CI, threshold, N), the runs it used, the projection to decide it where it
is undecided, and its plots embedded as base64 PNGs. The head of the page holds the per-law
summary and the comparison with the previous session. No script, no external resource: the
page opens from a file, offline, with nothing to load.
"""
from __future__ import annotations

import base64
import html
import json
import re
from pathlib import Path
from typing import Any

from harness.report.report import projection_text, verdict_of
from harness.report.summary import law_summary, law_summary_lines

_STYLE = """
body{font:14px/1.45 system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}
h1{font-size:1.5em}h2{margin-top:2em;border-bottom:1px solid #ccc}h3{font-size:1.05em;margin-bottom:.3em}
.badge{display:inline-block;padding:1px 8px;border-radius:9px;color:#fff;font-weight:600;font-size:.85em}
.pass{background:#2e7d32}.fail{background:#c62828}.xfail{background:#8e24aa}.inconclusive{background:#f9a825;color:#222}
.not_run{background:#757575}.error{background:#000}.fragile{background:#ef6c00}
table{border-collapse:collapse;margin:.4em 0}td,th{border:1px solid #ddd;padding:2px 8px;text-align:left;font-size:.9em}
img{max-width:100%;border:1px solid #eee;margin:.3em 0}.claim{font-style:italic}.src{color:#555}
pre{background:#f6f6f6;padding:.5em;overflow-x:auto}
"""

#: the first docstring line of a law module: "Law `name` — the claim."
_CLAIM = re.compile(r"^\s*(?:Law\s+`[^`]+`\s*[—:-]\s*|[\w_]+:\s*)(.+?)\s*$")
#: the source's title: the first quoted title after "Source:" (or anywhere, for a module without one)
_TITLE = re.compile(r'"([^"]{8,})"')


def claim_and_source(doc: str | None) -> tuple[str, str]:
    """(the claim in one sentence, the source's title) from a law module's docstring; "" where absent."""
    if not doc:
        return "", ""
    lines = doc.strip().splitlines()
    m = _CLAIM.match(lines[0])
    claim = m.group(1) if m else lines[0].strip()
    text = " ".join(line.strip() for line in lines)
    at = text.find("Source:")
    title = _TITLE.search(text, max(at, 0))
    who = re.search(r"\(([^\"(]+?),\s*\"", text[at:]) if at >= 0 else None
    source = (f"{who.group(1).strip()}, " if who else "") + f"“{title.group(1)}”" if title else ""
    return claim, source


def verdict_class(e: dict[str, Any]) -> str:
    v = verdict_of(e)
    if e.get("fragile"):
        return "fragile"
    if v.startswith("XFAIL"):
        return "xfail"
    return v.split()[0].lower() if v.split()[0].lower() in ("pass", "fail", "inconclusive", "not_run") else "error"


def _badge(e: dict[str, Any]) -> str:
    label = verdict_of(e) + (" · fragile" if e.get("fragile") else "")
    return f'<span class="badge {verdict_class(e)}">{html.escape(label)}</span>'


def _num(x: Any) -> str:
    return f"{x:.4g}" if isinstance(x, (int, float)) else html.escape(str(x))


def _rows(e: dict[str, Any]) -> str:
    if not e.get("results"):
        return f"<p>{html.escape(e.get('reason') or '')}</p>"
    out = ["<table><tr><th>kind</th><th>statistic</th><th>value</th><th>CI</th><th>threshold</th>"
           "<th>decision</th><th>N</th><th>to decide</th></tr>"]
    for r in e["results"]:
        thr = r.get("threshold")
        thr_s = f"[{_num(thr[0])}, {_num(thr[1])}]" if isinstance(thr, list) else _num(thr)
        out.append(f"<tr><td>{r.get('kind', 'claim')}</td><td>{html.escape(r['statistic'])}</td><td>{_num(r['value'])}</td>"
                   f"<td>[{_num(r['ci'][0])}, {_num(r['ci'][1])}]</td><td>{html.escape(r.get('direction', ''))} {thr_s}</td>"
                   f"<td>{html.escape(r.get('decision', ''))}{' (fragile)' if r.get('fragile') else ''}</td>"
                   f"<td>{r.get('n', '')}</td><td>{html.escape(projection_text(r.get('projection')))}</td></tr>")
    return "\n".join(out + ["</table>"])


def _runs(e: dict[str, Any]) -> str:
    if e.get("decision") == "not_run":
        return ""
    keys = ", ".join(f"{html.escape(k)} <code>{html.escape(str(v)[:12])}</code>" for k, v in (e.get("recipes") or {}).items())
    lo, hi = e.get("seeds") or [0, 0]  # half-open: [first, last + 1)
    return (f"<p>runs used: {e.get('runs_used', e.get('n', 0))} of {e.get('runs_max', e.get('n', 0))} per ensemble "
            f"(seeds {lo}–{hi - 1}), {e.get('compute_seconds', 0):.1f} s of training, devices "
            f"{html.escape(', '.join(e.get('device_classes') or e.get('devices') or []) or '-')}; recipes: {keys or '-'}</p>")


def _plots(e: dict[str, Any], run_dir: Path) -> str:
    out = []
    for p in e.get("plots") or []:
        path = run_dir / p
        if path.is_file() and path.suffix == ".png":
            data = base64.b64encode(path.read_bytes()).decode()
            out.append(f'<img alt="{html.escape(p)}" src="data:image/png;base64,{data}">')
    return "\n".join(out)


def _point(e: dict[str, Any], run_dir: Path) -> str:
    proj = projection_text(e.get("projection")) if e.get("projection") else ""
    notes = "".join(f"<li>{html.escape(n)}</li>" for n in e.get("notes") or [])
    return "\n".join([f"<h3>{_badge(e)} <code>{html.escape(e['nodeid'])}</code></h3>", _rows(e),
                      f"<p>undecided: {html.escape(proj)}</p>" if proj else "", _runs(e),
                      f"<ul>{notes}</ul>" if notes else "", _plots(e, run_dir)])


def _comparison(data: dict[str, Any]) -> str:
    c = data.get("comparison")
    if not c:
        return "<p>not compared with an earlier session</p>"
    moved = [(k, v) for k, v in (c.get("points") or {}).items() if v != "unchanged"]
    rows = "".join(f"<tr><td><code>{html.escape(k)}</code></td><td>{html.escape(v)}</td></tr>" for k, v in moved)
    return (f"<p>against <code>{html.escape(str(c.get('reference_run_id')))}</code>: "
            f"<b>{html.escape(str(c.get('headline')))}</b></p>" + (f"<table>{rows}</table>" if rows else ""))


def render(data: dict[str, Any], run_dir: Path) -> str:
    """The page of the report ``data`` whose plots lie under ``run_dir``."""
    by_law: dict[str, list[dict[str, Any]]] = {}
    for e in data["entries"]:
        by_law.setdefault(e["law"], []).append(e)
    summary = "\n".join(law_summary_lines(data.get("summary") or law_summary(data["entries"])))
    parts = [f"<h1>lrlaws report <code>{html.escape(str(data.get('run_id')))}</code></h1>",
             f"<p>tier <b>{html.escape(str(data.get('tier')))}</b> · seed base {data.get('seed_base', 0)} · "
             f"commit <code>{html.escape(str((data.get('environment') or {}).get('git_commit') or 'unknown'))}</code> · "
             f"trained {data.get('runs_trained', 0)} runs in {float(data.get('train_seconds', 0)):.1f} s</p>",
             f"<pre>{html.escape(summary)}</pre>", "<h2>Compared with the previous session</h2>", _comparison(data)]
    for law, entries in by_law.items():
        first = next((e for e in entries if e.get("claim") or e.get("source")), {})
        parts.append(f'<h2 id="{html.escape(law)}">{html.escape(law)}</h2>')
        if first:
            parts.append(f'<p class="claim">{html.escape(first.get("claim", ""))}</p>'
                         f'<p class="src">source: {html.escape(first.get("source", "") or "-")}</p>')
        parts += [_point(e, run_dir) for e in entries]
    body = "\n".join(p for p in parts if p)
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>lrlaws {html.escape(str(data.get("run_id")))}'
            f"</title><style>{_STYLE}</style></head><body>\n{body}\n</body></html>\n")


def write_html(run_dir: Path) -> Path | None:
    """``run_dir/report.html`` from its report.json (with the session's comparison, when it made one)."""
    src = Path(run_dir) / "report.json"
    if not src.is_file():
        return None
    out = Path(run_dir) / "report.html"
    out.write_text(render(json.loads(src.read_text()), Path(run_dir)))
    return out


def index_page(rows: list[tuple[str, str, str]], images: list[Path], out_dir: Path) -> Path:
    """``trends``' index.html: every session (run id, tier, link to its report.html) and the trend plots."""
    items = "".join(f'<tr><td><a href="{html.escape(link)}">{html.escape(run)}</a></td><td>{html.escape(tier)}</td></tr>'
                    if link else f"<tr><td>{html.escape(run)}</td><td>{html.escape(tier)}</td></tr>"
                    for run, tier, link in rows)
    imgs = "\n".join(f'<h3>{html.escape(p.stem)}</h3><img alt="{html.escape(p.name)}" src="data:image/png;base64,'
                     f'{base64.b64encode(p.read_bytes()).decode()}">' for p in images)
    page = (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>lrlaws trends</title>'
            f"<style>{_STYLE}</style></head><body><h1>lrlaws sessions and trends</h1>"
            f"<table><tr><th>session</th><th>tier</th></tr>{items}</table>\n{imgs}\n</body></html>\n")
    out = Path(out_dir) / "index.html"
    out.write_text(page)
    return out
