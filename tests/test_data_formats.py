"""The data layer offline: real on-disk formats written and parsed, missing data, augmentation."""
from __future__ import annotations

import gzip
import pickle
import struct
from pathlib import Path
from urllib.error import URLError

import numpy as np
import pytest
import torch
import torch.nn.functional as F
import torchvision

from harness.__main__ import main as harness_main
from harness.data import cifar10, mnist
from harness.data.augment import augment, draw_epochs, epoch_images
from harness.data.cifar10 import load_cifar10
from harness.data.formats import idx_bytes, write_cifar10, write_mnist
from harness.config import DATA_ENV
from harness.data.images import ImageSet
from harness.data.mnist import load_mnist, read_idx
from harness.data.standin import learnable_images
from harness.data.catalog import DataUnavailable


def random_set(n_train: int, n_test: int, shape: tuple[int, int, int], seed: int = 0) -> ImageSet:
    g = torch.Generator().manual_seed(seed)
    return ImageSet(torch.randint(256, (n_train, *shape), generator=g, dtype=torch.uint8),
                    torch.randint(10, (n_train,), generator=g), torch.randint(256, (n_test, *shape), generator=g,
                                                                               dtype=torch.uint8),
                    torch.randint(10, (n_test,), generator=g), 10)


def assert_same(a: ImageSet, b: ImageSet) -> None:
    for name in ("x_train", "y_train", "x_test", "y_test"):
        x, y = getattr(a, name), getattr(b, name)
        assert x.dtype == y.dtype and x.shape == y.shape and torch.equal(x, y), name
    assert a.num_classes == b.num_classes


# ------------------------------------------------------------------ CIFAR-10 --

@pytest.mark.parametrize("bytes_keys", [False, True], ids=["str-keys", "bytes-keys"])
def test_cifar10_roundtrip(tmp_path: Path, bytes_keys: bool) -> None:
    data = random_set(23, 7, (3, 32, 32))  # 23 train images: the 5 batches are uneven
    write_cifar10(tmp_path, data, bytes_keys=bytes_keys)
    assert_same(load_cifar10(tmp_path, download=False), data)


def test_cifar10_layout_is_torchvisions(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Rows are R, G, B planes of 32×32 (the real files' layout): torchvision's own reader agrees."""
    data = random_set(10, 4, (3, 32, 32), seed=1)
    folder = write_cifar10(tmp_path, data)
    with open(folder / "data_batch_1", "rb") as f:
        raw = pickle.load(f, encoding="latin1")
    assert raw["data"].shape == (2, 3072) and raw["data"].dtype == np.uint8
    assert np.array_equal(raw["data"][0, 1024:2048], data.x_train[0, 1].numpy().ravel())  # green plane
    # torchvision checks md5 sums of the real files; ours are synthetic, so skip only that check
    monkeypatch.setattr(torchvision.datasets.CIFAR10, "_check_integrity", lambda self: True)
    monkeypatch.setattr(torchvision.datasets.cifar, "check_integrity", lambda *a, **k: True)
    tv = torchvision.datasets.CIFAR10(str(tmp_path), train=True, download=False)
    assert np.array_equal(tv.data, data.x_train.permute(0, 2, 3, 1).numpy())  # torchvision keeps N×H×W×C
    assert tv.targets == data.y_train.tolist()


def test_cifar10_decoded_once_and_reread_when_rewritten(tmp_path: Path) -> None:
    write_cifar10(tmp_path, random_set(10, 5, (3, 32, 32), seed=2))
    first = load_cifar10(tmp_path, download=False)
    assert load_cifar10(tmp_path, download=False) is first  # cached in-process
    newer = random_set(10, 5, (3, 32, 32), seed=3)
    write_cifar10(tmp_path, newer)
    assert_same(load_cifar10(tmp_path, download=False), newer)


def test_cifar10_batch_never_runs_code(tmp_path: Path) -> None:
    write_cifar10(tmp_path, random_set(10, 5, (3, 32, 32)))
    evil = tmp_path / cifar10.FOLDER / "data_batch_1"

    class Boom:
        def __reduce__(self):
            return (print, ("pwned",))

    evil.write_bytes(pickle.dumps({"data": Boom(), "labels": []}, protocol=2))
    with pytest.raises(DataUnavailable, match=r"builtin.*\.print"):
        load_cifar10(tmp_path, download=False)


# --------------------------------------------------------------------- MNIST --

@pytest.mark.parametrize("gz", [False, True], ids=["plain", "gz"])
def test_mnist_roundtrip(tmp_path: Path, gz: bool) -> None:
    data = random_set(13, 6, (1, 28, 28), seed=4)
    folder = write_mnist(tmp_path, data, gz=gz)
    assert all((folder / (name + (".gz" if gz else ""))).is_file() for name in mnist.FILES.values())
    assert_same(load_mnist(tmp_path, download=False), data)


def test_mnist_idx_bytes_by_hand(tmp_path: Path) -> None:
    """An IDX file built from the spec, not by our writer; and torchvision's parser reads our writer's files."""
    images = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    blob = b"\x00\x00\x08\x03" + struct.pack(">iii", 2, 3, 4) + images.tobytes()
    assert idx_bytes(images) == blob
    (tmp_path / "a-idx3-ubyte.gz").write_bytes(gzip.compress(blob))
    assert np.array_equal(read_idx(tmp_path / "a-idx3-ubyte.gz"), images)
    (tmp_path / "b-idx3-ubyte").write_bytes(blob)
    from torchvision.datasets.mnist import read_sn3_pascalvincent_tensor
    assert torch.equal(read_sn3_pascalvincent_tensor(str(tmp_path / "b-idx3-ubyte")), torch.from_numpy(images))
    (tmp_path / "bad").write_bytes(b"\x01\x00\x08\x01" + struct.pack(">i", 1) + b"\x00")
    with pytest.raises(DataUnavailable, match="bad magic"):
        read_idx(tmp_path / "bad")
    (tmp_path / "short").write_bytes(b"\x00\x00\x08\x01" + struct.pack(">i", 5) + b"\x00")
    with pytest.raises(DataUnavailable, match="holds 1 bytes"):
        read_idx(tmp_path / "short")


# ------------------------------------------------------------- missing data --

def _fail_download(*args, **kwargs):
    raise URLError("offline (test)")


@pytest.mark.parametrize("loader, dataset", [(load_cifar10, "CIFAR10"), (load_mnist, "MNIST")], ids=["cifar10", "mnist"])
def test_missing_offline_names_both_fixes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, loader, dataset) -> None:
    with pytest.raises(DataUnavailable) as e:
        loader(tmp_path, download=False)
    for fix in ("--data-dir", DATA_ENV, "download"):
        assert fix in str(e.value)
    assert "\n" not in str(e.value)
    monkeypatch.setattr(torchvision.datasets, dataset, _fail_download)  # no network in tests
    with pytest.raises(DataUnavailable, match=r"download failed \(URLError.*--data-dir DIR"):
        loader(tmp_path, download=True)


def test_data_root_from_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    data = random_set(5, 5, (3, 32, 32), seed=5)
    write_cifar10(tmp_path, data)
    monkeypatch.setenv(DATA_ENV, str(tmp_path))
    assert_same(load_cifar10(None, download=False), data)


# ------------------------------------------------------------------ make-data --

def test_make_data_writes_loadable_standin(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert harness_main(["make-data", "cifar10-synthetic", str(tmp_path / "c"), "--n-train", "40", "--n-test", "20"]) == 0
    assert "wrote cifar10-synthetic" in capsys.readouterr().out
    c = load_cifar10(tmp_path / "c", download=False)
    assert c.x_train.shape == (40, 3, 32, 32) and c.x_test.shape == (20, 3, 32, 32)
    assert_same(c, learnable_images(40, 20))  # the stand-in is a pure function of its seed
    assert harness_main(["make-data", "mnist-synthetic", str(tmp_path / "m"), "--n-train", "30", "--n-test", "10"]) == 0
    assert load_mnist(tmp_path / "m", download=False).x_train.shape == (30, 1, 28, 28)


def test_standin_labels_carry_signal() -> None:
    """Per-class mean images are far apart with the true labels, close with shuffled ones (negative control)."""
    s = learnable_images(2000, 10)
    x = s.x_train.float()

    def spread(labels: torch.Tensor) -> float:
        means = torch.stack([x[labels == c].mean(0) for c in range(10)])
        return float((means - means.mean(0)).abs().mean())

    shuffled = s.y_train[torch.randperm(2000, generator=torch.Generator().manual_seed(0))]
    assert spread(s.y_train) > 3 * spread(shuffled)


# --------------------------------------------------------------- augmentation --

def test_augment_matches_reflect_pad_crop_then_mirror() -> None:
    g = torch.Generator().manual_seed(0)
    x = torch.randint(256, (6, 3, 8, 8), generator=g, dtype=torch.uint8)
    flip = torch.tensor([False, True, False, True, True, False])
    shift = torch.tensor([[0, 0], [0, 0], [2, -1], [-2, 2], [1, 1], [-1, -2]])
    out = augment(x, flip, shift)
    padded = F.pad(x.float(), (2, 2, 2, 2), mode="reflect")
    for i in range(len(x)):
        dy, dx = shift[i].tolist()
        ref = padded[i, :, 2 + dy:2 + dy + 8, 2 + dx:2 + dx + 8]
        ref = ref.flip(-1) if flip[i] else ref
        assert torch.equal(out[i].float(), ref), i
    assert out.dtype == torch.uint8 and out.shape == x.shape


def test_epoch_draws_deterministic_per_seed() -> None:
    x = torch.randint(256, (50, 3, 32, 32), dtype=torch.uint8)
    y = torch.arange(50)

    def epoch(seed: int, e: int):
        d = draw_epochs(torch.Generator().manual_seed(seed), 3, 50, flip=True, translate=2)
        return epoch_images(x, y, d, e)

    a, b, c = epoch(7, 2), epoch(7, 2), epoch(8, 2)
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    assert not torch.equal(a[1], c[1])
    assert sorted(a[1].tolist()) == list(range(50))  # a permutation: every image once per epoch
    d = draw_epochs(torch.Generator().manual_seed(7), 3, 50, flip=True, translate=2)
    assert d.shift.abs().max() == 2 and d.flip.any() and not d.flip.all()
    plain = draw_epochs(torch.Generator().manual_seed(7), 1, 50, flip=False, translate=0)
    assert torch.equal(epoch_images(x, y, plain, 0)[0], x[plain.order[0]])
