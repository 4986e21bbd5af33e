"""One run's artifact: its arrays plus a description of the run, in one ``.npz``.

The description (member ``__lrlaws__``, a JSON string) holds everything the
index holds about the run: recipe key, recipe, trainer, salt, seed, status,
metrics, seconds, device, and the sha256 of the arrays. So the index can be
rebuilt from the artifacts alone (``python -m harness store rebuild``). The
file's own sha256 is kept in the index, checked before each use.
"""
from __future__ import annotations

import hashlib
import io
import json
import re
import zipfile
from typing import Any

import numpy as np

META = "__lrlaws__"
#: artifact format; rebuild refuses descriptions of an unknown format rather than guess
FORMAT = 1
#: recipe keys are sha256 hex; anything that could be a path (dots, slashes) is refused
KEY_RE = re.compile(r"^[0-9A-Za-z_-]{1,128}$")


class BadArtifact(ValueError):
    """An artifact that cannot be read, or that does not describe itself."""


def arrays_digest(arrays: dict[str, np.ndarray]) -> str:
    h = hashlib.sha256()
    for name in sorted(arrays):
        a = np.ascontiguousarray(arrays[name])
        h.update(f"{name}|{a.dtype.str}|{a.shape}|".encode())
        h.update(a.tobytes())
    return h.hexdigest()


def encode(arrays: dict[str, np.ndarray], meta: dict[str, Any]) -> bytes:
    """The artifact's bytes: ``arrays`` and ``meta`` (with the arrays' digest added)."""
    if META in arrays:
        raise ValueError(f"a run may not have an array named {META!r}")
    arrays = {name: np.asarray(a) for name, a in arrays.items()}
    meta = {**meta, "format": FORMAT, "arrays_sha256": arrays_digest(arrays)}
    buf = io.BytesIO()
    np.savez(buf, **arrays, **{META: np.array(json.dumps(meta, sort_keys=True))})
    return buf.getvalue()


def decode(data: bytes) -> tuple[dict[str, Any] | None, dict[str, np.ndarray]]:
    """(description or None for an artifact written before descriptions existed, arrays)."""
    try:
        with np.load(io.BytesIO(data), allow_pickle=False) as z:
            arrays = {name: z[name] for name in z.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, KeyError) as e:
        raise BadArtifact(f"not a readable .npz ({e})") from None
    raw = arrays.pop(META, None)
    if raw is None:
        return None, arrays
    try:
        meta = json.loads(str(raw))
    except ValueError:
        raise BadArtifact("its description is not JSON") from None
    if not isinstance(meta, dict):
        raise BadArtifact("its description is not a JSON object")
    return meta, arrays


def verified_meta(data: bytes) -> dict[str, Any]:
    """The description of a complete, intact artifact; ``BadArtifact`` says why one is not."""
    meta, arrays = decode(data)
    if meta is None:
        raise BadArtifact("it has no description (written by an older lrlaws); it will be retrained")
    if meta.get("format") != FORMAT:
        raise BadArtifact(f"unknown artifact format {meta.get('format')!r}")
    for field, kind in (("key", str), ("seed", int), ("status", str), ("metrics", dict), ("seconds", (int, float)),
                        ("device", str)):
        if not isinstance(meta.get(field), kind) or isinstance(meta.get(field), bool):
            raise BadArtifact(f"its description has no valid {field!r}")
    if not KEY_RE.match(meta["key"]):
        raise BadArtifact(f"its description has a malformed key {meta['key'][:40]!r}")
    if arrays_digest(arrays) != meta.get("arrays_sha256"):
        raise BadArtifact("its arrays do not match their recorded sha256")
    return meta
