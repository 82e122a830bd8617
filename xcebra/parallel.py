"""Scale-out on existing engines: many fits, sweeps and chunked attribution maps on Dask.

Nothing here schedules work itself: every function hands tasks to a ``distributed.Client``. Without
one, a local cluster of single-threaded worker processes (one per core, bound to 127.0.0.1, no
dashboard) is started for the call and closed after it. For a SLURM cluster create the client from
``dask_jobqueue.SLURMCluster`` and pass it (docs: how-to, "Scale out"); data given as file paths
is then read by the workers, so the paths must be visible from the compute nodes.

- :func:`fit_many`: one fit of a clone of an estimator per data set, each a Dask task; failed tasks
  are retried; every finished model is written atomically to ``out_dir`` under a name keyed by a hash
  of its data and parameters, so a rerun skips the jobs that are already done.
- :func:`sweep`: every configuration of a parameter grid, fitted on the training segments of
  time-series splits and scored on the held-out segments (InfoNCE loss per objective, decoding R2 per
  block).
- :func:`attribution_map`: time cut into chunks, each attributed by a worker that reads only its
  chunk's rows, reduced from exact float64 sums, so the result equals
  :meth:`xcebra.XCEBRA.attribution_map` (values and ``stderr``) to float round-off.

Data-parallel training of one model over processes (``torchrun``, ``srun``) is :mod:`xcebra.training.distributed`;
``XCEBRA.fit`` uses it by itself.

These functions need the ``dask`` extra: ``pip install "xcebra[dask]"``.
"""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import logging
import os
import sys
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from .exceptions import FitManyError

__all__ = ["fit_many", "sweep", "attribution_map", "local_client", "FitManyError", "SweepResult", "model_path",
           "INDEX_NAME"]

logger = logging.getLogger("xcebra")

_DASK_HINT = 'xcebra.parallel needs the optional dependency dask.distributed: pip install "xcebra[dask]"'
_MODEL_SUFFIX = ".xcebra"


def _distributed():
    try:
        import distributed
    except ModuleNotFoundError as error:  # pragma: no cover - the extra is installed in tests
        raise ImportError(_DASK_HINT) from error
    return distributed


@contextlib.contextmanager
def local_client(n_workers: int | None = None, threads_per_worker: int = 1) -> Iterator[Any]:
    """A ``distributed.Client`` on a local cluster of worker processes, closed on exit.

    Parameters
    ----------
    n_workers : int, optional
        Worker processes; default: one per core (``os.cpu_count()``).
    threads_per_worker : int, default 1
        Each task sets ``torch.set_num_threads`` to this (unless the estimator sets ``num_threads``).

    The scheduler and workers listen on 127.0.0.1 only, and no dashboard is started. Worker processes
    are spawned: in a script, call this (or any function of this module without ``client``) under
    ``if __name__ == "__main__":``.
    """
    import dask

    distributed = _distributed()
    n_workers = n_workers or os.cpu_count() or 1
    # The workers' statistical profiler samples every thread's stack every 10 ms, holding the GIL: it cost
    # 10% of a small-MLP training step here (27.0 against 24.6 ms per step), and nobody reads its output.
    # The scheduler's HTTP server (health routes) always starts: on a free loopback port, without the dashboard.
    with dask.config.set({"distributed.worker.profile.enabled": False}):
        cluster = distributed.LocalCluster(n_workers=n_workers, threads_per_worker=threads_per_worker,
                                           processes=True, host="127.0.0.1", dashboard_address="127.0.0.1:0",
                                           worker_dashboard_address=None, scheduler_port=0,
                                           scheduler_kwargs={"dashboard": False}, silence_logs=logging.ERROR)
    try:
        with distributed.Client(cluster) as client:
            yield client
    finally:
        cluster.close()


@contextlib.contextmanager
def _client_or_local(client: Any) -> Iterator[Any]:
    if client is not None:
        yield client
    else:
        with local_client() as local:
            yield local


def _worker_threads() -> int:
    """Threads of the Dask worker running this task (1 outside a worker)."""
    try:
        from distributed import get_worker
        worker = get_worker()
    except (ImportError, ValueError):
        return 1
    state = getattr(worker, "state", worker)
    return max(1, int(getattr(state, "nthreads", 1)))


def _set_task_threads(num_threads: int | None) -> None:
    """Prepare this worker process for a task: torch threads, and the allocator (see below)."""
    import torch
    torch.set_num_threads(num_threads if num_threads is not None else _worker_threads())
    _restore_allocator_thresholds()


def _restore_allocator_thresholds() -> None:
    """Undo the effect of ``MALLOC_TRIM_THRESHOLD_`` on glibc's allocator in this process.

    Dask's nanny starts workers with ``MALLOC_TRIM_THRESHOLD_=65536`` (to hand memory back to the OS
    sooner). Setting it switches off glibc's dynamic mmap threshold, so every allocation above 128 KiB (most
    activations and gradients of a training step) becomes a fresh ``mmap`` and page faults again: training
    steps of the small MLP setting ran 2x slower in workers than in a plain process (measured here: 15.5 ms
    against 8.5 ms for the same ops). Large thresholds let freed blocks be reused, as in a plain process.
    """
    if "MALLOC_TRIM_THRESHOLD_" not in os.environ or not sys.platform.startswith("linux"):
        return
    try:
        import ctypes
        libc = ctypes.CDLL("libc.so.6")
    except OSError:  # not glibc (e.g. musl): nothing to restore
        return
    m_trim_threshold, m_mmap_threshold = -1, -3
    libc.mallopt(m_mmap_threshold, 64 << 20)
    libc.mallopt(m_trim_threshold, 128 << 20)


def _task_progress(futures: Sequence[Any], verbose: bool, desc: str) -> None:
    """Wait for ``futures`` with a progress bar (errors are collected by the caller)."""
    from distributed import as_completed
    from tqdm.auto import tqdm

    with tqdm(total=len(futures), disable=not verbose, desc=desc, unit="task", dynamic_ncols=True) as bar:
        for _ in as_completed(futures):
            bar.update(1)


# ---------------------------------------------------------------------------------------------- data specs
def _is_path(value: Any) -> bool:
    return isinstance(value, (str, os.PathLike))


def _is_file_spec(value: Any) -> bool:
    return _is_path(value) or (isinstance(value, (tuple, list)) and len(value) == 2 and _is_path(value[0])
                               and isinstance(value[1], str))


def _file_and_key(role: str, value: Any) -> tuple[str, str]:
    """(path, key) of a file spec: a path (key: "data" for .npy, else the role's name) or a (path, key) pair."""
    if _is_path(value):
        path = os.fspath(value)
        return path, ("data" if path.endswith(".npy") else role)
    return os.fspath(value[0]), value[1]


def _describe(value: Any) -> str:
    """A job's entry for people: ``file[key]`` or ``array of shape (T, N)``."""
    if _is_path(value):
        return os.fspath(value)
    if _is_file_spec(value):
        return f"{os.fspath(value[0])}[{value[1]!r}]"
    shape = getattr(value, "shape", None)
    return f"array of shape {tuple(shape)}" if shape is not None else type(value).__name__


def _check_jobs(datasets: Any) -> list[dict[str, Any]]:
    if isinstance(datasets, Mapping) or not isinstance(datasets, Sequence) or isinstance(datasets, (str, bytes)):
        raise ValueError(f"datasets must be a list of dicts such as {{'neural': array or path, 'position': ...}}; "
                         f"got {type(datasets).__name__}")
    jobs = []
    for i, job in enumerate(datasets):
        if not isinstance(job, Mapping):
            raise ValueError(f"datasets[{i}] must be a dict with a 'neural' entry; got {type(job).__name__}")
        if "neural" not in job:
            raise ValueError(f"datasets[{i}] has no 'neural' entry; it has {', '.join(map(repr, job)) or 'none'}")
        for role in job:
            if not isinstance(role, str) or not role.isidentifier():
                raise ValueError(f"datasets[{i}]: entry names must be identifiers (neural, position, ...); "
                                 f"got {role!r}")
            if role in ("checkpoint_dir", "checkpoint_every"):
                raise ValueError(f"datasets[{i}]: {role!r} is reserved by fit and cannot name a label")
        jobs.append(dict(job))
    return jobs


def _load_job(job: Mapping[str, Any]) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """The arrays of one job, read here (on the worker): files are opened lazily, then read whole for fit."""
    from .datasets.io import load_arrays

    arrays = {}
    for role, value in job.items():
        if _is_file_spec(value):
            path, key = _file_and_key(role, value)
            value = load_arrays(path, {role: key}, lazy=True)[role]
        arrays[role] = np.asarray(value)
    neural = arrays.pop("neural")
    return neural, arrays


# ---------------------------------------------------------------------------------------------- fit_many
def model_path(out_dir: str | os.PathLike, estimator: Any, neural: Any, **labels: Any) -> Path:
    """Where :func:`fit_many` writes (and looks for) the model of ``estimator`` fitted to this data.

    The name is a hash of the data (every value of ``neural`` and the labels) and of the estimator's
    parameters other than ``verbose``, ``device`` and ``num_threads``, which do not change the result.
    """
    from .data import TimeSeries

    data = TimeSeries.from_arrays(neural, **labels)
    digest = hashlib.blake2b(estimator._fit_fingerprint(data).encode(), digest_size=12).hexdigest()
    return Path(out_dir) / f"fit-{digest}{_MODEL_SUFFIX}"


@dataclass(frozen=True)
class _FitOutcome:
    model: Any
    path: str | None
    skipped: bool
    seconds: float


def _fit_task(estimator: Any, job: dict, out_dir: str | None) -> _FitOutcome:
    """One fit on a worker: read the data, skip if its model file exists, else fit and write it atomically."""
    from .estimator import XCEBRA

    started = time.perf_counter()
    _set_task_threads(estimator.num_threads)
    neural, labels = _load_job(job)
    path = None
    if out_dir is not None:
        path = model_path(out_dir, estimator, neural, **labels)
        if path.exists():
            try:
                model = XCEBRA.load(path)
            except ValueError as error:
                raise ValueError(f"{error}; it is left as it is: delete {str(path)!r} to fit this job again") from None
            return _FitOutcome(model, str(path), True, time.perf_counter() - started)
    model = estimator.fit(neural, **labels)
    if path is not None:
        model.save(path)  # temporary file + fsync + rename: a killed worker leaves no partial model
    return _FitOutcome(model, None if path is None else str(path), False, time.perf_counter() - started)


def fit_many(estimator: Any, datasets: Sequence[Mapping[str, Any]], client: Any = None, out_dir: str | os.PathLike | None = None,
             retries: int = 2, *, verbose: bool | None = None, params: Sequence[Mapping[str, Any]] | None = None) -> list:
    """Fit a clone of ``estimator`` to each data set, as parallel Dask tasks.

    Parameters
    ----------
    estimator : XCEBRA
        Not changed; each job fits ``sklearn.base.clone(estimator)`` (same parameters, so the same
        ``random_state`` gives the same model as ``estimator.fit`` in one process, with the same number
        of threads). Progress bars are switched off on the workers; set ``num_threads`` to fix the
        threads of each fit, otherwise a fit uses the threads of its worker (1 in the local cluster).
    datasets : list of dict
        One dict per fit: ``{"neural": ..., "position": ..., ...}``, the keyword arguments of ``fit``.
        Each value is an array (sent to the worker) or a file the worker reads (the caller never does):
        a path (``.npy``: its array; ``.npz`` / ``.h5`` / ``.nwb``: the key named like the entry) or a
        ``(path, key)`` pair, e.g. ``("s1.h5", "data/spikes")``.
    client : distributed.Client, optional
        Where the tasks run (e.g. a client of ``dask_jobqueue.SLURMCluster``); default: a local cluster
        of one single-threaded worker process per core, for this call only.
    out_dir : path, optional
        Write each model there as it finishes (atomically), named by a hash of its data and parameters
        (:func:`model_path`). A job whose file is already there is not fitted again: its model is read.
        ``out_dir/index.json`` records which data (files and keys, or array shapes) each model file was
        fitted to.
    retries : int, default 2
        Times a task that raised an exception is run again before its job counts as failed. A task whose
        worker process died (killed, out of memory) is moved to another worker by the scheduler, up to
        dask's ``distributed.scheduler.allowed-failures`` times (default 3); the models finished before
        are not affected.
    verbose : bool, optional
        A progress bar over the jobs; default: ``estimator.verbose``.
    params : sequence of dict, optional
        One dict per job of ``set_params`` overrides for that job's clone, e.g.
        ``[{"random_state": s} for s in seeds]`` for a seed ensemble on one or several data sets.

    Returns
    -------
    list of XCEBRA
        The fitted estimators, in the order of ``datasets``.

    Raises
    ------
    FitManyError
        After every job has finished or failed, if any failed: it lists each failure; the finished
        models are in its ``models`` attribute (and in ``out_dir``).
    ValueError
        ``datasets`` is not a list of dicts with a ``neural`` entry, or ``retries`` is not an int >= 0.

    Examples
    --------
    >>> models = xcebra.parallel.fit_many(model, [{"neural": "s1.npy", "position": ("s1.npz", "pos")},
    ...                                           {"neural": "s2.npy", "position": ("s2.npz", "pos")}],
    ...                                   out_dir="models/")  # doctest: +SKIP
    """
    outcomes = _fit_many(estimator, datasets, client, out_dir, retries, verbose, params)
    return [outcome.model for outcome in outcomes]


def _fit_many(estimator: Any, datasets: Sequence[Mapping[str, Any]], client: Any, out_dir: str | os.PathLike | None,
              retries: int, verbose: bool | None, params: Sequence[Mapping[str, Any]] | None = None
              ) -> list[_FitOutcome]:
    """:func:`fit_many` with each job's outcome (model, file, whether it was read instead of fitted, seconds)."""
    from sklearn.base import clone

    from ._validation import is_int

    jobs = _check_jobs(datasets)
    if not is_int(retries, 0):
        raise ValueError(f"retries must be an int >= 0; got {retries!r}")
    verbose = bool(estimator.verbose) if verbose is None else verbose
    estimator._validate_params()  # a bad parameter fails here, once, not in every task
    template = clone(estimator).set_params(verbose=False)
    if params is None:
        templates = [template] * len(jobs)
    else:
        if not isinstance(params, Sequence) or len(params) != len(jobs) or not all(
                isinstance(p, Mapping) for p in params):
            raise ValueError(f"params must be a list of {len(jobs)} dicts, one per data set; got {params!r}")
        templates = [clone(template).set_params(**p) for p in params]
        for one in templates:
            one._validate_params()
    out = None
    if out_dir is not None:
        Path(out_dir).mkdir(parents=True, exist_ok=True)
        out = os.fspath(Path(out_dir).resolve())
    outcomes: list = [None] * len(jobs)
    failures: dict[int, BaseException] = {}
    with _client_or_local(client) as active:
        futures = [active.submit(_fit_task, clone(templates[i]), job, out, retries=retries, pure=False,
                                 key=f"xcebra-fit-{i}-{os.urandom(4).hex()}") for i, job in enumerate(jobs)]
        _task_progress(futures, verbose, "xcebra fit_many")
        for i, future in enumerate(futures):
            try:
                outcome = future.result()
            except Exception as error:  # noqa: BLE001 - reported per job below
                failures[i] = error
                continue
            outcomes[i] = outcome
            logger.info("fit_many: job %d %s in %.1f s%s", i, "read" if outcome.skipped else "fitted",
                        outcome.seconds, f" ({outcome.path})" if outcome.path else "")
    if out is not None:
        _update_index(Path(out), jobs, outcomes)
    if failures:
        raise FitManyError(failures, [None if o is None else o.model for o in outcomes], out)
    return outcomes


#: the file in ``out_dir`` that tells which model file holds which job's model
INDEX_NAME = "index.json"


def _update_index(out_dir: Path, jobs: list[dict], outcomes: list) -> None:
    """Record in ``out_dir/index.json`` what data each model file was fitted to (atomic; earlier entries kept)."""
    import json

    from ._files import atomic_write_bytes

    path = out_dir / INDEX_NAME
    try:
        index = json.loads(path.read_text()) if path.exists() else {}
    except (OSError, ValueError):
        logger.warning("fit_many: %s could not be read; it is written anew", path)
        index = {}
    if not isinstance(index, dict):
        index = {}
    for job, outcome in zip(jobs, outcomes):
        if outcome is not None and outcome.path is not None:
            index[Path(outcome.path).name] = {role: _describe(value) for role, value in job.items()}
    atomic_write_bytes(path, (json.dumps(index, indent=1, sort_keys=True) + "\n").encode())


# ---------------------------------------------------------------------------------------------- sweep
class SweepResult(NamedTuple):
    """What :func:`sweep` returns: ``table, best_params = sweep(...)`` also works."""

    #: one row per configuration: its parameters, the held-out metrics (mean and ``_std`` over splits),
    #: ``score`` (higher is better) and ``rank`` (1 = best); a pandas DataFrame when pandas is installed
    table: Any
    #: the parameters of the configuration ranked first
    best_params: dict


def _splits(cv: Any, n_timepoints: int, gap: int) -> list[tuple[tuple[int, int], tuple[int, int]]]:
    """((train_start, train_stop), (test_start, test_stop)) per split; every part is a contiguous time range."""
    from sklearn.model_selection import TimeSeriesSplit

    from ._validation import is_int

    if is_int(cv, 2):
        splitter = TimeSeriesSplit(n_splits=cv, gap=gap)
        pairs = list(splitter.split(np.zeros((n_timepoints, 1))))
    elif hasattr(cv, "split") and not isinstance(cv, (str, bytes)):
        pairs = list(cv.split(np.zeros((n_timepoints, 1))))
    elif isinstance(cv, Iterable) and not isinstance(cv, (str, bytes)):
        pairs = list(cv)
    else:
        raise ValueError(f"cv must be an int >= 2 (time-series splits), a splitter with a split() method or a "
                         f"list of (train, test) index arrays; got {cv!r}")
    ranges = []
    for k, pair in enumerate(pairs):
        parts = []
        for what, index in zip(("train", "test"), pair):
            index = np.asarray(index)
            if index.ndim != 1 or len(index) == 0 or not np.array_equal(index, np.arange(index[0], index[0] + len(index))):
                raise ValueError(f"cv split {k}: the {what} indices must be one contiguous, increasing range of time "
                                 "points (the encoder sees windows of consecutive time points)")
            if index[0] < 0 or index[-1] >= n_timepoints:
                raise ValueError(f"cv split {k}: {what} indices {index[0]}..{index[-1]} are outside 0..{n_timepoints - 1}")
            parts.append((int(index[0]), int(index[-1]) + 1))
        ranges.append((parts[0], parts[1]))
    if not ranges:
        raise ValueError("cv gave no splits")
    return ranges


def _heldout_metrics(model: Any, neural: np.ndarray, labels: dict, train: tuple[int, int], test: tuple[int, int],
                     n_batches: int, random_state: int) -> dict[str, float]:
    from sklearn.linear_model import LinearRegression
    from sklearn.metrics import r2_score

    (a, b), (c, d) = train, test
    test_labels = {name: values[c:d] for name, values in labels.items()}
    metrics = {f"loss/{name}": value for name, value in
               model.objective_losses(neural[c:d], n_batches=n_batches, random_state=random_state,
                                      **test_labels).items()}
    z_train, z_test = model.transform(neural[a:b]), model.transform(neural[c:d])
    for label, values in sorted(labels.items()):
        y = np.asarray(values, dtype=np.float64)
        y = y[:, None] if y.ndim == 1 else y.reshape(len(y), -1)
        for block, dims in model.blocks_:
            decoder = LinearRegression().fit(z_train[:, dims], y[a:b])
            metrics[f"r2/{block}/{label}"] = float(r2_score(y[c:d], decoder.predict(z_test[:, dims])))
    return metrics


def _sweep_task(estimator: Any, neural: np.ndarray, labels: dict, train: tuple[int, int], test: tuple[int, int],
                n_batches: int, random_state: int) -> dict[str, float]:
    started = time.perf_counter()
    _set_task_threads(estimator.num_threads)
    a, b = train
    model = estimator.fit(neural[a:b], **{name: values[a:b] for name, values in labels.items()})
    fitted = time.perf_counter() - started
    metrics = _heldout_metrics(model, neural, labels, train, test, n_batches, random_state)
    return {**metrics, "fit_seconds": fitted}


def _default_scoring(estimator: Any) -> str:
    labelled = [o for o in estimator.objectives if o.label]
    return f"r2/{labelled[0].name}/{labelled[0].label}" if labelled else f"loss/{estimator.objectives[0].name}"


def _table(rows: list[dict]) -> Any:
    try:
        import pandas
    except ImportError:
        return rows
    return pandas.DataFrame(rows)


def _column_value(value: Any) -> Any:
    """A parameter as a table cell: objectives by their names and slices, other values unchanged."""
    from .objectives import Objective

    if isinstance(value, (list, tuple)) and value and all(isinstance(v, Objective) for v in value):
        return ", ".join(f"{o.name}{list(o.dims)}:{o.distribution}" for o in value)
    return value


def sweep(estimator: Any, param_grid: Mapping[str, Sequence] | Sequence[Mapping[str, Sequence]], neural: Any, *,
          client: Any = None, cv: Any = 3, scoring: str | None = None, n_batches: int = 10, random_state: int = 0,
          verbose: bool | None = None, **labels: Any) -> SweepResult:
    """Fit every configuration of ``param_grid`` on time-series splits in parallel and score it on held-out time.

    Parameters
    ----------
    estimator : XCEBRA
        The base configuration; not changed. Each task fits a clone with one grid point's parameters on
        the training segment of one split.
    param_grid : dict of str -> list, or a list of such dicts
        As :class:`sklearn.model_selection.ParameterGrid` (e.g. ``{"regularizer_weight": [0, 0.01, 0.1]}``).
    neural : array of shape (T, N)
        Sent to the workers once.
    client : distributed.Client, optional
        Default: a local cluster for this call (see :func:`fit_many`).
    cv : int, splitter or list of (train, test), default 3
        An int k is ``TimeSeriesSplit(k, gap=...)``: train on the past, test on the next segment, with a gap
        of the encoder's window plus the largest time offset so that no test window shares frames with
        training. Each train and test part must be one contiguous range of time points.
    scoring : str, optional
        The column that ranks the configurations: ``"r2/<block>/<label>"`` (higher is better) or
        ``"loss/<objective>"`` (lower is better). Default: the R2 of the first labelled objective's label
        from its own block, or the first objective's loss when no objective uses a label.
    n_batches : int, default 10
        Batches (of the estimator's ``batch_size``, capped by the test segment) averaged for the
        held-out InfoNCE losses (:meth:`xcebra.XCEBRA.objective_losses`).
    random_state : int, default 0
        Seeds the held-out batches, so every configuration is scored on the same pairs.
    verbose : bool, optional
        A progress bar over the tasks; default: ``estimator.verbose``.
    **labels : arrays of shape (T,) or (T, d)
        As for ``fit``; every label is also decoded from every block.

    Returns
    -------
    SweepResult
        ``table`` (one row per configuration: parameters, per metric the mean over splits and its
        ``_std``, ``fit_seconds``, ``score`` and ``rank``; a DataFrame when pandas is installed, else a
        list of dicts) and ``best_params``.

    Examples
    --------
    >>> table, best = xcebra.parallel.sweep(model, {"regularizer_weight": [0, 0.01, 0.1]}, neural,
    ...                                     position=position, cv=3)  # doctest: +SKIP
    """
    from sklearn.base import clone
    from sklearn.model_selection import ParameterGrid

    from ._validation import is_int

    if not is_int(n_batches, 1):
        raise ValueError(f"n_batches must be an int >= 1; got {n_batches!r}")
    grid = list(ParameterGrid(param_grid))
    configurations, metric_names = [], []
    for params in grid:
        candidate = clone(estimator).set_params(**params, verbose=False)
        layout = candidate._validate_params()
        configurations.append(candidate)
        metric_names.append({f"loss/{o.name}" for o in candidate.objectives}
                            | {f"r2/{block}/{label}" for block, _ in layout.blocks for label in labels})
    neural = np.asarray(neural)
    labels = {name: np.asarray(values) for name, values in labels.items()}
    from .data import TimeSeries
    TimeSeries.from_arrays(neural, **labels)  # NaN, shapes, lengths: one clear error before any task starts
    gap = max(_max_reach(c) for c in configurations)
    splits = _splits(cv, neural.shape[0], gap)
    scoring = scoring or _default_scoring(estimator)
    if not (scoring.startswith("r2/") or scoring.startswith("loss/")):
        raise ValueError(f"scoring must name a column 'r2/<block>/<label>' or 'loss/<objective>'; got {scoring!r}")
    for params, names in zip(grid, metric_names):  # before any fit: a typo must not cost a night of fits
        if scoring not in names:
            raise ValueError(f"scoring {scoring!r} is not a metric of the configuration {params}; it has "
                             f"{', '.join(sorted(names))}")
    verbose = bool(estimator.verbose) if verbose is None else verbose
    with _client_or_local(client) as active:
        neural_future = active.scatter(neural, broadcast=True, hash=False)
        labels_future = active.scatter(labels, broadcast=True, hash=False)
        tasks = {(i, k): active.submit(_sweep_task, configuration, neural_future, labels_future, train, test,
                                       n_batches, random_state, pure=False)
                 for (i, configuration), (k, (train, test)) in itertools.product(enumerate(configurations),
                                                                                  enumerate(splits))}
        _task_progress(list(tasks.values()), verbose, "xcebra sweep")
        results = {key: future.result() for key, future in tasks.items()}
    rows = []
    for i, params in enumerate(grid):
        per_split = [results[i, k] for k in range(len(splits))]
        row = {name: _column_value(value) for name, value in params.items()}
        for metric in per_split[0]:
            values = np.array([r[metric] for r in per_split], dtype=np.float64)
            row[metric] = float(values.mean())
            if metric != "fit_seconds":
                row[f"{metric}_std"] = float(values.std())
        row["score"] = row[scoring] if scoring.startswith("r2/") else -row[scoring]
        rows.append(row)
    order = sorted(range(len(rows)), key=lambda i: -rows[i]["score"] if np.isfinite(rows[i]["score"]) else np.inf)
    for rank, i in enumerate(order, start=1):
        rows[i]["rank"] = rank
    return SweepResult(table=_table(rows), best_params=dict(grid[order[0]]))


def _max_reach(estimator: Any) -> int:
    """Time points a sample reaches beyond its own: the encoder's window plus the largest time offset."""
    from .models import make_encoder

    window = make_encoder(estimator.model, 1, 2, 1).window  # the window depends on the architecture only
    offsets = [o.distribution_options().get("time_offset", 0) for o in estimator.objectives
               if o.distribution == "time"]
    return window + max(offsets, default=0)


# ---------------------------------------------------------------------------------------------- attribution
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
        from .datasets.io import load_arrays
        return load_arrays(self.path, {"neural": self.key}, lazy=True)["neural"]


def _on_disk(neural: Any) -> _OnDisk | None:
    """A description workers can open themselves, for recordings that live in a file; None for arrays in memory."""
    if _is_file_spec(neural):
        path, key = _file_and_key("neural", neural)
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
    import resource

    from .attribution.compute import attribution_sums

    _set_task_threads(None)
    neural = source.open() if isinstance(source, _OnDisk) else source
    sums = attribution_sums(embedder, neural, positions - row_offset, method, lags=lags, batch_size=batch_size,
                            random_state=random_state, first_batch=first_batch, **options)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # kilobytes on Linux
    return sums, peak


def attribution_map(model: Any, neural: Any, method: str = "ing", *, client: Any = None, chunk_size: int = 50_000,
                    num_samples: int | None = None, lags: str = "sum", batch_size: int = 1024,
                    random_state: int | None = 0, verbose: bool | None = None, **method_options: Any):
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
    from ._validation import is_int
    from .attribution.compute import check_attribution_arguments, recorded_options, resolve_method_options
    from .attribution.maps import finalize, select_time_points

    model._check_is_fitted()
    method_options = resolve_method_options(method, method_options, model.blocks_,
                                            getattr(model, "identified_ranks", None))
    check_attribution_arguments(method, lags, num_samples, batch_size, method_options, model.blocks_)
    if not is_int(chunk_size, 1):
        raise ValueError(f"chunk_size must be an int >= 1; got {chunk_size!r}")
    source = _on_disk(neural)
    array = source.open() if source is not None else neural
    array = model._check_neural(array)
    window = model.encoder_.window
    n_valid = array.shape[0] - window + 1
    if n_valid < 1:
        raise ValueError(f"neural has {array.shape[0]} time points but the encoder needs windows of {window}")
    positions = select_time_points(n_valid, num_samples, random_state)
    per_chunk = -(-chunk_size // batch_size) * batch_size  # whole batches: batch k is the same batch as in one process
    verbose = bool(model.verbose) if verbose is None else verbose
    embedder = model.encoder_
    starts = list(range(0, len(positions), per_chunk))
    with _client_or_local(client) as active:
        from distributed import as_completed
        from tqdm.auto import tqdm

        embedder_future = active.scatter(embedder, broadcast=True, hash=False)
        # chunks of an array in memory are copies: keep only a few per worker in flight at a time
        n_workers = max(1, len(active.scheduler_info(n_workers=-1).get("workers", {})))
        in_flight = len(starts) if source is not None else 2 * n_workers

        def submit(index: int):
            start = starts[index]
            chunk = positions[start:start + per_chunk]
            if source is not None:
                data, row_offset = source, 0
            else:
                row_offset = int(chunk[0])
                data = np.asarray(array[row_offset:int(chunk[-1]) + window])
            future = active.submit(_attribution_task, embedder_future, data, chunk, row_offset, method, lags,
                                   batch_size, random_state, start // batch_size, dict(method_options), pure=False)
            chunk_of[future.key] = index
            return future

        outcomes: list = [None] * len(starts)
        chunk_of: dict = {}
        pending = as_completed([submit(i) for i in range(min(in_flight, len(starts)))])
        submitted = min(in_flight, len(starts))
        with tqdm(total=len(starts), disable=not verbose, desc=f"attribution chunks ({method})", unit="chunk",
                  dynamic_ncols=True) as bar:
            for future in pending:
                outcomes[chunk_of.pop(future.key)] = future.result()
                future.release()
                bar.update(1)
                if submitted < len(starts):
                    pending.add(submit(submitted))
                    submitted += 1
    total = outcomes[0][0]
    for sums, _ in outcomes[1:]:
        total = total + sums
    options = {**recorded_options(lags, num_samples, random_state, method_options), "chunk_size": per_chunk,
               "n_chunks": len(outcomes), "peak_worker_bytes": int(max(peak for _, peak in outcomes))}
    return finalize(total, method=method, blocks=model.blocks_, options=options)
