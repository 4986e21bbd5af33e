"""What a decided point's report entry gets once its test has run: its stable id, pytest's outcome,
its law's claim and source, and its verdict drawn into its plots."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from harness.plugin.ids import law_id


def complete_entry(entry: Any, item: Any, outcome: str, run_dir: Path) -> None:
    from harness.report.html import claim_and_source
    from harness.report.stamp import stamp_entry

    entry.nodeid = law_id(item)  # reports compare across sessions: an id that does not move with the rootdir
    entry.outcome = outcome  # the verdict reads as pytest's outcome where the two differ
    entry.claim, entry.source = claim_and_source(getattr(getattr(item, "module", None), "__doc__", None))
    stamp_entry(entry, run_dir)  # the verdict is known only now: the law drew its plots before deciding
