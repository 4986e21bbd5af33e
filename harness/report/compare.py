"""Compare two reports law point by law point: ``python -m harness compare OLD NEW``.

Each law point (a test node id) of the two reports falls in one class:

* ``regressed`` — it passed before and does not now (fail, inconclusive, error, not run);
* ``fixed`` — it did not pass before and does now;
* ``drifted`` — the decision did not flip, but a statistic moved by more than the
  two CIs allow (below);
* ``unchanged`` — none of the above;
* ``new`` / ``removed`` — in only one of the two reports.

Drift is a two-sided z-test on the difference of a statistic between the
reports at level ``DRIFT_ALPHA``. Each report's CI gives its standard error,
SE = (hi − lo) / (2·z_{(1+c)/2}) at the report's confidence level c, and the
two are combined as if independent. Reports of one tier reuse the same seeds
(common random numbers), so the two estimates are positively correlated and
the true SE of the difference is smaller: the test errs towards *not* flagging
drift, and a flagged drift is a real change of code, data or environment, not
seed noise. A statistic whose CI is infinite cannot drift.
"""
from __future__ import annotations

import argparse
import math
import sys
from dataclasses import dataclass, field
from pathlib import Path
from statistics import NormalDist
from typing import Any


from harness.report.history import BASELINE_DIR, ReportError, load_report, report_path, resolve_reference
from harness.store import jsonfile
from harness.stats import CONFIDENCE, PASS

#: the standard normal, for z-scores (the stdlib's: scipy.stats would cost ~0.6 s of import on every session)
_NORMAL = NormalDist()

#: two-sided level of the drift test. 0.05 makes "drifted" mean "the 95% CI of the
#: difference excludes 0", i.e. the two statistics differ by more than their combined
#: 95% CI, the level every CI in a report is computed at.
DRIFT_ALPHA = 0.05

#: a change smaller than this fraction of the statistic's scale (the larger of |old|, |new| and
#: |threshold|) is floating-point noise, never drift: a zero-width CI (an exact identity's error
#: at ~1e-15, say) would otherwise flag any change of the last bits
NOISE_TOLERANCE = 1e-6

#: ``device_changed``: the point's runs were trained on another device class (harness.store.provenance) and
#: it would otherwise be regressed or drifted: other arithmetic, named as such, never a failure by itself
CLASSES = ("regressed", "drifted", "device_changed", "fixed", "new", "removed", "unchanged")
FAIL_ON = ("regression", "drift", "never")
# report.md gets the comparison between these markers, replaced on a re-run
_BEGIN, _END = "<!-- lrlaws-compare:begin -->", "<!-- lrlaws-compare:end -->"


@dataclass(frozen=True)
class StatChange:
    statistic: str
    old: float | None
    old_ci: tuple[float, float] | None
    new: float | None
    new_ci: tuple[float, float] | None
    z: float | None = None  # None: not in both reports, or not testable
    drifted: bool = False


@dataclass
class PointChange:
    nodeid: str
    law: str
    cls: str
    old_decision: str | None
    new_decision: str | None
    stats: list[StatChange] = field(default_factory=list)
    recipes_changed: bool = False
    device_classes: tuple[list[str], list[str]] = ([], [])  # (old, new) when they differ

    @property
    def decisions(self) -> str:
        if self.old_decision == self.new_decision:
            return str(self.new_decision)
        return f"{self.old_decision or '—'} → {self.new_decision or '—'}"


@dataclass
class Comparison:
    old: dict[str, Any]
    new: dict[str, Any]
    old_path: str
    new_path: str
    alpha: float
    points: list[PointChange]
    #: points of the reference this session did not select (not compared)
    not_selected: int = 0

    def of_class(self, cls: str) -> list[PointChange]:
        return [p for p in self.points if p.cls == cls]

    def counts(self) -> dict[str, int]:
        return {c: len(self.of_class(c)) for c in CLASSES}

    def exit_code(self, fail_on: str) -> int:
        if fail_on not in FAIL_ON:
            raise ValueError(f"fail_on must be one of {FAIL_ON}, got {fail_on!r}")
        bad = {"regression": ("regressed",), "drift": ("regressed", "drifted"), "never": ()}[fail_on]
        return int(any(p.cls in bad for p in self.points))

    # -- text ----------------------------------------------------------------------
    def headline(self) -> str:
        c = self.counts()
        reg = self.of_class("regressed")
        first = (f"{len(reg)} regression{'s' if len(reg) != 1 else ''}: " + ", ".join(
            f"{p.nodeid} ({p.decisions})" for p in reg)) if reg else "no regressions"
        rest = ", ".join(f"{c[k]} {k}" for k in CLASSES if k != "regressed" and c[k])
        moved = self.of_class("device_changed")
        if moved:
            rest += "; trained on another device class: " + ", ".join(
                f"{p.nodeid} ({'/'.join(p.device_classes[0])} -> {'/'.join(p.device_classes[1])})" for p in moved)
        drifted = self.of_class("drifted")
        if drifted:
            rest += "; drifted: " + ", ".join(
                f"{p.nodeid} ({', '.join(s.statistic for s in p.stats if s.drifted)})" for p in drifted)
        return first + (f" ({rest})" if rest else "")

    def context_lines(self) -> list[str]:
        o, n = _meta(self.old), _meta(self.new)
        lines = [f"compared with {o['run_id']} (tier {o['tier']}, commit {o['commit']}) ← {self.old_path}"]
        if o["tier"] != n["tier"]:
            lines.append(f"warning: tiers differ ({o['tier']} vs {n['tier']}): statistics are not comparable")
        if o["seed_base"] != n["seed_base"]:
            lines.append(f"warning: seed bases differ ({o['seed_base']} vs {n['seed_base']}): other seeds, so "
                         "statistics move by seed noise and an undecided claim may decide either way")
        if o["device_classes"] and n["device_classes"] and o["device_classes"] != n["device_classes"]:
            lines.append(f"warning: device classes differ ({', '.join(o['device_classes'])} vs "
                         f"{', '.join(n['device_classes'])}): runs differ in floating point")
        if self.not_selected:
            lines.append(f"{self.not_selected} not selected (points of the reference this session did not run)")
        for what in ("commit", "salts", "packages"):
            if o[what] != n[what]:
                lines.append(f"{what} changed: {_diff(o[what], n[what])}")
        return lines

    def rows(self, all_points: bool = True) -> list[list[str]]:
        rows = []
        for p in self.points:
            if not all_points and p.cls == "unchanged":
                continue
            stats = p.stats or [StatChange("", None, None, None, None)]
            for i, s in enumerate(stats):
                rows.append([
                    p.nodeid if i == 0 else "", p.cls if i == 0 else "", p.decisions if i == 0 else "",
                    s.statistic + (" (drift)" if s.drifted else ""), _fmt(s.old, s.old_ci), _fmt(s.new, s.new_ci),
                    "" if s.z is None else f"{s.z:+.2f}",
                    "recipes changed" if p.recipes_changed and i == 0 else "",
                ])
        return rows

    def table(self) -> str:
        head = ["law point", "class", "decision", "statistic", "old [CI]", "new [CI]", "z", ""]
        rows = [head] + self.rows()
        widths = [max(len(r[i]) for r in rows) for i in range(len(head))]
        return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows)

    def markdown(self) -> str:
        out = ["## Comparison", "", f"**{self.headline()}**", ""]
        out += [f"- {line}" for line in self.context_lines()]
        out += [f"- drift: two-sided z-test on the difference at α = {self.alpha:g}, SEs from each report's CI", ""]
        out += ["| law point | class | decision | statistic | old [CI] | new [CI] | z | |",
                "|---|---|---|---|---|---|---|---|"]
        out += ["| " + " | ".join(f"`{c}`" if j == 0 and c else c for j, c in enumerate(r)) + " |" for r in self.rows()]
        return "\n".join(out) + "\n"


def _fmt(v: float | None, ci: tuple[float, float] | None) -> str:
    if v is None:
        return ""
    s = f"{v:.4g}"
    return s + (f" [{ci[0]:.4g}, {ci[1]:.4g}]" if ci is not None else "")


def _diff(a: Any, b: Any) -> str:
    if isinstance(a, dict) and isinstance(b, dict):
        return ", ".join(f"{k} {a.get(k)} → {b.get(k)}" for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k))
    return f"{a} → {b}"


def _meta(report: dict[str, Any]) -> dict[str, Any]:
    env = report.get("environment") or {}
    commit = env.get("git_commit")
    return {"run_id": report.get("run_id", "?"), "tier": report.get("tier"),
            "commit": commit[:10] if isinstance(commit, str) else commit,
            "salts": env.get("salts"), "packages": env.get("packages"), "seed_base": report.get("seed_base", 0),
            "device_classes": sorted({str(d) for e in report.get("entries", []) if isinstance(e, dict)
                                      for d in e.get("device_classes") or []})}


# --------------------------------------------------------------- classifying --

def standard_error(ci: tuple[float, float] | None, confidence: float) -> float:
    if ci is None:
        return math.inf
    lo, hi = ci
    if not (math.isfinite(lo) and math.isfinite(hi)):
        return math.inf
    return (hi - lo) / (2 * _NORMAL.inv_cdf(0.5 + confidence / 2))


def drift_z(old: float, old_se: float, new: float, new_se: float, scale: float = 0.0) -> float | None:
    """z of the difference new − old; None when it cannot be tested (a value or an SE is not finite).

    A difference within ``NOISE_TOLERANCE`` of ``scale`` (and of the values) is 0: floating-point noise.
    """
    if not all(math.isfinite(x) for x in (old, new, old_se, new_se)):
        return None
    d = new - old
    if abs(d) <= NOISE_TOLERANCE * max(abs(old), abs(new), abs(scale)):
        return 0.0
    se = math.hypot(old_se, new_se)
    return math.copysign(math.inf, d) if se == 0 else d / se


def _results_by_statistic(entry: dict[str, Any]) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for r in entry.get("results") or []:
        name, i = r["statistic"], 1
        while name in out:  # two results of one statistic: match them by order
            i += 1
            name = f"{r['statistic']}#{i}"
        out[name] = r
    return out


def _scale(r: dict[str, Any]) -> float:
    """The threshold's magnitude (the larger end of a band), the scale a change is noise against."""
    t = r.get("threshold", 0.0)
    try:
        return max(abs(float(x)) for x in (t if isinstance(t, list) else [t]))
    except (TypeError, ValueError):
        return 0.0


def _ci(r: dict[str, Any] | None) -> tuple[float, float] | None:
    return None if r is None else (float(r["ci"][0]), float(r["ci"][1]))


def compare(old: dict[str, Any], new: dict[str, Any], alpha: float = DRIFT_ALPHA,
            old_path: str = "", new_path: str = "", selected_only: bool = False) -> Comparison:
    """Each law point's class; ``selected_only`` (a session): the reference's points the new report does
    not hold were not selected, so they are counted (``Comparison.not_selected``), not listed as removed."""
    if not 0 < alpha < 1:
        raise ReportError(f"alpha must lie in (0, 1), got {alpha}")
    z_crit = _NORMAL.inv_cdf(1 - alpha / 2)
    conf_old = float(old.get("confidence", CONFIDENCE))
    conf_new = float(new.get("confidence", CONFIDENCE))
    olds = {e["nodeid"]: e for e in old["entries"]}
    news = {e["nodeid"]: e for e in new["entries"]}
    not_selected = [k for k in olds if k not in news] if selected_only else []
    for k in not_selected:
        del olds[k]
    points = []
    for nodeid in list(news) + [k for k in olds if k not in news]:
        o, n = olds.get(nodeid), news.get(nodeid)
        law = (n or o)["law"]  # type: ignore[index]
        if o is None or n is None:
            only = _results_by_statistic(n or o)  # type: ignore[arg-type]
            stats = [StatChange(s, None, None, r["value"], _ci(r)) if o is None
                     else StatChange(s, r["value"], _ci(r), None, None) for s, r in only.items()]
            points.append(PointChange(nodeid, law, "new" if o is None else "removed",
                                      o and o["decision"], n and n["decision"], stats))
            continue
        ro, rn = _results_by_statistic(o), _results_by_statistic(n)
        stats = []
        for s in list(rn) + [k for k in ro if k not in rn]:
            a, b = ro.get(s), rn.get(s)
            z = None
            if a is not None and b is not None:
                # a sequential point's intervals are at its own level (the entry's), not the report's
                z = drift_z(float(a["value"]), standard_error(_ci(a), float(o.get("confidence", conf_old))),
                            float(b["value"]), standard_error(_ci(b), float(n.get("confidence", conf_new))),
                            scale=max(_scale(a), _scale(b)))
            stats.append(StatChange(s, a and a["value"], _ci(a), b and b["value"], _ci(b), z,
                                    drifted=z is not None and abs(z) > z_crit))
        od, nd = o["decision"], n["decision"]
        if od == PASS and nd != PASS:
            cls = "regressed"
        elif od != PASS and nd == PASS:
            cls = "fixed"
        elif any(s.drifted for s in stats):
            cls = "drifted"
        else:
            cls = "unchanged"
        classes = (o.get("device_classes") or [], n.get("device_classes") or [])
        moved = all(classes) and classes[0] != classes[1]
        if moved and cls in ("regressed", "drifted"):
            cls = "device_changed"
        points.append(PointChange(nodeid, law, cls, od, nd, stats,
                                  recipes_changed=(o.get("recipes") or {}) != (n.get("recipes") or {}),
                                  device_classes=classes if moved else ([], [])))
    order = {c: i for i, c in enumerate(CLASSES)}
    points.sort(key=lambda p: order[p.cls])  # stable: report order within a class
    return Comparison(old, new, old_path, new_path, alpha, points, not_selected=len(not_selected))


def compare_paths(old: str | Path, new: str | Path, alpha: float = DRIFT_ALPHA, selected_only: bool = False) -> Comparison:
    return compare(load_report(old), load_report(new), alpha, str(report_path(old)), str(report_path(new)),
                   selected_only)


def write_into_markdown(md: Path, text: str) -> None:
    """Put ``text`` into ``md`` between markers, replacing an earlier comparison."""
    body = md.read_text() if md.exists() else ""
    block = f"{_BEGIN}\n{text.rstrip()}\n{_END}\n"
    if _BEGIN in body and _END in body:
        head, rest = body.split(_BEGIN, 1)
        body = head + block + rest.split(_END, 1)[1].lstrip("\n")
    else:
        body = body.rstrip("\n") + ("\n\n" if body else "") + block
    md.write_text(body)


def strip_comparison(markdown: str) -> str:
    """``markdown`` without the comparison ``write_into_markdown`` put in."""
    if _BEGIN not in markdown or _END not in markdown:
        return markdown
    head, rest = markdown.split(_BEGIN, 1)
    return (head.rstrip("\n") + "\n" + rest.split(_END, 1)[1].lstrip("\n")).rstrip("\n") + "\n"


def compare_session(run_dir: Path, report_dir: Path, root: Path, compare_to: str) -> tuple[Comparison | None, str]:
    """After a pytest session: compare its report with its reference and write the result into it.

    Returns the comparison, or None and a one-line note saying why there is none.
    """
    new = Path(run_dir) / "report.json"
    if not new.is_file():
        return None, ""
    skipped: list[str] = []
    try:
        ref = resolve_reference(compare_to, Path(report_dir), Path(root), new, skipped)
        if ref is None:
            tier = load_report(new).get("tier")
            note = (f"no earlier {tier} report in {report_dir} and no committed {tier} baseline "
                    f"in {Path(root) / BASELINE_DIR}: nothing to compare with")
        else:
            cmp = compare_paths(ref, new, selected_only=True)
    except ReportError as e:
        ref, note = None, f"not compared: {e}"
    if ref is None:
        note = "; ".join([*skipped, note])
        write_into_markdown(new.parent / "report.md", f"## Comparison\n\n{note}\n")
        return None, note
    write_into_markdown(new.parent / "report.md", cmp.markdown())
    data = jsonfile.loads(new.read_text())
    data["comparison"] = {
        "reference": str(ref), "reference_run_id": cmp.old.get("run_id"), "alpha": cmp.alpha,
        "headline": cmp.headline(), "counts": cmp.counts(),
        "points": {p.nodeid: p.cls for p in cmp.points},
    }
    new.write_text(jsonfile.dumps(data))
    return cmp, "; ".join(skipped)


# ----------------------------------------------------------------------- CLI --

def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m harness compare", description=__doc__.split("\n\n")[0])
    ap.add_argument("old", help="the earlier report (report.json or its run directory)")
    ap.add_argument("new", help="the later report (report.json or its run directory)")
    ap.add_argument("--fail-on", choices=FAIL_ON, default="regression",
                    help="exit 1 on regressions (default), on regressions or drift, or never")
    ap.add_argument("--alpha", type=float, default=DRIFT_ALPHA, help=f"level of the drift test (default {DRIFT_ALPHA})")
    ap.add_argument("--write", action="store_true",
                    help="write the comparison into NEW's report.md (default: read-only, print it)")
    args = ap.parse_args(argv)
    try:
        cmp = compare_paths(args.old, args.new, args.alpha)
    except ReportError as e:
        print(f"python -m harness compare: {e}", file=sys.stderr)
        return 2
    print("\n".join(cmp.context_lines()))
    print(cmp.table())
    print(cmp.headline())
    md = report_path(args.new).parent / "report.md"
    if args.write and md.exists():
        write_into_markdown(md, cmp.markdown())
    return cmp.exit_code(args.fail_on)
