"""Encoders: neural windows (B, N, L) -> embeddings (B, D, L - window + 1).

Every encoder is a temporal convolution (the MLP ``offset1`` is one with a kernel of one frame), so
the same network embeds a batch of windows (``L == window``) or a whole recording at once
(``B == 1, L == T``), sharing the intermediate frames of overlapping windows. Embedding time point
``t`` uses frames ``t - left .. t + right - 1`` with ``left + right == window`` (``model.offset``).
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils import parametrize
from torch.nn.utils.parametrizations import spectral_norm

from ._validation import check_int, is_real

__all__ = ["Encoder", "Offset1", "ConvEncoder", "MODELS", "make_encoder", "bound_lipschitz", "clip_output", "Embedder"]


class Encoder(nn.Module):
    """Base class. Subclasses set ``window``, ``left`` and implement ``_forward(x, shift)``, which
    ``forward(x, shift=None)`` calls (and scales by ``output_gain`` when :func:`bound_lipschitz` set one,
    then clips to ``[-output_clip, output_clip]`` when :func:`clip_output` set one).

    ``shift`` (B, N), when given, is added to every frame of the window ``x`` (B, N, L). Both encoders
    here start with a linear layer and push the shift through it analytically (``W x + (sum_k W_k) s``),
    so the derivative of the embedding with respect to ``shift``, which is the Jacobian summed over lags
    that ING inverts, costs no transposed convolution of the first layer and no (D, N, window) tensor
    (``offset10``: 0.77 instead of 0.91 s per 1,024 windows, measured).
    """

    window: int
    left: int
    #: factor on the output; with every weight spectrally normalised (:func:`bound_lipschitz`) it is the
    #: bound on the network's Lipschitz constant, up to the slope of the activations
    output_gain: float | None = None
    #: bound on every output coordinate (hard clip, :func:`clip_output`); None: unbounded
    output_clip: float | None = None

    def __init__(self, n_neurons: int, hidden_units: int, output_dim: int):
        super().__init__()
        self.n_neurons = check_int("n_neurons", n_neurons, minimum=1)
        self.hidden_units = check_int("hidden_units", hidden_units, minimum=1)
        self.output_dim = check_int("output_dim", output_dim, minimum=1)

    def forward(self, x: torch.Tensor, shift: torch.Tensor | None = None) -> torch.Tensor:
        """x: (B, N, L) -> (B, D, L - window + 1); ``shift`` (B, N) is added to every frame."""
        out = self._forward(x, shift) if self.output_gain is None else self._forward_normalised(x, shift)
        if self.output_clip is not None:
            out = F.hardtanh(out, -self.output_clip, self.output_clip)
        return out

    def _forward(self, x: torch.Tensor, shift: torch.Tensor | None) -> torch.Tensor:
        raise NotImplementedError

    def _forward_normalised(self, x: torch.Tensor, shift: torch.Tensor | None) -> torch.Tensor:
        """``_forward`` times ``output_gain``, the weights spectrally normalised (:func:`bound_lipschitz`)."""
        # one spectral normalisation (one power iteration in training) per forward pass, however often a
        # weight is read in it
        with parametrize.cached():
            return self._forward(x, shift) * self.output_gain

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

    def _forward(self, x: torch.Tensor, shift: torch.Tensor | None = None) -> torch.Tensor:
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

    def _forward(self, x: torch.Tensor, shift: torch.Tensor | None = None) -> torch.Tensor:
        """x: (B, N, L) -> (B, D, L - window + 1); ``shift`` (B, N) is added to every frame (see :class:`Encoder`).

        On the CPU, under autocast (``precision="bf16"`` in training) and for one whole sequence of data
        (``B == 1``, no gradient with respect to ``x``: the training pass), the convolutions run as matrix
        products on time-major activations (:meth:`forward_matmuls`). Why: oneDNN's bfloat16 ``Conv1d``
        under autocast was barely faster than float32, while bfloat16 matrix products use the CPU's matrix
        units; forward + backward of ``offset10`` over T = 20,000 frames on a 2-core AMX CPU
        (``benchmarks/profile_step.py``): bfloat16 0.108 s against 0.306 s with ``Conv1d``, float32 0.352 s
        against 0.383 s.
        """
        if x.device.type == "cpu" and self._is_built_layout() and (
                _cpu_autocast_enabled() or (x.shape[0] == 1 and not x.requires_grad and shift is None)):
            return self.forward_matmuls(x, shift)
        if shift is None:
            return self.net(x)
        first = _linear_first_layer(self.net, nn.Conv1d)
        if first is None:
            return self.net(x + shift[:, :, None])
        hidden = first(x) + (shift @ first.weight.sum(-1).T)[:, :, None]
        return self.net[1:](hidden)

    def _is_built_layout(self) -> bool:
        """True while ``net`` is the stack this class builds (a user may have swapped layers)."""
        net = self.net
        return (isinstance(net, nn.Sequential) and len(net) >= 3 and isinstance(net[0], nn.Conv1d)
                and isinstance(net[1], nn.GELU) and isinstance(net[-1], nn.Conv1d)
                and all(type(block) is _Residual for block in net[2:-1])
                and all(_is_plain_conv(conv) for conv in [net[0], net[-1], *(block.conv for block in net[2:-1])]))

    def forward_matmuls(self, x: torch.Tensor, shift: torch.Tensor | None = None) -> torch.Tensor:
        """Same as :meth:`forward` (same parameters, same result up to rounding), computed with one matrix
        product per kernel tap on time-major activations (B, L, C) instead of ``Conv1d``."""
        net = self.net
        first = net[0]
        # an input (or shift) that requires grad is differentiated, by the regularizer twice: there the taps
        # go through F.linear, whose double backward autograd does well; the fused tap-by-tap backward of
        # _TimeMajorConv is for the training pass, whose input is data
        fused = not (x.requires_grad or (shift is not None and shift.requires_grad))
        hidden = _conv_time_major(x.transpose(1, 2), first, fused)
        if shift is not None:
            hidden = hidden + (shift @ first.weight.sum(-1).T)[:, None, :]
        hidden = net[1](hidden)
        for block in net[2:-1]:
            hidden = hidden[:, 1:-1] + block.act(_conv_time_major(hidden, block.conv, fused))
        return _conv_time_major(hidden, net[-1], fused).transpose(1, 2)


def _cpu_autocast_enabled() -> bool:
    try:
        return torch.is_autocast_enabled("cpu")
    except TypeError:  # torch < 2.4 takes no device type
        return torch.is_autocast_cpu_enabled()


def _is_plain_conv(conv: nn.Conv1d) -> bool:
    return (conv.stride == (1,) and conv.dilation == (1,) and conv.groups == 1 and conv.padding in ((0,), "valid")
            and conv.padding_mode == "zeros")


def _conv_time_major(frames: torch.Tensor, conv: nn.Conv1d, fused: bool = True) -> torch.Tensor:
    """A valid, stride-1 convolution on time-major frames: (B, L, C_in) -> (B, L - k + 1, C_out).

    ``sum_j frames[:, j:j + L'] @ W[:, :, j]^T + bias``, each tap a product with a slice of the frames:
    with ``fused``, by :class:`_TimeMajorConv` (frames and weights cast once to the autocast dtype, if
    any); otherwise by ``F.linear`` per tap under autograd.
    """
    if not fused:
        length = frames.shape[1] - conv.kernel_size[0] + 1
        out = F.linear(frames[:, :length], conv.weight[:, :, 0], conv.bias)
        for j in range(1, conv.kernel_size[0]):
            out = out + F.linear(frames[:, j:j + length], conv.weight[:, :, j])
        return out
    if _cpu_autocast_enabled():
        dtype = torch.get_autocast_dtype("cpu") if hasattr(torch, "get_autocast_dtype") else torch.get_autocast_cpu_dtype()
        frames, weight = frames.to(dtype), conv.weight.to(dtype)
        bias = None if conv.bias is None else conv.bias.to(dtype)
    else:
        weight, bias = conv.weight, conv.bias
    return _TimeMajorConv.apply(frames, weight, bias)


class _TimeMajorConv(torch.autograd.Function):
    """Forward and backward of :func:`_conv_time_major` as accumulating matrix products.

    Autograd of the plain formulation (``F.linear`` on slices) builds a zero-filled, full-length gradient
    for every slice and adds them up; here the input gradient is accumulated tap by tap into one buffer
    and the weight gradient is one product per tap, with no copies of the frames (B == 1, the
    whole-sequence case). The backward is written in differentiable operations, so double backward works.
    """

    @staticmethod
    def forward(ctx, frames: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
        k = weight.shape[-1]
        batch, length = frames.shape[0], frames.shape[1] - k + 1
        with torch.autocast("cpu", enabled=False):
            taps = weight.permute(2, 1, 0)  # (k, C_in, C_out)
            out = frames[:, :length] @ taps[0]
            for j in range(1, k):
                out.baddbmm_(frames[:, j:j + length], taps[j].expand(batch, -1, -1))
            if bias is not None:
                out += bias
        ctx.save_for_backward(frames, weight)
        ctx.has_bias = bias is not None
        return out

    @staticmethod
    def backward(ctx, grad_out: torch.Tensor):
        frames, weight = ctx.saved_tensors
        k = weight.shape[-1]
        batch, length = frames.shape[0], grad_out.shape[1]
        grad_frames = grad_weight = grad_bias = None
        with torch.autocast("cpu", enabled=False):
            grad_out = grad_out.to(frames.dtype)
            if ctx.needs_input_grad[0]:
                taps_t = weight.permute(2, 0, 1)  # (k, C_out, C_in)
                grad_frames = frames.new_zeros(frames.shape)
                for j in range(k):
                    grad_frames[:, j:j + length].baddbmm_(grad_out, taps_t[j].expand(batch, -1, -1))
            if ctx.needs_input_grad[1]:
                flat_grad = grad_out.reshape(batch * length, -1).T  # (C_out, B * L')
                grad_weight = torch.stack(
                    [flat_grad @ frames[:, j:j + length].reshape(batch * length, -1) for j in range(k)], dim=-1)
            if ctx.has_bias and ctx.needs_input_grad[2]:
                grad_bias = grad_out.sum((0, 1))
        return grad_frames, grad_weight, grad_bias


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


def bound_lipschitz(encoder: Encoder, gain: float) -> Encoder:
    """Spectrally normalise every linear and convolution weight of ``encoder`` and scale its output by ``gain``.

    Each weight matrix is divided by its largest singular value (``torch.nn.utils.parametrizations.spectral_norm``:
    one power iteration per training-mode forward pass; a convolution's weight as an (out, in * kernel)
    matrix), so
    the encoder's Lipschitz constant is at most about ``gain``: times the activations' slopes (GELU's is
    at most 1.13), times up to sqrt(k) for a convolution of kernel k (its taps share the normalisation),
    plus the input of each residual block. Why: the euclidean InfoNCE has no lower bound,
    and an unconstrained encoder grows its embedding (and its Jacobian) without limit; with the bound the
    loss can only be lowered by arranging the embedding, not by inflating it (see docs/design-notes.md).
    Modifies ``encoder`` in place and returns it. The normalisation's power-iteration vectors are
    buffers: they are saved and loaded with the weights.
    """
    if not is_real(gain, 0, strict=True):
        raise ValueError(f"lipschitz gain must be a finite float > 0; got {gain!r}")
    for module in list(encoder.modules()):
        if isinstance(module, (nn.Linear, nn.Conv1d)) and not parametrize.is_parametrized(module, "weight"):
            spectral_norm(module)
    encoder.output_gain = float(gain)
    return encoder


def clip_output(encoder: Encoder, limit: float) -> Encoder:
    """Clip every output coordinate of ``encoder`` to ``[-limit, limit]`` (a hard ``hardtanh``).

    The reference package's bounded euclidean models (``offset1-model-mse-clip-5-5``) end this way: the
    embedding cannot inflate past the box, whatever the weights do inside it. A coordinate held at the
    bound has a zero gradient for that time point (the clip is flat there), and the Jacobian, and so
    every attribution map, is zero along it. Modifies ``encoder`` in place and returns it; the limit is
    a hyper-parameter, not a weight (nothing is added to the saved state).
    """
    if not is_real(limit, 0, strict=True):
        raise ValueError(f"output clip limit must be a finite float > 0; got {limit!r}")
    encoder.output_clip = float(limit)
    return encoder


def make_encoder(name: str, n_neurons: int, hidden_units: int, output_dim: int,
                 lipschitz: float | None = None, output_clip: float | None = None) -> Encoder:
    """Build an encoder by name: ``offset1`` (MLP), ``offset5``, ``offset10``, ``offset36`` (convolutions).

    ``lipschitz``: None (unconstrained) or a float > 0, the bound of :func:`bound_lipschitz`.
    ``output_clip``: None (unbounded output) or a float > 0, the limit of :func:`clip_output`.
    """
    if name not in MODELS:
        listed = ", ".join(repr(k) for k in MODELS)
        raise ValueError(f"model must be one of {listed}; got {name!r}")
    encoder = MODELS[name](n_neurons, hidden_units, output_dim)
    if lipschitz is not None:
        bound_lipschitz(encoder, lipschitz)
    return encoder if output_clip is None else clip_output(encoder, output_clip)


class Embedder(nn.Module):
    """Encoder followed by the per-block normalisation of the layout: the network that is trained and attributed.

    ``forward(x)``: x of shape (B, N, L) -> embedding of shape (B, L - window + 1, D); normalised blocks
    have unit norm (with an epsilon, so an all-zero output gives zeros, not NaN).
    """

    def __init__(self, encoder: nn.Module, blocks: Sequence[tuple[str, slice]], normalized: Sequence[bool],
                 eps: float = 1e-8):
        super().__init__()
        self.encoder = encoder
        self.block_slices = [(s.start, s.stop) for _, s in blocks]
        self.normalized = list(normalized)
        self.eps = eps

    @property
    def window(self) -> int:
        return self.encoder.window

    @property
    def left(self) -> int:
        return self.encoder.left

    def forward(self, x: torch.Tensor, precision: str = "fp32", shift: torch.Tensor | None = None) -> torch.Tensor:
        """x: (B, N, L) -> (B, L - window + 1, D), float32.

        ``precision="bf16"`` runs the encoder under ``torch.autocast`` in bfloat16 (weights, accumulation
        and the block normalisation stay in float32); used only for training (contrastive pass and
        regularizer) when asked for.
        ``shift`` (B, N), optional: added to every frame of ``x`` (see :class:`xcebra.models.Encoder`).
        """
        args = (x,) if shift is None else (x, shift)
        if precision == "bf16":
            with torch.autocast(device_type=x.device.type, dtype=torch.bfloat16):
                z = self.encoder(*args)
            z = z.float().transpose(1, 2)
        else:
            z = self.encoder(*args).transpose(1, 2)
        if not any(self.normalized):
            return z
        if all(self.normalized) and len(self.block_slices) == 1:
            return F.normalize(z, dim=-1, eps=self.eps)
        parts = [F.normalize(z[..., a:b], dim=-1, eps=self.eps) if norm else z[..., a:b]
                 for (a, b), norm in zip(self.block_slices, self.normalized)]
        return torch.cat(parts, dim=-1)
