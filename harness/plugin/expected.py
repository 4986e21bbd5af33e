"""What ``--plan`` prints: the plan, and with sequential looks the runs expected to be trained (each point
stopping where the newest earlier report of the tier says it stopped) and each point's next look."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from harness.execute.plan import Plan, format_seconds, plan_keyed
from harness.plugin.planning import Planned, ensembles_at
from harness.report.history import earlier_reports
from harness.report.report import projection_text


def write_plan(tr: Any, planned: Planned) -> None:
    """The plan's table and summary on the terminal; with sequential looks, what is expected of them."""
    gpus = max(1, planned.options.gpus or 0)
    tr.write_line(planned.plan.table())
    tr.write_line(planned.plan.summary(gpus))
    if planned.options.fixed_n:
        return
    skipped: list[str] = []
    exp, source = expected_plan(planned, skipped)
    for line in skipped:
        tr.write_line(f"lrlaws plan: {line}", yellow=True)
    tr.write_line(f"lrlaws plan (sequential looks): at most {planned.plan.runs_missing} runs to train, expected "
                  f"{exp.runs_missing} (est. {format_seconds(exp.est_seconds / gpus)}; {source})")
    for line in point_plan_lines(planned):
        tr.write_line(line)


def previous_entries(report_dir: Path, tier: str, skipped: list[str] | None = None) -> dict[str, dict[str, Any]]:
    """The entries of the newest earlier report of the tier, by node id; a report that cannot be read is
    passed over, one line about it appended to ``skipped``."""
    for _, data in earlier_reports(report_dir, tier, skipped=skipped):
        entries = {e["nodeid"]: e for e in data["entries"] if isinstance(e, dict) and "nodeid" in e}
        if entries:
            return entries
    return {}


def expected_plan(planned: Planned, skipped: list[str] | None = None) -> tuple[Plan, str]:
    """The runs to train if each point stops where it stopped last time (else at its maximum)."""
    o = planned.options
    before = {n: int(e["runs_used"]) for n, e in previous_entries(o.report_dir, str(o.tier), skipped).items()
              if isinstance(e.get("runs_used"), int)}
    keyed = []
    for nodeid, p in planned.points.items():
        n = min(before.get(nodeid, p.n_max), p.n_max)
        need = planned.needs[nodeid]
        keyed += [(need.keys[name], e) for name, e in ensembles_at(need, p, n).items()]
    source = "each point's stop in the previous report" if before else "no previous report: every point at its maximum"
    return plan_keyed(keyed, planned.store, o.plan_device, verify=False), source


def point_plan_lines(planned: Planned) -> list[str]:
    """Per point: the runs to its next look, and what the newest earlier report said deciding would cost."""
    o = planned.options
    before = previous_entries(o.report_dir, str(o.tier))
    lines = []
    for nodeid, p in planned.points.items():
        need = planned.needs[nodeid]
        look = plan_keyed([(need.keys[k], e) for k, e in ensembles_at(need, p, p.plan[0]).items()],
                          planned.store, o.plan_device, verify=False)
        e = before.get(nodeid)
        if e is None:
            last = "no earlier report"
        elif e.get("projection"):
            last = f"last {e.get('decision')} at {e.get('runs_used')} runs, {projection_text(e['projection'])}"
        else:
            last = f"last {e.get('decision')} at {e.get('runs_used')} runs"
        lines.append(f"  {nodeid}: next look at {p.plan[0]} runs/ensemble ({look.runs_missing} to train); {last}")
    return lines
