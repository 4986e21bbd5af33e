"""PS10, the Pattern Separation 10 data set of seed 003 (You et al., §5.1, Figure 8).

Ten classes. Each class owns 10 *simple* patterns and 100 *complex* patterns,
points in R³ (the paper shows them as colours); the class-conditional entropy
is log2 10 for the simple half and log2 100 for the complex half. Half of the
examples show only a simple pattern, in channels 0–2, the other half only a
complex pattern, in channels 3–5 (the unused channels are zero), so the two
kinds reach the network through different channels "as the eye pattern and the
nose pattern have different locations in an image of a human face". Images are
constant over space; ``spatial=32`` gives CIFAR-sized 6×32×32 inputs, smaller
sizes (down to 1, a plain 6-vector) serve the CPU smoke tier.

Each example is its pattern plus isotropic jitter (``jitter``, a fraction of
the cube's side), so the test set draws fresh points around the same patterns.
With ``noise`` > 0, that fraction of the *training* examples is replaced by
"noisy data" (§5.3: "adding 10% noisy data to mimic real-world datasets"): a
uniform random point in the example's channels with a uniform random label.
Such a point is an isolated exception that a net fits only by memorising it,
so the training accuracy on the noisy subset measures memorisation. (Flipping
the label of a pattern example instead would make it indistinguishable from
its correctly labelled neighbours ~0.02 away: unfittable, hence no test of
memorisation.) The test set is clean.

Everything is a function of ``seed`` alone. Inputs are stored compactly as
``[N, 6]``; ``images`` expands a batch to ``[..., 6, S, S]`` when a conv net
needs it, so a CIFAR-sized PS10 costs no more memory than a 6-column table.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

CLASSES = 10
#: seed 003 Figure 8: "10 patterns per category" (simple) and "100 patterns per category" (complex)
SIMPLE_PER_CLASS = 10
COMPLEX_PER_CLASS = 100
CHANNELS = 6
SIMPLE, COMPLEX = 0, 1


@dataclass(frozen=True)
class PS10:
    x_train: torch.Tensor      # [N, 6]
    y_train: torch.Tensor      # [N] labels as trained on (noisy ones included)
    kind_train: torch.Tensor   # [N] SIMPLE or COMPLEX
    noisy_train: torch.Tensor  # [N] bool: label was replaced
    x_test: torch.Tensor
    y_test: torch.Tensor
    kind_test: torch.Tensor
    spatial: int = 1
    num_classes: int = CLASSES

    def images(self, x: torch.Tensor) -> torch.Tensor:
        """``[..., 6]`` → ``[..., 6, S, S]``, constant over space (a view, no copy)."""
        s = self.spatial
        return x[..., None, None].expand(*x.shape, s, s)

    def to(self, device: str | torch.device) -> "PS10":
        t = {k: getattr(self, k).to(device) for k in
             ("x_train", "y_train", "kind_train", "noisy_train", "x_test", "y_test", "kind_test")}
        return PS10(**t, spatial=self.spatial, num_classes=self.num_classes)


def ps10(
    *, seed: int = 0, n_train: int = 10_000, n_test: int = 2_000, noise: float = 0.0,
    jitter: float = 0.01, spatial: int = 1,
) -> PS10:
    """Draw a PS10 instance. ``n_train`` and ``n_test`` are split evenly between simple and complex."""
    if not 0.0 <= noise < 1.0:
        raise ValueError(f"noise must be in [0, 1), got {noise}")
    if n_train < 2 or n_test < 2 or spatial < 1:
        raise ValueError("n_train, n_test must be >= 2 and spatial >= 1")
    g = torch.Generator().manual_seed(20_000 + int(seed))
    # Patterns uniform in the cube [-1, 1]³; jitter is relative to its side 2.
    simple = torch.rand(CLASSES, SIMPLE_PER_CLASS, 3, generator=g) * 2 - 1
    complex_ = torch.rand(CLASSES, COMPLEX_PER_CLASS, 3, generator=g) * 2 - 1

    def draw(n: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        n_s = n // 2
        kind = torch.cat([torch.full((n_s,), SIMPLE), torch.full((n - n_s,), COMPLEX)])
        y = torch.randint(CLASSES, (n,), generator=g)
        x = torch.zeros(n, CHANNELS)
        js = torch.randint(SIMPLE_PER_CLASS, (n_s,), generator=g)
        jc = torch.randint(COMPLEX_PER_CLASS, (n - n_s,), generator=g)
        x[:n_s, :3] = simple[y[:n_s], js]
        x[n_s:, 3:] = complex_[y[n_s:], jc]
        jit = torch.randn(n, CHANNELS, generator=g) * (2 * jitter)
        jit[:n_s, 3:] = 0  # the channels an example does not use stay exactly zero
        jit[n_s:, :3] = 0
        x = x + jit
        perm = torch.randperm(n, generator=g)
        return x[perm], y[perm], kind[perm]

    x_tr, y_tr, k_tr = draw(n_train)
    x_te, y_te, k_te = draw(n_test)
    noisy = torch.zeros(n_train, dtype=torch.bool)
    n_noisy = round(noise * n_train)
    if n_noisy:
        # Noisy data: a fresh uniform point in the example's own channels with a uniform label,
        # an isolated exception the net can only fit by memorising it.
        idx = torch.randperm(n_train, generator=g)[:n_noisy]
        noisy[idx] = True
        point = torch.rand(n_noisy, 3, generator=g) * 2 - 1
        x_tr, y_tr = x_tr.clone(), y_tr.clone()
        x_tr[idx] = 0.0
        simple_rows = k_tr[idx] == SIMPLE
        x_tr[idx[simple_rows], :3] = point[simple_rows]
        x_tr[idx[~simple_rows], 3:] = point[~simple_rows]
        y_tr[idx] = torch.randint(CLASSES, (n_noisy,), generator=g)
    return PS10(x_tr, y_tr, k_tr, noisy, x_te, y_te, k_te, spatial=spatial)


def accuracy_by_kind(pred: torch.Tensor, y: torch.Tensor, kind: torch.Tensor) -> dict[str, torch.Tensor]:
    """Accuracy of predictions ``pred`` [..., N] on the simple and on the complex examples separately."""
    correct = (pred == y).float()
    return {"simple": correct[..., kind == SIMPLE].mean(-1), "complex": correct[..., kind == COMPLEX].mean(-1)}
