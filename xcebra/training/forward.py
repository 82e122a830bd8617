"""One forward pass for the time points of a step: each distinct time point embedded once.

Used by the training loop, by the held-out losses and by data-parallel sharding
(:mod:`xcebra.training.distributed`), which embeds only its own segment's time points.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

import torch

from ..data import sliding_windows
from ..models import Embedder

__all__ = ["embed_indices", "inference", "output_dim"]


def output_dim(embedder: Embedder) -> int:
    """Width D of the embedding: the end of the last block."""
    return embedder.block_slices[-1][1]


def embed_indices(embedder: Embedder, neural: torch.Tensor, index: torch.Tensor, mode: str = "auto",
                  sequence: torch.Tensor | None = None, precision: str = "fp32") -> torch.Tensor:
    """Embed the time points ``index`` (K,) of ``neural`` (T, N); returns (K, D), each distinct point computed once.

    ``mode="windows"`` gathers the distinct windows and embeds them as a batch; ``"sequence"`` runs the
    encoder over the whole recording (shared frames of overlapping windows computed once) and picks
    the rows; ``"auto"`` chooses the one that processes fewer frames. ``sequence`` (1, N, T), optional:
    ``neural`` already transposed for the whole-sequence pass (the loop makes it once, not every step).
    """
    window, left = embedder.window, embedder.left
    unique, inverse = torch.unique(index, return_inverse=True)
    if mode == "auto":
        # frames processed: a window batch costs about window frames per distinct time point, the whole
        # sequence one frame per time point; measured per frame they cost about the same on CPU
        # (benchmarks/speed.py scaling: T=20k..200k, offset10), so the break-even is T = U * window
        mode = "sequence" if window > 1 and neural.shape[0] < len(unique) * window else "windows"
    if mode == "sequence":
        x = sequence if sequence is not None else neural.T.contiguous()[None]
        z = embedder(x, precision)[0]
        return z.index_select(0, index - left)
    # index_select rather than advanced indexing: the same rows, 4x faster for the window gather of a batch of
    # a few thousand (about 0.1 ms a step of the small synthetic setting, forward and backward together)
    windows = sliding_windows(neural, window).index_select(0, unique - left)
    return embedder(windows, precision)[:, 0].index_select(0, inverse)


@contextmanager
def inference(module: torch.nn.Module) -> Iterator[None]:
    """Evaluation mode without gradients for the block; the module's previous mode is restored after it."""
    was_training = module.training
    module.eval()
    try:
        with torch.no_grad():
            yield
    finally:
        module.train(was_training)
