"""``compute_attribution_map``: attribute a fitted embedder over a recording, for any estimator.

The one place that turns (embedder, neural array, method) into an :class:`AttributionMap`: it chooses
the time points, reads their windows in batches from any array-like (``np.memmap`` and h5py datasets
are never loaded whole), runs the method's attributor (:mod:`.registry`: the Jacobian methods of
:mod:`.jacobian` and :mod:`.ing`, the captum baselines of :mod:`.baselines`) on each batch and averages the
absolute values.
``XCEBRA`` and ``SupervisedRegressor`` both call it after checking that ``neural`` matches the model.

It is two steps, shared with the chunked map of :func:`xcebra.parallel.attribution_map`:
:func:`attribution_sums` (exact float64 sums over some positions, :class:`.maps.PartialSums`) and
:func:`.maps.finalize` (mean and standard error). A chunk computed on a Dask worker runs the very same
:func:`attribution_sums` on its positions, so the reduced map equals the single-process one.
"""

from __future__ import annotations

import numbers
from typing import Any, Sequence

import numpy as np
import torch
from torch import nn

from .._validation import check_finite
from .ing import check_block_ranks
from .jacobian import LAG_REDUCTIONS
from .maps import AttributionMap, PartialSums, finalize, partial_sums, select_time_points
from .registry import JACOBIAN_METHODS, METHODS, STOCHASTIC_METHODS, get_method

__all__ = ["compute_attribution_map", "attribution_sums", "check_attribution_arguments", "recorded_options",
           "check_block_ranks", "resolve_method_options", "read_rows", "read_windows", "JACOBIAN_METHODS",
           "STOCHASTIC_METHODS"]


def _is_int(value: Any, minimum: int) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool) and value >= minimum


def _float32(block: Any) -> np.ndarray:
    """A writable float32 copy of rows just read (numpy, memmap, h5py or torch)."""
    if isinstance(block, torch.Tensor):
        block = block.detach().cpu().numpy()
    return np.array(block, dtype=np.float32)


def read_rows(neural: Any, start: int, stop: int, name: str = "neural") -> np.ndarray:
    """Rows ``start..stop-1`` of a (T, N) array-like as float32, replicating the first/last row beyond the edges.

    Only these rows are read (one slice: ``np.memmap`` and h5py datasets stay on disk). A NaN or infinite
    value raises a ValueError that names its row in ``neural``.
    """
    n = neural.shape[0]
    lo, hi = max(start, 0), min(stop, n)
    block = _float32(neural[lo:hi])  # a writable copy of just these rows
    check_finite(f"{name} (rows {lo}..{hi - 1})", block, rows=lo, hint="Remove or interpolate them first")
    if start < 0 or stop > n:
        before = np.repeat(block[:1], max(0, -start), axis=0)
        after = np.repeat(block[-1:], max(0, stop - n), axis=0)
        block = np.concatenate([before, block, after], axis=0)
    return block


def read_windows(neural: Any, positions: np.ndarray, window: int, name: str = "neural") -> np.ndarray:
    """The windows ``neural[p : p + window]`` for each position ``p`` (all inside the recording), as (B, N, window).

    Reads at most ``2 * len(positions) * window`` rows: one slice when the positions are dense (all time
    points, or a large sample), otherwise only the rows the windows need, by one sorted fancy index
    (works for numpy arrays, ``np.memmap`` and h5py datasets). Sparse samples of a long recording thus
    never read the rows between them.
    """
    positions = np.asarray(positions, dtype=np.int64)
    first, last = int(positions.min()), int(positions.max()) + window
    if last - first <= 2 * len(positions) * window:
        frames = read_rows(neural, first, last, name)
        index = positions - first
    else:
        rows = np.unique(positions[:, None] + np.arange(window))  # sorted, unique: valid for h5py too
        frames = _float32(neural[rows])
        check_finite(f"{name} ({len(rows)} rows between {rows[0]} and {rows[-1]})", frames, rows=rows,
                     hint="Remove or interpolate them first")
        index = np.searchsorted(rows, positions)  # the rows of one window are consecutive in ``rows``
    gather = index[:, None] + np.arange(window)
    return np.ascontiguousarray(frames[gather].transpose(0, 2, 1))


def check_attribution_arguments(method: str, lags: str, num_samples: int | None, batch_size: int,
                                options: dict, blocks: Sequence | None = None) -> None:
    """Raise a ValueError naming the argument for an unknown method or lag reduction, a bad ``num_samples``
    or ``batch_size``, or options the method does not take (each method checks its own: with ``blocks``,
    also ``"ing-block"`` ranks that do not fit them)."""
    found = get_method(method)
    if lags not in LAG_REDUCTIONS:
        raise ValueError(f"lags must be one of 'sum', 'abs'; got {lags!r}")
    if num_samples is not None and not _is_int(num_samples, 1):
        raise ValueError(f"num_samples must be None or an int >= 1; got {num_samples!r}")
    if not _is_int(batch_size, 1):
        raise ValueError(f"batch_size must be an int >= 1; got {batch_size!r}")
    found.check_options(options, blocks)


def resolve_method_options(method: str, options: dict, blocks: Sequence, default_ranks=None) -> dict:
    """``options`` with ``block_ranks`` (of a method that takes it: ``"ing-block"``) as one int or None per block.

    ``block_ranks`` may be a dict {block name: int or None}, whose missing blocks take
    ``default_ranks(missing_names)`` (a callable returning such a dict; None: full rank), or a sequence with
    one entry per block. Other methods' options are returned unchanged.
    """
    if method not in METHODS or "block_ranks" not in get_method(method).options:
        return options
    names = [name for name, _ in blocks]
    given = options.get("block_ranks")
    if given is not None and not isinstance(given, dict):
        return options
    given = {} if given is None else given
    unknown = [k for k in given if k not in names]
    if unknown:
        raise ValueError(f"block_ranks names block {unknown[0]!r}, which this model does not have; its blocks are "
                         f"{', '.join(repr(n) for n in names)}")
    missing = [n for n in names if n not in given]
    defaults = default_ranks(missing) if missing and default_ranks is not None else {}
    return {**options, "block_ranks": tuple(given[n] if n in given else defaults.get(n) for n in names)}


def recorded_options(lags: str, num_samples: int | None, random_state: int | None, options: dict) -> dict:
    """The ``options`` an :class:`AttributionMap` records: lag reduction, sampling, seed and method options."""
    return {"lags": lags, "num_samples": num_samples, "random_state": random_state, **options}


def attribution_sums(embedder: nn.Module, neural: Any, positions: np.ndarray, method: str, *, lags: str = "sum",
                     batch_size: int = 1024, random_state: int | None = 0, first_batch: int = 0,
                     verbose: bool = False, desc: str | None = None, name: str = "neural",
                     **options: Any) -> PartialSums:
    """Exact sums of the absolute attributions of the windows starting at ``positions``.

    Parameters
    ----------
    embedder : nn.Module
        As for :func:`compute_attribution_map`; not changed.
    neural : array-like of shape (T, N)
        Only the rows the windows need are read (see :func:`read_windows`).
    positions : int array of shape (n,), n >= 1
        Window starts, each in ``0 .. T - window``.
    method, lags, batch_size, random_state, **options
        As for :func:`compute_attribution_map` (arguments are not checked again here:
        see :func:`check_attribution_arguments`).
    first_batch : int, default 0
        Global number of the first batch. The stochastic baselines draw random stream ``k`` for batch
        ``k`` of a map; a chunk of a map that starts at batch ``first_batch`` thus draws the same
        numbers as the single-process map did for those positions.
    name : str, default "neural"
        How error messages about ``neural`` (NaN, infinity) name it.

    Returns
    -------
    PartialSums
        ``count = n``; ``total`` and ``total_sq`` of shape (D, N), float64.
    """
    window = embedder.window
    parameter = next(embedder.parameters(), None)
    device = parameter.device if parameter is not None else torch.device("cpu")
    attribute = get_method(method).attributor(embedder, lags=lags, random_state=random_state, first_batch=first_batch,
                                              **options)

    def per_batch(chunk: np.ndarray) -> torch.Tensor:
        return attribute(torch.from_numpy(read_windows(neural, chunk, window, name)).to(device))

    return partial_sums(per_batch, positions, batch_size, verbose=verbose, desc=desc or f"attribution ({method})")


def compute_attribution_map(embedder: nn.Module, neural: Any, method: str, blocks: Sequence, *,
                            num_samples: int | None = None, lags: str = "sum", batch_size: int = 1024,
                            random_state: int | None = 0, verbose: bool = False,
                            **options: Any) -> AttributionMap:
    """Attribute each embedding dimension to the neurons, averaged over time.

    Parameters
    ----------
    embedder : nn.Module
        Maps windows (B, N, window) to (B, 1, D); has ``window`` and ``left`` (:class:`xcebra.models.Embedder`).
        It is not changed (no moving, casting, mode switch or ``.grad``).
    neural : array-like of shape (T, N)
        Anything with ``shape`` and row slicing (numpy array, ``np.memmap``, h5py dataset); each batch
        reads at most ``2 * batch_size * window`` rows (see :func:`read_windows`), never all of it.
        The caller checks that N matches the model.
    method : str
        ``"ing"``, ``"ing-lstsq"``, ``"ing-block"`` (pseudo-inverse per block, see
        :mod:`xcebra.attribution.jacobian`), ``"jacobian"`` or a baseline of :mod:`xcebra.attribution.baselines`.
    blocks : list of (name, slice)
        The embedding's disjoint blocks, stored in the map.
    num_samples : int, optional
        Attribute this many time points drawn uniformly without replacement (seeded by ``random_state``).
    lags : {"sum", "abs"}, default "sum"
        Lag reduction of the Jacobian methods (baselines always sum over lags).
    batch_size : int, default 1024
        Time points per batch.
    random_state : int or None, default 0
        Seed of the time-point subsample and of the sampling baselines.
    verbose : bool, default False
        Progress bar.
    **options
        Options of a baseline method (``n_steps``, ``n_samples``, ``baseline``, ...), or, for
        ``"ing-block"``, ``block_ranks``: one int >= 1 (at most the block's width) or None per block of
        ``blocks``, the most singular values kept when inverting that block (None: all above round-off).

    Returns
    -------
    AttributionMap
        ``values`` (D, N): mean absolute attribution over the time points with a complete window
        (positions ``0 .. T - window``, i.e. time points ``left .. T - window + left``; no padding).

    Raises
    ------
    ValueError
        Unknown method or lag reduction, bad ``num_samples`` / ``batch_size``, options given to a
        Jacobian method, a recording shorter than the window, or non-finite values in ``neural``.
    """
    options = resolve_method_options(method, options, blocks)
    check_attribution_arguments(method, lags, num_samples, batch_size, options, blocks)
    window = embedder.window
    n_valid = neural.shape[0] - window + 1
    if n_valid < 1:
        raise ValueError(f"neural has {neural.shape[0]} time points but the encoder needs windows of {window}")
    positions = select_time_points(n_valid, num_samples, random_state)
    sums = attribution_sums(embedder, neural, positions, method, lags=lags, batch_size=batch_size,
                            random_state=random_state, verbose=verbose, **options)
    return finalize(sums, method=method, blocks=blocks,
                    options=recorded_options(lags, num_samples, random_state, options))
