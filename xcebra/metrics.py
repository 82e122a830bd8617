"""Scores: attribution AUC against a ground truth (per entry and per block), gap statistics, decoding and
latent fit.

The ground-truth scores of a map (:func:`attribution_auc`, :func:`block_auc`, :func:`gap`,
:func:`expand_block_truth`, :func:`block_rms`) are defined in :mod:`xcebra.attribution.scores`, beside the
map they score, and re-exported here; its docstring says why there are two AUCs and which one to decide on.
The decoding scores read an embedding: how well each block decodes a label (:func:`decoding_scores`) and
how much of each block its own true latents explain (:func:`latent_fit_scores`).
Across recordings, :func:`session_consistency` scores how well one session's embedding predicts another's
once their time points are matched by the label, and :func:`consistency_summary` averages that matrix.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
from sklearn.linear_model import LinearRegression
from sklearn.metrics import r2_score
from sklearn.model_selection import TimeSeriesSplit
from sklearn.neighbors import KNeighborsRegressor

from ._validation import check_finite, check_int
from .attribution.scores import attribution_auc, block_auc, block_rms, expand_block_truth, gap
from .typing import ArrayLike

__all__ = ["attribution_auc", "block_auc", "gap", "expand_block_truth", "block_rms", "decoding_scores",
           "latent_fit_scores", "distance_ratios", "session_consistency", "consistency_summary"]


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


def session_consistency(embeddings: Sequence[ArrayLike], labels: Sequence[ArrayLike], *, n_bins: int = 10,
                        min_count: int = 1) -> np.ndarray:
    """How well each session's embedding predicts each other session's, once time points are matched by the label.

    Sessions (animals, days, recordings with different neurons) share no time points, so their embeddings
    are compared through the label instead, as CEBRA's consistency across data sets does: both are
    averaged within bins of the label and the bin means are regressed on each other.

    1. Every label dimension is cut into ``n_bins`` equal-width bins spanning the range of that dimension
       pooled over all sessions, so that a bin is the same stretch of the label in every session; a
       d-dimensional label gives ``n_bins ** d`` cells (e.g. 10 x 10 squares of the box for a position).
    2. In each session, the mean embedding of the time points in each cell; cells with fewer than
       ``min_count`` time points are left out.
    3. For sessions i and j, the cells kept in both: an ordinary least-squares linear map with intercept
       from session i's cell means to session j's, and the R2 of its fit (variance-weighted over the
       embedding dimensions, as ``sklearn.metrics.r2_score(..., multioutput="variance_weighted")``).

    The map is fitted and scored on the same cells: the score says how much of session j's label-averaged
    embedding is a linear function of session i's, the invariance up to which contrastive learning
    identifies an embedding. It is not a held-out prediction.

    Parameters
    ----------
    embeddings : sequence of S arrays, each of shape (T_s, D)
        One embedding per session (S >= 2); T_s may differ between sessions, D may not.
    labels : sequence of S arrays, each of shape (T_s,) or (T_s, d)
        The label of each session's time points, in the same units in every session (e.g. position in
        metres); the same width d in every session. Bins are equal-width in the label's own values, so a
        circular label (an angle) is binned as a line.
    n_bins : int, default=10
        Bins per label dimension (>= 1).
    min_count : int, default=1
        Time points a cell needs in a session to count as occupied there (>= 1).

    Returns
    -------
    ndarray of shape (S, S), float64
        Entry [i, j]: R2 of session j's cell means predicted linearly from session i's (1 is a perfect
        linear match; 0 no better than session j's mean; negative is possible only through rounding,
        since the fit includes an intercept). Not symmetric. The diagonal is computed the same way and is
        1 up to rounding. An entry is NaN, with a :class:`UserWarning` naming the sessions, where the two
        sessions share fewer than D + 2 occupied cells or session j's cell means do not vary.

    Raises
    ------
    ValueError, TypeError
        If the sessions do not match: the message names the argument and the session.

    Notes
    -----
    Schneider, Lee & Mathis (2023), "Learnable latent embeddings for joint behavioural and neural
    analysis", Nature 617: consistency of embeddings across animals.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> position = [rng.uniform(0, 1, size=(500, 2)) for _ in range(3)]
    >>> mixing = rng.normal(size=(2, 3))
    >>> embeddings = [p @ mixing + 0.01 * rng.normal(size=(500, 3)) for p in position]
    >>> matrix = session_consistency(embeddings, position, n_bins=5)
    >>> matrix.shape, bool(np.all(matrix > 0.99))
    ((3, 3), True)
    """
    embeddings, labels = _session_arrays(embeddings, labels)
    n_bins = check_int("n_bins", n_bins, 1)
    min_count = check_int("min_count", min_count, 1)
    cells = _label_cells(labels, n_bins)
    means = [_cell_means(z, c, min_count) for z, c in zip(embeddings, cells)]
    n_sessions, width = len(embeddings), embeddings[0].shape[1]
    # D + 1 cells determine a linear map with intercept from D dimensions exactly (R2 = 1 whatever the
    # embeddings), so a score that says anything needs at least one cell more.
    needed = width + 2
    matrix = np.full((n_sessions, n_sessions), np.nan)
    for i in range(n_sessions):
        for j in range(i, n_sessions):
            _, rows_i, rows_j = np.intersect1d(means[i][0], means[j][0], assume_unique=True, return_indices=True)
            if len(rows_i) < needed:
                _warn_few_cells(i, j, len(rows_i), needed, min_count, width)
                continue
            source, target = means[i][1][rows_i], means[j][1][rows_j]
            matrix[i, j] = _linear_r2(source, target, i, j)
            if i != j:
                matrix[j, i] = _linear_r2(target, source, j, i)
    return matrix


def consistency_summary(matrix: ArrayLike) -> float:
    """The mean of the off-diagonal entries of a consistency matrix, NaN entries ignored.

    Parameters
    ----------
    matrix : array of shape (S, S)
        E.g. from :func:`session_consistency` (S >= 2).

    Returns
    -------
    float
        Mean R2 over the ordered pairs of different sessions; NaN if every such entry is NaN.

    Examples
    --------
    >>> consistency_summary([[1.0, 0.8, float("nan")], [0.6, 1.0, 0.7], [0.9, 0.5, 1.0]])
    0.7
    """
    values = np.asarray(matrix, dtype=np.float64)
    if values.ndim != 2 or values.shape[0] != values.shape[1] or values.shape[0] < 2:
        raise ValueError(f"matrix must be a square (S, S) array with S >= 2 sessions; got shape {values.shape}")
    off_diagonal = values[~np.eye(values.shape[0], dtype=bool)]
    kept = off_diagonal[~np.isnan(off_diagonal)]
    return float(kept.mean()) if kept.size else float("nan")


def _session_arrays(embeddings: Any, labels: Any) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Each session's embedding (T_s, D) and label (T_s, d) as float64, checked against each other."""
    sessions = {}
    for name, value in (("embeddings", embeddings), ("labels", labels)):
        if isinstance(value, (str, bytes, dict)) or not isinstance(value, (Sequence, np.ndarray)):
            raise TypeError(f"{name} must be a sequence with one array per session; got {type(value).__name__}")
        sessions[name] = list(value)
    n_sessions = len(sessions["embeddings"])
    if len(sessions["labels"]) != n_sessions:
        raise ValueError(f"labels has {len(sessions['labels'])} sessions but embeddings has {n_sessions}; "
                         "give one label array per session")
    if n_sessions < 2:
        raise ValueError(f"embeddings must hold at least 2 sessions to compare; got {n_sessions}")
    zs, ys = [], []
    for s, (z, y) in enumerate(zip(sessions["embeddings"], sessions["labels"])):
        z = _float_array(f"embeddings[{s}]", z, (2,), "(T_s, D)")
        y = _float_array(f"labels[{s}]", y, (1, 2), "(T_s,) or (T_s, d)")
        y = y[:, None] if y.ndim == 1 else y
        if z.shape[0] == 0 or z.shape[1] == 0:
            raise ValueError(f"embeddings[{s}] must have at least one time point and one dimension; "
                             f"got shape {z.shape}")
        if y.shape[0] != z.shape[0]:
            raise ValueError(f"labels[{s}] has {y.shape[0]} rows but embeddings[{s}] has {z.shape[0]}; "
                             "they must match in time")
        if y.shape[1] == 0:
            raise ValueError(f"labels[{s}] must have at least one column; got shape {y.shape}")
        if zs and z.shape[1] != zs[0].shape[1]:
            raise ValueError(f"embeddings[{s}] has {z.shape[1]} dimensions but embeddings[0] has {zs[0].shape[1]}; "
                             "every session's embedding must have the same width")
        if ys and y.shape[1] != ys[0].shape[1]:
            raise ValueError(f"labels[{s}] has {y.shape[1]} columns but labels[0] has {ys[0].shape[1]}; "
                             "every session's label must have the same width")
        check_finite(f"embeddings[{s}]", z, hint="Consistency needs finite embeddings")
        check_finite(f"labels[{s}]", y, hint="Consistency needs finite labels")
        zs.append(z)
        ys.append(y)
    return zs, ys


def _float_array(name: str, value: Any, ndim: tuple[int, ...], layout: str) -> np.ndarray:
    if hasattr(value, "detach"):  # a torch tensor
        value = value.detach().cpu().numpy()
    array = np.asarray(value)
    if array.dtype == object or array.dtype.kind not in "biuf":
        raise TypeError(f"{name} must hold numbers; got an array of dtype {array.dtype}")
    if array.ndim not in ndim:
        expected = " or ".join(f"{d}-D" for d in ndim)
        raise ValueError(f"{name} must be a {expected} array of shape {layout}; got shape {array.shape}")
    return array.astype(np.float64)


def _label_cells(labels: list[np.ndarray], n_bins: int) -> list[np.ndarray]:
    """Each session's time points as flat indices (T_s,) of cells of a grid shared by all sessions."""
    width = labels[0].shape[1]
    if n_bins ** width > np.iinfo(np.int64).max:
        raise ValueError(f"n_bins ** label width = {n_bins} ** {width} cells do not fit a 64-bit index; "
                         "use fewer bins or a label with fewer columns")
    pooled = np.concatenate(labels)
    low, high = pooled.min(axis=0), pooled.max(axis=0)
    span = np.where(high > low, high - low, 1.0)  # a constant dimension puts every time point in its first bin
    cells = []
    for y in labels:
        index = np.floor((y - low) / span * n_bins).astype(np.int64)
        index = np.minimum(index, n_bins - 1)  # the pooled maximum closes the last bin
        cells.append(np.ravel_multi_index(tuple(index.T), (n_bins,) * width))
    return cells


def _cell_means(embedding: np.ndarray, cells: np.ndarray, min_count: int) -> tuple[np.ndarray, np.ndarray]:
    """The occupied cells (K,), sorted, and the mean embedding in each (K, D)."""
    occupied, inverse, counts = np.unique(cells, return_inverse=True, return_counts=True)
    sums = np.stack([np.bincount(inverse, weights=column, minlength=len(occupied)) for column in embedding.T], axis=1)
    kept = counts >= min_count
    return occupied[kept], sums[kept] / counts[kept, None]


def _linear_r2(source: np.ndarray, target: np.ndarray, i: int, j: int) -> float:
    """Variance-weighted R2 of the least-squares map with intercept from ``source`` (K, D) to ``target`` (K, D)."""
    design = np.column_stack([source, np.ones(len(source))])
    coefficients, *_ = np.linalg.lstsq(design, target, rcond=None)
    residual = float(np.sum((target - design @ coefficients) ** 2))
    total = float(np.sum((target - target.mean(axis=0)) ** 2))
    if total == 0.0:
        warnings.warn(f"the cell means of session {j} do not vary (a collapsed embedding?), so no share of their "
                      f"variance can be explained; entry [{i}, {j}] is NaN", UserWarning, stacklevel=3)
        return float("nan")
    return 1.0 - residual / total


def _warn_few_cells(i: int, j: int, n_shared: int, needed: int, min_count: int, width: int) -> None:
    pair = f"session {i} has" if i == j else f"sessions {i} and {j} share"
    entries = f"entry [{i}, {i}] is" if i == j else f"entries [{i}, {j}] and [{j}, {i}] are"
    warnings.warn(f"{pair} {n_shared} label bins with at least {min_count} time point(s); a linear map with "
                  f"intercept from a {width}-D embedding needs at least {needed}, so {entries} NaN. Use fewer "
                  "n_bins or a smaller min_count", UserWarning, stacklevel=3)
