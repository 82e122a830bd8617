"""The Inverted Neuron Gradient (ING): attribution by the pseudo-inverse of the encoder's Jacobian.

ING is ``pinv(J_t)`` (N, D), computed in float64 by a batched SVD (``"ing"``) or a batched minimum-
norm least-squares solve (``"ing-lstsq"``), and transposed to (D, N).


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

The linear algebra (the cutoff at the Jacobian's own precision, the Gram route) is :mod:`xcebra.attribution.pinv`.
"""

from __future__ import annotations

import numbers
from typing import Any, Sequence

import torch
from torch import nn

from .jacobian import JacobianMethod
from .pinv import block_pseudo_inverse, pseudo_inverse

__all__ = ["Ing", "IngLstsq", "IngBlock", "check_block_ranks"]


def _is_rank(value: Any) -> bool:
    return value is None or (isinstance(value, numbers.Integral) and not isinstance(value, bool) and value >= 1)


def check_block_ranks(ranks: Sequence, blocks: Sequence) -> None:
    """Raise a ValueError unless ``ranks`` has one entry per block and none exceeds its block's width."""
    if len(ranks) != len(blocks):
        raise ValueError(f"block_ranks has {len(ranks)} entries but the embedding has {len(blocks)} blocks "
                         f"({', '.join(repr(name) for name, _ in blocks)}); give one per block")
    for rank, (name, part) in zip(ranks, blocks):
        width = part.stop - part.start
        if rank is not None and rank > width:
            raise ValueError(f"block_ranks gives block {name!r} rank {rank}, but it has only {width} dimensions")


class Ing(JacobianMethod):
    """``"ing"``: the pseudo-inverse of the whole Jacobian, by its singular values (the paper's definition)."""

    name = "ing"

    @classmethod
    def from_jacobian(cls, jacobian: torch.Tensor, embedder: nn.Module, **options: Any) -> torch.Tensor:
        return pseudo_inverse(jacobian, "svd")


class IngLstsq(JacobianMethod):
    """``"ing-lstsq"``: the same pseudo-inverse by a minimum-norm least-squares solve."""

    name = "ing-lstsq"

    @classmethod
    def from_jacobian(cls, jacobian: torch.Tensor, embedder: nn.Module, **options: Any) -> torch.Tensor:
        return pseudo_inverse(jacobian, "lstsq")


class IngBlock(JacobianMethod):
    """``"ing-block"``: each block's rows inverted on their own, keeping at most ``block_ranks[i]`` singular values.

    ``block_ranks``: one int >= 1 (at most the block's width) or None (full numerical rank) per block of
    ``embedder.block_slices``; None for all blocks at full rank. The estimators resolve a dict
    {block name: rank} and their defaults to this form before the map is computed.
    """

    name = "ing-block"
    options = {"block_ranks": None}

    @classmethod
    def check_options(cls, options: dict, blocks: Sequence | None = None) -> None:
        extra = set(options) - set(cls.options)
        if extra:
            raise ValueError(f"method 'ing-block' takes only the option 'block_ranks'; got "
                             f"{', '.join(repr(k) for k in sorted(extra))}")
        ranks = options.get("block_ranks")
        entries = ranks.values() if isinstance(ranks, dict) else ranks
        if ranks is not None and (isinstance(ranks, str) or not hasattr(ranks, "__len__")
                                  or not all(_is_rank(r) for r in entries)):
            raise ValueError("block_ranks must be None, a dict {block name: int >= 1 or None} or one such entry per "
                             f"embedding block, in block order; got {ranks!r}")
        if blocks is not None and ranks is not None and not isinstance(ranks, dict):
            check_block_ranks(ranks, blocks)

    @classmethod
    def from_jacobian(cls, jacobian: torch.Tensor, embedder: nn.Module, block_ranks: Sequence | None = None,
                      **options: Any) -> torch.Tensor:
        return block_pseudo_inverse(jacobian, embedder.block_slices, block_ranks)
