"""``python -m harness bench``: the airbench recipe's speed through the harness vs a bare loop.

K runs go through the harness (plan → task → lock → trainer → probes → store)
and K runs of the same seeds through a bare loop (the same training code, no
store, no probes, logits never leave the device), alternating in one process so
drift (clocks, other load) hits both alike. One untimed bare run first loads the
data onto the device, autotunes cuDNN and compiles (``--compile``).
"""
from __future__ import annotations

import argparse
import ast
import dataclasses
import statistics
import sys
import tempfile
from pathlib import Path

import torch

from harness.cli import OneLineParser
from harness.data.formats import write_cifar10
from harness.data.standin import learnable_images, random_images
from harness.recipe import Recipe, RecipeError
from harness.store.index import Store, StoreError
from harness.trainers import DataUnavailable, TrainContext, get_trainer
from harness.trainers.recipes import AIRBENCH94
from harness.trainers.airbench import run_flops
from harness.bench.measure import TINY, TINY_SIZES, device_name, device_problem, measure

FULL_SIZES = (50_000, 10_000)


def _parse_set(items: list[str], recipe: Recipe) -> Recipe:
    """``key=value`` pairs: recipe fields by name, anything else a trainer option; values as Python literals."""
    fields = {f.name for f in dataclasses.fields(Recipe)}
    changes: dict = {}
    options: dict = {}
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise RecipeError(f"--set wants key=value, got {item!r}")
        try:
            value = ast.literal_eval(raw)
        except (ValueError, SyntaxError):
            value = raw
        (changes if key in fields else options)[key] = value
    return recipe.replace(**changes, options=options)


def _arg_problem(a: argparse.Namespace) -> str | None:
    """Why the arguments cannot run, in one line, or None; checked before any data is written or run."""
    if a.runs < 1:
        return f"--runs must be >= 1, got {a.runs}"
    if a.threads is not None and a.threads < 1:
        return f"--threads must be >= 1, got {a.threads}"
    for name in ("n_train", "n_test"):
        if getattr(a, name) is not None and getattr(a, name) < 1:
            return f"--{name.replace('_', '-')} must be >= 1, got {getattr(a, name)}"
    if (why := device_problem(a.device)) is not None:
        return why
    if a.data_dir is not None and not a.data_dir.is_dir():
        return f"--data-dir {a.data_dir} is not a directory: pass one holding cifar-10-batches-py/, or leave it out"
    return None


def main(argv: list[str]) -> int:
    if "--acceptance" in argv:
        from harness.bench.acceptance import main as acceptance

        return acceptance([a for a in argv if a != "--acceptance"])
    p = OneLineParser(prog="python -m harness bench", description=__doc__.splitlines()[0])
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--runs", "-k", type=int, default=5, help="runs per side (default 5)")
    p.add_argument("--data", choices=("random", "synthetic"), default="random",
                   help="data written to a temp dir in CIFAR-10's on-disk format: random (timing only) or the "
                        "learnable synthetic stand-in; ignored with --data-dir")
    p.add_argument("--data-dir", type=Path, default=None,
                   help="a directory holding cifar-10-batches-py/ (real CIFAR-10, or `make-data` output)")
    p.add_argument("--tiny", action="store_true", help="a tiny configuration that runs in seconds on a CPU")
    p.add_argument("--n-train", type=int, default=None, help="images written with --data (default 50000, tiny 512)")
    p.add_argument("--n-test", type=int, default=None, help="test images written with --data (default 10000, tiny 256)")
    p.add_argument("--compile", action="store_true", help="torch.compile the model (once, reused by every run)")
    p.add_argument("--threads", type=int, default=None, help="CPU threads for torch outside training (training on a CPU uses one thread, in the harness and the bare loop alike)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="change a recipe field or trainer option, e.g. --set steps=200 --set widths=[32,128,128]")
    a = p.parse_args(argv)
    if (why := _arg_problem(a)) is not None:
        print(f"python -m harness bench: {why}", file=sys.stderr)
        return 2
    if a.threads:
        torch.set_num_threads(a.threads)
    try:
        return _bench(a)
    except (RecipeError, DataUnavailable, StoreError) as e:
        print(f"python -m harness bench: {e}", file=sys.stderr)
        return 2


def _bench(a: argparse.Namespace) -> int:
    recipe = AIRBENCH94.replace(**TINY) if a.tiny else AIRBENCH94
    recipe = _parse_set(a.set, recipe)
    trainer = get_trainer(recipe)
    trainer.validate(recipe)
    with tempfile.TemporaryDirectory(prefix="lrlaws-bench-") as tmp:
        root = a.data_dir
        if root is None:
            n_train, n_test = TINY_SIZES if a.tiny else FULL_SIZES
            make = random_images if a.data == "random" else learnable_images
            root = Path(tmp) / "data"
            write_cifar10(root, make(a.n_train or n_train, a.n_test or n_test))
        ctx = TrainContext(device=a.device, data_dir=root, download=False, compile=a.compile)
        m = measure(recipe, ctx, a.runs, Store(Path(tmp) / "store"))
    harness_s, bare_s, harness_acc, bare_acc = m["harness_s"], m["bare_s"], m["harness_acc"], m["bare_acc"]
    flops = run_flops(recipe, n_test=m["n_test"])
    h, b = statistics.mean(harness_s), statistics.mean(bare_s)
    device = device_name(a.device)
    data = str(a.data_dir) if a.data_dir else f"{a.data} (temp, CIFAR-10 format)"
    print(f"bench: {recipe.describe()}")
    print(f"device {device} · torch {torch.__version__} · compile {a.compile} · data {data} · "
          f"{a.runs} runs per side · warm-up {m['warmup']:.2f} s")
    print(f"{'':10} {'s/run mean':>10} {'median':>8} {'min':>8} {'test acc':>9} {'TFLOP/s':>8}")
    for name, secs, accs in (("harness", harness_s, harness_acc), ("bare", bare_s, bare_acc)):
        print(f"{name:10} {statistics.mean(secs):>10.3f} {statistics.median(secs):>8.3f} {min(secs):>8.3f} "
              f"{statistics.mean(accs):>9.4f} {flops / statistics.mean(secs) / 1e12:>8.3f}")
    print(f"harness overhead: {100 * (h - b) / b:+.1f}% (mean s/run, harness vs bare)")
    print(f"FLOPs per run: {flops / 1e12:.4g} TFLOP (analytic; airbench94 reference 360 TFLOP = 0.36 PFLOP)")
    return 0
