"""Batched pseudo-inverses of Jacobians, whole or per block: the linear algebra of the Inverted Neuron Gradient.

Every function takes a batch of matrices (B, D, N), one per time point, and returns the transposed
pseudo-inverse (B, D, N) in the input's dtype, computed in float64. The cutoff for small singular values
is the Jacobian's own precision (see :func:`pseudo_inverse`), so the round-off direction of a normalised
block is not inverted into huge values.
"""

from __future__ import annotations

import torch

__all__ = ["pseudo_inverse", "block_pseudo_inverse"]


def pseudo_inverse(jacobian: torch.Tensor, solver: str = "svd", rank: int | None = None) -> torch.Tensor:
    """Batched Moore-Penrose pseudo-inverse, transposed: (B, D, N) -> (B, D, N) holding ``pinv(J_t).T``.

    ``solver="svd"`` takes the singular value decomposition of each ``J_t`` from the symmetric
    eigendecomposition of its small Gram matrix (``J_t J_t^T``, D x D, or ``J_t^T J_t`` when N < D):
    ``pinv(J) = J^T U diag(1/s^2) U^T`` over the kept singular values ``s``. For float32 Jacobians that
    is 3x faster than a batched LAPACK SVD (measured on 1,024 14 x 90 matrices) and agrees with
    ``numpy.linalg.pinv`` to 1e-10 of the largest entry (tested): in float64, squaring the singular
    values loses nothing above the float32-level cutoff below. Float64 Jacobians, whose cutoff is
    float64's, take LAPACK's SVD.
    ``"lstsq"`` solves ``J_t X = I`` for the minimum-norm ``X`` (driver ``gelsd``). Both run in float64
    and return the input's dtype.

    Singular values below ``max(D, N) * eps * s_max`` are treated as zero, with ``eps`` the machine
    epsilon of the dtype the Jacobian was *computed* in (float32: 1.2e-7): the default cutoff of
    ``numpy.linalg.pinv`` (``rtol``), ``torch.linalg.pinv`` and ``scipy.linalg.pinv``, applied at the
    precision the Jacobian really has. This matters: with the cosine loss every block is normalised to a
    sphere, so its Jacobian has no radial direction and a k-dimensional block contributes rank k - 1; the
    missing direction shows up as round-off of order eps, which a float64 cutoff would invert into values
    of order 1/eps. ``scipy.linalg.lstsq`` does not cut off this way: its default ``cond`` is the epsilon of
    the dtype LAPACK runs in, with no ``max(D, N)`` factor, and a float32 Jacobian solved against a float64
    identity runs in float64. The reference package's ``jf-inv-lsq`` does exactly that, so on cosine
    models it inverts the round-off direction (tested: a (14, 90) float32 matrix of rank 13 gives
    entries ~1e6 there and ~0.04 here).

    ``rank`` (``solver="svd"`` only): keep at most the ``rank`` largest singular values of each ``J_t``
    (a truncated pseudo-inverse); ``None`` keeps every one above the cutoff.
    """
    if rank is not None and (isinstance(rank, bool) or not isinstance(rank, int) or rank < 1):
        raise ValueError(f"rank must be None or an int >= 1; got {rank!r}")
    if rank is not None and solver != "svd":
        raise ValueError(f"rank needs solver='svd' (a truncated SVD); got solver={solver!r}")
    rtol = max(jacobian.shape[-2:]) * torch.finfo(jacobian.dtype).eps
    j64 = jacobian.to(torch.float64)
    if solver == "svd":
        # the Gram route squares the singular values: exact enough while the cutoff's square stays far above
        # float64's round-off (float32 Jacobians: rtol^2 ~ 1e-10); float64 Jacobians take LAPACK's SVD
        if rtol >= 1e-6:
            inverse = _gram_pinv(j64, rtol, rank)
        elif rank is None or rank >= min(j64.shape[-2:]):
            inverse = torch.linalg.pinv(j64, rtol=rtol)
        else:
            inverse = _svd_pinv(j64, rtol, rank)
    elif solver == "lstsq":
        eye = torch.eye(j64.shape[1], dtype=torch.float64, device="cpu").expand(j64.shape[0], -1, -1)
        inverse = torch.linalg.lstsq(j64.cpu(), eye, rcond=rtol, driver="gelsd").solution.to(j64.device)
    else:
        raise ValueError(f"solver must be one of 'svd', 'lstsq'; got {solver!r}")
    return inverse.transpose(1, 2).to(jacobian.dtype)


def _gram_pinv(jacobian: torch.Tensor, rtol: float, rank: int | None = None) -> torch.Tensor:
    """Batched pseudo-inverse (B, D, N) -> (B, N, D) through the eigendecomposition of the smaller Gram matrix.

    Singular values ``s`` with ``s < rtol * s_max`` are dropped (eigenvalues ``s^2 < rtol^2 * s_max^2``),
    as ``torch.linalg.pinv(..., rtol=rtol)`` does; with ``rank``, so is every one below the ``rank`` largest.
    """
    rows = jacobian.shape[-2] <= jacobian.shape[-1]
    gram = jacobian @ jacobian.transpose(-1, -2) if rows else jacobian.transpose(-1, -2) @ jacobian
    eigenvalues, vectors = torch.linalg.eigh(gram)  # ascending: the largest come last
    largest = eigenvalues[..., -1:].clamp_min(0.0)
    kept = eigenvalues > (rtol * rtol) * largest
    if rank is not None:
        kept &= torch.arange(eigenvalues.shape[-1], device=eigenvalues.device) >= eigenvalues.shape[-1] - rank
    inverse_eigenvalues = torch.where(kept, 1.0 / torch.where(kept, eigenvalues, torch.ones_like(eigenvalues)),
                                      torch.zeros_like(eigenvalues))
    gram_inverse = (vectors * inverse_eigenvalues[..., None, :]) @ vectors.transpose(-1, -2)
    if rows:  # pinv(J) = J^T (J J^T)^+
        return jacobian.transpose(-1, -2) @ gram_inverse
    return gram_inverse @ jacobian.transpose(-1, -2)  # pinv(J) = (J^T J)^+ J^T


def _svd_pinv(jacobian: torch.Tensor, rtol: float, rank: int) -> torch.Tensor:
    """Batched pseudo-inverse (B, D, N) -> (B, N, D) by LAPACK's SVD, keeping at most the ``rank`` largest
    singular values and none below ``rtol * s_max``."""
    u, s, vh = torch.linalg.svd(jacobian, full_matrices=False)  # s descending
    kept = (s > rtol * s[..., :1]) & (torch.arange(s.shape[-1], device=s.device) < rank)
    inverse_s = torch.where(kept, 1.0 / torch.where(kept, s, torch.ones_like(s)), torch.zeros_like(s))
    return (vh.transpose(-1, -2) * inverse_s[..., None, :]) @ u.transpose(-1, -2)


def block_pseudo_inverse(jacobian: torch.Tensor, block_slices, ranks=None) -> torch.Tensor:
    """Per-block transposed pseudo-inverse (B, D, N) -> (B, D, N): the rows of each block are
    ``pinv(J_t[block])^T`` with at most ``ranks[i]`` singular values kept (``None``: full numerical rank).

    ``block_slices``: (start, stop) pairs covering 0..D in order (``Embedder.block_slices``);
    ``ranks``: one int >= 1 or None per block, or None for all full rank.
    """
    block_slices = [(int(a), int(b)) for a, b in block_slices]
    ranks = [None] * len(block_slices) if ranks is None else list(ranks)
    if len(ranks) != len(block_slices):
        raise ValueError(f"ranks has {len(ranks)} entries but there are {len(block_slices)} blocks; give one per block")
    if not block_slices or block_slices[0][0] != 0 or block_slices[-1][1] != jacobian.shape[1] or any(
            b0[1] != b1[0] for b0, b1 in zip(block_slices, block_slices[1:])):
        raise ValueError(f"block_slices {block_slices} must cover 0..{jacobian.shape[1]} in order without gaps")
    return torch.cat([pseudo_inverse(jacobian[:, a:b], "svd", rank) for (a, b), rank in zip(block_slices, ranks)],
                     dim=1)
