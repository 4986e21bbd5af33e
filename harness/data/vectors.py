"""Real data sets as flat vectors for the MLP trainers: MNIST-1D's signals, digits' 64 pixels."""
from __future__ import annotations

import numpy as np
import torch

from harness.data import digits, mnist1d
from harness.data.synthetic import TensorTask

#: the data sets ``vector_task`` serves (recipe ``dataset`` names)
VECTOR_SETS = ("mnist1d", "digits")
#: training-set sizes of the fixed splits (full-batch trainers check their n_train against them)
TRAIN_SIZES = {"mnist1d": 4000, "digits": 1500}


def vector_task(name: str, n_train: int = 0, n_test: int = 0) -> TensorTask:
    """The first ``n_train`` / ``n_test`` examples (0 = all), flattened and standardised with training statistics.

    MNIST-1D is already standardised by its generator, digits' grey levels are not;
    one scalar mean and std (not per feature: digits' border pixels are constant) keeps
    the inputs' geometry.
    """
    if name not in VECTOR_SETS:
        raise ValueError(f"no vector data set {name!r}; known: {VECTOR_SETS}")
    d = (mnist1d if name == "mnist1d" else digits).load()
    xtr, xte = d.x_train.reshape(len(d.x_train), -1), d.x_test.reshape(len(d.x_test), -1)
    xtr, ytr, xte, yte = xtr[: n_train or None], d.y_train[: n_train or None], xte[: n_test or None], d.y_test[: n_test or None]
    mean, std = float(xtr.mean()), float(xtr.std()) or 1.0
    f = lambda a: torch.from_numpy(((a - mean) / std).astype(np.float32))  # noqa: E731
    return TensorTask(f(xtr), torch.from_numpy(ytr), f(xte), torch.from_numpy(yte))
