"""Scores: attribution AUC against a ground truth (per entry and per block), gap statistics, decoding.

Why two AUCs. Contrastive training identifies each disjoint block of the embedding only up to an
invertible linear map. A per-entry AUC (the seed's metric, over the (output_dim, N) map) therefore
moves with the basis a model happened to learn: even an encoder fit to the true latents scores
anywhere from about 0.74 to 0.94 per entry on our synthetic data, but about 0.96 at block level. The
block-level score asks what the method identifies (which neurons drive this block?) and is the one to
decide on. Block rows are compared only within a block: blocks of different widths live on different
scales.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.metrics import roc_auc_score

__all__ = ["attribution_auc", "block_auc", "gap", "expand_block_truth", "block_rms", "decoding_scores",
           "latent_fit_scores", "distance_ratios"]


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
    from sklearn.linear_model import LinearRegression
    from sklearn.model_selection import TimeSeriesSplit
    from sklearn.neighbors import KNeighborsRegressor

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
