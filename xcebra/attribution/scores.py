"""How well an attribution map matches a boolean ground truth: AUC per entry and per block, and the gap.

Why two AUCs. Contrastive training identifies each disjoint block of the embedding only up to an
invertible linear map. A per-entry AUC (the seed's metric, over the (output_dim, N) map) therefore
moves with the basis a model happened to learn: even an encoder fit to the true latents scores
anywhere from about 0.74 to 0.94 per entry on our synthetic data, but about 0.96 at block level. The
block-level score asks what the method identifies (which neurons drive this block?) and is the one to
decide on. Block rows are compared only within a block: blocks of different widths live on different
scales.

These scores live beside the map (:meth:`xcebra.AttributionMap.score` uses them) and are re-exported by
:mod:`xcebra.metrics`, the module of every score.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.metrics import roc_auc_score

__all__ = ["attribution_auc", "block_auc", "gap", "expand_block_truth", "block_rms"]


def _as_truth(name: str, truth: Any, shape: tuple[int, ...]) -> np.ndarray:
    truth = np.asarray(truth)
    if truth.dtype != bool:
        raise TypeError(f"{name} must be a boolean array (True = connected); got dtype {truth.dtype}. "
                        f"Convert it explicitly, e.g. {name} != 0")
    if truth.shape != shape:
        raise ValueError(f"{name} has shape {truth.shape} but the attribution map has shape {shape}; they must match")
    return truth


def _values_of(values: Any) -> np.ndarray:
    return np.asarray(getattr(values, "values", values), dtype=np.float64)


def _check_finite_values(values: np.ndarray) -> None:
    if not np.all(np.isfinite(values)):
        raise ValueError("values contain NaN or infinite entries")


def attribution_auc(values: Any, ground_truth: Any) -> float:
    """ROC AUC of all entries of an attribution map against a boolean ground truth (the seed's metric).

    Parameters
    ----------
    values : array of shape (output_dim, N), or an AttributionMap.
    ground_truth : bool array of shape (output_dim, N); True where latent/dimension i depends on neuron j.

    Returns
    -------
    float in [0, 1]; 0.5 is chance. See the module docstring for why this score depends on the basis.
    """
    values = _values_of(values)
    truth = _as_truth("ground_truth", ground_truth, values.shape)
    flat = truth.ravel()
    if flat.all() or not flat.any():
        raise ValueError("ground_truth must contain both True and False entries to compute an AUC")
    _check_finite_values(values)
    return float(roc_auc_score(flat, values.ravel()))


def block_rms(values: np.ndarray, blocks) -> np.ndarray:
    """(n_blocks, N): root mean square over the rows of each block of a (output_dim, N) map."""
    values = np.asarray(values, dtype=np.float64)
    return np.stack([np.sqrt(np.mean(values[s] ** 2, axis=0)) for _, s in blocks])


def block_auc(amap: Any, block_truth: Any, *, per_block: bool = False) -> float | tuple[float, dict[str, float]]:
    """Block-level AUC: for each block, ROC AUC of its ``block_values`` row over neurons, averaged over blocks.

    Parameters
    ----------
    amap : AttributionMap, or array of shape (n_blocks, N) of block values.
    block_truth : bool array of shape (n_blocks, N): True where the block depends on the neuron.
    per_block : also return ``{block name: AUC}`` (NaN for a block whose truth is all True or all False).

    Returns
    -------
    float: mean over the blocks whose truth has both classes (NaN if none has).
    """
    if hasattr(amap, "block_values"):
        values = np.asarray(amap.block_values, dtype=np.float64)
        names = [name for name, _ in amap.blocks]
    else:
        values = np.asarray(amap, dtype=np.float64)
        if values.ndim != 2:
            raise ValueError(f"block values must be a 2-D array (n_blocks, N); got shape {values.shape}")
        names = [f"block{i}" for i in range(values.shape[0])]
    truth = _as_truth("block_truth", block_truth, values.shape)
    _check_finite_values(values)
    scores = {}
    for name, row, t in zip(names, values, truth):
        scores[name] = float(roc_auc_score(t, row)) if (t.any() and not t.all()) else float("nan")
    valid = [v for v in scores.values() if not np.isnan(v)]
    mean = float(np.mean(valid)) if valid else float("nan")
    return (mean, scores) if per_block else mean


def gap(values: Any, ground_truth: Any) -> dict[str, float]:
    """Mean attribution of connected entries, of unconnected ones, and their difference.

    ``values`` (R, N) and ``ground_truth`` (R, N) bool; returns ``{"connected", "unconnected", "gap"}``.
    """
    values = _values_of(values)
    truth = _as_truth("ground_truth", ground_truth, values.shape)
    _check_finite_values(values)
    connected = float(values[truth].mean()) if truth.any() else float("nan")
    unconnected = float(values[~truth].mean()) if (~truth).any() else float("nan")
    return {"connected": connected, "unconnected": unconnected, "gap": connected - unconnected}


def expand_block_truth(block_truth: Any, blocks) -> np.ndarray:
    """Repeat each block's truth row over the block's dimensions: (n_blocks, N) -> (output_dim, N)."""
    block_truth = np.asarray(block_truth)
    if block_truth.ndim != 2 or block_truth.shape[0] != len(blocks):
        raise ValueError(f"block_truth must have shape (n_blocks={len(blocks)}, N); got {block_truth.shape}")
    rows = [np.repeat(block_truth[i][None], s.stop - s.start, axis=0) for i, (_, s) in enumerate(blocks)]
    return np.concatenate(rows, axis=0)
