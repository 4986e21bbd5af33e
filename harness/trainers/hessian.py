"""Top eigenvalues of a training loss's Hessian from Hessian-vector products.

Everything works on a *batch of independent models* at once: vectors have shape
``[M, P]`` (M models of P parameters each) and ``hvp`` must be block-diagonal
over M, which is what the gradient of a summed loss Σ_m L_m(θ_m) gives. So one
call measures the sharpness of every seed of a chunk, each exactly as if alone.

* ``lanczos`` — the largest *algebraic* eigenvalues (λ_max, the one that bounds
  the stable GD step η < 2/λ_max), with full re-orthogonalisation; the default.
* ``power_iteration`` — the eigenvalue of largest *magnitude*; simpler, and
  slower when the top of the spectrum is crowded.
"""
from __future__ import annotations

from typing import Callable, Sequence

import torch

HVP = Callable[[torch.Tensor], torch.Tensor]

#: a Lanczos residual below this (relative to the largest |α|) means the Krylov
#: space is exhausted (e.g. P parameters and P iterations); restart orthogonally
_BREAKDOWN = 1e-10


def flat_hvp(loss_fn: Callable[[], torch.Tensor], params: Sequence[torch.Tensor]) -> HVP:
    """An HVP on ``[M, P]`` vectors for parameters stacked with a leading seed axis of size M.

    ``loss_fn()`` must return the *sum* over the M models of each model's loss,
    so that its Hessian is block-diagonal. The gradient graph is built once and
    reused by every product (double back-propagation).
    """
    params = list(params)
    m = params[0].shape[0]
    sizes = [p[0].numel() for p in params]
    grads = torch.autograd.grad(loss_fn(), params, create_graph=True)

    def hvp(v: torch.Tensor) -> torch.Tensor:
        parts = torch.split(v, sizes, dim=1)
        vs = [part.reshape(p.shape).to(p.dtype) for part, p in zip(parts, params)]
        hv = torch.autograd.grad(grads, params, grad_outputs=vs, retain_graph=True)
        return torch.cat([h.reshape(m, -1) for h in hv], dim=1).to(v.dtype)

    return hvp


def _start(m: int, p: int, dtype: torch.dtype, device: torch.device, seeds: Sequence[int] | None) -> torch.Tensor:
    # One generator per model keeps each model's estimate independent of its chunk-mates.
    seeds = list(range(m)) if seeds is None else list(seeds)
    v = torch.stack([torch.randn(p, generator=torch.Generator().manual_seed(int(s)), dtype=torch.float64) for s in seeds])
    v = v.to(device=device, dtype=dtype)
    return v / v.norm(dim=1, keepdim=True)


def lanczos(
    hvp: HVP,
    m: int,
    p: int,
    *,
    k: int = 1,
    iters: int = 20,
    dtype: torch.dtype = torch.float64,
    device: torch.device | str = "cpu",
    seeds: Sequence[int] | None = None,
    start: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The ``k`` largest eigenvalues of each model's Hessian, descending: ``([M, k], Ritz vectors [M, k, P])``.

    ``iters`` Krylov steps (capped at P); with full re-orthogonalisation the
    extreme eigenvalues converge fast when they stand out from the bulk, as the
    top of a network's spectrum does. ``seeds`` (one per model) fix the random
    start vectors; ``start`` ([M, P]) replaces them, e.g. last measurement's
    top vector when tracking sharpness along training.
    """
    device = torch.device(device)
    iters = max(1, min(iters, p))
    k = min(k, iters)
    v = _start(m, p, dtype, device, seeds) if start is None else start.to(device=device, dtype=dtype)
    v = v / v.norm(dim=1, keepdim=True)
    basis = torch.zeros(iters, m, p, dtype=dtype, device=device)
    alpha = torch.zeros(m, iters, dtype=dtype, device=device)
    beta = torch.zeros(m, iters, dtype=dtype, device=device)
    gen = torch.Generator().manual_seed(12345)
    for j in range(iters):
        basis[j] = v
        w = hvp(v).to(dtype)
        alpha[:, j] = (w * v).sum(1)
        # Full re-orthogonalisation, twice ("twice is enough"): keeps Ritz values
        # free of the spurious copies plain three-term Lanczos produces.
        for _ in range(2):
            w = w - torch.einsum("jm,jmp->mp", torch.einsum("jmp,mp->jm", basis[: j + 1], w), basis[: j + 1])
        b = w.norm(dim=1)
        if j + 1 == iters:
            break
        scale = alpha[:, : j + 1].abs().amax(1).clamp_min(1e-300)
        dead = b <= _BREAKDOWN * scale
        if dead.any():
            # Invariant subspace found: continue from a fresh orthogonal direction, coupling 0.
            r = torch.randn(m, p, generator=gen, dtype=torch.float64).to(device=device, dtype=dtype)
            for _ in range(2):
                r = r - torch.einsum("jm,jmp->mp", torch.einsum("jmp,mp->jm", basis[: j + 1], r), basis[: j + 1])
            r = r / r.norm(dim=1, keepdim=True)
            w = torch.where(dead[:, None], r, w / b.clamp_min(1e-300)[:, None])
            b = torch.where(dead, torch.zeros_like(b), b)
        else:
            w = w / b[:, None]
        beta[:, j] = b
        v = w
    t = torch.diag_embed(alpha) + torch.diag_embed(beta[:, : iters - 1], 1) + torch.diag_embed(beta[:, : iters - 1], -1)
    evals, evecs = torch.linalg.eigh(t)                       # ascending
    top = evals.flip(-1)[:, :k]
    ritz = torch.einsum("jmp,mjk->mkp", basis, evecs.flip(-1)[:, :, :k])
    return top, ritz


def power_iteration(
    hvp: HVP,
    m: int,
    p: int,
    *,
    iters: int = 200,
    tol: float = 1e-7,
    dtype: torch.dtype = torch.float64,
    device: torch.device | str = "cpu",
    seeds: Sequence[int] | None = None,
    start: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Eigenvalue of largest magnitude per model and its vector: ``([M], [M, P])``.

    Stops when every model's Rayleigh quotient moved by less than ``tol``
    (relative) in one step.
    """
    device = torch.device(device)
    v = _start(m, p, dtype, device, seeds) if start is None else start.to(device=device, dtype=dtype)
    v = v / v.norm(dim=1, keepdim=True)
    lam = torch.zeros(m, dtype=dtype, device=device)
    for _ in range(iters):
        w = hvp(v).to(dtype)
        new = (w * v).sum(1)
        norm = w.norm(dim=1, keepdim=True).clamp_min(1e-300)
        v = w / norm
        converged = bool(((new - lam).abs() <= tol * new.abs().clamp_min(1e-300)).all())
        lam = new
        if converged:
            break
    return lam, v
