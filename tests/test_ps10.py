"""PS10 (seed 003 §5.1): structure, determinism per seed, noisy data, images at CIFAR size."""
from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from harness.data.ps10 import CLASSES, COMPLEX, COMPLEX_PER_CLASS, SIMPLE, SIMPLE_PER_CLASS, accuracy_by_kind, ps10


def test_simple_and_complex_patterns_in_separate_channels():
    d = ps10(seed=3, n_train=20_000, n_test=200, jitter=0.0)
    simple, complex_ = d.kind_train == SIMPLE, d.kind_train == COMPLEX
    assert int(simple.sum()) == int(complex_.sum()) == 10_000  # half and half (Fig. 8c)
    assert (d.x_train[simple, 3:] == 0).all() and (d.x_train[complex_, :3] == 0).all()
    assert (d.x_train[simple, :3] != 0).all() and (d.x_train[complex_, 3:] != 0).all()
    # 10 patterns per class for the simple half, 100 for the complex half (jitter 0: exact repeats)
    for c in range(CLASSES):
        assert len(torch.unique(d.x_train[simple & (d.y_train == c), :3], dim=0)) == SIMPLE_PER_CLASS
        assert len(torch.unique(d.x_train[complex_ & (d.y_train == c), 3:], dim=0)) == COMPLEX_PER_CLASS
    assert d.x_train.abs().max() <= 1.0  # patterns lie in the cube [-1, 1]³


def test_patterns_shared_between_train_and_test():
    """The test set shows the training set's patterns (new draws of them), not new patterns."""
    d = ps10(seed=1, n_train=8000, n_test=4000, jitter=0.0)
    for k, cols, seen in ((SIMPLE, slice(0, 3), 1.0), (COMPLEX, slice(3, 6), 0.95)):
        train = {tuple(r.tolist()) for r in d.x_train[d.kind_train == k][:, cols]}
        test = [tuple(r.tolist()) for r in d.x_test[d.kind_test == k][:, cols]]
        # 4000 draws of 1000 complex patterns leave ~2% unseen; of 100 simple ones, none
        assert sum(t in train for t in test) >= seen * len(test)


@settings(max_examples=10, deadline=None)
@given(seed=st.integers(0, 10**6), noise=st.sampled_from([0.0, 0.1, 0.25]))
def test_deterministic_per_seed(seed, noise):
    a = ps10(seed=seed, n_train=600, n_test=100, noise=noise)
    b = ps10(seed=seed, n_train=600, n_test=100, noise=noise)
    for name in ("x_train", "y_train", "kind_train", "noisy_train", "x_test", "y_test", "kind_test"):
        assert torch.equal(getattr(a, name), getattr(b, name)), name
    c = ps10(seed=seed + 1, n_train=600, n_test=100, noise=noise)
    assert not torch.equal(a.x_train, c.x_train)


def test_noisy_data_subset():
    clean = ps10(seed=5, n_train=5000, n_test=100)
    noisy = ps10(seed=5, n_train=5000, n_test=100, noise=0.1)
    sel = noisy.noisy_train
    assert int(sel.sum()) == 500
    # the clean part and the test set are untouched by adding noise
    assert torch.equal(clean.x_train[~sel], noisy.x_train[~sel]) and torch.equal(clean.y_train[~sel], noisy.y_train[~sel])
    assert torch.equal(clean.x_test, noisy.x_test) and torch.equal(clean.y_test, noisy.y_test)
    # noisy examples are fresh points in their own channels, labels roughly uniform
    simple = noisy.kind_train[sel] == SIMPLE
    assert (noisy.x_train[sel][simple, 3:] == 0).all() and (noisy.x_train[sel][~simple, :3] == 0).all()
    assert not torch.equal(clean.x_train[sel], noisy.x_train[sel])
    counts = torch.bincount(noisy.y_train[sel], minlength=CLASSES)
    assert counts.min() > 20
    assert not clean.noisy_train.any()


def test_images_constant_over_space_at_cifar_size():
    d = ps10(seed=0, n_train=10, n_test=4, spatial=32)
    img = d.images(d.x_train)
    assert img.shape == (10, 6, 32, 32)
    assert torch.equal(img, img[..., :1, :1].expand_as(img))
    assert torch.equal(img[..., 7, 19], d.x_train)


def test_accuracy_by_kind():
    d = ps10(seed=0, n_train=10, n_test=1000)
    pred = d.y_test.clone()
    pred[d.kind_test == COMPLEX] = (pred[d.kind_test == COMPLEX] + 1) % CLASSES
    acc = accuracy_by_kind(pred, d.y_test, d.kind_test)
    assert acc["simple"] == 1.0 and acc["complex"] == 0.0


def test_bad_arguments():
    with pytest.raises(ValueError):
        ps10(noise=1.0)
    with pytest.raises(ValueError):
        ps10(spatial=0)
