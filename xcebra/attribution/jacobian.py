"""Encoder Jacobians per time point and the Inverted Neuron Gradient (ING).

For time point ``t`` the encoder maps a window of frames ``x_t`` of shape (N, window) to the embedding
``z_t`` (D,). Its Jacobian ``J_t`` has shape (D, N, window). For attribution to neurons the lags are
reduced first:

- ``lags="sum"`` (default): ``sum_k J_t[:, :, k]``, the derivative of ``z_t`` with respect to a change
  of a neuron's activity held over the whole window. It is a true Jacobian (a linear map from neurons
  to the embedding), so its pseudo-inverse has the meaning ING relies on (the derivative of the
  neurons with respect to the latents, as the data-generating process would have it).
- ``lags="abs"``: ``sum_k |J_t[:, :, k]|``, which cannot cancel across lags but is no longer a
  Jacobian; offered to compare with the reference package's ``convabs`` variant.

ING is ``pinv(J_t)`` (N, D), computed in float64 by a batched SVD (``"ing"``) or a batched minimum-
norm least-squares solve (``"ing-lstsq"``), and transposed to (D, N).

Units, and the reference package's scale
----------------------------------------
A ``"jacobian"`` map is in embedding units per unit of neural activity held over the encoder's whole
window; an ING map is its inverse, neural units per embedding unit. The reference package (``cebra``
0.6.1) *averages* the per-lag Jacobian over the window instead of summing it (``J.mean(-1)``), so for an
encoder of ``window`` frames (``model.encoder_.window``: 1 for ``offset1``, 10 for ``offset10``):

- xcebra ``"jacobian"`` = ``window`` x the reference's ``jf``;
- xcebra ``"ing"`` = the reference's ``jf-inv-svd`` / ``window`` (``pinv(J / w) = w pinv(J)``).

Multiply an ING map's ``values`` by ``window`` (or divide a Jacobian map's) to put it on the reference's
scale. For ``offset1`` the two agree. AUCs and every ranking within a map are unaffected; raw values
and plot scales are not comparable across packages, or across encoders of different windows, without
this factor. We sum because the sum is the derivative of a true linear map (a sustained change of
each neuron's activity), whose inverse is what ING means; the mean is the same map scaled by ``1/w``.

``"ing-block"`` inverts each embedding block on its own: the rows of block ``b`` are
``pinv(J_t[b])^T``, where ``J_t[b]`` (D_b, N) holds that block's rows, keeping at most ``rank_b``
singular values. Why: a block trained on a d-dimensional label (``time_delta`` or ``delta_normal`` on
position, d = 2) is identified as a function of that label, so its Jacobian has rank d in theory; a
4-dimensional cosine block has d + 1 = 3 numerically non-zero singular values, and the direction
beyond d is what the objective did not identify. Inverting it divides by a small singular value and
spreads that block's attribution over neurons that do not drive the label (measured on the seed's
RatInABox setting: the third singular value of the behaviour block is ~0.2 of the first; keeping two
of them raised the behaviour-block hypothesis AUC from 0.958 to 0.995 on one fit, see
``benchmarks/ing_variants.py``). Without a rank, ``"ing-block"`` is the pseudo-inverse of each block's
Jacobian at full numerical rank.
"""

from __future__ import annotations

import torch
from torch import nn

from ..models import Embedder

__all__ = ["window_jacobian", "lag_summed_jacobian", "reduce_lags", "pseudo_inverse", "block_pseudo_inverse",
           "per_time_attribution", "LAG_REDUCTIONS"]

LAG_REDUCTIONS = ("sum", "abs")


def window_jacobian(embedder: nn.Module, windows: torch.Tensor) -> torch.Tensor:
    """Jacobians of the embedding of each window with respect to that window.

    Parameters
    ----------
    embedder : module mapping (B, N, window) to (B, 1, D); windows must be embedded independently of
        each other (true of every xcebra encoder: no batch statistics).
    windows : tensor of shape (B, N, window).

    Returns
    -------
    tensor of shape (B, D, N, window), detached. One forward pass for the batch, then one reverse pass
    per output dimension over the whole batch, reusing the graph (measured 2x faster on CPU than
    ``torch.func.vmap(jacrev(...))``, which materialises the D cotangents at once). The module is
    called with detached copies of its parameters, so its weights, flags and gradients are untouched.
    """
    x = windows.detach().requires_grad_(True)
    return _rows_of_jacobian(embedder, x, (x,), {})


def lag_summed_jacobian(embedder: nn.Module, windows: torch.Tensor) -> torch.Tensor:
    """``sum_k J_t[:, :, k]`` for each window, (B, N, window) -> (B, D, N), detached.

    The derivative of the embedding with respect to a shift ``s`` (B, N) added to every frame of the
    window, which equals the Jacobian of :func:`window_jacobian` summed over lags. An
    :class:`xcebra.models.Embedder` pushes the shift through its encoder's linear first layer, so
    the reverse passes stop there; any other module gets ``x + s`` and the same result.
    One forward pass for the batch, one reverse pass per output dimension; parameters are untouched.
    """
    x = windows.detach()
    shift = torch.zeros(x.shape[:2], dtype=x.dtype, device=x.device, requires_grad=True)
    if isinstance(embedder, Embedder):
        return _rows_of_jacobian(embedder, shift, (x,), {"shift": shift})
    return _rows_of_jacobian(embedder, shift, (x + shift[:, :, None],), {})


def _rows_of_jacobian(embedder: nn.Module, wrt: torch.Tensor, args: tuple, kwargs: dict) -> torch.Tensor:
    """(B, D, *wrt.shape[1:]): d embedder(*args, **kwargs)[:, 0, d] / d wrt, one reverse pass per output dimension.

    The module is called with detached copies of its parameters (``functional_call``), so its weights,
    flags and gradients are untouched.
    """
    state = {name: value.detach() for name, value in embedder.named_parameters()}
    state.update({name: value for name, value in embedder.named_buffers()})
    with torch.enable_grad():
        out = torch.func.functional_call(embedder, state, args, kwargs)[:, 0]
        ones = torch.ones(out.shape[0], dtype=out.dtype, device=out.device)
        rows = [torch.autograd.grad(out[:, d], wrt, grad_outputs=ones, retain_graph=d < out.shape[1] - 1)[0]
                for d in range(out.shape[1])]
    return torch.stack(rows, dim=1)


def reduce_lags(jacobian: torch.Tensor, lags: str = "sum") -> torch.Tensor:
    """(B, D, N, window) -> (B, D, N) by summing over lags (``"sum"``) or summing absolute values (``"abs"``)."""
    if lags == "sum":
        return jacobian.sum(-1)
    if lags == "abs":
        return jacobian.abs().sum(-1)
    raise ValueError(f"lags must be one of 'sum', 'abs'; got {lags!r}")


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


def per_time_attribution(embedder: nn.Module, windows: torch.Tensor, method: str, lags: str = "sum",
                         block_ranks=None) -> torch.Tensor:
    """Signed per-time-point attribution (B, D, N) for ``method`` in {"jacobian", "ing", "ing-lstsq", "ing-block"}.

    ``block_ranks`` (``"ing-block"`` only): one int or None per block of ``embedder.block_slices``.
    """
    if lags == "sum":
        jacobian = lag_summed_jacobian(embedder, windows)
    else:
        jacobian = reduce_lags(window_jacobian(embedder, windows), lags)
    if method == "jacobian":
        return jacobian
    if method == "ing":
        return pseudo_inverse(jacobian, "svd")
    if method == "ing-lstsq":
        return pseudo_inverse(jacobian, "lstsq")
    if method == "ing-block":
        return block_pseudo_inverse(jacobian, embedder.block_slices, block_ranks)
    raise ValueError(f"method must be one of 'jacobian', 'ing', 'ing-lstsq', 'ing-block'; got {method!r}")
