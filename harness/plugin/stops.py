"""Where a law point stopped, reused by a session on the same runs and the same code.

A point's dry looks (``harness.plugin.rounds``) are a deterministic function of what they
read and of the code that reads it: the runs (recipe key, seeds and each
artifact's sha256 in the index), the ``harness`` package and the law's own
directory, the versions of the tracked packages (numpy, scipy, …), and the
point's planned looks, their level and the seed base. ``report.json`` records
per point a digest of all of that at the look where the point stopped
(``stop_digest``). A later session that computes the same digest at that look
would make the same dry looks and stop at the same look, so it starts the point
there and runs only the real test: same runs read, same decision, same values.
A retrained run (a new sha256), an edited law or harness file, another numpy or
scipy changes the digest, and the looks are made again. Like ``joblib.Memory``,
which hashes a function's own code, the digest does not cover code a law
imports from outside ``harness`` and its own directory.
"""
from __future__ import annotations

import hashlib
import itertools
import json
import platform
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from harness.report.history import earlier_reports

if TYPE_CHECKING:
    from harness.store.cache import RunCache
    from harness.recipe import Ensemble
    from harness.stats.sequential import PointState

#: bump when what a dry look depends on changes in a way the files hashed here do not show
FORMAT = 1
#: earlier reports read, newest first; an older report is only looked at for points the newer lack
MAX_REPORTS = 20
_HARNESS = Path(__file__).resolve().parents[1]  # the harness package, not this one


def previous_stops(report_dir: Path, tier: str, nodeids: set[str],
                   histories: dict[str, dict] | None = None) -> dict[str, tuple[int, str]]:
    """nodeid -> (runs used, stop digest) from the newest earlier reports of ``tier`` that record one;
    ``histories`` (if given) receives each such point's look history, for its projection."""
    found: dict[str, tuple[int, str]] = {}
    if not nodeids:
        return found
    for _, data in itertools.islice(earlier_reports(report_dir, tier), MAX_REPORTS):
        for e in data["entries"]:
            if not isinstance(e, dict) or not isinstance(e.get("nodeid"), str) or e["nodeid"] not in nodeids \
                    or e["nodeid"] in found:
                continue
            used, digest = e.get("runs_used"), e.get("stop_digest")
            if isinstance(used, int) and isinstance(digest, str) and digest:
                found[e["nodeid"]] = (used, digest)
                if histories is not None and isinstance(e.get("history"), dict):
                    histories[e["nodeid"]] = e["history"]
        if len(found) == len(nodeids):
            break
    return found


def code_digest(law_dir: Path) -> str:
    """sha256 of the harness package's sources, the law directory's, and the tracked packages' versions."""
    from harness.report.report import package_versions

    h = hashlib.sha256(json.dumps([FORMAT, platform.python_version(), package_versions()]).encode())
    for root, files in ((_HARNESS, sorted(_HARNESS.rglob("*.py"))), (law_dir, sorted(law_dir.glob("*.py")))):
        for path in files:
            h.update(f"{path.relative_to(root)}\0".encode())
            h.update(path.read_bytes())
    return h.hexdigest()


@dataclass
class Stops:
    """The session's earlier stops, its own stops' digests (for the report) and what it reused."""

    previous: dict[str, tuple[int, str]]
    #: the look history of each earlier stop: a point started there projects as its looks did
    histories: dict[str, dict] = field(default_factory=dict)
    digests: dict[str, str] = field(default_factory=dict)
    #: points whose stop was not a verdict (their runs were missing): never recorded
    unverified: set[str] = field(default_factory=set)
    reused: int = 0
    _code: dict[Path, str] = field(default_factory=dict)

    def code(self, law_dir: Path) -> str:
        if law_dir not in self._code:
            self._code[law_dir] = code_digest(law_dir)
        return self._code[law_dir]


def stop_digest(stops: Stops, cache: "RunCache", nodeid: str, law_dir: Path, point: "PointState",
                seed_base: int, ensembles: dict[str, tuple[str, "Ensemble"]]) -> str | None:
    """The digest of what the point's looks depend on, up to the look whose ``ensembles``
    (name -> recipe key, ensemble cut to that look) are given; None when a run is missing."""
    n = max((e.n for _, e in ensembles.values()), default=0)
    h = hashlib.sha256(json.dumps([nodeid, point.plan, point.level, seed_base, n, stops.code(law_dir)]).encode())
    for name, (key, e) in sorted(ensembles.items()):
        if cache.missing(key, e.seeds):
            return None
        h.update(f"{name}\0{key}\0{e.seeds.start}\0{e.n}\0".encode())
        h.update("".join(r.sha256 for r in cache.records(key, e.seeds)).encode())
    return h.hexdigest()
