"""Validated neural time series with named labels, and sliding windows taken as views."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

import numpy as np
import torch

from ._validation import as_float_array, check_finite

__all__ = ["TimeSeries", "sliding_windows"]


def sliding_windows(neural: torch.Tensor, window: int) -> torch.Tensor:
    """All windows of ``window`` consecutive frames, as a view (no copy).

    Parameters
    ----------
    neural : tensor of shape (T, N)
    window : int, number of frames per window (the encoder's receptive field).

    Returns
    -------
    tensor of shape (T - window + 1, N, window)
        Entry ``[j]`` holds frames ``j .. j + window - 1``; it shares memory with ``neural``.
    """
    if neural.shape[0] < window:
        raise ValueError(f"neural has {neural.shape[0]} time points but the encoder needs windows of {window}")
    # unfold over time on the (T, N) layout gives (T - w + 1, N, w) with strides into the same storage
    return neural.unfold(0, window, 1)


@dataclass(frozen=True)
class TimeSeries:
    """A recording: neural activity and labels sampled at the same time points.

    Parameters
    ----------
    neural : array of shape (T, N)
        Activity of N neurons (or channels) at T time points; stored as float32.
    labels : mapping of str to array of shape (T,) or (T, d)
        Auxiliary variables (position, head direction, trial type, ...). Continuous labels are stored
        as float32 (T, d); integer labels keep an integer dtype so that ``discrete`` sampling can use them.

    Raises
    ------
    ValueError
        If a label's length differs from T, or any value is NaN or infinite.
    """

    neural: np.ndarray
    labels: Mapping[str, np.ndarray] = field(default_factory=dict)

    @classmethod
    def from_arrays(cls, neural: Any, **labels: Any) -> "TimeSeries":
        """Validate and convert ``neural`` (T, N) and keyword labels (T,) or (T, d)."""
        neural_array = as_float_array("neural", neural, ndim=(2,), layout="(time points, neurons)")
        if neural_array.shape[0] == 0 or neural_array.shape[1] == 0:
            raise ValueError(f"neural must have at least one time point and one neuron; got shape {neural_array.shape}")
        check_finite("neural", neural_array)
        converted = {}
        for name, value in labels.items():
            raw = np.asarray(value)
            if raw.dtype.kind in "iub":
                array = raw.astype(np.int64)
                if array.ndim == 2 and array.shape[1] == 1:
                    array = array[:, 0]
                if array.ndim != 1 and array.ndim != 2:
                    raise ValueError(f"label '{name}' must be a 1-D or 2-D array; got shape {array.shape} "
                                     "(expected (time points,) or (time points, dimensions))")
            else:
                array = as_float_array(f"label '{name}'", raw, ndim=(1, 2),
                                       layout="(time points,) or (time points, dimensions)")
                check_finite(f"label '{name}'", array)
                if array.ndim == 1:
                    array = array[:, None]
            if array.ndim == 2 and array.shape[1] == 0:
                raise ValueError(f"label '{name}' has shape {array.shape}: no dimensions; it needs at least one column")
            if array.shape[0] != neural_array.shape[0]:
                raise ValueError(
                    f"label '{name}' has {array.shape[0]} rows but neural has {neural_array.shape[0]}; "
                    "they must match in time")
            converted[name] = array
        return cls(neural=neural_array, labels=converted)

    @property
    def n_timepoints(self) -> int:
        return int(self.neural.shape[0])

    @property
    def n_neurons(self) -> int:
        return int(self.neural.shape[1])

    def label(self, name: str) -> np.ndarray:
        """The label called ``name``; a KeyError lists the labels that exist."""
        if name not in self.labels:
            known = ", ".join(repr(k) for k in self.labels) or "none"
            raise KeyError(f"label {name!r} was not given to fit; labels given: {known}")
        return self.labels[name]

    def tensor(self, device: torch.device | str = "cpu") -> torch.Tensor:
        """The neural data as a float32 tensor of shape (T, N) (shares memory on the CPU)."""
        return torch.from_numpy(np.ascontiguousarray(self.neural)).to(device)
