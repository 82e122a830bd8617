"""Encoders: neural windows (B, N, L) -> embeddings (B, D, L - window + 1).

Every encoder is a temporal convolution (the MLP ``offset1`` is one with a kernel of one frame), so
the same network embeds a batch of windows (``L == window``) or a whole recording at once
(``B == 1, L == T``), sharing the intermediate frames of overlapping windows. Embedding time point
``t`` uses frames ``t - left .. t + right - 1`` with ``left + right == window`` (``model.offset``).
"""

from __future__ import annotations

import torch
from torch import nn

from ._validation import check_int

__all__ = ["Encoder", "Offset1", "ConvEncoder", "MODELS", "make_encoder"]


class Encoder(nn.Module):
    """Base class. Subclasses set ``window``, ``left`` and implement ``forward(x, shift=None)``.

    ``shift`` (B, N), when given, is added to every frame of the window ``x`` (B, N, L). Both encoders
    here start with a linear layer and push the shift through it analytically (``W x + (sum_k W_k) s``),
    so the derivative of the embedding with respect to ``shift``, which is the Jacobian summed over lags
    that ING inverts, costs no transposed convolution of the first layer and no (D, N, window) tensor
    (``offset10``: 0.77 instead of 0.91 s per 1,024 windows, measured).
    """

    window: int
    left: int

    def __init__(self, n_neurons: int, hidden_units: int, output_dim: int):
        super().__init__()
        self.n_neurons = check_int("n_neurons", n_neurons, minimum=1)
        self.hidden_units = check_int("hidden_units", hidden_units, minimum=1)
        self.output_dim = check_int("output_dim", output_dim, minimum=1)

    @property
    def right(self) -> int:
        return self.window - self.left

    @property
    def offset(self) -> tuple[int, int]:
        """Frames used before and after (inclusive of the current frame) each time point: ``(left, right)``."""
        return self.left, self.right


def _linear_first_layer(net: nn.Module, kind: type) -> nn.Module | None:
    """``net[0]`` when ``net`` is a Sequential that starts with a layer of ``kind`` (a user may swap ``net``)."""
    if isinstance(net, nn.Sequential) and len(net) > 1 and isinstance(net[0], kind):
        return net[0]
    return None


class Offset1(Encoder):
    """Frame-wise MLP: N -> H -> H -> H/2 -> D with GELU; receptive field of one frame."""

    window = 1
    left = 0

    def __init__(self, n_neurons: int, hidden_units: int, output_dim: int):
        super().__init__(n_neurons, hidden_units, output_dim)
        half = max(1, hidden_units // 2)
        self.net = nn.Sequential(
            nn.Linear(n_neurons, hidden_units), nn.GELU(),
            nn.Linear(hidden_units, hidden_units), nn.GELU(),
            nn.Linear(hidden_units, half), nn.GELU(),
            nn.Linear(half, output_dim),
        )

    def forward(self, x: torch.Tensor, shift: torch.Tensor | None = None) -> torch.Tensor:
        """x: (B, N, L) -> (B, D, L); ``shift`` (B, N) is added to every frame (see :class:`Encoder`)."""
        batch, _, length = x.shape
        frames = x.transpose(1, 2).reshape(batch * length, self.n_neurons)
        if shift is None:
            out = self.net(frames)
        elif (first := _linear_first_layer(self.net, nn.Linear)) is None:
            out = self.net(frames + shift.repeat_interleave(length, dim=0))
        else:
            hidden = first(frames) + (shift @ first.weight.T).repeat_interleave(length, dim=0)
            out = self.net[1:](hidden)
        return out.reshape(batch, length, -1).transpose(1, 2)


class _Residual(nn.Module):
    """``x[..., 1:-1] + GELU(conv_k3(x))``: a residual convolution that trims one frame per side."""

    def __init__(self, units: int):
        super().__init__()
        self.conv = nn.Conv1d(units, units, 3)
        self.act = nn.GELU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x[..., 1:-1] + self.act(self.conv(x))


class ConvEncoder(Encoder):
    """Dilation-free residual convolution: conv(k=2), GELU, ``n_residual`` x residual conv(k=3), conv(k=last_kernel).

    Receptive field ``window = 2 + 2 * n_residual + last_kernel - 1``. ``offset10`` is the seed's
    architecture (three residual blocks, last kernel 3); ``offset5`` has one block and a last kernel of
    2; ``offset36`` has sixteen blocks.
    """

    def __init__(self, n_neurons: int, hidden_units: int, output_dim: int, n_residual: int, last_kernel: int,
                 left: int):
        super().__init__(n_neurons, hidden_units, output_dim)
        self.window = 2 + 2 * n_residual + last_kernel - 1
        self.left = left
        self.net = nn.Sequential(
            nn.Conv1d(n_neurons, hidden_units, 2), nn.GELU(),
            *[_Residual(hidden_units) for _ in range(n_residual)],
            nn.Conv1d(hidden_units, output_dim, last_kernel),
        )

    def forward(self, x: torch.Tensor, shift: torch.Tensor | None = None) -> torch.Tensor:
        """x: (B, N, L) -> (B, D, L - window + 1); ``shift`` (B, N) is added to every frame (see :class:`Encoder`)."""
        if shift is None:
            return self.net(x)
        first = _linear_first_layer(self.net, nn.Conv1d)
        if first is None:
            return self.net(x + shift[:, :, None])
        hidden = first(x) + (shift @ first.weight.sum(-1).T)[:, :, None]
        return self.net[1:](hidden)


def _offset5(n, h, d):
    return ConvEncoder(n, h, d, n_residual=1, last_kernel=2, left=2)


def _offset10(n, h, d):
    return ConvEncoder(n, h, d, n_residual=3, last_kernel=3, left=5)


def _offset36(n, h, d):
    return ConvEncoder(n, h, d, n_residual=16, last_kernel=3, left=18)


MODELS = {
    "offset1": Offset1,
    "offset5": _offset5,
    "offset10": _offset10,
    "offset36": _offset36,
}


def make_encoder(name: str, n_neurons: int, hidden_units: int, output_dim: int) -> Encoder:
    """Build an encoder by name: ``offset1`` (MLP), ``offset5``, ``offset10``, ``offset36`` (convolutions)."""
    if name not in MODELS:
        listed = ", ".join(repr(k) for k in MODELS)
        raise ValueError(f"model must be one of {listed}; got {name!r}")
    return MODELS[name](n_neurons, hidden_units, output_dim)
