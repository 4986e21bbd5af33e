"""Session reports: ``<report-dir>/<run-id>/report.json``, ``report.md`` and plots."""
from __future__ import annotations

import math
import os
import platform
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable

from harness.report.summary import law_summary, law_summary_lines
from harness.stats import CONFIDENCE, INCONCLUSIVE, NOT_RUN, LawResult, current_confidence
from harness.stats.fragility import is_fragile
from harness.stats.projection import facing_side, runs_to_decide, undecided
from harness.store.jsonfile import dumps

if TYPE_CHECKING:
    from harness.law.context import LawContext
    from harness.execute.plan import Plan

REPORT_VERSION = 1


@dataclass
class Entry:
    nodeid: str
    law: str
    params: dict[str, Any]
    decision: str
    results: list[dict[str, Any]] = field(default_factory=list)
    n: int = 0
    seeds: list[int] = field(default_factory=list)
    compute_seconds: float = 0.0
    recipes: dict[str, str] = field(default_factory=dict)
    devices: list[str] = field(default_factory=list)
    device_classes: list[str] = field(default_factory=list)  # where its runs were trained (harness.store.provenance)
    plots: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    reason: str = ""
    #: sequential decisions: runs per ensemble the point used, its tier's maximum, planned looks
    runs_used: int = 0
    runs_max: int = 0
    looks: int = 1
    confidence: float = CONFIDENCE  # level of this point's intervals (1 - 0.05/looks when sequential)
    stop_digest: str = ""  # what the point's looks depended on, at its stop (harness.plugin.stops)
    #: its decision could move on another machine (harness.stats.fragility)
    fragile: bool = False
    #: undecided: runs per ensemble that would decide it, runs to train, seconds (``projection_of``)
    projection: dict[str, Any] | None = None
    #: per claim, (runs, interval side facing the threshold) at each dry look: what the projection fitted
    history: dict[str, Any] = field(default_factory=dict)
    #: pytest's outcome of the point's test (passed, failed, skipped, xfailed); "" where it did not run
    outcome: str = ""
    #: the law's claim in one sentence and its source's title (``harness.report.html.claim_and_source``)
    claim: str = ""
    source: str = ""

    @property
    def verdict(self) -> str:
        """The decision as pytest reported it: a point whose test failed reads FAIL whatever its claims say
        (e.g. a recorded finding that no longer holds), an expected failure XFAIL."""
        return verdict_of(self.__dict__)

    def junit_properties(self) -> list[tuple[str, Any]]:
        props: list[tuple[str, Any]] = [("lrlaws.decision", self.decision), ("lrlaws.N", self.n),
                                        ("lrlaws.compute_seconds", round(self.compute_seconds, 3))]
        for r in self.results:
            s = r["statistic"]
            props += [(f"lrlaws.{s}", r["value"]), (f"lrlaws.{s}.ci", r["ci"]), (f"lrlaws.{s}.threshold", r["threshold"])]
        return props


def verdict_of(e: dict[str, Any]) -> str:
    """``Entry.verdict`` of a report.json entry (older reports have no outcome: their decision)."""
    outcome, decision = e.get("outcome", ""), e["decision"]
    if outcome == "failed" and decision not in ("fail", "error"):
        return f"FAIL ({decision}, test failed)"
    if outcome == "xfailed":
        return "XFAIL (finding)"
    return decision.upper()


def projection_of(r: LawResult, n: int, history: list[tuple[int, float]], ensembles: Iterable[Any],
                  s_run: float) -> dict[str, Any]:
    """An undecided row's projection: runs per ensemble to decide it, runs to train, device seconds."""
    p = runs_to_decide(r, n, [*history, (n, facing_side(r)[1])], current_confidence())
    runs = math.ceil(p.runs) if p.reachable else None
    to_train = sum(max(0, math.ceil(e.n * runs / n) - e.n) for e in ensembles) if runs and n else None
    return {"runs": runs, "runs_to_train": to_train,
            "seconds": to_train * s_run if to_train is not None else None,
            "exponent": p.exponent, "measured_scaling": p.measured}


def projection_text(p: dict[str, Any] | None) -> str:
    """'decides at ~N runs/ensemble (+M runs, ~T)' or why it cannot be projected."""
    if not p:
        return ""
    if p.get("runs") is None:
        return "no projection: the estimate sits on the threshold, or beyond 1e9 runs"
    t = p["seconds"]
    scaling = "measured scaling" if p["measured_scaling"] else "N^-1/2 assumed"
    if t is None:  # no runs were read, so neither the runs to train nor their time is known
        return f"decides at ~{p['runs']} runs/ensemble ({scaling})"
    when = f"{t / 3600:.1f} h" if t >= 3600 else f"{t / 60:.1f} min" if t >= 60 else f"{t:.0f} s"
    return f"decides at ~{p['runs']} runs/ensemble (+{p['runs_to_train']} runs, ~{when}; {scaling})"


def _jsonable(v: Any) -> Any:
    if isinstance(v, (str, int, float, bool)) or v is None:
        return v
    if isinstance(v, dict):
        return {str(k): _jsonable(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_jsonable(x) for x in v]
    if hasattr(v, "item"):
        return v.item()
    return repr(v)


@dataclass
class Report:
    run_dir: Path
    tier: str
    started: float
    entries: list[Entry] = field(default_factory=list)
    seed_base: int = 0
    #: --budget in seconds of training (None without one)
    budget: float | None = None

    @classmethod
    def start(cls, report_dir: Path, tier: str, seed_base: int = 0) -> "Report":
        stamp = time.strftime("%Y%m%d-%H%M%S")
        run_dir = Path(report_dir) / f"{stamp}-{tier}-{os.getpid()}"
        Path(report_dir).mkdir(parents=True, exist_ok=True)
        # Two sessions of one process in one second (e.g. pytester) must not share a run dir. The dir is
        # made by the first write into it (a plot, the report), so a session killed before either leaves none.
        for i in range(2, 1000):
            if not run_dir.exists():
                break
            run_dir = Path(report_dir) / f"{stamp}-{tier}-{os.getpid()}-{i}"
        return cls(run_dir, tier, time.time(), seed_base=seed_base)

    def add(self, ctx: "LawContext") -> Entry:
        n = max((e.n for e in ctx.ensembles.values()), default=0)
        loaded = [e for e in ctx.ensembles.values() if e.loaded]
        seconds = sum(e.seconds for e in loaded)
        s_run = seconds / max(1, sum(e.n for e in loaded))
        projections = {id(r): projection_of(r, n, ctx.history.get(r.statistic, []), ctx.ensembles.values(), s_run)
                       for r in ctx.claims if undecided(r)}
        entry = Entry(
            nodeid=ctx.nodeid, law=ctx.name, params=_jsonable(ctx.params),
            decision=ctx.decision if ctx.results else "error",
            results=[_jsonable({**r.to_dict(), "fragile": is_fragile(r), "projection": projections.get(id(r))})
                     for r in ctx.results], n=n,
            seeds=[ctx.seed_base, ctx.seed_base + n],
            compute_seconds=seconds,
            recipes={name: e.key for name, e in ctx.ensembles.items()},
            devices=sorted({d for e in ctx.ensembles.values() if e.loaded for d in e.devices}),
            device_classes=sorted({d for e in ctx.ensembles.values() if e.loaded for d in e.device_classes}),
            plots=[os.path.relpath(p, self.run_dir) for p in ctx.plots], notes=list(ctx.notes),
            runs_used=ctx.runs_used or n, runs_max=ctx.runs_max or n, looks=ctx.looks,
            confidence=current_confidence(), fragile=bool(ctx.results) and ctx.fragile,
            projection=max(projections.values(), key=lambda p: p["runs"] or math.inf, default=None),
            history=_jsonable(ctx.history),
        )
        self.entries.append(entry)
        return entry

    def add_not_run(self, nodeid: str, law: str, params: dict[str, Any], reason: str) -> Entry:
        entry = Entry(nodeid=nodeid, law=law, params=_jsonable(params), decision=NOT_RUN, reason=reason)
        self.entries.append(entry)
        return entry

    # -- writing ---------------------------------------------------------------------
    def finish(self, plan: "Plan | None", store_root: Path, train_seconds: float, runs_trained: int | None = None) -> None:
        if not self.entries:
            return
        data = {
            "version": REPORT_VERSION,
            "run_id": self.run_dir.name,
            "tier": self.tier,
            "seed_base": self.seed_base,
            "started": self.started,
            "finished": time.time(),
            "store": str(store_root),
            "train_seconds": train_seconds,
            "runs_trained": runs_trained if runs_trained is not None else plan.runs_missing if plan else 0,
            "environment": environment(),
            # compare.py derives standard errors from the CIs, so it needs their level
            "confidence": CONFIDENCE,
            "entries": [e.__dict__ for e in self.entries],
        }
        data["summary"] = law_summary(data["entries"])
        if self.budget is not None:
            data["budget"] = self.budget_summary(train_seconds)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        (self.run_dir / "report.json").write_text(dumps(_jsonable(data)))
        (self.run_dir / "report.md").write_text(self.markdown(data))

    def budget_summary(self, train_seconds: float) -> dict[str, Any]:
        """The budget, what of it training used, and each point still undecided with its projection."""
        return {"seconds": self.budget, "spent": train_seconds,
                "undecided": {e.nodeid: e.projection for e in self.entries
                              if e.decision == INCONCLUSIVE or e.fragile}}

    def budget_lines(self, train_seconds: float) -> list[str]:
        if self.budget is None:
            return []
        b = self.budget_summary(train_seconds)
        lines = [f"budget {b['seconds'] / 60:.1f} min of training: {b['spent'] / 60:.1f} min spent; "
                 f"{len(b['undecided'])} point(s) still undecided"]
        return lines + [f"  {n}: {projection_text(p) or 'no claim to project'}" for n, p in b["undecided"].items()]

    def summary_lines(self) -> list[str]:
        lines = []
        for e in self.entries:
            stat = "; ".join(f"{r['statistic']}={r['value']:.4g} [{r['ci'][0]:.4g}, {r['ci'][1]:.4g}]" for r in e.results)
            label = e.verdict + ("~" if e.fragile else "")
            cost = f"  -> {projection_text(e.projection)}" if e.projection else ""
            lines.append(f"{label:13} {e.nodeid}  {stat or e.reason}{'  (fragile)' if e.fragile else ''}{cost}")
        return lines

    def law_summary_lines(self) -> list[str]:
        return law_summary_lines(law_summary([e.__dict__ for e in self.entries]))

    def markdown(self, data: dict[str, Any]) -> str:
        env = data["environment"]
        base = data.get("seed_base", 0)
        seeds = (f"**confirmatory (held-out seeds)**: seeds from {base}" if base
                 else "seeds from 0 (the seeds the laws' constants were tuned on: a regression check)")
        out = [
            f"# lrlaws report `{data['run_id']}`", "",
            *[f"    {line}" for line in law_summary_lines(data["summary"])], "",
            seeds, "",
            *[f"    {line}" for line in self.budget_lines(data["train_seconds"])],
            f"tier **{self.tier}** · commit `{env.get('git_commit') or 'unknown'}` · torch {env.get('torch')} · "
            f"devices {', '.join(env.get('devices') or []) or ('cpu' if env.get('devices_queried', True) else 'not queried')} · trained {data['runs_trained']} runs in "
            f"{data['train_seconds']:.1f} s", "",
            "| law point | decision | kind | statistic | value | CI | threshold | N | compute s | to decide |",
            "|---|---|---|---|---|---|---|---|---|---|",
        ]
        for e in self.entries:
            if not e.results:
                out.append(f"| `{e.nodeid}` | {e.verdict.lower()} | | | | | | | {e.reason} | |")
            for r in e.results:
                thr = r["threshold"]
                thr_s = f"[{thr[0]:.4g}, {thr[1]:.4g}]" if isinstance(thr, list) else f"{thr:.4g}"
                mark = " ≈ fragile" if r.get("fragile") else ""
                if r.get("testable_at"):
                    mark += f" at this N (testable from N={r['testable_at']})"
                mark += ", test failed" if e.verdict.startswith("FAIL (") else ""
                out.append(
                    f"| `{e.nodeid}` | {r['decision']}{mark} | {r.get('kind', 'claim')} | {r['statistic']} | {r['value']:.4g} | "
                    f"[{r['ci'][0]:.4g}, {r['ci'][1]:.4g}] | {r['direction']} {thr_s} | {r['n']} | {e.compute_seconds:.1f} | "
                    f"{projection_text(r.get('projection'))} |"
                )
        for e in self.entries:
            if e.plots or e.notes:
                out += ["", f"## `{e.nodeid}` — {e.verdict.lower()}{' (fragile)' if e.fragile else ''}", ""]
                out += [f"- {n}" for n in e.notes]
                out += [f"![{p}]({p})" for p in e.plots]
        return "\n".join(out) + "\n"


def environment() -> dict[str, Any]:
    env: dict[str, Any] = {"python": platform.python_version(), "platform": platform.platform()}
    try:
        import sys
        from importlib.metadata import version

        import numpy

        env["numpy"] = numpy.__version__
        # read from the package metadata: a session that trained nothing never imports torch
        env["torch"] = version("torch")
        torch = sys.modules.get("torch")
        env["devices"] = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())] if torch else []
        env["devices_queried"] = torch is not None  # False: this session never loaded torch (trained nothing)
    except Exception:  # a report must not fail over metadata
        pass
    try:
        from importlib.metadata import version

        env["lrlaws"] = version("lrlaws")
    except Exception:
        env["lrlaws"] = None
    env["packages"] = package_versions()
    try:
        from harness.identity import BUILTIN_TRAINERS, code_salt

        # a salt change invalidates stored runs, so it explains drift between two reports
        env["salts"] = {name: code_salt(name) for name in sorted(BUILTIN_TRAINERS)}
    except Exception:
        env["salts"] = {}
    try:
        env["git_commit"] = subprocess.run(
            ["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5, check=True
        ).stdout.strip()
    except Exception:
        env["git_commit"] = None
    return env


#: the distributions whose versions can change what a law measures
TRACKED_PACKAGES = ("torch", "torchvision", "numpy", "scipy", "lrlaws", "pytest", "ray")


def package_versions() -> dict[str, str | None]:
    from importlib.metadata import PackageNotFoundError, version

    out: dict[str, str | None] = {}
    for name in TRACKED_PACKAGES:
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = None
    return out
