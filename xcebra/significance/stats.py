"""The statistics of a significance analysis: pure functions on arrays of attributions and p-values."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from scipy import stats
from scipy.stats import rankdata

from .._validation import check_finite, check_float

__all__ = ["empirical_p_values", "benjamini_hochberg", "normalise_by_null", "seed_intervals", "consistency_scores"]


def empirical_p_values(values: Any, null: Any) -> np.ndarray:
    """Right-tailed empirical p-values of ``values`` against a null sample, row by row.

    ``p = (1 + #{null >= value}) / (1 + n_null)``: ties count against the value, and the +1 makes the
    p-value valid (``P(p <= a) <= a``) whenever a null value is exchangeable with the null sample.

    Parameters
    ----------
    values : array of shape (..., n_values)
    null : array of shape (..., n_null)
        The same leading shape as ``values``; row ``i`` of ``values`` is tested against row ``i`` of
        ``null``.

    Returns
    -------
    ndarray of shape (..., n_values), float64, in ``[1 / (n_null + 1), 1]``.

    Examples
    --------
    >>> empirical_p_values([3.0, 1.0, 0.5], [0.2, 1.0, 2.0, 0.7])
    array([0.2, 0.6, 0.8])
    """
    values = np.asarray(values, dtype=np.float64)
    null = np.asarray(null, dtype=np.float64)
    if values.ndim < 1 or null.ndim != values.ndim or null.shape[:-1] != values.shape[:-1]:
        raise ValueError(f"values and null must have the same leading shape (..., n) and (..., n_null); got "
                         f"{values.shape} and {null.shape}")
    if null.shape[-1] < 1:
        raise ValueError(f"null must hold at least one value per row; got shape {null.shape}")
    check_finite("values", values, hint="Attribution values must be finite")
    check_finite("null", null, hint="Attribution values must be finite")
    flat_values = values.reshape(-1, values.shape[-1])
    flat_null = np.sort(null.reshape(-1, null.shape[-1]), axis=-1)
    n_null = flat_null.shape[-1]
    # null values >= v are those from the first index where the sorted null is >= v
    at_least = np.stack([n_null - np.searchsorted(row, v, side="left") for row, v in zip(flat_null, flat_values)])
    return ((1.0 + at_least) / (1.0 + n_null)).reshape(values.shape)


def benjamini_hochberg(p_values: Any, fdr: float) -> np.ndarray:
    """Benjamini-Hochberg step-up decisions at false discovery rate ``fdr``, row by row.

    With the p-values of a row sorted, ``p_(1) <= ... <= p_(n)``, the largest ``k`` with
    ``p_(k) <= fdr * k / n`` is found and the ``k`` smallest are rejected (selected); none if no ``k`` qualifies.

    Parameters
    ----------
    p_values : array of shape (..., n)
        Each row is one family of hypotheses.
    fdr : float in (0, 1)

    Returns
    -------
    ndarray of shape (..., n), bool: True where the hypothesis is rejected.

    Examples
    --------
    >>> benjamini_hochberg([0.01, 0.03, 0.02, 0.5], 0.05)
    array([ True,  True,  True, False])
    """
    fdr = check_float("fdr", fdr, minimum=0.0, strict=True, maximum=1.0)
    p = np.asarray(p_values, dtype=np.float64)
    if p.ndim < 1 or p.shape[-1] < 1:
        raise ValueError(f"p_values must have shape (..., n) with n >= 1; got {p.shape}")
    if np.any(~np.isfinite(p)) or np.any((p < 0) | (p > 1)):
        raise ValueError("p_values must be finite numbers in [0, 1]")
    flat = p.reshape(-1, p.shape[-1])
    n = flat.shape[-1]
    thresholds = fdr * np.arange(1, n + 1) / n
    selected = np.zeros(flat.shape, dtype=bool)
    for row, out in zip(flat, selected):
        order = np.argsort(row, kind="stable")
        passing = np.flatnonzero(row[order] <= thresholds)
        if len(passing):
            out[order[:passing[-1] + 1]] = True
    return selected.reshape(p.shape)


def normalise_by_null(values: Any, null: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Divide each (seed, block) row of real and shadow values by that row's median shadow value.

    A row whose shadows are mostly exactly zero (e.g. an output clip holding the block) is divided by
    its mean shadow value instead; a row whose shadows are all zero keeps its scale (divisor 1).

    Parameters
    ----------
    values : array of shape (n_seeds, n_blocks, n_neurons)
        Attribution of the real neurons, per seed and block.
    null : array of shape (n_seeds, n_blocks, n_shadows)
        Attribution of the shadows, per seed and block.

    Returns
    -------
    values, null : float64 arrays of the input shapes, divided
    scale : ndarray of shape (n_seeds, n_blocks), the divisors
    """
    values = np.asarray(values, dtype=np.float64)
    null = np.asarray(null, dtype=np.float64)
    if values.ndim != 3 or null.ndim != 3 or values.shape[:2] != null.shape[:2]:
        raise ValueError(f"values and null must have shapes (n_seeds, n_blocks, n) and (n_seeds, n_blocks, n_null); "
                         f"got {values.shape} and {null.shape}")
    scale = np.median(null, axis=-1)
    fallback = np.mean(null, axis=-1)
    scale = np.where(scale > 0, scale, np.where(fallback > 0, fallback, 1.0))
    return values / scale[..., None], null / scale[..., None], scale


def seed_intervals(values: Any, confidence: float = 0.95) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mean over seeds and its Student-t confidence interval.

    Parameters
    ----------
    values : array of shape (n_seeds, ...), n_seeds >= 2
    confidence : float in (0, 1), default 0.95

    Returns
    -------
    mean, low, high : arrays of shape (...): ``mean -/+ t_{(1 + confidence) / 2, n_seeds - 1} * sd / sqrt(n_seeds)``
    (``sd`` with ``ddof=1``).
    """

    values = np.asarray(values, dtype=np.float64)
    confidence = check_float("confidence", confidence, minimum=0.0, strict=True, maximum=1.0 - 1e-12)
    if values.ndim < 1 or values.shape[0] < 2:
        raise ValueError(f"values must have at least two seeds along axis 0; got shape {values.shape}")
    n = values.shape[0]
    mean = values.mean(axis=0)
    half = stats.t.ppf(0.5 + confidence / 2, df=n - 1) * values.std(axis=0, ddof=1) / math.sqrt(n)
    return mean, mean - half, mean + half


def consistency_scores(values: Any) -> np.ndarray:
    """Mean pairwise Spearman rank correlation across seeds, per block.

    Parameters
    ----------
    values : array of shape (n_seeds, n_blocks, n_neurons), n_seeds >= 2
        A map per seed (any scale: ranks only).

    Returns
    -------
    ndarray of shape (n_blocks,): the mean over the ``n_seeds * (n_seeds - 1) / 2`` pairs of seeds of the
    Spearman correlation of the block's rows; NaN where some seed's row is constant (no ranking).
    """

    values = np.asarray(values, dtype=np.float64)
    if values.ndim != 3 or values.shape[0] < 2 or values.shape[2] < 2:
        raise ValueError(f"values must have shape (n_seeds >= 2, n_blocks, n_neurons >= 2); got {values.shape}")
    ranks = rankdata(values, axis=-1)
    centred = ranks - ranks.mean(axis=-1, keepdims=True)
    norms = np.sqrt((centred ** 2).sum(axis=-1))
    n_seeds = values.shape[0]
    scores = np.zeros(values.shape[1])
    for a in range(n_seeds):
        for b in range(a + 1, n_seeds):
            with np.errstate(invalid="ignore", divide="ignore"):
                scores += (centred[a] * centred[b]).sum(axis=-1) / (norms[a] * norms[b])
    return scores / (n_seeds * (n_seeds - 1) / 2)
