"""Session reports: ``<report-dir>/<run-id>/report.json``, ``report.md`` and plots."""
from __future__ import annotations

import json
import os
import platform
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from harness.report_summary import law_summary, law_summary_lines
from harness.stats import CONFIDENCE, NOT_RUN, current_confidence

if TYPE_CHECKING:
    from harness.law import LawContext
    from harness.plan import Plan

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
    device_classes: list[str] = field(default_factory=list)  # where its runs were trained (harness.provenance)
    plots: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    reason: str = ""
    #: sequential decisions: runs per ensemble the point used, its tier's maximum, planned looks
    runs_used: int = 0
    runs_max: int = 0
    looks: int = 1
    confidence: float = CONFIDENCE  # level of this point's intervals (1 - 0.05/looks when sequential)
    stop_digest: str = ""  # what the point's looks depended on, at its stop (harness.stops)

    def junit_properties(self) -> list[tuple[str, Any]]:
        props: list[tuple[str, Any]] = [("lrlaws.decision", self.decision), ("lrlaws.N", self.n),
                                        ("lrlaws.compute_seconds", round(self.compute_seconds, 3))]
        for r in self.results:
            s = r["statistic"]
            props += [(f"lrlaws.{s}", r["value"]), (f"lrlaws.{s}.ci", r["ci"]), (f"lrlaws.{s}.threshold", r["threshold"])]
        return props


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

    @classmethod
    def start(cls, report_dir: Path, tier: str, seed_base: int = 0) -> "Report":
        stamp = time.strftime("%Y%m%d-%H%M%S")
        run_dir = Path(report_dir) / f"{stamp}-{tier}-{os.getpid()}"
        Path(report_dir).mkdir(parents=True, exist_ok=True)
        # two sessions of one process in one second (e.g. pytester) must not share a run dir
        for i in range(2, 1000):
            try:
                run_dir.mkdir()
                break
            except FileExistsError:
                run_dir = Path(report_dir) / f"{stamp}-{tier}-{os.getpid()}-{i}"
        return cls(run_dir, tier, time.time(), seed_base=seed_base)

    def add(self, ctx: "LawContext") -> Entry:
        n = max((e.n for e in ctx.ensembles.values()), default=0)
        entry = Entry(
            nodeid=ctx.nodeid, law=ctx.name, params=_jsonable(ctx.params),
            decision=ctx.decision if ctx.results else "error",
            results=[_jsonable(r.to_dict()) for r in ctx.results], n=n, seeds=[ctx.seed_base, ctx.seed_base + n],
            compute_seconds=sum(e.seconds for e in ctx.ensembles.values() if e.loaded),
            recipes={name: e.key for name, e in ctx.ensembles.items()},
            devices=sorted({d for e in ctx.ensembles.values() if e.loaded for d in e.devices}),
            device_classes=sorted({d for e in ctx.ensembles.values() if e.loaded for d in e.device_classes}),
            plots=[os.path.relpath(p, self.run_dir) for p in ctx.plots], notes=list(ctx.notes),
            runs_used=ctx.runs_used or n, runs_max=ctx.runs_max or n, looks=ctx.looks,
            confidence=current_confidence(),
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
        (self.run_dir / "report.json").write_text(json.dumps(_jsonable(data), indent=1))
        (self.run_dir / "report.md").write_text(self.markdown(data))

    def summary_lines(self) -> list[str]:
        lines = []
        for e in self.entries:
            stat = "; ".join(f"{r['statistic']}={r['value']:.4g} [{r['ci'][0]:.4g}, {r['ci'][1]:.4g}]" for r in e.results)
            lines.append(f"{e.decision.upper():13} {e.nodeid}  {stat or e.reason}")
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
            f"tier **{self.tier}** · commit `{env.get('git_commit') or 'unknown'}` · torch {env.get('torch')} · "
            f"devices {', '.join(env.get('devices') or []) or ('cpu' if env.get('devices_queried', True) else 'not queried')} · trained {data['runs_trained']} runs in "
            f"{data['train_seconds']:.1f} s", "",
            "| law point | decision | kind | statistic | value | CI | threshold | N | compute s |",
            "|---|---|---|---|---|---|---|---|---|",
        ]
        for e in self.entries:
            if not e.results:
                out.append(f"| `{e.nodeid}` | {e.decision} | | | | | | | {e.reason} |")
            for r in e.results:
                thr = r["threshold"]
                thr_s = f"[{thr[0]:.4g}, {thr[1]:.4g}]" if isinstance(thr, list) else f"{thr:.4g}"
                out.append(
                    f"| `{e.nodeid}` | {r['decision']} | {r.get('kind', 'claim')} | {r['statistic']} | {r['value']:.4g} | "
                    f"[{r['ci'][0]:.4g}, {r['ci'][1]:.4g}] | {r['direction']} {thr_s} | {r['n']} | {e.compute_seconds:.1f} |"
                )
        for e in self.entries:
            if e.plots or e.notes:
                out += ["", f"## `{e.nodeid}` — {e.decision}", ""]
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
        from harness.identity import TRAINER_MODULES, code_salt

        # a salt change invalidates stored runs, so it explains drift between two reports
        env["salts"] = {name: code_salt(name) for name in sorted(TRAINER_MODULES)}
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
