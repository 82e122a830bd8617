"""Measure the reference package ``cebra`` (0.6.1) on xCEBRA workloads.

This script is the *reference side* of the side-by-side benchmark. It runs in the separate
environment ``.venv-bench`` (``make bench-env``), never imports ``xcebra``, and is started as a
subprocess by our own benchmark. It only drives the public API of ``cebra``, configured exactly
as in the seed notebook (``/work/shared/seed/xcebra_ratinabox_demo.txt``).

Settings
--------
``seed``
    The seed notebook's configuration: ``ContrastiveMultiObjectiveLoader(batch_size=2500)``,
    behaviour objective on embedding dims ``(0, 4)`` (``time_delta``, ``time_delta=1``, label
    ``position``) and time objective on ``(0, 14)`` (``time``, ``time_offset=10``), both
    ``FixedCosineInfoNCE(temperature=1)``; ``offset10-model`` with 256 units and 14 outputs;
    Adam (lr 3e-4); ``JacobianReg``; ``multiobjective-solver`` with ``renormalize=True``.
    Measures seconds per training step without the regularizer and with it (a ``LinearRampUp``
    whose ramp starts at step 0, so every step computes it), then times
    ``cebra.attribution.init("jacobian-based", ...).compute_attribution_map()`` and its peak
    resident memory.
``synthetic``
    The paper's small synthetic setting: ``offset1-model-mse`` (an MLP), ``--output-dim``
    outputs (default 6), batch 512, ``FixedEuclideanInfoNCE(temperature=1)``, behaviour
    ``time_delta`` objective on dims ``(0, 3)`` and ``time`` objective (``time_offset=10``) on
    ``(0, output_dim)``, regularizer weight 0.01 from step 0, 2,000 steps. Times the whole
    ``solver.fit``.

Data
----
``--data FILE.npz`` holds ``neural`` of shape ``(T, N)`` and ``position`` of shape ``(T, d)``,
both float32. ``--make-data {seed,synthetic} FILE.npz`` writes random data of the benchmark's
shapes so that the benchmark can be rerun without the original recordings.

Examples
--------
::

    .venv-bench/bin/python -m benchmarks.reference.reference_cebra --make-data seed /tmp/seed.npz
    .venv-bench/bin/python -m benchmarks.reference.reference_cebra --data /tmp/seed.npz \\
        --setting seed --out benchmarks/results/reference_seed.json --threads 2
    .venv-bench/bin/python -m benchmarks.reference.reference_cebra --make-data synthetic /tmp/syn.npz
    .venv-bench/bin/python -m benchmarks.reference.reference_cebra --data /tmp/syn.npz \\
        --setting synthetic --out benchmarks/results/reference_synthetic.json

The result JSON holds versions, threads, machine, data shapes, every per-step time, medians,
attribution seconds and peak-memory figures. Progress goes to stderr (the ``print`` calls inside
``cebra`` are redirected there too); stdout only receives the path of the written JSON.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import gc
import json
import logging
import os
import platform
import socket
import statistics
import sys
import threading
import time
import warnings
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional

import numpy as np

logger = logging.getLogger("reference_cebra")

#: Hyper-parameters of the ``seed`` setting (the seed notebook).
SEED_CONFIG = dict(
    model="offset10-model",
    num_units=256,
    output_dim=14,
    batch_size=2500,
    learning_rate=3e-4,
    loss="FixedCosineInfoNCE",
    temperature=1.0,
    behavior_dims=(0, 4),
    time_dims=(0, 14),
    time_delta=1,
    time_offset=10,
    renormalize=True,
    # The ramp used for the "with regularizer" measurement: it starts at step 0 (so every
    # measured step computes the Jacobian term) and rises to the seed's end weight 0.1 over the
    # seed's ramp length (num_steps // 4 = 250 steps for 1,000 steps).
    reg_start_weight=0.0,
    reg_end_weight=0.1,
    reg_ramp_steps=250,
)

#: Hyper-parameters of the ``synthetic`` setting (the paper's small synthetic benchmark).
SYNTHETIC_CONFIG = dict(
    model="offset1-model-mse",
    num_units=256,  # ignored by offset1-model-mse (hidden widths are 30/30/10 x num_output)
    batch_size=512,
    learning_rate=3e-4,
    loss="FixedEuclideanInfoNCE",
    temperature=1.0,
    time_delta=1,
    time_offset=10,
    # Euclidean InfoNCE on an un-normalised ("-mse") model: no per-block renormalisation.
    renormalize=False,
    reg_weight=0.01,
    num_steps=2000,
)


# --------------------------------------------------------------------------------------------
# Data generators
# --------------------------------------------------------------------------------------------
def _fold_unit_interval(x: np.ndarray) -> np.ndarray:
    """Reflect values into ``[0, 1]`` (a walk bouncing off the walls of the unit box)."""
    x = np.mod(x, 2.0)
    return np.where(x > 1.0, 2.0 - x, x)


def smooth_random_walk(num_timepoints: int, dims: int, rng: np.random.Generator,
                       step_scale: float = 0.01, smoothness: float = 0.95) -> np.ndarray:
    """Smooth random walk in ``[0, 1]^dims`` with reflecting walls.

    The velocity is an AR(1) process ``v_t = smoothness * v_{t-1} + noise``, so the trajectory
    is smooth (like an animal's position sampled at a high rate); positions are reflected at
    the borders of the unit box.

    Returns
    -------
    ndarray of shape (num_timepoints, dims), float32
    """
    noise = rng.normal(scale=step_scale * np.sqrt(1 - smoothness**2),
                       size=(num_timepoints, dims))
    velocity = np.empty_like(noise)
    velocity[0] = noise[0]
    for t in range(1, num_timepoints):
        velocity[t] = smoothness * velocity[t - 1] + noise[t]
    start = rng.uniform(0.2, 0.8, size=dims)
    return _fold_unit_interval(start + np.cumsum(velocity, axis=0)).astype(np.float32)


def make_seed_data(seed: int = 0, num_timepoints: int = 20_000,
                   num_neurons: int = 90) -> Dict[str, np.ndarray]:
    """Data of the seed notebook's shape: Poisson(0.5) spike counts and a 2-d position.

    Returns
    -------
    dict with ``neural`` of shape (20000, 90) and ``position`` of shape (20000, 2), float32
    """
    rng = np.random.default_rng(seed)
    neural = rng.poisson(0.5, size=(num_timepoints, num_neurons)).astype(np.float32)
    position = smooth_random_walk(num_timepoints, 2, rng)
    return dict(neural=neural, position=position)


def make_synthetic_data(seed: int = 0, num_timepoints: int = 12_000,
                        num_neurons: int = 40) -> Dict[str, np.ndarray]:
    """Data of the paper's small synthetic setting: Gaussian activity and a smooth 3-d label.

    Returns
    -------
    dict with ``neural`` of shape (12000, 40) and ``position`` of shape (12000, 3), float32
    """
    rng = np.random.default_rng(seed)
    neural = rng.normal(size=(num_timepoints, num_neurons)).astype(np.float32)
    position = smooth_random_walk(num_timepoints, 3, rng)
    return dict(neural=neural, position=position)


DATA_MAKERS: Dict[str, Callable[..., Dict[str, np.ndarray]]] = {
    "seed": make_seed_data,
    "synthetic": make_synthetic_data,
}


# --------------------------------------------------------------------------------------------
# Machine information and memory measurement
# --------------------------------------------------------------------------------------------
def cpu_model() -> str:
    """CPU model name from ``/proc/cpuinfo`` (``platform.processor()`` as a fallback)."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _status_kib(field: str) -> Optional[int]:
    """Read one ``kB`` field (``VmRSS``, ``VmHWM``) of ``/proc/self/status``; None if absent."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


class PeakMemory:
    """Context manager measuring the peak resident set size (RSS) of this process.

    Two independent measurements are combined:

    * the kernel's high-water mark ``VmHWM``, after resetting it by writing ``5`` to
      ``/proc/self/clear_refs`` (Linux >= 4.0); exact, but only if the reset is allowed;
    * a background thread polling ``VmRSS`` every ``interval`` seconds (may miss short spikes).

    Attributes (after the ``with`` block)
    -------------------------------------
    rss_before : int
        RSS in bytes just before the block.
    peak_rss : int
        Peak RSS in bytes during the block (the larger of both measurements).
    peak_increase : int
        ``peak_rss - rss_before`` in bytes.
    hwm_reset_ok : bool
        Whether the kernel high-water mark could be reset (so ``VmHWM`` was used).
    """

    def __init__(self, interval: float = 0.005):
        self.interval = interval
        self._stop = threading.Event()
        self._polled_max_kib = 0
        self.hwm_reset_ok = False

    def _poll(self) -> None:
        while not self._stop.is_set():
            rss = _status_kib("VmRSS")
            if rss is not None and rss > self._polled_max_kib:
                self._polled_max_kib = rss
            self._stop.wait(self.interval)

    def __enter__(self) -> "PeakMemory":
        gc.collect()
        try:
            with open("/proc/self/clear_refs", "w") as f:
                f.write("5")
            self.hwm_reset_ok = True
        except OSError:
            self.hwm_reset_ok = False
        self.rss_before = (_status_kib("VmRSS") or 0) * 1024
        self._polled_max_kib = self.rss_before // 1024
        self._thread = threading.Thread(target=self._poll, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        polled = self._polled_max_kib * 1024
        hwm = (_status_kib("VmHWM") or 0) * 1024 if self.hwm_reset_ok else 0
        self.polled_peak_rss = polled
        self.hwm_peak_rss = hwm if self.hwm_reset_ok else None
        self.peak_rss = max(polled, hwm)
        self.peak_increase = self.peak_rss - self.rss_before

    def as_dict(self) -> Dict[str, Any]:
        """The measurements as a JSON-ready dict (bytes)."""
        return dict(
            rss_before_bytes=self.rss_before,
            peak_rss_bytes=self.peak_rss,
            peak_increase_bytes=self.peak_increase,
            polled_peak_rss_bytes=self.polled_peak_rss,
            hwm_peak_rss_bytes=self.hwm_peak_rss,
            hwm_reset_ok=self.hwm_reset_ok,
        )


class LoadSampler:
    """Context manager sampling the 1-minute load average every ``interval`` seconds.

    The machine may be shared; the samples tell how busy it was while we measured.
    """

    def __init__(self, interval: float = 5.0):
        self.interval = interval
        self.samples: List[float] = []
        self._stop = threading.Event()

    def _run(self) -> None:
        while True:
            self.samples.append(os.getloadavg()[0])
            if self._stop.wait(self.interval):
                break

    def __enter__(self) -> "LoadSampler":
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()

    def as_dict(self) -> Dict[str, Any]:
        """Mean and max of the sampled 1-minute load averages, and the samples."""
        return dict(mean=statistics.fmean(self.samples), max=max(self.samples),
                    interval_seconds=self.interval, samples=self.samples)


# --------------------------------------------------------------------------------------------
# Building the reference pipeline (public cebra API, as in the seed notebook)
# --------------------------------------------------------------------------------------------
def build_solver(neural, position, *, model_name: str, num_units: int, output_dim: int,
                 batch_size: int, num_steps: int, learning_rate: float, loss: str,
                 temperature: float, behavior_dims, time_dims, time_delta: int,
                 time_offset: int, renormalize: bool, tqdm_on: bool, device: str = "cpu"):
    """Set up dataset, loader, multi-objective config, model, optimizer and solver.

    Mirrors the seed notebook cell by cell (``DatasetxCEBRA`` -> ``ContrastiveMultiObjectiveLoader``
    -> ``MultiObjectiveConfig`` -> ``cebra.models.init`` -> Adam -> ``JacobianReg`` ->
    ``cebra.solver.init("multiobjective-solver")``).

    Parameters
    ----------
    neural : torch.Tensor of shape (T, N), float32
    position : torch.Tensor of shape (T, d), float32
        The behaviour label used by the ``time_delta`` objective.

    Returns
    -------
    solver, loader, neural_model
    """
    import cebra
    import cebra.models
    import cebra.models.jacobian_regularizer
    import cebra.solver
    import torch
    from cebra.data import ContrastiveMultiObjectiveLoader, DatasetxCEBRA
    from cebra.solver import MultiObjectiveConfig

    data = DatasetxCEBRA(neural, position=position)
    loader = ContrastiveMultiObjectiveLoader(dataset=data, num_steps=num_steps,
                                             batch_size=batch_size).to(device)
    config = MultiObjectiveConfig(loader)

    config.set_slice(*behavior_dims)
    config.set_loss(loss, temperature=temperature)
    config.set_distribution("time_delta", time_delta=time_delta, label_name="position")
    config.push()

    config.set_slice(*time_dims)
    config.set_loss(loss, temperature=temperature)
    config.set_distribution("time", time_offset=time_offset)
    config.push()

    config.finalize()
    criterion = config.criterion
    feature_ranges = config.feature_ranges

    neural_model = cebra.models.init(
        name=model_name,
        num_neurons=data.neural.shape[1],
        num_units=num_units,
        num_output=output_dim,
    ).to(device)
    data.configure_for(neural_model)

    opt = torch.optim.Adam(
        list(neural_model.parameters()) + list(criterion.parameters()),
        lr=learning_rate,
        weight_decay=0,
    )
    regularizer = cebra.models.jacobian_regularizer.JacobianReg()
    solver = cebra.solver.init(
        name="multiobjective-solver",
        model=neural_model,
        feature_ranges=feature_ranges,
        regularizer=regularizer,
        renormalize=renormalize,
        use_sam=False,
        criterion=criterion,
        optimizer=opt,
        tqdm_on=tqdm_on,
    ).to(device)
    return solver, loader, neural_model


def prepare_solver_for_steps(solver, loader) -> None:
    """Do what ``MultiobjectiveSolverBase.fit`` does before its loop.

    In cebra 0.6.1 that is ``_set_fitted_params(loader)``, ``to(loader.device)`` and
    ``model.train()``; the loop then calls ``step(batch, weights_regularizer=...,
    weights_loss=...)`` and ``_update_metadata(step)`` for each batch of the loader.
    """
    solver._set_fitted_params(loader)
    solver.to(loader.device)
    solver.model.train()


def _synchronize() -> None:
    """Wait for queued GPU work, so that a wall-clock time covers it (no-op without CUDA)."""
    import torch

    if torch.cuda.is_available():
        torch.cuda.synchronize()


def time_steps(solver, batches, *, step_offset: int, warmup: int, steps: int,
               scheduler=None, label: str = "") -> Dict[str, Any]:
    """Time single training steps, the way ``solver.fit`` runs them.

    Each step is split into drawing the batch from the loader (sampling and window gathering,
    part of ``fit``'s time per iteration) and ``solver.step``. ``warmup`` steps are run first and
    not recorded.

    Parameters
    ----------
    batches : iterator over ``cebra.data.Batch``
        An iterator over the loader (shared between calls so that steps continue).
    step_offset : int
        Global index of the first step, passed to the scheduler as ``fit`` would.
    scheduler : cebra.solver.schedulers.Scheduler or None
        ``None`` trains without the regularizer (``weights_regularizer=None``).

    Returns
    -------
    dict with per-step lists ``load_seconds``, ``step_seconds``, ``total_seconds`` (wall clock,
    load + step) and ``cpu_seconds`` (process CPU time of all threads, less sensitive to other
    processes on a shared machine), their medians, and the regularizer weights used.
    """
    load_s: List[float] = []
    step_s: List[float] = []
    cpu_s: List[float] = []
    weights_used = []
    for i in range(warmup + steps):
        global_step = step_offset + i
        c0 = time.process_time()
        t0 = time.perf_counter()
        batch = next(batches)
        t1 = time.perf_counter()
        weights = None if scheduler is None else scheduler.get_weights(step=global_step)
        stats = solver.step(batch, weights_regularizer=weights, weights_loss=None)
        solver._update_metadata(global_step)
        _synchronize()
        t2 = time.perf_counter()
        c1 = time.process_time()
        measured = i >= warmup
        if measured:
            load_s.append(t1 - t0)
            step_s.append(t2 - t1)
            cpu_s.append(c1 - c0)
            weights_used.append(weights)
        logger.info("%s step %d/%d%s: load %.3f s, step %.3f s, loss %.4f", label,
                    i + 1, warmup + steps, "" if measured else " (warm-up)", t1 - t0,
                    t2 - t1, stats["sum_loss_train"])
    total = [a + b for a, b in zip(load_s, step_s)]
    return dict(
        warmup_steps=warmup,
        measured_steps=steps,
        load_seconds=load_s,
        step_seconds=step_s,
        total_seconds=total,
        median_load_seconds=statistics.median(load_s),
        median_step_seconds=statistics.median(step_s),
        median_total_seconds=statistics.median(total),
        min_total_seconds=min(total),
        cpu_seconds=cpu_s,
        median_cpu_seconds=statistics.median(cpu_s),
        regularizer_weights=weights_used,
    )


def time_attribution(solver, neural, output_dim: int, device: str = "cpu") -> Dict[str, Any]:
    """Time ``jacobian-based`` attribution exactly as the seed notebook runs it.

    ``cebra.attribution.init(name="jacobian-based", model=..., input_data=neural,
    output_dimension=...)`` followed by ``compute_attribution_map()``, with the model's
    ``split_outputs`` switched off and ``neural.requires_grad_(True)`` as in the seed. Both the
    ``init`` (which gathers the sliding windows for convolutional models) and the computation
    are inside the timed and memory-measured region; their split is reported too.
    """
    import cebra.attribution

    model = solver.model.to(device)
    model.split_outputs = False
    neural = neural.to(device).requires_grad_(True)

    with PeakMemory() as mem:
        c0 = time.process_time()
        t0 = time.perf_counter()
        method = cebra.attribution.init(
            name="jacobian-based",
            model=model,
            input_data=neural,
            output_dimension=output_dim,
        )
        t1 = time.perf_counter()
        result = method.compute_attribution_map()
        _synchronize()
        t2 = time.perf_counter()
        c2 = time.process_time()

    shapes = {k: list(np.shape(v)) for k, v in result.items() if hasattr(v, "shape")}
    out = dict(
        seconds=t2 - t0,
        init_seconds=t1 - t0,
        compute_seconds=t2 - t1,
        cpu_seconds=c2 - c0,
        cebra_time_inversion_lsq=result.get("time_inversion_lsq"),
        cebra_time_inversion_svd=result.get("time_inversion_svd"),
        result_shapes=shapes,
        memory=mem.as_dict(),
    )
    del result, method
    gc.collect()
    return out


# --------------------------------------------------------------------------------------------
# The two settings
# --------------------------------------------------------------------------------------------
def run_seed(neural, position, args) -> Dict[str, Any]:
    """Seed-notebook setting: per-step times without / with the regularizer, then attribution."""
    from cebra.solver.schedulers import LinearRampUp

    cfg = dict(SEED_CONFIG)
    per_phase = args.warmup + args.steps
    solver, loader, _ = build_solver(
        neural, position,
        model_name=cfg["model"], num_units=cfg["num_units"], output_dim=cfg["output_dim"],
        batch_size=cfg["batch_size"], num_steps=2 * per_phase,
        learning_rate=cfg["learning_rate"], loss=cfg["loss"], temperature=cfg["temperature"],
        behavior_dims=cfg["behavior_dims"], time_dims=cfg["time_dims"],
        time_delta=cfg["time_delta"], time_offset=cfg["time_offset"],
        renormalize=cfg["renormalize"], tqdm_on=False, device=args.device,
    )
    prepare_solver_for_steps(solver, loader)
    batches = iter(loader)

    logger.info("seed: %d warm-up + %d measured steps without the regularizer", args.warmup,
                args.steps)
    no_reg = time_steps(solver, batches, step_offset=0, warmup=args.warmup, steps=args.steps,
                        scheduler=None, label="no-reg")

    # A ramp that has already started: switched on at the first step of this phase, so that
    # every step (warm-up included) computes the Jacobian regularizer.
    scheduler = LinearRampUp(
        n_splits=2,
        step_to_switch_on_reg=per_phase,
        step_to_switch_off_reg=per_phase + cfg["reg_ramp_steps"],
        start_weight=cfg["reg_start_weight"],
        end_weight=cfg["reg_end_weight"],
    )
    logger.info("seed: %d warm-up + %d measured steps with the regularizer", args.warmup,
                args.steps)
    with_reg = time_steps(solver, batches, step_offset=per_phase, warmup=args.warmup,
                          steps=args.steps, scheduler=scheduler, label="with-reg")
    n_reg_logged = len(solver.log.get(("regularizer", 0), []))
    with_reg["regularizer_evaluations_logged"] = n_reg_logged

    result = dict(config=cfg, no_regularizer=no_reg, with_regularizer=with_reg)
    if args.whole_fit_steps:
        result["whole_fit"] = time_whole_seed_fit(neural, position, args.whole_fit_steps, args.device)
        logger.info("seed: whole fit of %d steps %.1f s", args.whole_fit_steps, result["whole_fit"]["seconds"])
    if args.attribution:
        logger.info("seed: attribution (jacobian-based) on all %d time points", len(neural))
        result["attribution"] = time_attribution(solver, neural, cfg["output_dim"], args.device)
        logger.info("seed: attribution %.1f s, peak RSS increase %.2f GB",
                    result["attribution"]["seconds"],
                    result["attribution"]["memory"]["peak_increase_bytes"] / 1e9)
    return result


def time_whole_seed_fit(neural, position, steps: int, device: str) -> Dict[str, Any]:
    """``solver.fit`` of the seed configuration for ``steps`` steps, with the seed's regularizer ramp
    (0 until steps // 4, rising to 0.1 at steps // 2), as the seed notebook runs it."""
    from cebra.solver.schedulers import LinearRampUp

    cfg = dict(SEED_CONFIG)
    solver, loader, _ = build_solver(
        neural, position, model_name=cfg["model"], num_units=cfg["num_units"], output_dim=cfg["output_dim"],
        batch_size=cfg["batch_size"], num_steps=steps, learning_rate=cfg["learning_rate"], loss=cfg["loss"],
        temperature=cfg["temperature"], behavior_dims=cfg["behavior_dims"], time_dims=cfg["time_dims"],
        time_delta=cfg["time_delta"], time_offset=cfg["time_offset"], renormalize=cfg["renormalize"],
        tqdm_on=False, device=device)
    scheduler = LinearRampUp(n_splits=2, step_to_switch_on_reg=steps // 4, step_to_switch_off_reg=steps // 2,
                             start_weight=0.0, end_weight=cfg["reg_end_weight"])
    _synchronize()
    start = time.perf_counter()
    solver.fit(loader=loader, valid_loader=None, log_frequency=None, scheduler_regularizer=scheduler,
               scheduler_loss=None)
    _synchronize()
    return dict(steps=steps, seconds=time.perf_counter() - start, final_sum_loss=solver.log[("sum_loss_train",)][-1])


def run_synthetic(neural, position, args) -> Dict[str, Any]:
    """Paper's synthetic setting: time the whole ``solver.fit`` of ``--steps`` (2,000) steps."""
    from cebra.solver.schedulers import LinearRampUp

    cfg = dict(SYNTHETIC_CONFIG)
    output_dim = args.output_dim
    behavior_dims = (0, args.behavior_dims)
    time_dims = (0, output_dim)
    num_steps = args.steps
    cfg.update(output_dim=output_dim, behavior_dims=behavior_dims, time_dims=time_dims,
               num_steps=num_steps)

    solver, loader, neural_model = build_solver(
        neural, position,
        model_name=cfg["model"], num_units=cfg["num_units"], output_dim=output_dim,
        batch_size=cfg["batch_size"], num_steps=num_steps,
        learning_rate=cfg["learning_rate"], loss=cfg["loss"], temperature=cfg["temperature"],
        behavior_dims=behavior_dims, time_dims=time_dims, time_delta=cfg["time_delta"],
        time_offset=cfg["time_offset"], renormalize=cfg["renormalize"],
        tqdm_on=not args.no_progress, device=args.device,
    )
    # LinearRampUp semantics in cebra 0.6.1: for on <= step <= off the weight is interpolated
    # from start_weight (at step == on) to end_weight (at step == off); after `off` it stays at
    # end_weight. With on=0, off=1 and start == end == 0.01 the weight is 0.01 at every step.
    scheduler = LinearRampUp(
        n_splits=2,
        step_to_switch_on_reg=0,
        step_to_switch_off_reg=1,
        start_weight=cfg["reg_weight"],
        end_weight=cfg["reg_weight"],
    )
    weights = {tuple(scheduler.get_weights(step=s) or ()) for s in range(num_steps)}
    cfg["regularizer_weights_over_fit"] = sorted(list(w) for w in weights)

    logger.info("synthetic: solver.fit for %d steps (batch %d)", num_steps, cfg["batch_size"])
    c0 = time.process_time()
    t0 = time.perf_counter()
    solver.fit(loader=loader, valid_loader=None, log_frequency=None,
               scheduler_regularizer=scheduler, scheduler_loss=None)
    seconds = time.perf_counter() - t0
    cpu_seconds = time.process_time() - c0
    logger.info("synthetic: fit took %.1f s (%.4f s/step)", seconds, seconds / num_steps)

    result = dict(
        config=cfg,
        num_parameters=sum(p.numel() for p in neural_model.parameters()),
        fit_seconds=seconds,
        fit_seconds_per_step=seconds / num_steps,
        fit_cpu_seconds=cpu_seconds,
        regularizer_evaluations_logged=len(solver.log.get(("regularizer", 0), [])),
        final_sum_loss=solver.log[("sum_loss_train",)][-1],
    )
    if args.attribution:
        logger.info("synthetic: attribution (jacobian-based) on all %d time points",
                    len(neural))
        result["attribution"] = time_attribution(solver, neural, output_dim, args.device)
    return result


# --------------------------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------------------------
def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    """Parse the command line (see the module docstring for examples)."""
    p = argparse.ArgumentParser(
        description="Benchmark the reference package cebra (xCEBRA path) on data we pass in. "
        "Run it in .venv-bench; it does not import xcebra.",
    )
    p.add_argument("--make-data", nargs=2, metavar=("KIND", "FILE"),
                   help="write random data of the benchmark's shapes and exit; KIND is 'seed' "
                   "(T=20000, N=90 Poisson(0.5) counts, 2-d smooth walk in [0,1]^2) or "
                   "'synthetic' (T=12000, N=40 Gaussian, 3-d smooth label)")
    p.add_argument("--data-seed", type=int, default=0,
                   help="random seed of --make-data (default: 0)")
    p.add_argument("--data", type=Path,
                   help="npz with 'neural' (T, N) float32 and 'position' (T, d) float32")
    p.add_argument("--setting", choices=["seed", "synthetic"],
                   help="which configuration to measure (see the module docstring)")
    p.add_argument("--out", type=Path, help="where to write the result JSON")
    p.add_argument("--steps", type=int, default=None,
                   help="seed: measured steps per phase (default 10); synthetic: number of "
                   "training steps of the timed fit (default 2000)")
    p.add_argument("--warmup", type=int, default=2,
                   help="seed: unmeasured warm-up steps before each phase (default: 2)")
    p.add_argument("--threads", type=int, default=2,
                   help="torch.set_num_threads and BLAS thread limit (default: 2)")
    p.add_argument("--output-dim", type=int, default=6,
                   help="synthetic: embedding dimension; the time objective spans all of it "
                   "(default: 6)")
    p.add_argument("--behavior-dims", type=int, default=3,
                   help="synthetic: the behaviour objective uses embedding dims (0, this) "
                   "(default: 3)")
    attr = p.add_mutually_exclusive_group()
    attr.add_argument("--attribution", dest="attribution", action="store_true", default=None,
                      help="time the jacobian-based attribution (default: on for seed, off "
                      "for synthetic)")
    attr.add_argument("--no-attribution", dest="attribution", action="store_false",
                      help="skip the attribution")
    p.add_argument("--device", default="cpu",
                   help="torch device of the model, the batches and the attribution (default: cpu)")
    p.add_argument("--whole-fit-steps", type=int, default=0,
                   help="seed: also time a whole solver.fit of this many steps with the seed's ramp (default: 0, off)")
    p.add_argument("--no-progress", action="store_true",
                   help="synthetic: switch off cebra's tqdm progress bar during fit")
    args = p.parse_args(argv)

    if args.make_data is None:
        missing = [name for name in ("data", "setting", "out") if getattr(args, name) is None]
        if missing:
            p.error("the following arguments are required unless --make-data is given: "
                    + ", ".join("--" + m for m in missing))
    elif args.make_data[0] not in DATA_MAKERS:
        p.error(f"--make-data KIND must be one of {sorted(DATA_MAKERS)}; "
                f"got {args.make_data[0]!r}")
    if args.steps is None:
        args.steps = 10 if args.setting == "seed" else SYNTHETIC_CONFIG["num_steps"]
    if args.steps < 1 or args.warmup < 0 or args.threads < 1:
        p.error("--steps and --threads must be >= 1 and --warmup >= 0")
    if args.attribution is None:
        args.attribution = args.setting == "seed"
    return args


def load_npz(path: Path):
    """Load ``neural`` and ``position`` as float32 torch tensors, checking their shapes."""
    import torch

    with np.load(path) as f:
        neural = np.asarray(f["neural"], dtype=np.float32)
        position = np.asarray(f["position"], dtype=np.float32)
    if position.ndim == 1:
        position = position[:, None]
    if neural.ndim != 2 or position.ndim != 2 or len(neural) != len(position):
        raise ValueError(f"{path}: expected neural (T, N) and position (T, d) with the same T; "
                         f"got {neural.shape} and {position.shape}")
    return torch.from_numpy(neural), torch.from_numpy(position)


def main(argv: Optional[List[str]] = None) -> int:
    """Entry point: make data, or run one setting and write the result JSON."""
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    args = parse_args(argv)

    if args.make_data is not None:
        kind, file = args.make_data
        arrays = DATA_MAKERS[kind](seed=args.data_seed)
        Path(file).parent.mkdir(parents=True, exist_ok=True)
        np.savez(file, **arrays)
        logger.info("wrote %s: %s", file,
                    ", ".join(f"{k} {v.shape} {v.dtype}" for k, v in arrays.items()))
        return 0

    import torch

    torch.set_num_threads(args.threads)
    blas_limit = contextlib.nullcontext()
    try:  # scipy/numpy BLAS is used by the attribution's per-sample lstsq / pinv
        import threadpoolctl
        blas_limit = threadpoolctl.threadpool_limits(args.threads)
    except ImportError:
        pass

    import cebra

    warnings.filterwarnings("ignore", message=".*lazy import.*")
    neural, position = load_npz(args.data)
    num_timepoints, num_neurons = neural.shape
    logger.info("cebra %s, torch %s, %d threads, setting %s, T=%d, N=%d, label dims %d",
                cebra.__version__, torch.__version__, args.threads, args.setting,
                num_timepoints, num_neurons, position.shape[1])

    load_before = os.getloadavg()
    started = datetime.datetime.now(datetime.timezone.utc)
    runner = run_seed if args.setting == "seed" else run_synthetic
    # cebra reports its configuration with print(); keep stdout for the result path only.
    with blas_limit, LoadSampler() as load, contextlib.redirect_stdout(sys.stderr):
        measured = runner(neural, position, args)
    load_after = os.getloadavg()

    record = dict(
        package="cebra",
        cebra_version=cebra.__version__,
        torch_version=torch.__version__,
        numpy_version=np.__version__,
        python_version=platform.python_version(),
        threads=args.threads,
        torch_num_threads=torch.get_num_threads(),
        setting=args.setting,
        data=str(args.data),
        T=num_timepoints,
        N=num_neurons,
        label_dims=int(position.shape[1]),
        hostname=socket.gethostname(),
        cpu_model=cpu_model(),
        cpu_count=os.cpu_count(),
        loadavg_before=list(load_before),
        loadavg_after=list(load_after),
        loadavg_1min_during=load.as_dict(),
        started_utc=started.isoformat(),
        wall_seconds=(datetime.datetime.now(datetime.timezone.utc) - started).total_seconds(),
        **measured,
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.out.with_suffix(args.out.suffix + ".tmp")
    tmp.write_text(json.dumps(record, indent=2, default=float))
    os.replace(tmp, args.out)
    logger.info("wrote %s", args.out)
    print(args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
