"""Encoder Jacobians per time point, reduced over lags: the ``"jacobian"`` method and what ING inverts.

For time point ``t`` the encoder maps a window of frames ``x_t`` of shape (N, window) to the embedding
``z_t`` (D,). Its Jacobian ``J_t`` has shape (D, N, window). For attribution to neurons the lags are
reduced first:

- ``lags="sum"`` (default): ``sum_k J_t[:, :, k]``, the derivative of ``z_t`` with respect to a change
  of a neuron's activity held over the whole window. It is a true Jacobian (a linear map from neurons
  to the embedding), so its pseudo-inverse has the meaning ING relies on (the derivative of the
  neurons with respect to the latents, as the data-generating process would have it).
- ``lags="abs"``: ``sum_k |J_t[:, :, k]|``, which cannot cancel across lags but is no longer a
  Jacobian; offered to compare with the reference package's ``convabs`` variant.

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

The Inverted Neuron Gradient, which inverts these Jacobians, is :mod:`xcebra.attribution.ing`.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from ..models import Embedder
from .base import AttributionMethod, Attributor
from .pinv import block_pseudo_inverse, pseudo_inverse  # noqa: F401  (their former home: benchmarks import them here)

__all__ = ["window_jacobian", "lag_summed_jacobian", "reduce_lags", "time_jacobian", "JacobianMethod", "Jacobian",
           "LAG_REDUCTIONS", "pseudo_inverse", "block_pseudo_inverse"]

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


def time_jacobian(embedder: nn.Module, windows: torch.Tensor, lags: str = "sum") -> torch.Tensor:
    """The lag-reduced Jacobian of each window: (B, N, window) -> (B, D, N), detached.

    ``lags="sum"`` takes the shift derivative (:func:`lag_summed_jacobian`, no (D, N, window) tensor);
    ``"abs"`` reduces the full window Jacobian (:func:`window_jacobian`, :func:`reduce_lags`).
    """
    if lags == "sum":
        return lag_summed_jacobian(embedder, windows)
    return reduce_lags(window_jacobian(embedder, windows), lags)


class JacobianMethod(AttributionMethod):
    """A method computed from the lag-reduced Jacobian of each window (:func:`time_jacobian`) by :meth:`from_jacobian`."""

    @classmethod
    def check_options(cls, options: dict, blocks=None) -> None:
        if options:
            raise ValueError(f"method {cls.name!r} takes no options; got {', '.join(repr(k) for k in options)}")

    @classmethod
    def from_jacobian(cls, jacobian: torch.Tensor, embedder: nn.Module, **options: Any) -> torch.Tensor:
        """Signed attributions (B, D, N) from the Jacobians (B, D, N)."""
        raise NotImplementedError

    @classmethod
    def attribute(cls, embedder: nn.Module, windows: torch.Tensor, lags: str = "sum", **options: Any) -> torch.Tensor:
        """Signed attributions (B, D, N) of a batch of windows (B, N, window)."""
        return cls.from_jacobian(time_jacobian(embedder, windows, lags), embedder, **options)

    @classmethod
    def attributor(cls, embedder: nn.Module, *, lags: str = "sum", random_state: int | None = 0,
                   first_batch: int = 0, **options: Any) -> Attributor:
        def attribute(windows: torch.Tensor) -> torch.Tensor:
            return cls.attribute(embedder, windows, lags, **options)
        return attribute


class Jacobian(JacobianMethod):
    """``"jacobian"``: the plain lag-reduced Jacobian, embedding units per unit of neural activity."""

    name = "jacobian"

    @classmethod
    def from_jacobian(cls, jacobian: torch.Tensor, embedder: nn.Module, **options: Any) -> torch.Tensor:
        return jacobian
