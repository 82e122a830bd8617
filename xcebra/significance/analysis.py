"""The front door: :func:`significance` fits the seed ensemble with shadows and summarises it."""

from __future__ import annotations

import functools
import logging
import os
import time
from typing import Any, Mapping, Sequence

import numpy as np

from .. import parallel
from .._validation import as_float_array, check_float, check_int, check_option
from ..attribution import METHODS
from ..data import TimeSeries
from ..estimator import XCEBRA
from ..estimators.sessions import is_session_list
from ..models import make_encoder
from .result import SignificanceResult
from .shadows import SHADOWS_PER_NEURON, add_shadows, minimum_shift, shadow_shifts, shadow_sources
from .stats import benjamini_hochberg, consistency_scores, empirical_p_values, normalise_by_null, seed_intervals

__all__ = ["significance"]

logger = logging.getLogger("xcebra")


def significance(estimator: Any, neural: Any, *, n_seeds: int = 5, n_shadows: int | None = None, fdr: float = 0.05,
                 method: str = "ing-block", confidence: float = 0.95, num_samples: int | None = None,
                 client: Any = None, out_dir: str | os.PathLike | None = None, random_state: int = 0,
                 verbose: bool | None = None, **labels: Any) -> SignificanceResult:
    """Which neurons significantly drive each block: values, intervals, p-values and FDR decisions.

    Fits ``n_seeds`` clones of ``estimator`` (``random_state = base + m``, where ``base`` is the
    estimator's ``random_state``, or ``random_state`` when that is None) on ``neural`` with
    ``n_shadows`` shadow neurons appended (circularly shifted copies of real neurons, new shifts in
    each seed), attributes each fit with ``method``, and tests every (block, neuron) against the
    block's shadows. The module docstring says why each choice was made.

    Parameters
    ----------
    estimator : XCEBRA
        The configuration; not changed (fitted or not: only its parameters are used).
    neural : array of shape (T, N)
        Read whole.
    n_seeds : int, default 5
        Fits in the ensemble (>= 2).
    n_shadows : int, optional
        Shadow neurons per fit; default 4 N (four per neuron). The smallest p-value is ``1 / (n_shadows + 1)``.
    fdr : float, default 0.05
        False discovery rate of the Benjamini-Hochberg decisions, per block.
    method : str, default "ing-block"
        Any method of :meth:`xcebra.XCEBRA.attribution_map`.
    confidence : float, default 0.95
        Level of the intervals over seeds.
    num_samples : int, optional
        Attribute this many time points per fit (drawn uniformly) instead of all of them.
    client : distributed.Client, optional
        Where the fits run (e.g. a SLURM cluster's client); default: a local cluster for this call
        (:func:`xcebra.parallel.local_client`; call this under ``if __name__ == "__main__":`` in a script).
    out_dir : path, optional
        Write each fit there (:func:`xcebra.parallel.fit_many`); a rerun with the same arguments reads
        them instead of fitting again.
    random_state : int, default 0
        Seeds the shadows (which neurons, which shifts), and the fits when the estimator's is None.
    verbose : bool, optional
        Progress bars; default: ``estimator.verbose``.
    **labels : arrays of shape (T,) or (T, d)
        The labels the objectives use, as for ``fit``.

    Returns
    -------
    SignificanceResult

    Raises
    ------
    ValueError, TypeError
        A bad argument (the message names it, its value and what is expected), or data that ``fit``
        would refuse.
    xcebra.parallel.FitManyError
        Some fits failed (the finished ones are in ``out_dir``, and a rerun fits only the rest).

    Examples
    --------
    >>> result = significance(model, data.neural, position=data.behavior, n_seeds=5)  # doctest: +SKIP
    >>> result.selected()["behavior"]  # doctest: +SKIP
    >>> result.to_frame().head()  # doctest: +SKIP
    """
    if not isinstance(estimator, XCEBRA):
        raise TypeError(f"estimator must be an xcebra.XCEBRA; got {type(estimator).__name__}")
    if is_session_list(neural):
        raise ValueError("significance analyses one recording; got a list of sessions. Run it per session (each fit "
                         "on that session alone)")
    estimator._validate_params()
    n_seeds = check_int("n_seeds", n_seeds, minimum=2)
    fdr = check_float("fdr", fdr, minimum=0.0, strict=True, maximum=1.0)
    if fdr >= 1.0:
        raise ValueError(f"fdr must be < 1; got {fdr}")
    confidence = check_float("confidence", confidence, minimum=0.0, strict=True, maximum=1.0)
    if confidence >= 1.0:
        raise ValueError(f"confidence must be < 1; got {confidence}")
    check_option("method", method, METHODS)
    random_state = check_int("random_state", random_state, minimum=0)
    if num_samples is not None:
        num_samples = check_int("num_samples", num_samples, minimum=1)
    if verbose is not None and not isinstance(verbose, bool):
        raise TypeError(f"verbose must be None or a bool; got {verbose!r}")
    verbose = bool(estimator.verbose) if verbose is None else verbose
    neural = as_float_array("neural", neural, (2,), "(time points, neurons)")
    data = TimeSeries.from_arrays(neural, **labels)  # NaN, shapes, lengths: one clear error before any fit
    estimator._check_labels_for_objectives(data, labels)
    n_timepoints, n_neurons = neural.shape
    if n_neurons < 2:
        raise ValueError(f"neural must have at least 2 neurons to rank them; got shape {neural.shape}")
    n_shadows = SHADOWS_PER_NEURON * n_neurons if n_shadows is None else check_int("n_shadows", n_shadows, minimum=1)
    labels = {name: np.asarray(value) for name, value in labels.items()}

    window = _window(estimator.model)
    min_shift = minimum_shift(n_timepoints, window, [*labels.values(), neural])
    sources = shadow_sources(n_neurons, n_shadows, random_state)
    base = estimator.random_state if estimator.random_state is not None else random_state
    seeds = tuple(int(base) + m for m in range(n_seeds))
    shifts = np.stack([shadow_shifts(n_timepoints, n_shadows, min_shift, random_state, m) for m in range(n_seeds)])
    logger.info("significance: %d seeds, %d shadows shifted by %d..%d of %d time points", n_seeds, n_shadows,
                min_shift, n_timepoints - min_shift, n_timepoints)

    started = time.perf_counter()
    outcomes = _fit_and_map_seeds(estimator, neural, labels, sources, shifts, seeds, client, out_dir, verbose,
                                  method=method, num_samples=num_samples)
    block_values = np.stack([outcome.extra for outcome in outcomes])  # (n_seeds, n_blocks, N + n_shadows)
    block_names = tuple(name for name, _ in outcomes[0].model.blocks_)
    result = _summarise(block_values[:, :, :n_neurons], block_values[:, :, n_neurons:], block_names, fdr=fdr,
                        confidence=confidence)
    # the maps run on the workers as each fit ends: the wall time is one figure; per part, worker seconds
    timings = {"seconds": time.perf_counter() - started,
               "fit_seconds": float(sum(o.seconds for o in outcomes if not o.skipped)),
               "map_seconds": float(sum(o.then_seconds for o in outcomes)),
               "fits_read": float(sum(o.skipped for o in outcomes))}
    logger.info("significance: %d fits (%d read), threads per fit %s, %.0f s in all", len(outcomes),
                timings["fits_read"], [o.threads for o in outcomes], timings["seconds"])
    return SignificanceResult(**result, fdr=fdr, confidence=confidence, method=method, sources=sources,
                              shifts=shifts, random_states=seeds, timings=timings)


def _summarise(real: np.ndarray, null: np.ndarray, block_names: tuple, *, fdr: float, confidence: float) -> dict:
    """The statistics of raw block maps: real (n_seeds, n_blocks, N), null (n_seeds, n_blocks, S)."""
    seed_values, seed_null, scales = normalise_by_null(real, null)
    values, ci_low, ci_high = seed_intervals(seed_values, confidence)
    null_values = seed_null.mean(axis=0)
    p_values = empirical_p_values(values, null_values)
    consistency = dict(zip(block_names, consistency_scores(real).tolist()))
    return dict(block_names=block_names, values=values, ci_low=ci_low, ci_high=ci_high, p_values=p_values,
                selected_mask=benjamini_hochberg(p_values, fdr), null_values=null_values, seed_values=seed_values,
                seed_null=seed_null, scales=scales, consistency=consistency)


def _window(model: str) -> int:
    return int(make_encoder(model, 1, 2, 1).window)  # the window depends on the architecture only


def _fit_and_map_seeds(estimator: Any, neural: np.ndarray, labels: Mapping[str, np.ndarray], sources: np.ndarray,
                       shifts: np.ndarray, seeds: Sequence[int], client: Any, out_dir: Any, verbose: bool, *,
                       method: str, num_samples: int | None) -> list:
    """One fit per seed, each on the recording with its own shadows, as one :func:`xcebra.parallel.fit_outcomes`
    call (each job its ``random_state``), so that the fits spread over the workers together; each job's
    block map (its ``extra``) is computed on its worker as soon as its fit ends, while other fits run."""
    jobs = [{"neural": add_shadows(neural, sources, shifts[m]), **labels} for m in range(len(seeds))]
    return parallel.fit_outcomes(estimator, jobs, client=client, out_dir=out_dir, verbose=verbose,
                                 params=[{"random_state": seed} for seed in seeds],
                                 then=functools.partial(_block_map, method=method, num_samples=num_samples))


def _block_map(model: Any, data: Mapping[str, np.ndarray], *, method: str, num_samples: int | None) -> np.ndarray:
    """The (n_blocks, inputs) block map of one fitted model on the recording it was fitted to (with its shadows)."""
    return model.attribution_map(data["neural"], method=method, num_samples=num_samples, verbose=False).block_values
