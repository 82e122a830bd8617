"""``sweep``: every configuration of a parameter grid, fitted on the training segments of time-series splits as
parallel Dask tasks, and scored on the held-out segments (InfoNCE per objective, decoding R2 per block).
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, NamedTuple

import numpy as np
from sklearn.base import clone
from sklearn.linear_model import LinearRegression
from sklearn.metrics import r2_score
from sklearn.model_selection import ParameterGrid, TimeSeriesSplit

from .._validation import is_int
from ..data import TimeSeries
from ..models import make_encoder
from ..objectives import Objective
from .cluster import client_or_local, set_task_threads, task_progress

__all__ = ["sweep", "SweepResult"]


class SweepResult(NamedTuple):
    """What :func:`sweep` returns: ``table, best_params = sweep(...)`` also works."""

    #: one row per configuration: its parameters, the held-out metrics (mean and ``_std`` over splits),
    #: ``score`` (higher is better) and ``rank`` (1 = best); a pandas DataFrame when pandas is installed
    table: Any
    #: the parameters of the configuration ranked first
    best_params: dict


def _splits(cv: Any, n_timepoints: int, gap: int) -> list[tuple[tuple[int, int], tuple[int, int]]]:
    """((train_start, train_stop), (test_start, test_stop)) per split; every part is a contiguous time range."""
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
    set_task_threads(estimator.num_threads)
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
    if isinstance(value, (list, tuple)) and value and all(isinstance(v, Objective) for v in value):
        return ", ".join(f"{o.name}{list(o.dims)}:{o.distribution}" for o in value)
    return value


def _configurations(estimator: Any, param_grid: Any, labels: Mapping[str, Any]) -> tuple[list, list, list]:
    """The grid's points, a checked clone of ``estimator`` for each, and the metric names each one yields."""
    grid = list(ParameterGrid(param_grid))
    configurations, metric_names = [], []
    for params in grid:
        candidate = clone(estimator).set_params(**params, verbose=False)
        layout = candidate._validate_params()
        configurations.append(candidate)
        metric_names.append({f"loss/{o.name}" for o in candidate.objectives}
                            | {f"r2/{block}/{label}" for block, _ in layout.blocks for label in labels})
    return grid, configurations, metric_names


def _check_scoring(scoring: str, grid: list, metric_names: list) -> None:
    if not (scoring.startswith("r2/") or scoring.startswith("loss/")):
        raise ValueError(f"scoring must name a column 'r2/<block>/<label>' or 'loss/<objective>'; got {scoring!r}")
    for params, names in zip(grid, metric_names):
        if scoring not in names:
            raise ValueError(f"scoring {scoring!r} is not a metric of the configuration {params}; it has "
                             f"{', '.join(sorted(names))}")


def _row(params: dict, per_split: list[dict], scoring: str) -> dict:
    """One configuration's row: its parameters, each metric's mean (and ``_std``) over splits, and ``score``."""
    row = {name: _column_value(value) for name, value in params.items()}
    for metric in per_split[0]:
        values = np.array([r[metric] for r in per_split], dtype=np.float64)
        row[metric] = float(values.mean())
        if metric != "fit_seconds":
            row[f"{metric}_std"] = float(values.std())
    row["score"] = row[scoring] if scoring.startswith("r2/") else -row[scoring]
    return row


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
    if not is_int(n_batches, 1):
        raise ValueError(f"n_batches must be an int >= 1; got {n_batches!r}")
    grid, configurations, metric_names = _configurations(estimator, param_grid, labels)
    neural = np.asarray(neural)
    labels = {name: np.asarray(values) for name, values in labels.items()}
    TimeSeries.from_arrays(neural, **labels)  # NaN, shapes, lengths: one clear error before any task starts
    splits = _splits(cv, neural.shape[0], max(_max_reach(c) for c in configurations))
    scoring = scoring or _default_scoring(estimator)
    _check_scoring(scoring, grid, metric_names)  # before any fit: a typo must not cost a night of fits
    verbose = bool(estimator.verbose) if verbose is None else verbose
    with client_or_local(client) as active:
        neural_future = active.scatter(neural, broadcast=True, hash=False)
        labels_future = active.scatter(labels, broadcast=True, hash=False)
        tasks = {(i, k): active.submit(_sweep_task, configuration, neural_future, labels_future, train, test,
                                       n_batches, random_state, pure=False)
                 for (i, configuration), (k, (train, test)) in itertools.product(enumerate(configurations),
                                                                                  enumerate(splits))}
        task_progress(list(tasks.values()), verbose, "xcebra sweep")
        results = {key: future.result() for key, future in tasks.items()}
    rows = [_row(params, [results[i, k] for k in range(len(splits))], scoring) for i, params in enumerate(grid)]
    order = sorted(range(len(rows)), key=lambda i: -rows[i]["score"] if np.isfinite(rows[i]["score"]) else np.inf)
    for rank, i in enumerate(order, start=1):
        rows[i]["rank"] = rank
    return SweepResult(table=_table(rows), best_params=dict(grid[order[0]]))


def _max_reach(estimator: Any) -> int:
    """Time points a sample reaches beyond its own: the encoder's window plus the largest time offset."""
    window = make_encoder(estimator.model, 1, 2, 1).window  # the window depends on the architecture only
    offsets = [o.distribution_options().get("time_offset", 0) for o in estimator.objectives
               if o.distribution == "time"]
    return window + max(offsets, default=0)
