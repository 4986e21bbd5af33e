"""Image classification data sets as decoded tensors, and where to find them on disk."""
from __future__ import annotations

from pathlib import Path

import torch

# where data lives and the one-line fix when it does not: torch-free, in the catalog
from harness.data import cifar10, mnist
from harness.data.imageset import ImageSet


def load_digits_images(root: Path | None = None, download: bool = True) -> ImageSet:
    """scikit-learn's digits (``harness.data.digits``) as 1×8×8 uint8 images; never downloads."""
    from harness.data import digits

    d = digits.load()
    return ImageSet(torch.from_numpy(digits.as_uint8(d.x_train)), torch.from_numpy(d.y_train),
                    torch.from_numpy(digits.as_uint8(d.x_test)), torch.from_numpy(d.y_test), d.num_classes)


def load_images(dataset: str, root: Path | None, download: bool = True) -> ImageSet:
    """``load_cifar10``, ``load_mnist`` or ``load_digits_images`` by recipe dataset name."""
    # looked up at call time, so a test can stand in for a loader
    loaders = {"cifar10": cifar10.load_cifar10, "mnist": mnist.load_mnist, "digits": load_digits_images}
    if dataset not in loaders:
        raise ValueError(f"no image loader for dataset {dataset!r}; known: {sorted(loaders)}")
    return loaders[dataset](root, download)
