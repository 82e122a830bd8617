"""``fit_many``: one fit of a clone of an estimator per data set, as parallel Dask tasks, with model files keyed by
their content (a rerun skips finished jobs), retries, and one error listing every failure.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sklearn.base import clone

from .._files import atomic_write_bytes
from .._validation import is_int
from ..data import TimeSeries
from ..estimators import XCEBRA
from ..exceptions import FitManyError
from .cluster import client_or_local, set_task_threads, task_progress
from .jobs import check_jobs, describe, load_job

__all__ = ["fit_many", "fit_outcomes", "FitOutcome", "model_path", "INDEX_NAME"]

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
    whether it was read from that file instead of fitted (``skipped``) and the task's ``seconds``."""

    model: Any
    path: str | None
    skipped: bool
    seconds: float


def _fit_task(estimator: Any, job: dict, out_dir: str | None) -> FitOutcome:
    """One fit on a worker: read the data, skip if its model file exists, else fit and write it atomically."""
    started = time.perf_counter()
    set_task_threads(estimator.num_threads)
    neural, labels = load_job(job)
    path = None
    if out_dir is not None:
        path = model_path(out_dir, estimator, neural, **labels)
        if path.exists():
            try:
                model = XCEBRA.load(path)
            except ValueError as error:
                raise ValueError(f"{error}; it is left as it is: delete {str(path)!r} to fit this job again") from None
            return FitOutcome(model, str(path), True, time.perf_counter() - started)
    model = estimator.fit(neural, **labels)
    if path is not None:
        model.save(path)  # temporary file + fsync + rename: a killed worker leaves no partial model
    return FitOutcome(model, None if path is None else str(path), False, time.perf_counter() - started)


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
    outcomes = fit_outcomes(estimator, datasets, client, out_dir, retries, verbose, params)
    return [outcome.model for outcome in outcomes]


def fit_outcomes(estimator: Any, datasets: Sequence[Mapping[str, Any]], client: Any = None,
                 out_dir: str | os.PathLike | None = None, retries: int = 2, verbose: bool | None = None,
                 params: Sequence[Mapping[str, Any]] | None = None) -> list[FitOutcome]:
    """:func:`fit_many` with each job's :class:`FitOutcome` (model, file, whether it was read instead of fitted,
    seconds), in the order of ``datasets``; the arguments are :func:`fit_many`'s."""
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
    out = None
    if out_dir is not None:
        Path(out_dir).mkdir(parents=True, exist_ok=True)
        out = os.fspath(Path(out_dir).resolve())
    outcomes: list = [None] * len(jobs)
    failures: dict[int, BaseException] = {}
    with client_or_local(client) as active:
        futures = [active.submit(_fit_task, clone(templates[i]), job, out, retries=retries, pure=False,
                                 key=f"xcebra-fit-{i}-{os.urandom(4).hex()}") for i, job in enumerate(jobs)]
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
