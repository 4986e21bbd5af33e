"""``python -m harness bench --acceptance``: how to fill a GPU, measured, in one script (≤ 9 minutes on one H200).

Steps, in order, each timed:

1. sweep, for airbench on the learnable CIFAR-10 stand-in: pack size (1, 4, 16) ×
   trainer processes per GPU (1, 2, 4); per configuration the effective s/run (warm,
   ``harness.bench.sweep``), GPU utilization and memory sampled by NVML while it trains,
   peak memory per process (summed) and test accuracy;
2. the pick: the fastest configuration that learns (its mean accuracy on the common
   seeds within ``LEARN_TOL`` of pack 1 × 1 process);
3. that configuration again with ``torch.compile``, on the same seeds: compile is
   picked only if it learns as eager does (within ``LEARN_TOL``) and is faster;
4. the full smoke tier through ``pytest --gpus 1`` with the pick (``--procs-per-gpu``,
   ``$LRLAWS_PACK``, ``--compile``), on a fresh store.

It writes one JSON (``--json``) and prints one table, with the row to put into
``harness.packing.DEFAULTS``. ``--tiny --device cpu`` (what CI runs) sweeps
packs (1, 4) × processes (1, 2) of a tiny recipe, leaves compile out (inductor's C++
build takes minutes on a CPU) and trains one linearity smoke point with
``--gpus 0 --workers 1``. Configurations that no longer fit the budget are skipped,
and say so.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from harness.cli import OneLineParser
from harness.bench.sweep import Config, measure_config

#: wall-clock budget of the whole script on one H200: 9 minutes less room to start and write the JSON
BUDGET_S = 9 * 60 - 60
#: "learns": mean test accuracy within this of pack 1 × 1 process (1 point)
LEARN_TOL = 0.01
SWEEP = {"full": ((1, 4, 16), (1, 2, 4)), "tiny": ((1, 4), (1, 2))}
#: seconds a configuration's processes may take to start and warm up, beyond its runs
START_S = 40.0
#: seconds the sweep leaves for the compile check and the smoke tier (full; tiny)
RESERVE_S = {"full": 230.0, "tiny": 30.0}
#: of which the smoke tier's (134.6 s through --gpus 1 with one process per GPU on an H200, before packing)
SMOKE_S = 140.0
ROOT = Path(__file__).resolve().parents[2]


def sweep_order(packs: tuple[int, ...], procs: tuple[int, ...]) -> list[tuple[int, int]]:
    """The reference (pack 1 × 1 proc) first, then by seeds in flight (pack × procs), fewest first; at equal
    seeds in flight, the larger pack first (packing is the lever this sweep is for).

    Why: on the H200 (2026-12-04) the sweep began with pack 16, whose warm-up took most of the device
    budget, and the small configurations were never measured; a budget that runs out now skips the
    largest, most memory-hungry configurations, which are also the likeliest to fail.
    """
    return sorted(((p, k) for k in procs for p in packs), key=lambda c: (c != (1, 1), c[0] * c[1], -c[0]))


TINY_SMOKE = ["laws/test_lr_linearity.py", "-k", "test_linearity and a0.1-b0.2", "--gpus", "0", "--workers", "1"]


def _law_session(args: list[str], tmp: Path, env: dict[str, str], timeout: float) -> dict[str, Any]:
    """One pytest session on the laws; its wall time, runs trained and decisions."""
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--store", str(tmp / "store"),
           "--report-dir", str(tmp / "smoke"), "--compare-to", "none", *args]
    t0 = time.perf_counter()
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=ROOT, env={**os.environ, **env})
    except subprocess.TimeoutExpired:
        return {"args": args, "env": env, "error": f"timed out after {timeout:.0f} s"}
    out = proc.stdout + proc.stderr
    trained = re.search(r"lrlaws: trained (\d+) runs", out)
    reports = sorted((tmp / "smoke").glob("*/report.json"))
    entries = json.loads(reports[-1].read_text())["entries"] if reports else []
    return {"args": args, "env": env, "exit": proc.returncode, "wall_s": round(time.perf_counter() - t0, 2),
            "runs_trained": int(trained.group(1)) if trained else 0,
            "points": [{"nodeid": e["nodeid"], "decision": e["decision"], "runs_used": e.get("runs_used"),
                        "runs_max": e.get("runs_max")} for e in entries],
            "tail": out.strip().splitlines()[-1] if out.strip() else ""}


def pick(sweep: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The fastest configuration that learns as pack 1 × 1 process does; None without that reference."""
    base = next((c for c in sweep if c["pack"] == 1 and c["procs"] == 1 and "s_per_run" in c), None)
    if base is None:
        return None
    learns = [c for c in sweep if "s_per_run" in c and c["acc_common"] >= base["acc_common"] - LEARN_TOL]
    return min(learns, key=lambda c: c["s_per_run"])


def run_steps(a, tmp: Path) -> dict[str, Any]:
    import torch

    from harness.bench.measure import TINY, device_name
    from harness.data.formats import write_cifar10
    from harness.data.standin import learnable_images
    from harness.trainers.recipes import AIRBENCH94

    t_start = time.perf_counter()
    left = lambda: BUDGET_S - (time.perf_counter() - t_start)  # noqa: E731
    recipe = AIRBENCH94.replace(**TINY) if a.tiny else AIRBENCH94
    data = tmp / "data"
    write_cifar10(data, learnable_images(*((512, 256) if a.tiny else (50_000, 10_000))))
    out: dict[str, Any] = {"device": device_name(a.device), "torch": torch.__version__, "tiny": a.tiny,
                           "date": time.strftime("%Y-%m-%d"), "runs": a.runs, "recipe": recipe.describe(), "sweep": []}
    packs, procs = SWEEP["tiny" if a.tiny else "full"]
    per_run = None  # s/run of the slowest configuration so far: sizes what is still affordable
    for p, k in sweep_order(packs, procs):
        cfg = Config(p, k)
        need = START_S + a.runs * (per_run or 0)
        room = left() - RESERVE_S["tiny" if a.tiny else "full"]
        if need > room:
            out["sweep"].append({"pack": p, "procs": k, "name": cfg.name, "skipped": f"needs ~{need:.0f} s, {room:.0f} s left"})
            continue
        r = measure_config(recipe, data, a.device, cfg, a.runs, timeout=max(60.0, room))
        out["sweep"].append(r)
        per_run = max(per_run or 0, r.get("s_per_run", 0))
    best = pick(out["sweep"])
    out["pick"] = None if best is None else {"pack": best["pack"], "procs": best["procs"], "compile": False}
    out["compile"] = None
    if best is not None and not (a.tiny and a.device == "cpu") and left() > SMOKE_S + 60:
        c = measure_config(recipe, data, a.device, Config(best["pack"], best["procs"], True), a.runs,
                           timeout=max(60.0, left() - SMOKE_S))
        c["learns_as_eager"] = "acc_common" in c and abs(c["acc_common"] - best["acc_common"]) <= LEARN_TOL
        out["compile"] = c
        if c["learns_as_eager"] and c["s_per_run"] < best["s_per_run"]:
            out["pick"]["compile"] = True
    out["smoke_tier"] = _smoke(a, out["pick"], tmp, left())
    out["total_s"] = round(time.perf_counter() - t_start, 1)
    return out


def _smoke(a, chosen: dict[str, Any] | None, tmp: Path, left: float) -> dict[str, Any]:
    if a.tiny:
        return _law_session(["--tier", "smoke", *TINY_SMOKE], tmp, {}, timeout=max(60.0, left))
    chosen = chosen or {"pack": 1, "procs": 1, "compile": False}
    args = ["laws/", "--tier", "smoke", "--gpus", "1", "--procs-per-gpu", str(chosen["procs"])]
    args += ["--compile"] if chosen["compile"] else []
    return _law_session(args, tmp, {"LRLAWS_PACK": str(chosen["pack"])}, timeout=max(30.0, left - 5))


def table(r: dict[str, Any]) -> str:
    lines = [f"acceptance: {r['device']} · torch {r['torch']} · {r['date']} · {r['recipe']} · >= {r['runs']} runs per configuration",
             f"{'configuration':26} {'s/run':>8} {'acc':>7} {'GPU util':>14} {'peak mem':>10}  note"]

    def row(c: dict[str, Any]) -> str:
        if "s_per_run" not in c:
            why = c.get("skipped") or ((c.get("error") or "").strip().splitlines() or ["?"])[-1]
            return f"{c['name']:26} {'-':>8} {'-':>7} {'-':>14} {'-':>10}  {why}"
        util = f"{c['gpu_util_mean_pct']:.0f}% (min {c['gpu_util_min_pct']:.0f})" if c.get("gpu_util_mean_pct") is not None \
            else "not measured"
        mem = f"{c['peak_gib']:.2f} GiB" if c.get("peak_gib") is not None else "n/a"
        return (f"{c['name']:26} {c['s_per_run']:>8.3f} {c['acc_common']:>7.3f} {util:>14} {mem:>10}  {c['runs']} runs, "
                f"warm-up {c['warmup_s']:.0f} s" + (f", {c['diverged']} diverged" if c.get("diverged") else ""))

    lines += [row(c) for c in r["sweep"]]
    if r["compile"]:
        lines.append(row(r["compile"]) + f"; learns as eager: {r['compile']['learns_as_eager']}")
    p = r["pick"]
    lines.append("pick: " + (f"pack {p['pack']}, {p['procs']} procs per GPU, compile {p['compile']} -> "
                             f"harness/packing.py: Defaults(pack={p['pack']}, procs_per_gpu={p['procs']}, "
                             f"measured=\"{r['device']}, {r['date']}\")" if p else "none (pack 1 x 1 process failed)"))
    s = r["smoke_tier"]
    decisions = ", ".join(f"{x['decision']}@{x['runs_used']}/{x['runs_max']}" for x in s.get("points", [])[:6])
    lines.append(f"{'smoke tier':26} " + (s["error"] if "error" in s else
                 f"{s['wall_s']:.1f} s, exit {s['exit']}, trained {s['runs_trained']} runs, {len(s['points'])} points; {decisions}"))
    lines.append(f"{'total':26} {r['total_s']:.1f} s (budget {BUDGET_S} s)")
    return "\n".join(lines)


def _unwritable(path: Path) -> str | None:
    """Why a file cannot be written at ``path``, or None."""
    if path.is_dir():
        return "is a directory: pass a file path"
    parent = path.parent if path.parent != Path("") else Path(".")
    existing = next((q for q in (parent, *parent.parents) if q.exists()), Path("."))
    if not existing.is_dir() or not os.access(existing, os.W_OK):
        return f"cannot write under {existing}; pass a writable path"
    try:  # made now, so that a folder that cannot be made is said before anything runs
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        return f"cannot create {parent} ({e.strerror}); pass a writable path"
    return None


def _arg_problem(a) -> str | None:
    """Why the arguments cannot run, in one line, or None: checked before any data is written or run."""
    if a.runs < 1:
        return f"--runs must be >= 1, got {a.runs}"
    if not re.fullmatch(r"cpu|cuda(:\d+)?", a.device):
        return f"--device {a.device!r}: use cpu, cuda or cuda:N"
    for option, path in (("--json", a.json), ("--smoke-report", a.smoke_report)):
        if path is not None and (why := _unwritable(path)):
            return f"{option} {path}: {why}"
    if a.device.startswith("cuda"):
        import torch

        index = int(a.device.partition(":")[2] or 0)
        if not torch.cuda.is_available() or index >= torch.cuda.device_count():
            return f"--device {a.device}: no such CUDA device here ({torch.cuda.device_count()} visible); use --device cpu --tiny"
    return None


def main(argv: list[str]) -> int:
    p = OneLineParser(prog="python -m harness bench --acceptance", description=__doc__.splitlines()[0])
    p.add_argument("--device", default=None, help="cpu, cuda or cuda:N (default cuda when available)")
    p.add_argument("--runs", "-k", type=int, default=8,
                   help="runs per configuration, at least (default 8; rounded up to whole packs per process)")
    p.add_argument("--tiny", action="store_true", help="a tiny configuration that runs in about a minute on a CPU")
    p.add_argument("--json", type=Path, default=Path("acceptance.json"), help="where the JSON goes (default ./acceptance.json)")
    p.add_argument("--smoke-report", type=Path, default=None, metavar="PATH",
                   help="also keep the smoke tier's report.json there (e.g. to compare its decisions with a CPU "
                        "session's: python -m harness confirm --perturb)")
    a = p.parse_args(argv)
    if a.device is None:
        import torch

        a.device = "cuda" if torch.cuda.is_available() else "cpu"
    problem = _arg_problem(a)
    if problem:
        raise SystemExit(f"bench --acceptance: {problem}")
    with tempfile.TemporaryDirectory(prefix="lrlaws-accept-") as tmp:
        result = run_steps(a, Path(tmp))
        reports = sorted((Path(tmp) / "smoke").glob("*/report.json"))
        if a.smoke_report is not None and reports:
            a.smoke_report.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(reports[-1], a.smoke_report)
    a.json.parent.mkdir(parents=True, exist_ok=True)
    a.json.write_text(json.dumps(result, indent=1))
    print(table(result))
    print(f"json: {a.json}")
    s = result["smoke_tier"]
    return 0 if result["pick"] is not None and s.get("exit", 2) in (0, 1) and "error" not in s else 1
