"""What a finished run hands to the store: torch-free, so the store and planner need no torch."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

#: run statuses stored in the index; a diverged run is data, not an error.
OK, DIVERGED = "ok", "diverged"
STATUSES = (OK, DIVERGED)


@dataclass
class RunResult:
    seed: int
    arrays: dict[str, np.ndarray]
    metrics: dict[str, float] = field(default_factory=dict)
    status: str = OK
    seconds: float = 0.0
    #: seeds trained as one packed computation with this one (harness.store.provenance)
    pack: int = 1
