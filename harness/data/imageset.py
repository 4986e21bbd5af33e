"""A decoded image data set (``ImageSet``) and a download that cannot hang: what every image loader uses."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch


@dataclass(frozen=True)
class ImageSet:
    """A decoded image data set on the CPU: uint8 images N×C×H×W, int64 labels."""

    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    num_classes: int

    def __post_init__(self) -> None:
        for name in ("x_train", "x_test"):
            t = getattr(self, name)
            if t.dtype != torch.uint8 or t.dim() != 4:
                raise ValueError(f"ImageSet.{name} must be uint8 N×C×H×W, got {t.dtype} {tuple(t.shape)}")
        for x, y in ((self.x_train, self.y_train), (self.x_test, self.y_test)):
            if y.dtype != torch.int64 or y.shape != (x.shape[0],):
                raise ValueError(f"ImageSet labels must be int64 of length {x.shape[0]}, got {y.dtype} {tuple(y.shape)}")

    def subset(self, n_train: int | None = None, n_test: int | None = None) -> "ImageSet":
        """The first ``n_train`` / ``n_test`` examples (all when None): tiny configurations for CPU tests."""
        return ImageSet(self.x_train[:n_train], self.y_train[:n_train], self.x_test[:n_test], self.y_test[:n_test],
                        self.num_classes)


#: seconds a download may stall (no bytes) before it counts as failed
DOWNLOAD_STALL_S = 30.0


def try_download(fetch: Callable[[], object]) -> str:
    """Run a torchvision download; return "" on success, else a short reason (offline, DNS, disk).

    Sockets time out after DOWNLOAD_STALL_S of silence, so a network that drops
    packets instead of refusing them fails the data check instead of hanging collection.
    """
    import socket

    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(DOWNLOAD_STALL_S)
    try:
        fetch()
    except Exception as e:  # every failure means the same thing here: not available on this machine
        first = str(e).strip().splitlines()[0][:120] if str(e).strip() else ""
        return f"download failed ({type(e).__name__}{': ' + first if first else ''})"
    finally:
        socket.setdefaulttimeout(previous)
    return ""
