"""``attribution_map`` in chunks of time on Dask workers: each worker reads only its chunk's rows (or opens the
file itself), computes exact float64 sums with the single-process code, and the sums add up to the very map of
:meth:`xcebra.XCEBRA.attribution_map`.
"""

from __future__ import annotations

import os
import resource
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from .._validation import is_int
from ..attribution.compute import attribution_sums, check_attribution_arguments, recorded_options, resolve_method_options
from ..attribution.maps import AttributionMap, finalize, select_time_points
from ..datasets.io import load_arrays
from .cluster import client_or_local, set_task_threads
from .jobs import file_and_key, is_file_spec

__all__ = ["attribution_map"]


@dataclass(frozen=True)
class _OnDisk:
    """Where a worker finds the recording without it being sent: a raw memory map, or a file and key."""

    path: str
    key: str | None = None
    dtype: str | None = None
    shape: tuple[int, ...] | None = None
    offset: int = 0
    order: str = "C"

    def open(self) -> Any:
        if self.dtype is not None:  # an np.memmap
            return np.memmap(self.path, dtype=np.dtype(self.dtype), mode="r", shape=self.shape, offset=self.offset,
                             order=self.order)
        return load_arrays(self.path, {"neural": self.key}, lazy=True)["neural"]


def _on_disk(neural: Any) -> _OnDisk | None:
    """A description workers can open themselves, for recordings that live in a file; None for arrays in memory."""
    if is_file_spec(neural):
        path, key = file_and_key("neural", neural)
        return _OnDisk(os.fspath(Path(path).resolve()), key)
    if isinstance(neural, np.memmap) and getattr(neural, "filename", None):
        base = neural
        while isinstance(getattr(base, "base", None), np.memmap):
            base = base.base
        if base is neural and (neural.flags.c_contiguous or neural.flags.f_contiguous):
            return _OnDisk(os.fspath(neural.filename), dtype=neural.dtype.str, shape=tuple(neural.shape),
                           offset=int(neural.offset), order="C" if neural.flags.c_contiguous else "F")
        return None  # a view into a memory map: its layout is not a plain file region; rows are sent instead
    module = type(neural).__module__ or ""
    if module.startswith("h5py") and hasattr(neural, "file") and hasattr(neural, "name"):
        return _OnDisk(os.fspath(Path(neural.file.filename).resolve()), neural.name.lstrip("/"))
    return None


def _attribution_task(embedder: Any, source: Any, positions: np.ndarray, row_offset: int, method: str,
                      lags: str, batch_size: int, random_state: int | None, first_batch: int,
                      options: dict) -> Any:
    """Partial sums of one chunk, on a worker. ``source`` is the chunk's rows (starting at ``row_offset``) or
    an :class:`_OnDisk` description of the whole recording, of which only the windows' rows are read."""
    set_task_threads(None)
    neural = source.open() if isinstance(source, _OnDisk) else source
    sums = attribution_sums(embedder, neural, positions - row_offset, method, lags=lags, batch_size=batch_size,
                            random_state=random_state, first_batch=first_batch, **options)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # kilobytes on Linux
    return sums, peak


def _positions(model: Any, neural: Any, method: str, lags: str, num_samples: int | None, batch_size: int,
               chunk_size: int, random_state: int | None, method_options: dict) -> tuple[Any, Any, np.ndarray]:
    """The arguments checked, and (the description workers open or None, the array, the positions to attribute)."""
    check_attribution_arguments(method, lags, num_samples, batch_size, method_options, model.blocks_)
    if not is_int(chunk_size, 1):
        raise ValueError(f"chunk_size must be an int >= 1; got {chunk_size!r}")
    source = _on_disk(neural)
    array = model._check_neural(source.open() if source is not None else neural)
    window = model.encoder_.window
    n_valid = array.shape[0] - window + 1
    if n_valid < 1:
        raise ValueError(f"neural has {array.shape[0]} time points but the encoder needs windows of {window}")
    return source, array, select_time_points(n_valid, num_samples, random_state)


def _run_chunks(active: Any, embedder: Any, source: _OnDisk | None, array: Any, positions: np.ndarray,
                per_chunk: int, task: dict, verbose: bool) -> list:
    """(partial sums, peak bytes) of every chunk, in chunk order; an array in memory travels chunk by chunk."""
    from distributed import as_completed  # optional dependency: imported when tasks run

    window, batch_size = embedder.window, task["batch_size"]
    starts = list(range(0, len(positions), per_chunk))
    embedder_future = active.scatter(embedder, broadcast=True, hash=False)
    # chunks of an array in memory are copies: keep only a few per worker in flight at a time
    n_workers = max(1, len(active.scheduler_info(n_workers=-1).get("workers", {})))
    in_flight = len(starts) if source is not None else 2 * n_workers
    outcomes: list = [None] * len(starts)
    chunk_of: dict = {}

    def submit(index: int):
        start = starts[index]
        chunk = positions[start:start + per_chunk]
        if source is not None:
            data, row_offset = source, 0
        else:
            row_offset = int(chunk[0])
            data = np.asarray(array[row_offset:int(chunk[-1]) + window])
        future = active.submit(_attribution_task, embedder_future, data, chunk, row_offset, task["method"],
                               task["lags"], batch_size, task["random_state"], start // batch_size,
                               dict(task["options"]), pure=False)
        chunk_of[future.key] = index
        return future

    pending = as_completed([submit(i) for i in range(min(in_flight, len(starts)))])
    submitted = min(in_flight, len(starts))
    with tqdm(total=len(starts), disable=not verbose, desc=f"attribution chunks ({task['method']})", unit="chunk",
              dynamic_ncols=True) as bar:
        for future in pending:
            outcomes[chunk_of.pop(future.key)] = future.result()
            future.release()
            bar.update(1)
            if submitted < len(starts):
                pending.add(submit(submitted))
                submitted += 1
    return outcomes


def attribution_map(model: Any, neural: Any, method: str = "ing", *, client: Any = None, chunk_size: int = 50_000,
                    num_samples: int | None = None, lags: str = "sum", batch_size: int = 1024,
                    random_state: int | None = 0, verbose: bool | None = None,
                    **method_options: Any) -> AttributionMap:
    """:meth:`xcebra.XCEBRA.attribution_map` computed in chunks of time on Dask workers.

    The time points are cut into consecutive chunks of ``chunk_size`` (rounded up to whole batches);
    each worker reads only the rows of its chunk's windows (which overlap the next chunk by the encoder's
    receptive field), attributes them with the same code as the single-process map and returns exact
    float64 sums, which are added in chunk order. The map, its ``stderr`` and the stochastic baselines'
    random numbers (stream k for batch k) are therefore those of ``model.attribution_map(neural, ...)``,
    to float64 round-off.

    Parameters
    ----------
    model : fitted XCEBRA (or SupervisedRegressor)
    neural : array of shape (T, N), np.memmap, h5py dataset, path or (path, key)
        A memory map, an h5py dataset or a file (``.npy``, or ``(path, key)`` for ``.npz`` / ``.h5`` /
        ``.nwb``) is opened by each worker itself: only a description travels, and each worker reads
        the rows it needs. An array in memory is sent chunk by chunk.
    method, num_samples, lags, batch_size, random_state, **method_options
        As for :meth:`xcebra.XCEBRA.attribution_map`.
    client : distributed.Client, optional
        Default: a local cluster for this call (see :func:`fit_many`).
    chunk_size : int, default 50,000
        Time points per task.
    verbose : bool, optional
        A progress bar over the chunks; default: the model's ``verbose``.

    Returns
    -------
    AttributionMap
        Its ``options`` also record ``chunk_size``, the number of chunks and ``peak_worker_bytes``, the
        largest peak resident memory a worker process reported.
    """
    model._check_is_fitted()
    method_options = resolve_method_options(method, method_options, model.blocks_,
                                            getattr(model, "identified_ranks", None))
    source, array, positions = _positions(model, neural, method, lags, num_samples, batch_size, chunk_size,
                                          random_state, method_options)
    per_chunk = -(-chunk_size // batch_size) * batch_size  # whole batches: batch k is the same batch as in one process
    verbose = bool(model.verbose) if verbose is None else verbose
    task = dict(method=method, lags=lags, batch_size=batch_size, random_state=random_state, options=method_options)
    with client_or_local(client) as active:
        outcomes = _run_chunks(active, model.encoder_, source, array, positions, per_chunk, task, verbose)
    total = outcomes[0][0]
    for sums, _ in outcomes[1:]:
        total = total + sums
    options = {**recorded_options(lags, num_samples, random_state, method_options), "chunk_size": per_chunk,
               "n_chunks": len(outcomes), "peak_worker_bytes": int(max(peak for _, peak in outcomes))}
    return finalize(total, method=method, blocks=model.blocks_, options=options)
