"""``python -m harness runs``: what the store holds, which law points read it, and its runs' curves.

``runs [--law L] [--recipe KEY]`` lists, per recipe key, its trainer and recipe, the seeds stored
(with how many diverged), the metrics its runs record, their training seconds, the device
classes they were trained on, and the law points of the newest report of each tier that read
them. It reads the store's index and the reports' JSON only: no artifact, no torch.
``runs show KEY [--seeds 0-7]`` plots the curves a recipe's runs store (1-D arrays over steps),
one line per seed, into a PNG.
"""
from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.cli import OneLineParser
from harness.config import default_store
from harness.report.history import earlier_reports
from harness.store.errors import StoreError

PROG = "python -m harness runs"
#: seeds ``runs show`` draws when --seeds is not given
SHOW_SEEDS = 8


@dataclass
class RecipeRuns:
    key: str
    trainer: str
    recipe: dict[str, Any]
    seeds: int
    first: int
    last: int
    diverged: int
    seconds: float
    devices: list[str]
    metrics: list[str]
    readers: list[str] = field(default_factory=list)

    def describe(self) -> str:
        r = self.recipe
        parts = [f"{r.get('dataset')}/{r.get('model')}", f"lr={r.get('lr')}"]
        parts += [f"{k}={r[k]}" for k in ("wd", "batch_size", "steps") if r.get(k) not in (None, 0, 0.0)]
        return " ".join(parts)


def _open(store_root: Path):
    from harness.store.index import INDEX, Store

    if not (store_root / INDEX).is_file():
        raise StoreError(f"no run store at {store_root} (give --store DIR, or run a law first)")
    return Store(store_root, readonly=True)


def stored_runs(store_root: Path) -> list[RecipeRuns]:
    """One row per recipe key of the store, from its index (aggregated in SQL: fast for any store size)."""
    store = _open(store_root)
    recipes = {k: (t, json.loads(r)) for k, t, _, r in store._rows("SELECT key, trainer, salt, recipe FROM recipes")}
    rows = store._rows(
        "SELECT key, COUNT(*), MIN(seed), MAX(seed), SUM(status != 'ok'), SUM(seconds), "
        "GROUP_CONCAT(DISTINCT device), MAX(metrics) FROM runs GROUP BY key")
    out = []
    for key, n, lo, hi, bad, sec, devices, metrics in rows:
        trainer, recipe = recipes.get(key, ("?", {}))
        try:
            names = sorted(json.loads(metrics))
        except (TypeError, ValueError):
            names = []
        out.append(RecipeRuns(key, trainer, recipe, n, lo, hi, int(bad or 0), float(sec or 0.0),
                              sorted(set((devices or "").split(","))), names))
    store.close()
    return out


def readers(report_dir: Path) -> dict[str, list[str]]:
    """recipe key -> law points (``tier: node id``) that read it, from the newest report of each tier."""
    out: dict[str, list[str]] = {}
    seen: set[str] = set()
    for _, data in earlier_reports(report_dir, below=True):
        tier = str(data.get("tier"))
        if tier in seen:
            continue
        seen.add(tier)
        for e in data["entries"]:
            if isinstance(e, dict):
                for key in (e.get("recipes") or {}).values():
                    out.setdefault(str(key), []).append(f"{tier}: {e.get('nodeid')}")
    return out


def table(rows: list[RecipeRuns]) -> str:
    head = ["recipe", "trainer", "recipe fields", "seeds", "diverged", "metrics", "seconds", "devices", "read by"]
    lines = [head]
    for r in rows:
        span = f"{r.seeds} ({r.first}..{r.last})"
        lines.append([r.key[:12], r.trainer, r.describe(), span, str(r.diverged), ", ".join(r.metrics),
                      f"{r.seconds:.1f}", ", ".join(r.devices), "; ".join(r.readers) or "-"])
    widths = [max(len(line[i]) for line in lines) for i in range(len(head) - 1)]
    return "\n".join("  ".join([*(c.ljust(w) for c, w in zip(line[:-1], widths)), line[-1]]).rstrip() for line in lines)


def list_runs(store_root: Path, report_dir: Path, law: str | None, recipe: str | None) -> list[RecipeRuns]:
    rows = stored_runs(store_root)
    read = readers(report_dir)
    for r in rows:
        r.readers = read.get(r.key, [])
    if recipe:
        rows = [r for r in rows if r.key.startswith(recipe)]
    if law:
        rows = [r for r in rows if any(law in point for point in r.readers)]
    return sorted(rows, key=lambda r: (r.trainer, r.describe()))


def parse_seeds(text: str) -> list[int]:
    """'0-7' or '0,3,5' (or both: '0-3,9') as a list of seeds."""
    seeds: list[int] = []
    try:
        for part in text.split(","):
            lo, _, hi = part.partition("-")
            seeds += list(range(int(lo), int(hi) + 1)) if hi else [int(lo)]
    except ValueError:
        raise ValueError(f"--seeds takes seeds like 0-7 or 0,3,5, got {text!r}") from None
    return seeds


def curves(arrays: dict[str, Any]) -> dict[str, tuple[Any, Any]]:
    """name -> (steps, values) of a run's 1-D arrays over steps (``X`` with ``X_steps``, ``curve_*`` with
    ``curve_steps``, or any other 1-D array against its index)."""
    import numpy as np

    out = {}
    for name, a in arrays.items():
        if a.ndim != 1 or a.size < 2 or name.endswith("_steps") or not np.issubdtype(a.dtype, np.number):
            continue
        x = next((arrays[k] for k in (f"{name}_steps", name.rsplit("_", 1)[0] + "_steps")
                  if k in arrays and arrays[k].shape == a.shape), np.arange(a.size))
        out[name] = (x, a)
    return out


def show(store_root: Path, key: str, seeds: list[int] | None, out: Path) -> str:
    """Plot the curves of ``key``'s runs (``seeds``, default the first stored) into ``out``; returns a line."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    store = _open(store_root)
    keys = [k for (k,) in store._rows("SELECT DISTINCT key FROM runs") if k.startswith(key)]
    if len(keys) != 1:
        raise StoreError(f"recipe {key!r} matches {len(keys)} stored recipes; give more of its key "
                         f"(`{PROG}` lists them)" if keys else f"no stored runs of recipe {key!r} (`{PROG}` lists them)")
    recs = store.records(keys[0])
    chosen = sorted(recs)[:SHOW_SEEDS] if seeds is None else [s for s in seeds if s in recs]
    if not chosen:
        raise StoreError(f"none of seeds {seeds} of {keys[0][:12]} is stored; stored: {min(recs)}..{max(recs)}")
    runs = {s: curves(store.read_arrays(recs[s])) for s in chosen}
    names = sorted({n for c in runs.values() for n in c})
    if not names:
        arrays = sorted(store.read_arrays(recs[chosen[0]]))
        return f"{keys[0][:12]}: its trainer records no curves (arrays: {', '.join(arrays)}); nothing to plot"
    fig, axes = plt.subplots(len(names), 1, figsize=(6, 2.6 * len(names)), squeeze=False)
    for ax, name in zip(axes[:, 0], names):
        for s, c in runs.items():
            if name in c:
                ax.plot(*c[name], lw=0.8, label=f"seed {s}" + (" (diverged)" if recs[s].status != "ok" else ""))
        ax.set_xlabel("step")
        ax.set_ylabel(name)
    axes[0, 0].set_title(f"recipe {keys[0][:12]}: {len(chosen)} seeds", fontsize=9)
    axes[0, 0].legend(fontsize=7)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=100, bbox_inches="tight")
    plt.close(fig)
    return f"{keys[0][:12]}: {', '.join(names)} of seeds {chosen[0]}..{chosen[-1]} -> {out}"


def main(argv: list[str] | None = None) -> int:
    ap = OneLineParser(prog=PROG, description=__doc__.split("\n\n")[0])
    ap.add_argument("action", nargs="?", choices=("list", "show"), default="list",
                    help="list (default) the stored runs, or show KEY: plot their curves")
    ap.add_argument("key", nargs="?", help="with show: the recipe key (a prefix is enough)")
    ap.add_argument("--store", default=None, help="the run store (default $LRLAWS_STORE or .lrlaws/store)")
    ap.add_argument("--report-dir", default="results", help="where the reports are, for 'read by' (default results/)")
    ap.add_argument("--law", default=None, help="only recipes that points of law L read (in the newest reports)")
    ap.add_argument("--recipe", default=None, help="only the recipe whose key starts with KEY")
    ap.add_argument("--seeds", default=None, help=f"with show: seeds like 0-7 or 0,3,5 (default the first {SHOW_SEEDS})")
    ap.add_argument("--out", default=None, help="with show: the PNG to write (default runs-<key>.png)")
    args = ap.parse_args(argv)
    store_root = Path(args.store) if args.store else default_store()
    try:
        if args.action == "show":
            if not args.key:
                ap.error("show needs a recipe KEY")
            seeds = parse_seeds(args.seeds) if args.seeds else None
            print(show(store_root, args.key, seeds, Path(args.out or f"runs-{args.key[:12]}.png")))
            return 0
        rows = list_runs(store_root, Path(args.report_dir), args.law, args.recipe)
    except (StoreError, ValueError) as e:
        print(f"{PROG}: {e}", file=sys.stderr)
        return 2
    if not rows:
        print(f"no stored runs{' of law ' + args.law if args.law else ''}{' of recipe ' + args.recipe if args.recipe else ''} in {store_root}")
        return 0
    print(table(rows))
    print(f"{len(rows)} recipes, {sum(r.seeds for r in rows)} runs, {sum(r.seconds for r in rows):.0f} s of training in {store_root}")
    return 0
