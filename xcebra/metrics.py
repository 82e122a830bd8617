"""Scores: attribution AUC against a ground truth (per entry and per block), gap statistics, decoding and
latent fit.

The ground-truth scores of a map (:func:`attribution_auc`, :func:`block_auc`, :func:`gap`,
:func:`expand_block_truth`, :func:`block_rms`) are defined in :mod:`xcebra.attribution.scores`, beside the
map they score, and re-exported here; its docstring says why there are two AUCs and which one to decide on.
The decoding scores read an embedding: how well each block decodes a label (:func:`decoding_scores`) and
how much of each block its own true latents explain (:func:`latent_fit_scores`).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.linear_model import LinearRegression
from sklearn.model_selection import TimeSeriesSplit
from sklearn.neighbors import KNeighborsRegressor

from .attribution.scores import attribution_auc, block_auc, block_rms, expand_block_truth, gap

__all__ = ["attribution_auc", "block_auc", "gap", "expand_block_truth", "block_rms", "decoding_scores",
           "latent_fit_scores", "distance_ratios"]


def decoding_scores(embedding: Any, labels: Any, blocks=None, *, n_splits: int = 5, n_neighbors: int = 5) -> dict:
    """How well each embedding block decodes a label: linear R2 and kNN R2 with time-series splits.

    Parameters
    ----------
    embedding : array of shape (T, output_dim)
    labels : array of shape (T,) or (T, d)
    blocks : list of (name, slice), optional
        Score each block separately (e.g. ``model.blocks_``); default: the whole embedding as ``"all"``.
    n_splits : int, default 5
        Folds of :class:`sklearn.model_selection.TimeSeriesSplit` (each fold trains on the past and tests
        on the following segment, so temporal autocorrelation cannot leak into the score).
    n_neighbors : int, default 5

    Returns
    -------
    dict of block name -> {"linear_r2", "knn_r2", "linear_r2_train"}
        ``linear_r2`` and ``knn_r2`` are means over the folds of the held-out R2 (uniform average over
        label dimensions); ``linear_r2_train`` is the in-sample R2 of a linear fit on all of the data
        (the seed's "R2" number, for comparison).
    """
    z = np.asarray(embedding, dtype=np.float64)
    y = np.asarray(labels, dtype=np.float64)
    if y.ndim == 1:
        y = y[:, None]
    if z.ndim != 2 or y.ndim != 2:
        raise ValueError(f"embedding must be (T, D) and labels (T,) or (T, d); got {z.shape} and {y.shape}")
    if z.shape[0] != y.shape[0]:
        raise ValueError(f"labels have {y.shape[0]} rows but embedding has {z.shape[0]}; they must match in time")
    if z.shape[0] < 2 * (n_splits + 1):
        raise ValueError(f"need at least {2 * (n_splits + 1)} time points for {n_splits} splits; got {z.shape[0]}")
    blocks = [("all", slice(0, z.shape[1]))] if blocks is None else list(blocks)
    splitter = TimeSeriesSplit(n_splits=n_splits)
    scores = {}
    for name, s in blocks:
        x = z[:, s]
        linear, knn = [], []
        for train, test in splitter.split(x):
            linear.append(LinearRegression().fit(x[train], y[train]).score(x[test], y[test]))
            k = min(n_neighbors, len(train))
            knn.append(KNeighborsRegressor(n_neighbors=k).fit(x[train], y[train]).score(x[test], y[test]))
        scores[name] = {
            "linear_r2": float(np.mean(linear)),
            "knn_r2": float(np.mean(knn)),
            "linear_r2_train": float(LinearRegression().fit(x, y).score(x, y)),
        }
    return scores


def latent_fit_scores(embedding: Any, latents: Any, blocks, latent_blocks, *, n_splits: int = 5,
                      n_neighbors: int = 5) -> dict:
    """How much of each embedding block is a function of its own true latents (synthetic data only).

    The reverse of :func:`decoding_scores`: each block of the embedding is predicted *from* the true
    latents, its own block of them and all of them, with held-out linear and kNN R2 (time-series
    splits). xCEBRA identifies a block up to an invertible linear map of its latents, so for a perfect
    fit ``own_linear_r2`` is 1. What the block holds beyond its latents lowers it:

    - ``1 - own_knn_r2``: variance that no function of the block's latents explains, i.e. sensitivity to
      the observation noise (and to other latents); an encoder that responds to noise spreads
      attribution over neurons that only carry noise for this block;
    - ``all_knn_r2 - own_knn_r2``: what the other blocks' latents add (leakage between blocks);
    - ``own_knn_r2 - own_linear_r2``: a nonlinear distortion of the block's own latents.

    Parameters
    ----------
    embedding : array of shape (T, output_dim)
    latents : array of shape (T, n_latents)
        The ground-truth latents (e.g. ``SyntheticData.latents``).
    blocks : list of (name, slice)
        The embedding's blocks (``model.blocks_``).
    latent_blocks : list of (name, slice)
        The latents of each block, matched to ``blocks`` by name (``SyntheticData.latent_blocks``).
    n_splits, n_neighbors : int
        As in :func:`decoding_scores`.

    Returns
    -------
    dict of block name -> {"own_linear_r2", "own_knn_r2", "all_linear_r2", "all_knn_r2"}
        Held-out R2, uniform average over the block's embedding dimensions.
    """
    z = np.asarray(embedding, dtype=np.float64)
    u = np.asarray(latents, dtype=np.float64)
    if z.ndim != 2 or u.ndim != 2:
        raise ValueError(f"embedding must be (T, D) and latents (T, n_latents); got {z.shape} and {u.shape}")
    if z.shape[0] != u.shape[0]:
        raise ValueError(f"latents have {u.shape[0]} rows but embedding has {z.shape[0]}; they must match in time")
    latent_parts = dict(latent_blocks)
    scores = {}
    for name, s in blocks:
        if name not in latent_parts:
            raise ValueError(f"block {name!r} has no entry in latent_blocks (names: {sorted(latent_parts)}); "
                             "each embedding block needs its latents")
        target = z[:, s]
        own = decoding_scores(u[:, latent_parts[name]], target, n_splits=n_splits, n_neighbors=n_neighbors)["all"]
        every = decoding_scores(u, target, n_splits=n_splits, n_neighbors=n_neighbors)["all"]
        scores[name] = {"own_linear_r2": own["linear_r2"], "own_knn_r2": own["knn_r2"],
                        "all_linear_r2": every["linear_r2"], "all_knn_r2": every["knn_r2"]}
    return scores


def distance_ratios(embedding: Any) -> np.ndarray:
    """Each point's euclidean distance from the embedding's coordinate-wise median, over the median such distance.

    A look for time points that embed far from all the others (runs of them appear in unbounded
    euclidean fits; see the decision log, "Fewer alarms").

    Parameters
    ----------
    embedding : array or tensor of shape (K, D)
        K embedded time points (e.g. ``model.transform(neural)``).

    Returns
    -------
    ndarray of shape (K,), float64, dimensionless: about 1 for a typical point, a few units at the rim of
    a compact embedding, tens or more for a point far from all the others. When more than half the
    points coincide (median distance 0), points elsewhere get ``inf`` and coinciding ones 0.
    """
    if hasattr(embedding, "detach"):  # a torch tensor
        embedding = embedding.detach().cpu().numpy()
    z = np.asarray(embedding)
    if z.ndim != 2 or z.shape[0] == 0:
        raise ValueError(f"embedding must be a non-empty (K, D) array; got shape {z.shape}")
    z = z.astype(np.float64)
    distance = np.linalg.norm(z - np.median(z, axis=0), axis=1)
    typical = float(np.median(distance))
    if typical > 0:
        return distance / typical
    return np.where(distance > 0, np.inf, 0.0)
