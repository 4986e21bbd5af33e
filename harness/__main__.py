"""``python -m harness <command>``: the harness's command-line tools.

Each command lives in its own module exposing ``main(argv) -> int``; this file
only dispatches, so commands can be added without touching each other.
"""
from __future__ import annotations

import importlib
import sys

COMMANDS = {
    # name: (module, one-line help)
    "bench": ("harness.bench.bench", "seconds per airbench run through the harness vs a bare loop, overhead, TFLOP/s"),
    "make-data": ("harness.data.formats", "KIND DIR: write a stand-in data set in CIFAR-10/MNIST on-disk format"),
    "compare": ("harness.report.compare", "OLD NEW: classify each law point (regressed/drifted/fixed/...); exit 1 on regressions"),
    "trends": ("harness.report.trends", "DIR: a trend plot per law statistic across the reports in DIR"),
    "store": ("harness.store.cli", "check|rebuild|prune [--store DIR]: verify a store, rebuild its index from the "
                                   "artifacts, or drop the runs of recipes unused for --keep-days N"),
    "calibrate": ("harness.calibrate.cli", "[--quick]: CI coverage and false-pass rate of every claim statistic"),
    "confirm": ("harness.report.confirm", "FIXED HELDOUT [--md OUT]: claims decided on tuning vs held-out seeds, side "
                                          "by side; --perturb BASE OTHER|threads: rows whose decision moves with floating point"),
    "runs": ("harness.report.runs", "[--law L] [--recipe KEY] | show KEY [--seeds 0-7]: the stored runs, the law "
                                    "points that read them, and their curves"),
    "baseline": ("harness.report.baseline", "RUN_DIR|latest: copy a report into results/baseline/ (the committed baseline)"),
}


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print("usage: python -m harness <command> [args]\n\ncommands:")
        for name, (_, help_) in sorted(COMMANDS.items()):
            print(f"  {name:10} {help_}")
        return 0 if argv else 2
    name, rest = argv[0], argv[1:]
    if name not in COMMANDS:
        print(f"python -m harness: unknown command {name!r}; known: {', '.join(sorted(COMMANDS))}", file=sys.stderr)
        return 2
    module = importlib.import_module(COMMANDS[name][0])
    return int(module.main(rest) or 0)


if __name__ == "__main__":
    sys.exit(main())
