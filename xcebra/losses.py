"""InfoNCE with dot-product ("cosine", on normalised blocks) or negative squared euclidean similarity."""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.autograd.function import once_differentiable

__all__ = ["infonce", "Temperature"]


def _paired_similarity(a: torch.Tensor, b: torch.Tensor, kind: str) -> torch.Tensor:
    """Similarity of each row of ``a`` with the same row of ``b``: (B, D), (B, D) -> (B,)."""
    if kind == "cosine":
        # blocks are already on the unit sphere: the dot product is the cosine (summed over nested blocks)
        return (a * b).sum(-1)
    return -((a - b) ** 2).sum(-1)


def infonce(reference: torch.Tensor, positive: torch.Tensor, negative: torch.Tensor,
            similarity: str = "cosine", temperature: float | torch.Tensor = 1.0) -> torch.Tensor:
    """InfoNCE loss with shared negatives.

    ``loss = mean_i [ -s(r_i, p_i) / tau + log sum_j exp(s(r_i, n_j) / tau) ]``

    Parameters
    ----------
    reference, positive : tensors of shape (B, D)
    negative : tensor of shape (M, D), shared by all references.
    similarity : {"cosine", "euclidean"}
        ``cosine``: dot product (inputs are normalised blocks); ``euclidean``: ``-||a - b||^2``.
    temperature : float or 0-d tensor (> 0).

    Returns
    -------
    0-d tensor: the loss (nats).
    """
    if isinstance(temperature, torch.Tensor) and temperature.requires_grad:
        # a learnable temperature: autograd differentiates the plain formulation with respect to it too
        return _infonce_autograd(reference, positive, negative, similarity, temperature)
    return _InfoNCE.apply(reference, positive, negative, similarity == "euclidean", temperature)


def _infonce_autograd(reference: torch.Tensor, positive: torch.Tensor, negative: torch.Tensor, similarity: str,
                      temperature: float | torch.Tensor) -> torch.Tensor:
    """:func:`infonce` as plain differentiable operations (any input may require grad, the temperature too)."""
    positive_score = _paired_similarity(reference, positive, similarity) / temperature
    return -positive_score.mean() + _log_sum_exp_negatives(reference, negative, similarity, temperature).mean()


def _log_sum_exp_negatives(reference: torch.Tensor, negative: torch.Tensor, similarity: str,
                           temperature: float | torch.Tensor) -> torch.Tensor:
    """``log sum_j exp(s(r_i, n_j) / tau)`` for each reference, (B,), with one (B, M) product.

    The temperature divides the (B, D) references rather than the (B, M) scores. For the euclidean
    similarity, ``-|r_i - n_j|^2 = 2 r_i.n_j - |n_j|^2 - |r_i|^2`` and the last term is constant along
    the sum, so it is added after ``logsumexp``: the (B, M) scores are a single ``addmm``, instead of
    five element-wise passes over (B, M) forward and again backward (4% of a step of the small synthetic
    setting, batch 512, in an A/B run).
    """
    if similarity == "cosine":
        return torch.logsumexp((reference / temperature) @ negative.T, dim=1)
    # distances do not change under a common shift; centring first avoids float32 cancellation when the
    # embeddings sit far from the origin (the centre is a constant: detached)
    center = reference.detach().mean(0, keepdim=True)
    ref, neg = reference - center, negative - center
    scaled = ref / temperature
    scores = torch.addmm(-(neg * neg).sum(-1)[None, :] / temperature, scaled, neg.T, alpha=2.0)
    return torch.logsumexp(scores, dim=1) - (ref * scaled).sum(-1)


def _logsumexp_rows(scores: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``torch.logsumexp(scores, 1)`` (B, M) -> (B,), bit for bit, and the exponentials it sums.

    Returns ``(lse, e, s)`` with ``e = exp(scores - max)`` (B, M) and ``s = e.sum(1)`` (B,), so that the
    softmax, ``e / s``, needs no second pass of ``exp`` (autograd's ``logsumexp`` backward recomputes it).
    The operations are those of ATen's ``logsumexp``, in its order.
    """
    top = scores.amax(1, keepdim=True)
    top.masked_fill_(top.abs() == math.inf, 0)
    e = (scores - top).exp_()
    s = e.sum(1)
    return s.log() + top[:, 0], e, s


class _InfoNCE(torch.autograd.Function):
    """:func:`infonce` for a constant temperature, with a hand-written backward.

    The forward runs the operations of :func:`_infonce_autograd` (the same loss, bit for bit) without
    recording them; the backward is the loss's gradient in closed form from the saved softmax numerators.
    Why: the small synthetic setting (batch 512, 3-6 dims) spent more time in autograd's backward of the
    loss than in its forward: about 30 element-wise nodes per objective, a second ``exp`` over the
    (B, M) scores, and the products ``G @ negative`` of shape (B, M) x (M, D), which run several times
    slower than the same product written as ``(negative^T @ G^T)^T`` for D of a few dimensions. With this
    backward a step of that setting takes 7% less CPU time (interleaved A/B, one thread).

    With ``G = softmax(scores) / B`` (B, M), ``c = 1 / tau`` and the centred ``ref``, ``neg`` (the centre
    is a constant, as it is detached in the plain formulation):

    * euclidean (``scores = c (2 ref.neg - |neg|^2)``, positive term ``c |r - p|^2``):
      ``d ref = 2c (G neg - ref / B + (r - p) / B)``, ``d pos = -2c (r - p) / B``,
      ``d neg = 2c (G^T ref - colsum(G) neg)``;
    * cosine (``scores = (c r) . n``, positive term ``-c r.p``):
      ``d ref = c (G neg - p / B)``, ``d pos = -c r / B``, ``d neg = G^T (c r)``.
    """

    @staticmethod
    def forward(ctx, reference: torch.Tensor, positive: torch.Tensor, negative: torch.Tensor, euclidean: bool,
                temperature: float | torch.Tensor) -> torch.Tensor:
        if euclidean:
            difference = reference - positive
            positive_score = -(difference ** 2).sum(-1) / temperature
            center = reference.mean(0, keepdim=True)
            ref, neg = reference - center, negative - center
            scaled = ref / temperature
            scores = torch.addmm(-(neg * neg).sum(-1)[None, :] / temperature, scaled, neg.T, alpha=2.0)
            lse, e, s = _logsumexp_rows(scores)
            negative_term = lse - (ref * scaled).sum(-1)
            ctx.save_for_backward(ref, neg, difference, e, s)
        else:
            positive_score = (reference * positive).sum(-1) / temperature
            scaled = reference / temperature
            negative_term, e, s = _logsumexp_rows(scaled @ negative.T)
            ctx.save_for_backward(scaled, negative, positive, e, s)
        ctx.euclidean, ctx.temperature = euclidean, temperature
        return -positive_score.mean() + negative_term.mean()

    @staticmethod
    @once_differentiable
    def backward(ctx, grad: torch.Tensor):
        first, negative, third, e, s = ctx.saved_tensors
        weight = grad / first.shape[0]  # d loss / d (each reference's term): the mean over B
        g = e * (weight / s)[:, None]  # (B, M): softmax over the negatives, times weight
        # (neg^T @ g^T)^T with neg^T contiguous rather than g @ neg: the same product, 2-4x faster for a few
        # columns (MKL, one and two threads)
        g_neg = torch.mm(negative.T.contiguous(), g.T).T  # (B, D)
        need_ref, need_pos, need_neg = ctx.needs_input_grad[:3]
        d_ref = d_pos = d_neg = None
        if ctx.euclidean:
            ref, difference = first, third
            c = 2.0 / ctx.temperature
            if need_ref:
                d_ref = (g_neg + weight * (difference - ref)) * c
            if need_pos:
                d_pos = difference * (-weight * c)
            if need_neg:
                d_neg = (torch.mm(ref.T, g).T - g.sum(0)[:, None] * negative) * c
        else:
            scaled, positive = first, third
            c = 1.0 / ctx.temperature
            if need_ref:
                d_ref = (g_neg - weight * positive) * c
            if need_pos:
                d_pos = scaled * -weight
            if need_neg:
                d_neg = torch.mm(scaled.T, g).T
        return d_ref, d_pos, d_neg, None, None


class Temperature(nn.Module):
    """A fixed or learnable InfoNCE temperature; learnable ones are kept at or above ``minimum``."""

    def __init__(self, value: float, learnable: bool = False, minimum: float = 0.0):
        super().__init__()
        self.learnable = learnable
        self.minimum = minimum
        if learnable:
            self.log_value = nn.Parameter(torch.tensor(math.log(value), dtype=torch.float32))
        else:
            self.register_buffer("log_value", torch.tensor(math.log(value), dtype=torch.float32))

    def forward(self) -> torch.Tensor:
        value = self.log_value.exp()
        return value.clamp_min(self.minimum) if self.minimum > 0 else value
