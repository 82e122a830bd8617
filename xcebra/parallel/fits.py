"""``fit_many``: one fit of a clone of an estimator per data set, as parallel Dask tasks, with model files keyed by
their content (a rerun skips finished jobs), retries, and one error listing every failure.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from sklearn.base import clone

from .._files import atomic_write_bytes
from .._validation import is_int
from ..data import TimeSeries
from ..estimators import XCEBRA
from ..exceptions import FitManyError
from .cluster import client_or_local, set_task_threads, task_progress
from .jobs import check_jobs, describe, load_job

__all__ = ["fit_many", "fit_outcomes", "FitOutcome", "model_path", "last_round_threads", "INDEX_NAME"]

logger = logging.getLogger("xcebra")
_MODEL_SUFFIX = ".xcebra"
#: the file in ``out_dir`` that tells which model file holds which job's model
INDEX_NAME = "index.json"


def model_path(out_dir: str | os.PathLike, estimator: Any, neural: Any, **labels: Any) -> Path:
    """Where :func:`fit_many` writes (and looks for) the model of ``estimator`` fitted to this data.

    The name is a hash of the data (every value of ``neural`` and the labels) and of the estimator's
    parameters other than ``verbose``, ``device`` and ``num_threads``, which do not change the result.
    """
    data = TimeSeries.from_arrays(neural, **labels)
    digest = hashlib.blake2b(estimator._fit_fingerprint(data).encode(), digest_size=12).hexdigest()
    return Path(out_dir) / f"fit-{digest}{_MODEL_SUFFIX}"


@dataclass(frozen=True)
class FitOutcome:
    """One job of :func:`fit_outcomes`: the fitted ``model``, the file it is in (``path``, with ``out_dir``),
    whether it was read from that file instead of fitted (``skipped``), the seconds the fit (or the read)
    took, what ``then`` returned (``extra``, None without ``then``) and the seconds ``then`` took, and the
    torch threads the job ran on."""

    model: Any
    path: str | None
    skipped: bool
    seconds: float
    extra: Any = None
    then_seconds: float = 0.0
    threads: int = 1


def _fit_task(estimator: Any, job: dict, out_dir: str | None, then: Callable | None) -> FitOutcome:
    """One fit on a worker: read the data, skip if its model file exists, else fit and write it atomically;
    then run ``then(model, data)`` on the same worker, with the data as read."""
    started = time.perf_counter()
    set_task_threads(estimator.num_threads)
    threads = torch.get_num_threads()
    neural, labels = load_job(job)
    path = None
    skipped = False
    model = None
    if out_dir is not None:
        path = model_path(out_dir, estimator, neural, **labels)
        if path.exists():
            try:
                model = XCEBRA.load(path)
            except ValueError as error:
                raise ValueError(f"{error}; it is left as it is: delete {str(path)!r} to fit this job again") from None
            skipped = True
    if model is None:
        model = estimator.fit(neural, **labels)
        if path is not None:
            model.save(path)  # temporary file + fsync + rename: a killed worker leaves no partial model
    fitted = time.perf_counter()
    extra = None if then is None else then(model, {"neural": neural, **labels})
    return FitOutcome(model, None if path is None else str(path), skipped, fitted - started, extra,
                      time.perf_counter() - fitted, threads)


def fit_many(estimator: Any, datasets: Sequence[Mapping[str, Any]], client: Any = None, out_dir: str | os.PathLike | None = None,
             retries: int = 2, *, verbose: bool | None = None, params: Sequence[Mapping[str, Any]] | None = None,
             then: Callable[[Any, dict], Any] | None = None) -> list:
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
    then : callable, optional
        ``then(model, data)`` runs on the worker right after a job's model is fitted (or read from
        ``out_dir``), on the same threads, with the job's data as read (``{"neural": array, label: array,
        ...}``), e.g. to compute its attribution map while other fits run; what it returns is in
        :func:`fit_outcomes`' ``extra``. It must be picklable (a module-level function
        or a ``functools.partial`` of one). An exception in it fails the job (and is retried) like one in
        the fit; the model file is written before it runs.

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
    TypeError
        ``then`` is not callable.

    Notes
    -----
    Threads: with ``num_threads=None`` a job runs on its worker's threads, except the jobs of the last
    round when every worker is on one machine: with ``W`` workers and ``M`` jobs, the last ``M % W`` jobs (or
    all ``M < W``) would leave workers idle, so they share those workers' threads (e.g. 5 jobs on 2
    single-threaded workers: jobs 0-3 on 1 thread each, job 4 on 2). The jobs are run in their order.
    Floating-point sums depend on the thread count, so such a job's model may differ from a one-thread
    fit in round-off only; set ``num_threads`` to fix every job's threads.

    Examples
    --------
    >>> models = xcebra.parallel.fit_many(model, [{"neural": "s1.npy", "position": ("s1.npz", "pos")},
    ...                                           {"neural": "s2.npy", "position": ("s2.npz", "pos")}],
    ...                                   out_dir="models/")  # doctest: +SKIP
    """
    outcomes = fit_outcomes(estimator, datasets, client, out_dir, retries, verbose, params, then)
    return [outcome.model for outcome in outcomes]


def fit_outcomes(estimator: Any, datasets: Sequence[Mapping[str, Any]], client: Any = None,
                 out_dir: str | os.PathLike | None = None, retries: int = 2, verbose: bool | None = None,
                 params: Sequence[Mapping[str, Any]] | None = None,
                 then: Callable[[Any, dict], Any] | None = None) -> list[FitOutcome]:
    """:func:`fit_many` with each job's :class:`FitOutcome` (model, file, whether it was read instead of fitted,
    seconds, what ``then`` returned, threads), in the order of ``datasets``; the arguments are :func:`fit_many`'s."""
    jobs = check_jobs(datasets)
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
    if then is not None and not callable(then):
        raise TypeError(f"then must be None or a callable then(model, data); got {type(then).__name__}")
    out = None
    if out_dir is not None:
        Path(out_dir).mkdir(parents=True, exist_ok=True)
        out = os.fspath(Path(out_dir).resolve())
    outcomes: list = [None] * len(jobs)
    failures: dict[int, BaseException] = {}
    with client_or_local(client) as active:
        threads = last_round_threads(_worker_threads_by_host(active), len(jobs))
        futures = []
        for i, job in enumerate(jobs):
            task = clone(templates[i])
            if task.num_threads is None and threads[i] is not None:
                task.set_params(num_threads=threads[i])
            # earlier jobs first (a higher priority runs sooner), so that the last round is the last jobs
            futures.append(active.submit(_fit_task, task, job, out, then, retries=retries, pure=False,
                                         priority=len(jobs) - i, key=f"xcebra-fit-{i}-{os.urandom(4).hex()}"))
        task_progress(futures, verbose, "xcebra fit_many")
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


def _worker_threads_by_host(client: Any) -> dict[str, list[int]]:
    """The threads of each worker of ``client``'s cluster, grouped by the host the worker runs on."""
    try:
        workers = client.scheduler_info()["workers"].values()
    except Exception:  # noqa: BLE001 - a client without scheduler info: no thread sharing
        return {}
    hosts: dict[str, list[int]] = {}
    for worker in workers:
        hosts.setdefault(str(worker.get("host", "")), []).append(max(1, int(worker.get("nthreads", 1))))
    return hosts


def last_round_threads(threads_by_host: Mapping[str, Sequence[int]], n_jobs: int) -> list[int | None]:
    """Torch threads per job when jobs run in order on the workers: None (the worker's own) for the
    full rounds, and for the last, partial round a share of the threads its idle workers leave.

    Only when all workers are on one host and have the same threads (then a job can use another worker's
    cores); otherwise every job gets None. ``threads_by_host``: host -> the threads of each of its workers.
    """
    if len(threads_by_host) != 1:
        return [None] * n_jobs
    (per_worker,) = threads_by_host.values()
    if len(set(per_worker)) != 1:
        return [None] * n_jobs
    n_workers, total = len(per_worker), sum(per_worker)
    tail = n_jobs % n_workers
    if tail == 0:
        return [None] * n_jobs
    share = max(per_worker[0], total // tail)
    return [None] * (n_jobs - tail) + [share] * tail


def _update_index(out_dir: Path, jobs: list[dict], outcomes: list) -> None:
    """Record in ``out_dir/index.json`` what data each model file was fitted to (atomic; earlier entries kept)."""
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
            index[Path(outcome.path).name] = {role: describe(value) for role, value in job.items()}
    atomic_write_bytes(path, (json.dumps(index, indent=1, sort_keys=True) + "\n").encode())
