"""``AttributionMap``: the one result type of every attribution method, and the batching helper they share.

A map is the mean over time points of the absolute per-time-point attribution, with its standard
error. Both follow from three exact sums (the number of time points, the sum and the sum of squares
of the absolute values, in float64), so the work splits in two steps that compose:

- :func:`partial_sums` runs a method over some time positions in batches and returns
  :class:`PartialSums`; sums over disjoint sets of positions add up (``a + b``), in any order;
- :func:`finalize` turns the sums into an :class:`AttributionMap`.

:func:`accumulate_map` is the two in one process; :func:`xcebra.parallel.attribution_map` computes the
partial sums of chunks of the recording on Dask workers and finalises their total, with the same code.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import numpy as np
import torch
from tqdm.auto import tqdm

from .scores import attribution_auc, block_auc, block_rms

__all__ = ["AttributionMap", "PartialSums", "accumulate_map", "partial_sums", "finalize", "select_time_points"]


@dataclass(frozen=True)
class AttributionMap:
    """An attribution map: how strongly each neuron drives each embedding dimension, averaged over time.

    Attributes
    ----------
    values : ndarray of shape (output_dim, N)
        Mean over time points of the absolute per-time-point attribution. Gradient methods sum the
        encoder's per-lag Jacobian over its window, where the reference package averages it: for an
        encoder of ``w`` frames, ``"jacobian"`` values are ``w`` times the reference's and ING values
        ``1 / w`` times (see :mod:`xcebra.attribution.jacobian`, "Units"). Rankings and AUCs agree.
    method : str
        Name of the method that produced it (``"ing"``, ``"jacobian"``, ...).
    blocks : list of (name, slice)
        The embedding's disjoint blocks (``model.blocks_``).
    stderr : ndarray of shape (output_dim, N)
        Standard error of ``values`` over the time points used (treats them as independent, so it is
        optimistic for strongly autocorrelated data).
    n_timepoints : int
        Number of time points averaged.
    options : dict
        Method options (lag reduction, number of samples, seed, ...).
    """

    values: np.ndarray
    method: str
    blocks: list
    stderr: np.ndarray
    n_timepoints: int
    options: dict = field(default_factory=dict)

    @property
    def block_values(self) -> np.ndarray:
        """(n_blocks, N): root mean square of ``values`` over the rows of each block.

        A block is identified only up to an invertible linear map, so its rows are not individually
        meaningful; their RMS per neuron is. Compare these within a block, not across blocks.
        """
        return block_rms(self.values, self.blocks)

    @property
    def block_names(self) -> list[str]:
        return [name for name, _ in self.blocks]

    @property
    def shape(self) -> tuple[int, int]:
        return tuple(self.values.shape)

    def score(self, ground_truth: Any, level: str = "auto") -> float:
        """ROC AUC against a boolean ground truth.

        ``ground_truth`` of shape (output_dim, N) is scored per entry (:func:`xcebra.attribution.scores.attribution_auc`);
        of shape (n_blocks, N) per block (:func:`xcebra.attribution.scores.block_auc`). ``level`` forces one
        (``"entry"`` or ``"block"``) when the shapes coincide.
        """
        truth = np.asarray(ground_truth)
        if level not in ("auto", "entry", "block"):
            raise ValueError(f"level must be one of 'auto', 'entry', 'block'; got {level!r}")
        if level == "auto":
            if truth.shape == self.values.shape:
                level = "entry"
            elif truth.ndim == 2 and truth.shape[0] == len(self.blocks) and truth.shape[1] == self.values.shape[1]:
                level = "block"
            else:
                raise ValueError(
                    f"ground_truth has shape {truth.shape}; expected {self.values.shape} (per entry) or "
                    f"({len(self.blocks)}, {self.values.shape[1]}) (per block)")
        if level == "entry":
            return attribution_auc(self.values, truth)
        return block_auc(self, truth)

    def plot(self, **kwargs: Any):
        """Deprecated: use :func:`xcebra.viz.plot_attribution_map` (``xcebra.plotting.plot_attribution_map``).

        The result type does not draw itself: figures are the viz layer's, which sits above attribution.
        This method forwards to it, with a DeprecationWarning, and will be removed.
        """
        warnings.warn("AttributionMap.plot() is deprecated and will be removed; use "
                      "xcebra.viz.plot_attribution_map(amap, ...) (also xcebra.plotting.plot_attribution_map)",
                      DeprecationWarning, stacklevel=2)
        from ..viz.maps import plot_attribution_map  # deprecated path only: the layers above are not imported here
        return plot_attribution_map(self, **kwargs)


def select_time_points(valid: int, num_samples: int | None, random_state: int | None) -> np.ndarray:
    """Positions (0..valid-1) to attribute: all of them, or ``num_samples`` drawn without replacement (sorted)."""
    if num_samples is None or num_samples >= valid:
        return np.arange(valid)
    rng = np.random.default_rng(random_state)
    return np.sort(rng.choice(valid, size=num_samples, replace=False))


@dataclass(frozen=True)
class PartialSums:
    """Exact running sums of absolute attributions over a set of time points: what a map is made of.

    Attributes
    ----------
    count : int
        Number of time points summed.
    total : ndarray of shape (output_dim, N), float64
        Sum over those time points of the absolute attribution.
    total_sq : ndarray of shape (output_dim, N), float64
        Sum of its squares.

    Sums over disjoint sets of time points add with ``+`` (the result does not depend on the order up to
    float64 round-off); :func:`finalize` turns them into an :class:`AttributionMap`.
    """

    count: int
    total: np.ndarray
    total_sq: np.ndarray

    def __add__(self, other: "PartialSums") -> "PartialSums":
        if not isinstance(other, PartialSums):
            return NotImplemented
        if other.total.shape != self.total.shape:
            raise ValueError(f"cannot add partial sums of shapes {self.total.shape} and {other.total.shape}; "
                             "they must come from the same model")
        return PartialSums(self.count + other.count, self.total + other.total, self.total_sq + other.total_sq)


def partial_sums(per_batch: Callable[[np.ndarray], torch.Tensor], positions: np.ndarray, batch_size: int, *,
                 verbose: bool = False, desc: str = "attribution") -> PartialSums:
    """Run ``per_batch`` over ``positions`` in batches and sum the absolute attributions (float64).

    Parameters
    ----------
    per_batch : callable
        Maps positions of shape (b,) to per-time-point attributions of shape (b, output_dim, N).
    positions : int array of shape (n,), n >= 1
        Time positions to attribute.
    batch_size : int
        Positions per call of ``per_batch``.
    verbose : bool, default False
        Progress bar over the positions, titled ``desc``.

    Returns
    -------
    PartialSums
        Only these sums are kept (no per-time-point values), so memory does not grow with ``n``.
    """
    if len(positions) == 0:
        raise ValueError("no time points to attribute")
    total = total_sq = None
    with tqdm(total=len(positions), disable=not verbose, desc=desc, unit="pt", dynamic_ncols=True) as bar:
        for start in range(0, len(positions), batch_size):
            chunk = positions[start:start + batch_size]
            values = per_batch(chunk).detach().abs().to(torch.float64)
            chunk_sum, chunk_sq = values.sum(0), values.pow(2).sum(0)
            total = chunk_sum if total is None else total + chunk_sum
            total_sq = chunk_sq if total_sq is None else total_sq + chunk_sq
            bar.update(len(chunk))
    return PartialSums(count=len(positions), total=total.cpu().numpy(), total_sq=total_sq.cpu().numpy())


def finalize(sums: PartialSums, *, method: str, blocks: Sequence, options: dict | None = None) -> AttributionMap:
    """The map of ``sums``: mean absolute attribution and its standard error over the ``sums.count`` time points."""
    n = sums.count
    if n < 1:
        raise ValueError("no time points to attribute")
    mean = sums.total / n
    variance = np.clip(sums.total_sq / n - mean ** 2, 0.0, None)
    stderr = np.sqrt(variance / max(n - 1, 1))
    return AttributionMap(values=mean, method=method, blocks=list(blocks), stderr=stderr, n_timepoints=n,
                          options=dict(options or {}))


def accumulate_map(per_batch: Callable[[np.ndarray], torch.Tensor], positions: np.ndarray, batch_size: int, *,
                   method: str, blocks: Sequence, options: dict | None = None, verbose: bool = False,
                   desc: str | None = None) -> AttributionMap:
    """Run ``per_batch`` over ``positions`` in batches and average the absolute attributions.

    Parameters
    ----------
    per_batch : callable mapping positions (b,) to per-time-point attributions (b, output_dim, N).
    positions : int array of time positions.
    batch_size : number of positions per call.

    Only running sums are kept (sum and sum of squares of absolute values, in float64), so memory
    does not grow with the number of time points: ``finalize(partial_sums(...))``.
    """
    sums = partial_sums(per_batch, positions, batch_size, verbose=verbose, desc=desc or f"attribution ({method})")
    return finalize(sums, method=method, blocks=blocks, options=options)
