"""Per-layer measurements of scale-invariant weights during training (seed 001's plots).

``LayerStats.observe`` is called once per step with the weights w_t and loss
gradients g_t *before* the update; every ``every`` steps it records, per seed
and per layer:

=================  ===========================================================
``w_norm2``        |w|²
``g_norm``         |g|
``cos_wg``         cos(w, g) — 0 for scale-invariant weights (w·g = 0)
``wg``             w·g
``step``           λ|g|/|w|: the LR that LARS would need to make this SGD step (eq. 6)
``shrink``         2λα|w|²: the first-order decrease of |w|² by weight decay (eq. 1′)
``growth``         λ²|g|²: the increase of |w|² by an orthogonal gradient step (eq. 2′)
``grad_ema_corr``  cos(g_t, v_{t−1}) with v_t = ρ_e·v_{t−1} + g_t, ρ_e = 0.9: the
                   correlation of a gradient with the momentum-style average of
                   earlier gradients (NaN at the first step)
``lr``, ``steps``  λ at the recorded steps, and the steps themselves
=================  ===========================================================

λ is the LR of the step, α the weight decay. The EMA is updated at every step,
not only at recorded ones, so its meaning does not depend on ``every``.
Probes only read the tensors they are given (under ``no_grad``): training with
or without them gives bitwise the same weights (``tests/test_probes.py``).
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

#: seed 001: "an exponential moving average of previous gradients v_{t-1} (as appears in
#: the update step of SGD + momentum with ρ=0.9)"
EMA_RHO = 0.9

FIELDS = ("w_norm2", "g_norm", "cos_wg", "wg", "step", "shrink", "growth", "grad_ema_corr", "lr")


def _flat_dot(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Per-model dot product of stacked tensors [M, ...] → [M], in float64."""
    return (a.flatten(1).double() * b.flatten(1).double()).sum(1)


class LayerStats:
    """Records the table above for stacked weights ``[M, ...]`` of the named layers."""

    def __init__(self, names: Sequence[str], every: int, weight_decay: float, ema_rho: float = EMA_RHO) -> None:
        if every <= 0:
            raise ValueError(f"probe interval must be positive, got {every}")
        self.names = list(names)
        self.every = int(every)
        self.alpha = float(weight_decay)
        self.ema_rho = float(ema_rho)
        self._ema: list[torch.Tensor | None] = [None] * len(self.names)
        self._steps: list[int] = []
        self._rows: dict[str, list[torch.Tensor]] = {f: [] for f in FIELDS}

    @torch.no_grad()
    def observe(self, step: int, lr: float, weights: Sequence[torch.Tensor], grads: Sequence[torch.Tensor]) -> None:
        record = step % self.every == 0
        cols: dict[str, list[torch.Tensor]] = {f: [] for f in FIELDS}
        for i, (w, g) in enumerate(zip(weights, grads)):
            ema = self._ema[i]
            if record:
                ww, gg, wg = _flat_dot(w, w), _flat_dot(g, g), _flat_dot(w, g)
                wn, gn = ww.sqrt(), gg.sqrt()
                if ema is None:
                    corr = torch.full_like(ww, float("nan"))
                else:
                    corr = _flat_dot(g, ema) / (gn * _flat_dot(ema, ema).sqrt())
                cols["w_norm2"].append(ww)
                cols["g_norm"].append(gn)
                cols["cos_wg"].append(wg / (wn * gn))
                cols["wg"].append(wg)
                cols["step"].append(lr * gn / wn)
                cols["shrink"].append(2.0 * lr * self.alpha * ww)
                cols["growth"].append(lr * lr * gg)
                cols["grad_ema_corr"].append(corr)
                cols["lr"].append(torch.full_like(ww, lr))
            # v_t = ρ v_{t-1} + g_t (geometric memory: no drift to guard against in float32)
            self._ema[i] = g.detach().clone() if ema is None else ema.mul_(self.ema_rho).add_(g)
        if record:
            self._steps.append(step)
            for f in FIELDS:
                self._rows[f].append(torch.stack(cols[f], dim=1).cpu())  # [M, L]

    def arrays(self, prefix: str = "si_") -> list[dict[str, np.ndarray]]:
        """One dict per seed: ``{prefix+field: [T, L] float64, prefix+'steps': [T]}``."""
        if not self._steps:
            return []
        stacked = {f: torch.stack(rows, dim=1).numpy() for f, rows in self._rows.items()}  # [M, T, L]
        m = next(iter(stacked.values())).shape[0]
        steps = np.asarray(self._steps, dtype=np.int64)
        return [{**{prefix + f: stacked[f][i] for f in FIELDS}, prefix + "steps": steps} for i in range(m)]
