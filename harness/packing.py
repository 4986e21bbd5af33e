"""The execution defaults a device class gets: seeds per pack and trainer processes per GPU.

One table, filled from ``python -m harness bench --acceptance`` on the named card
(the fastest configuration that learns as well as one seed alone). Light: no torch,
so the plugin can read it while it parses options.
"""
from __future__ import annotations

import os
from dataclasses import dataclass


@dataclass(frozen=True)
class Defaults:
    pack: int            # seeds trained as one packed computation (trainers that pack)
    procs_per_gpu: int   # trainer processes per visible GPU
    measured: str        # where and when the figures came from


#: per device class ("cuda", "cpu"). CUDA's row is the acceptance pick on one NVIDIA H200 (2026-12-04,
#: `bench --acceptance`): airbench94 at pack 1 x 1 process took 2.05 s/run (GPU utilization 96%), pack
#: 16 x 1 took 2.41 s/run; pack 16 x 2 failed its warm-up and the other configurations did not fit the
#: time left, so they are not measured. Packing airbench's full-width net does not pay on that card.
DEFAULTS = {
    "cuda": Defaults(pack=1, procs_per_gpu=1, measured="NVIDIA H200, 2026-12-04 (pack 1 x 1 the fastest measured)"),
    # a CPU core is compute-bound: packing gained nothing there (see the airbench trainer)
    "cpu": Defaults(pack=1, procs_per_gpu=1, measured="2-core CI box"),
}
#: the pack size for this process and its workers (the acceptance script sets it per configuration)
PACK_ENV = "LRLAWS_PACK"
MAX_PACK = 64


def device_class(device: str) -> str:
    return "cuda" if str(device).startswith("cuda") else "cpu"


def parse_pack(value: str) -> int:
    """A pack size from the command line or ``$LRLAWS_PACK``; ValueError with the fix otherwise."""
    try:
        k = int(value)
    except ValueError:
        k = 0
    if not 1 <= k <= MAX_PACK:
        raise ValueError(f"pack size must be a whole number in 1..{MAX_PACK}, got {value!r}")
    return k


def pack_size(device: str) -> int:
    """Seeds per pack on ``device``: ``$LRLAWS_PACK`` if set, else the device class's default."""
    env = os.environ.get(PACK_ENV)
    return parse_pack(env) if env else DEFAULTS[device_class(device)].pack
