"""The plugin's command-line options (the ``lrlaws`` group of ``pytest --help``); their checks are in
``harness.plugin.state``, beside the session they configure."""
from __future__ import annotations

import pytest

from harness.config import DATA_ENV, DEFAULT_STORE, OFFLINE_ENV, STORE_ENV


def add_options(parser: pytest.Parser) -> None:
    """Every lrlaws option, in the ``lrlaws`` group of ``pytest --help``; each is checked in ``harness.plugin.state``."""
    g = parser.getgroup("lrlaws", "lrlaws: empirical laws of training")
    # Validated in pytest_configure rather than by argparse ``choices``, so a typo gets
    # one line saying what to write instead of a usage dump.
    g.addoption("--tier", default=None, metavar="{smoke,gpu,paper}",
                help="scale of the experiments: smoke (CPU, minutes), gpu, paper. Default: gpu when CUDA is available, else smoke.")
    g.addoption("--gpus", default="all", metavar="N",
                help="GPUs to train on, one worker process each; 0 = CPU. Default: all visible (CUDA_VISIBLE_DEVICES is honoured).")
    g.addoption("--workers", default=None, metavar="K",
                help="CPU training (--gpus 0): K worker processes, one intra-op thread each. Default: the usable cores.")
    g.addoption("--store", default=None, metavar="DIR",
                help=f"run store (default ${STORE_ENV} or {DEFAULT_STORE}).")
    g.addoption("--plan", action="store_true", default=False,
                help="print what would be trained (runs, estimated time) and exit without training or testing.")
    g.addoption("--no-train", action="store_true", default=False,
                help="use only stored runs; law points with missing runs are reported as not run.")
    g.addoption("--fixed-n", action="store_true", default=False,
                help="train every law point's tier maximum N at once and decide once (default: sequential looks "
                     "that stop as soon as every claim is decided).")
    g.addoption("--budget", default=None, metavar="DURATION",
                help="sequential looks go on past the tier's N (doubling, open-ended alpha spending) until every "
                     "selected claim is decided or the training time reaches DURATION (e.g. 30m, 8h); the next "
                     "looks go to the points cheapest to decide.")
    g.addoption("--seed-base", default="0", metavar="K",
                help="every ensemble uses seeds K .. K+N-1 (default 0, the seeds the laws were tuned on); "
                     "K != 0 makes a confirmatory session on held-out seeds.")
    g.addoption("--report-dir", default="results", metavar="DIR",
                help="where reports go: DIR/<run-id>/report.{json,md} and plots (default results/).")
    g.addoption("--data-dir", default=None, metavar="DIR",
                help=f"data sets (CIFAR-10, MNIST) on disk or to download into (default ${DATA_ENV} or ~/.cache/lrlaws/data).")
    g.addoption("--offline", action="store_true", default=False,
                help=f"never download data (also ${OFFLINE_ENV}=1): absent data sets make their law points 'not run'.")
    g.addoption("--inconclusive", default="skip", metavar="{skip,fail}",
                help="what an inconclusive law point becomes: skip (default, with the CI in the reason) or fail.")
    g.addoption("--compile", action="store_true", default=False,
                help="torch.compile each trainer's model (once per process, reused across runs; a one-off "
                     "compile per process); compiled runs are stored under their own keys. Trainers without a "
                     "compiled path ignore it.")
    g.addoption("--procs-per-gpu", default=None, metavar="K",
                help="trainer processes per visible GPU (1..16; default from harness.packing): small "
                     "nets leave a card idle, several processes fill it.")
    g.addoption("--compare-to", default="previous", metavar="PATH|previous|none",
                help="report to compare this session's with (report.json or its run dir); previous (default) = the "
                     "newest earlier report of the tier in --report-dir, else the committed results/baseline/.")
    g.addoption("--fail-on", default="regression", metavar="{regression,drift,never}",
                help="make the session fail when the comparison finds regressions (default), regressions or drift, or never.")
    g.addoption("--executor", default="local", metavar="{local,ray}",
                help="who trains missing runs: local processes (default) or a Ray cluster (pip install 'lrlaws[ray]').")
    g.addoption("--ray-address", default=None, metavar="ADDR",
                help="Ray cluster to use with --executor ray (default $RAY_ADDRESS, else a local Ray instance).")
    g.addoption("--recipe", action="append", default=[], metavar="LAW=MODULE:NAME",
                help="run law LAW on your own Recipe NAME of MODULE (repeatable); see docs/your-own-model.md.")
