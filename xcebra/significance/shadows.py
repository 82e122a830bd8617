"""Shadow neurons, the null: circularly time-shifted copies of real neurons appended to the input."""

from __future__ import annotations

import logging
import math
from typing import Sequence

import numpy as np

from ..sampling import label_autocorrelation_time

__all__ = ["minimum_shift", "shadow_sources", "shadow_shifts", "add_shadows", "SHADOWS_PER_NEURON"]

logger = logging.getLogger("xcebra")


#: the shortest shift as a share of the recording: shadows start at least this far from their source
_MIN_SHIFT_SHARE = 0.1
#: shadows per neuron by default (see the module docstring)
SHADOWS_PER_NEURON = 4
#: the shortest shift in autocorrelation times: correlation ~ exp(-3) = 0.05 for an exponential decay
_AUTOCORRELATION_TIMES = 3


def minimum_shift(n_timepoints: int, window: int, series: Sequence[np.ndarray] = ()) -> int:
    """The shortest circular shift of a shadow: far enough that it no longer follows its source.

    The largest of a tenth of the recording, the encoder's window, and three autocorrelation times
    (:func:`xcebra.sampling.label_autocorrelation_time`) of each array in ``series`` (labels, neural
    data); at most ``n_timepoints // 2``, the farthest a circular shift can go (a warning says when the
    autocorrelation asks for more: the shadows then stay correlated with their sources, and the null is
    conservative).
    """

    shift = max(math.ceil(_MIN_SHIFT_SHARE * n_timepoints), int(window))
    for array in series:
        array = np.asarray(array)
        if array.dtype.kind in "iub":  # class labels: their runs set the time scale
            array = array.astype(np.float64)
        shift = max(shift, _AUTOCORRELATION_TIMES * label_autocorrelation_time(array))
    if shift > n_timepoints // 2:
        logger.warning("significance: the recording (%d time points) is shorter than 2 x %d, the shift that "
                       "decorrelates its slowest label or neurons; shadows are shifted by up to %d and stay partly "
                       "correlated with their sources, so the null is conservative", n_timepoints, shift,
                       n_timepoints // 2)
        shift = n_timepoints // 2
    return int(shift)


def shadow_sources(n_neurons: int, n_shadows: int, random_state: int) -> np.ndarray:
    """The real neuron each shadow slot copies, the same in every seed.

    Slot ``k`` copies neuron ``k % n_neurons`` for every full round of ``n_neurons`` slots; the slots
    beyond the last full round copy a random subset of the neurons (sorted, drawn from ``random_state``).

    Returns
    -------
    ndarray of shape (n_shadows,), int64.
    """
    rng = np.random.default_rng([random_state, 0x5AD0])
    rounds, rest = divmod(n_shadows, n_neurons)
    extra = np.sort(rng.choice(n_neurons, size=rest, replace=False))
    return np.concatenate([np.tile(np.arange(n_neurons), rounds), extra]).astype(np.int64)


def shadow_shifts(n_timepoints: int, n_shadows: int, min_shift: int, random_state: int, seed_index: int) -> np.ndarray:
    """Circular shifts of the shadows of one seed, uniform in ``[min_shift, n_timepoints - min_shift]``.

    Drawn from ``np.random.default_rng([random_state, seed_index])``: each seed has its own shifts, and
    the same arguments give the same shifts (so a rerun finds its fits in ``out_dir``).

    Returns
    -------
    ndarray of shape (n_shadows,), int64.
    """
    if not 1 <= min_shift <= n_timepoints - min_shift:
        raise ValueError(f"min_shift must be in [1, n_timepoints / 2] = [1, {n_timepoints // 2}]; got {min_shift}")
    rng = np.random.default_rng([random_state, seed_index])
    return rng.integers(min_shift, n_timepoints - min_shift, size=n_shadows, endpoint=True).astype(np.int64)


def add_shadows(neural: np.ndarray, sources: np.ndarray, shifts: np.ndarray) -> np.ndarray:
    """``neural`` with the shadow columns appended: column ``N + k`` is ``neural[(t - shifts[k]) % T, sources[k]]``.

    Parameters
    ----------
    neural : ndarray of shape (T, N)
    sources, shifts : int arrays of shape (n_shadows,)

    Returns
    -------
    ndarray of shape (T, N + n_shadows), the dtype of ``neural``.
    """
    n_timepoints = neural.shape[0]
    rows = (np.arange(n_timepoints)[:, None] - shifts[None, :]) % n_timepoints
    return np.concatenate([neural, neural[rows, sources[None, :]]], axis=1)
