"""Jacobian (Frobenius-norm) regularizer and its weight schedule.

The regularizer is ``R = 1/2 * mean_b sum_k ||J_k(x_b)||_F^2``, where ``J_k`` is the Jacobian of the
embedding slice seen by objective ``k`` with respect to the input window ``x_b`` (the scale of the
reference package, so that its weights carry over). Dimensions seen by several objectives count once
per objective (``row_weights``).
"""

from __future__ import annotations

from typing import Sequence

import torch

__all__ = ["jacobian_penalty", "draw_projections", "ramp_weight"]


def jacobian_penalty(output: torch.Tensor, inputs: torch.Tensor, *, row_weights: Sequence[float] | torch.Tensor | None = None,
                     n_projections: int = 1, exact: bool = False, generator: torch.Generator | None = None,
                     create_graph: bool = True, projections: torch.Tensor | None = None,
                     denominator: int | None = None) -> torch.Tensor:
    """Estimate ``1/2 * mean_b sum_r w_r ||d output[b, r] / d inputs[b]||^2`` (differentiable).

    Parameters
    ----------
    output : tensor of shape (B, D), computed from ``inputs`` (which requires grad).
    inputs : tensor of shape (B, ...), one input (window) per output row.
    row_weights : (D,) non-negative weights, default all ones.
    n_projections : int
        Random projections per sample. Each draws ``v`` uniformly on the unit sphere of R^D; since
        ``E[D v v^T] = I``, ``D * ||J^T (sqrt(w) * v)||^2`` is an unbiased estimate of ``sum_r w_r ||J_r||^2``.
        One backward pass (and one double-backward in training) per projection, whatever D is.
    exact : bool
        Compute all D vector-Jacobian products instead (D backward passes).
    generator : torch.Generator for the projections.
    create_graph : keep the graph so that the penalty can be back-propagated (training).
    projections : (n_projections, B, D) tensor, optional
        Projection directions drawn beforehand (:func:`draw_projections`) instead of from ``generator``;
        data-parallel training draws them for the whole subset and hands each rank its rows.
    denominator : int, optional
        Divide by this instead of B: a rank's share of a mean over ``denominator`` samples.

    Returns
    -------
    0-d tensor.
    """
    batch, dim = output.shape
    denominator = batch if denominator is None else denominator
    weights = torch.ones(dim, dtype=output.dtype, device=output.device) if row_weights is None else \
        torch.as_tensor(row_weights, dtype=output.dtype, device=output.device)
    scale = weights.sqrt()
    if exact:
        basis = torch.diag(scale)[:, None, :].expand(dim, batch, dim)
        (grads,) = torch.autograd.grad(output, inputs, grad_outputs=basis, is_grads_batched=True,
                                       create_graph=create_graph)
        return 0.5 * grads.pow(2).sum() / denominator
    if projections is None:
        projections = draw_projections(n_projections, batch, dim, generator, output.dtype)
    if projections.shape != (n_projections, batch, dim):
        raise ValueError(f"projections must have shape {(n_projections, batch, dim)}; got {tuple(projections.shape)}")
    total = output.new_zeros(())
    for v in projections.to(output.device):
        (grad,) = torch.autograd.grad(output, inputs, grad_outputs=v * scale, create_graph=create_graph,
                                      retain_graph=True)
        total = total + dim * grad.pow(2).sum() / denominator
    return 0.5 * total / n_projections


def draw_projections(n_projections: int, batch: int, dim: int, generator: torch.Generator | None,
                     dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """(n_projections, batch, dim) directions uniform on the unit sphere of R^dim, one per sample (CPU)."""
    draws = []
    for _ in range(n_projections):
        v = torch.randn(batch, dim, generator=generator, dtype=dtype)
        draws.append(v / v.norm(dim=1, keepdim=True).clamp_min(1e-12))
    return torch.stack(draws) if draws else torch.empty(0, batch, dim, dtype=dtype)


def ramp_weight(step: int, weight: float, ramp: tuple[int, int] | None) -> float:
    """Regularizer weight at ``step`` (0-based).

    ``ramp=None``: ``weight`` from the first step. ``ramp=(on, off)``: 0 before ``on``, rising linearly
    to ``weight`` at ``off``, then constant (the seed's ``LinearRampUp``).
    """
    if ramp is None:
        return float(weight)
    on, off = ramp
    if step < on:
        return 0.0
    if step >= off:
        return float(weight)
    return float(weight) * (step - on) / (off - on)
