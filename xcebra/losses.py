"""InfoNCE with dot-product ("cosine", on normalised blocks) or negative squared euclidean similarity."""

from __future__ import annotations

import math

import torch
from torch import nn

__all__ = ["infonce", "Temperature"]


def _similarity(a: torch.Tensor, b: torch.Tensor, kind: str, pairwise: bool) -> torch.Tensor:
    if kind == "cosine":
        # blocks are already on the unit sphere: the dot product is the cosine (summed over nested blocks)
        return a @ b.T if pairwise else (a * b).sum(-1)
    if pairwise:
        # distances do not change under a common shift; centring first avoids the float32 cancellation of
        # |a|^2 + |b|^2 - 2ab when the embeddings sit far from the origin (the centre is a constant: detached)
        center = a.detach().mean(0, keepdim=True)
        a, b = a - center, b - center
        return -((a * a).sum(-1)[:, None] + (b * b).sum(-1)[None, :] - 2 * a @ b.T)
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
    positive_score = _similarity(reference, positive, similarity, pairwise=False) / temperature
    negative_score = _similarity(reference, negative, similarity, pairwise=True) / temperature
    return -positive_score.mean() + torch.logsumexp(negative_score, dim=1).mean()


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
