"""The linear probe of the transferability law: a ridge-regression classifier on frozen features, per seed."""
from __future__ import annotations

import torch
import torch.nn.functional as F

#: ridge penalty of the linear probe, relative to the mean feature variance (standardised: 1)
PROBE_RIDGE = 1e-3


def ridge_probe(ftr: torch.Tensor, ytr: torch.Tensor, fte: torch.Tensor, classes: int) -> torch.Tensor:
    """Test predictions [M, N_test] of a ridge-regression classifier on standardised features, per seed."""
    mean, std = ftr.mean(1, keepdim=True), ftr.std(1, keepdim=True).clamp_min(1e-6)
    a = torch.cat([(ftr - mean) / std, torch.ones_like(ftr[..., :1])], -1).double()
    b = torch.cat([(fte - mean) / std, torch.ones_like(fte[..., :1])], -1).double()
    y = F.one_hot(ytr, classes).double().expand(a.shape[0], -1, -1)
    gram = a.transpose(1, 2) @ a
    reg = PROBE_RIDGE * len(ytr) * torch.eye(gram.shape[-1], dtype=gram.dtype, device=gram.device)
    w = torch.linalg.solve(gram + reg, a.transpose(1, 2) @ y)
    return (b @ w).argmax(-1)
