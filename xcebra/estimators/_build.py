"""What ``XCEBRA.fit`` builds from its hyper-parameters and the data: the networks and loss heads, the samplers
of every objective, the training plan, and the checks that a recording fits the objectives.

Functions of the estimator rather than methods, so that :mod:`.xcebra` holds the front door only.
"""

from __future__ import annotations

import hashlib
import json
import secrets
from typing import Any, Sequence

import numpy as np
import torch

from .._validation import is_int, resolve_device
from ..data import TimeSeries
from ..losses import Temperature
from ..models import Embedder, make_encoder
from ..objectives import Layout, Objective
from ..sampling import BatchSampler, Domain, make_distribution
from ..training.checkpoint import fingerprint_data
from ..training.contrastive import LossHead, evaluate_losses
from ..training.distributed import ProcessGroup, current_group
from ..training.loop import TrainingPlan
from ._params import params_to_json, regularizer_ramp, resolved_bound

__all__ = ["build_networks", "build_heads", "make_sampler", "check_labels", "labels_with_y", "data_summary", "fit_fingerprint",
           "training_plan", "heldout_losses", "placement"]


def build_networks(estimator: Any, layout: Layout, n_neurons: int, seed: int) -> tuple[Embedder, list[LossHead]]:
    """The encoder (initialised from ``seed``, the global generator left as it was) and one loss head per objective."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        encoder = make_encoder(estimator.model, n_neurons, estimator.hidden_units, estimator.output_dim,
                               *resolved_bound(estimator))
    embedder = Embedder(encoder, layout.blocks, layout.normalized)
    return embedder, build_heads(estimator)


def build_heads(estimator: Any) -> list[LossHead]:
    """One loss head per objective of ``estimator``: its slice, similarity, temperature and weight."""
    heads = []
    for objective in estimator.objectives:
        temperature = objective.temperature if objective.temperature is not None else estimator.temperature
        heads.append(LossHead(
            name=objective.name, dims=objective.slice, similarity=objective.loss or estimator.loss,
            temperature=Temperature(temperature, learnable=estimator.learn_temperature,
                                    minimum=estimator.min_temperature),
            weight=objective.weight))
    return heads


def _check_length(estimator: Any, data: TimeSeries, window: int) -> None:
    if data.n_timepoints < window + 1:
        raise ValueError(
            f"neural has {data.n_timepoints} time points but model '{estimator.model}' needs windows of {window} "
            f"and at least one more time point; got T={data.n_timepoints}")
    offsets = [(o.distribution_options()["time_offset"], o.name) for o in estimator.objectives
               if o.distribution == "time"]
    if offsets and data.n_timepoints < window + max(offsets)[0]:
        offset, name = max(offsets)
        raise ValueError(
            f"neural has {data.n_timepoints} time points but model '{estimator.model}' needs windows of {window} and "
            f"Objective '{name}' pairs time point t with t + {offset} (time_offset={offset}), so T must be at "
            f"least {window + offset}; got T={data.n_timepoints}")


def make_sampler(estimator: Any, data: TimeSeries, embedder: Embedder, generator: torch.Generator,
                 batch_size: int | None = None) -> BatchSampler:
    """The objectives' distributions set up on ``data``, behind one batch sampler (fit and held-out losses)."""
    window, left = embedder.window, embedder.left
    _check_length(estimator, data, window)
    domain = Domain.for_window(data.n_timepoints, left, window - left)
    distributions = []
    for objective in estimator.objectives:
        label = data.label(objective.label) if objective.label else None
        # label positives at least a window and the label's autocorrelation time away
        options = objective.distribution_options(
            window, label[domain.start:domain.stop] if label is not None else None, domain.size)
        distribution = make_distribution(objective.distribution, **options)
        try:
            distribution.setup(domain, label)
        except ValueError as error:
            label = f" (label '{objective.label}')" if objective.label else ""
            raise ValueError(f"Objective '{objective.name}'{label}: {error}") from None
        distributions.append(distribution)
    return BatchSampler(distributions, domain, estimator.batch_size if batch_size is None else batch_size, generator)


def _check_discrete_label(objective: Objective, label: np.ndarray, given: Any) -> None:
    if label.dtype.kind != "i":
        dtype = getattr(given, "dtype", None)
        dtype = np.asarray(given).dtype if dtype is None else dtype
        whole = bool(np.all(label == np.round(label)))
        hint = (f"its values are whole numbers, so pass {objective.label}={objective.label}.astype(int)"
                if whole else "discretise it first (e.g. np.digitize), or use distribution 'time_delta' "
                "or 'delta_normal' for a continuous label")
        raise ValueError(
            f"Objective '{objective.name}' uses distribution 'discrete', which needs integer class labels, "
            f"but label '{objective.label}' has dtype {dtype}; {hint}")
    if label.ndim != 1:
        raise ValueError(
            f"Objective '{objective.name}' uses distribution 'discrete', which needs one integer class per "
            f"time point (shape (T,)), but label '{objective.label}' has shape {label.shape}")


def check_labels(objectives: Sequence[Objective], data: TimeSeries, given: dict) -> None:
    """Every objective's label was passed, and ``discrete`` ones are 1-D integer class labels."""
    for objective in objectives:
        if objective.label is None:
            continue
        if objective.label not in data.labels:
            names = ", ".join(repr(k) for k in data.labels) or "none"
            raise ValueError(
                f"Objective '{objective.name}' needs label {objective.label!r}, which was not passed to fit "
                f"(labels given: {names}); call fit(neural, {objective.label}=...)")
        if objective.distribution == "discrete":
            _check_discrete_label(objective, data.labels[objective.label], given[objective.label])


def labels_with_y(objectives: Sequence[Objective], y: Any, labels: dict) -> dict:
    """``labels`` with ``y`` as the one label the objectives name (scikit-learn's ``fit(X, y)``)."""
    if y is None:
        return labels
    named = sorted({o.label for o in objectives if o.label is not None})
    if len(named) != 1:
        listed = ", ".join(repr(n) for n in named) or "none"
        raise ValueError(
            f"y was given, but the objectives name {len(named)} labels ({listed}); y stands for the label "
            f"only when exactly one is named: pass each label by name instead, e.g. fit(neural, "
            f"{named[0] if named else 'position'}=...)")
    if named[0] in labels:
        raise ValueError(f"label {named[0]!r} was given twice, as y and as {named[0]}=...; pass it once")
    return {**labels, named[0]: y}


def data_summary(data: TimeSeries) -> list[float]:
    """A few numbers that differ when two processes were given different data (shape, sums)."""
    summary = [float(v) for v in data.neural.shape] + [float(np.sum(data.neural, dtype=np.float64))]
    for name in sorted(data.labels):
        label = np.asarray(data.labels[name], dtype=np.float64)
        summary += [float(len(name)), float(label.size), float(label.sum())]
    return summary


def fit_fingerprint(estimator: Any, data: TimeSeries) -> str:
    """A hash of the parameters that change the result (not ``verbose``, ``device``, ``num_threads``) and the data."""
    params = params_to_json(estimator)
    params.pop("verbose"), params.pop("device"), params.pop("num_threads")
    digest = hashlib.blake2b(json.dumps(params, sort_keys=True).encode(), digest_size=16).hexdigest()
    return digest + fingerprint_data(torch.from_numpy(data.neural), data.labels)


def training_plan(estimator: Any, checkpoint_every: int) -> TrainingPlan:
    """The optimisation settings of ``estimator`` (``checkpoint_every=0``: no checkpoints)."""
    return TrainingPlan(
        max_steps=estimator.max_steps, learning_rate=estimator.learning_rate,
        regularizer_weight=estimator.regularizer_weight, regularizer_ramp=regularizer_ramp(estimator),
        regularizer_batch_size=estimator.regularizer_batch_size,
        regularizer_projections=estimator.regularizer_projections, regularizer_exact=estimator.regularizer_exact,
        checkpoint_every=checkpoint_every, precision=estimator.precision)


def heldout_losses(estimator: Any, neural: Any, n_batches: int, batch_size: int | None, random_state: int,
                   labels: dict, embedder: Embedder | None = None) -> tuple[dict[str, float], int]:
    """A fitted estimator's InfoNCE loss per objective on ``neural`` (T, N) and ``labels``, with pairs drawn as in
    training (seeded by ``random_state``); also the number of negatives per reference they were computed with.
    ``embedder``: the network to score (default ``estimator.encoder_``; a session's for a multi-session model)."""
    embedder = estimator.encoder_ if embedder is None else embedder
    if not is_int(n_batches, 1):
        raise ValueError(f"n_batches must be an int >= 1; got {n_batches!r}")
    if batch_size is not None and not is_int(batch_size, 1):
        raise ValueError(f"batch_size must be None or an int >= 1; got {batch_size!r}")
    data = TimeSeries.from_arrays(neural, **labels)
    check_labels(estimator.objectives, data, labels)
    generator = torch.Generator().manual_seed(random_state)
    sampler = make_sampler(estimator, data, embedder, generator)
    sampler.batch_size = min(batch_size or estimator.batch_size, sampler.reference_domain.size)
    device = next(embedder.parameters()).device
    losses = evaluate_losses(embedder, estimator._heads, sampler, data.tensor(device), n_batches)
    return {head.name: float(value) for head, value in zip(estimator._heads, losses)}, sampler.batch_size


def placement(estimator: Any, data: TimeSeries) -> tuple[torch.device, ProcessGroup | None, int]:
    """Where a fit runs: the training device, the data-parallel group (None for one process) and the seed,
    broadcast from rank 0 so that every rank draws the same batches; ranks must hold the same data."""
    device = resolve_device(estimator.device, "XCEBRA")
    group = current_group(device.type)
    seed = estimator.random_state if estimator.random_state is not None else secrets.randbelow(2 ** 31)
    if group is not None:
        if device.type == "cuda" and device.index is None:
            device = torch.device("cuda", group.local_rank)
        seed = group.broadcast_int(seed)  # one seed for all ranks: they draw the same batches
        group.check_same("data shapes and checksums", data_summary(data))
    return device, group, seed
