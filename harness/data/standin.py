"""Stand-ins of a real image data set's shape, for machines without the real one.

* ``learnable_images``: class-dependent smooth templates, randomly shifted, plus
  strong pixel noise — a task a conv net learns, so a recipe's accuracy on it
  shows that the training code works;
* ``random_images``: uniform noise with random labels — only for timing.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from harness.data.images import ImageSet

#: template amplitude and noise std in grey levels (0..255): per pixel the noise
#: dominates (SNR 0.75), so the class is only visible to a model that pools over space
TEMPLATE_AMPLITUDE = 48.0
NOISE_STD = 64.0
#: templates are random at this resolution, then upsampled: smooth, image-like blobs
TEMPLATE_RES = 6
#: largest random shift of a template in pixels (the net must be roughly translation invariant)
MAX_SHIFT = 4


def learnable_images(n_train: int, n_test: int, shape: tuple[int, int, int] = (3, 32, 32),
                     classes: int = 10, seed: int = 0) -> ImageSet:
    g = torch.Generator().manual_seed(20_000 + seed)
    c, h, w = shape
    coarse = torch.randn(classes, c, TEMPLATE_RES, TEMPLATE_RES, generator=g)
    templates = F.interpolate(coarse, size=(h, w), mode="bicubic", align_corners=False)
    templates = templates / templates.flatten(1).std(1).view(-1, 1, 1, 1)

    def draw(n: int) -> tuple[torch.Tensor, torch.Tensor]:
        y = torch.randint(classes, (n,), generator=g)
        shifts = torch.randint(-MAX_SHIFT, MAX_SHIFT + 1, (n, 2), generator=g)
        x = templates[y]
        for dy in range(-MAX_SHIFT, MAX_SHIFT + 1):  # one roll per distinct shift, not per image
            for dx in range(-MAX_SHIFT, MAX_SHIFT + 1):
                m = (shifts[:, 0] == dy) & (shifts[:, 1] == dx)
                x[m] = x[m].roll((dy, dx), dims=(2, 3))
        x = 128 + TEMPLATE_AMPLITUDE * x + NOISE_STD * torch.randn(n, c, h, w, generator=g)
        return x.round().clamp(0, 255).to(torch.uint8), y

    x_train, y_train = draw(n_train)
    x_test, y_test = draw(n_test)
    return ImageSet(x_train, y_train, x_test, y_test, classes)


def random_images(n_train: int, n_test: int, shape: tuple[int, int, int] = (3, 32, 32),
                  classes: int = 10, seed: int = 0) -> ImageSet:
    g = torch.Generator().manual_seed(30_000 + seed)

    def draw(n: int) -> tuple[torch.Tensor, torch.Tensor]:
        return torch.randint(256, (n, *shape), generator=g, dtype=torch.uint8), torch.randint(classes, (n,), generator=g)

    x_train, y_train = draw(n_train)
    x_test, y_test = draw(n_test)
    return ImageSet(x_train, y_train, x_test, y_test, classes)
