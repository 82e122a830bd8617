"""Multi-session fitting for ``XCEBRA``: ``fit`` on a list of recordings, ``adapt`` to a new one, the anchors.

Functions of the estimator rather than methods, so that :mod:`.xcebra` keeps the front door only. The
model they build (:mod:`xcebra.session_models`): one input layer per session and every later layer shared,
or one encoder per session (``share_trunk``);
the batches (:mod:`xcebra.session_sampling`): label-driven positives across sessions, time positives
within; the step (:mod:`xcebra.training.sessions`).
"""

from __future__ import annotations

import hashlib
import secrets
import warnings
from typing import Any, Sequence

import numpy as np
import torch

from .._validation import check_int, is_int, resolve_device
from ..data import TimeSeries
from ..exceptions import DivergenceError
from ..session_models import make_session_embedders, new_session_embedder
from ..session_sampling import AdaptSampler, LabelAnchors, SessionSampler
from ..training.distributed import current_group
from ..training.loop import TrainingPlan
from ..training.diagnostics import training_warnings
from ..training.sessions import adapt_session, fit_sessions
from ._build import build_heads, check_labels, fit_fingerprint, labels_with_y, make_sampler, training_plan
from ._params import resolved_bound

__all__ = ["is_session_list", "session_data", "fit_session_list", "adapt_new_session", "ANCHORS_PER_SESSION"]

#: labelled embeddings kept per fitted session for ``adapt`` (the frozen model's targets)
ANCHORS_PER_SESSION = 2000


def is_session_list(neural: Any) -> bool:
    """True when ``neural`` is a list or tuple of 2-D recordings (multi-session), not one recording as nested lists."""
    if not isinstance(neural, (list, tuple)) or not neural:
        return False
    return all((getattr(x, "ndim", None) if hasattr(x, "ndim") else np.ndim(x)) == 2 for x in neural)


def _label_width(label: np.ndarray) -> int:
    return 1 if label.ndim == 1 else int(label.shape[1])


def session_data(objectives: Sequence[Any], neural: Sequence[Any], labels: dict) -> list[TimeSeries]:
    """One validated :class:`TimeSeries` per session from ``neural`` (S recordings) and ``labels`` {name: S arrays}.

    Raises ValueError naming the session and the label when a label is not a list of S arrays, when a
    session's label and recording differ in length, or when a label's width or kind (integer classes or
    floats) differs between sessions.
    """
    n_sessions = len(neural)
    per_session: list[dict] = [{} for _ in range(n_sessions)]
    for name, value in labels.items():
        if not isinstance(value, (list, tuple)) or len(value) != n_sessions:
            got = f"a list of {len(value)}" if isinstance(value, (list, tuple)) else type(value).__name__
            raise ValueError(f"label {name!r} must be a list of {n_sessions} arrays, one per session, because neural "
                             f"is a list of {n_sessions} sessions; got {got}")
        for s, item in enumerate(value):
            per_session[s][name] = item
    datas = []
    for s in range(n_sessions):
        try:
            data = TimeSeries.from_arrays(neural[s], **per_session[s])
            check_labels(objectives, data, per_session[s])
        except (ValueError, TypeError) as error:
            raise type(error)(f"session {s}: {error}") from None
        datas.append(data)
    for name in labels:
        widths = [_label_width(d.labels[name]) for d in datas]
        kinds = [d.labels[name].dtype.kind == "i" for d in datas]
        if len(set(widths)) > 1 or len(set(kinds)) > 1:
            raise ValueError(f"label {name!r} must have the same columns and kind in every session, since positives "
                             f"are matched on it across sessions; got widths {widths} and integer classes {kinds}")
    return datas


def _fingerprint(estimator: Any, datas: Sequence[TimeSeries]) -> str:
    joined = "".join(fit_fingerprint(estimator, d) for d in datas)
    return hashlib.blake2b(joined.encode(), digest_size=24).hexdigest()


def _check_batch(estimator: Any, samplers: Sequence, datas: Sequence[TimeSeries]) -> None:
    for s, (sampler, data) in enumerate(zip(samplers, datas)):
        if estimator.batch_size > sampler.reference_domain.size:
            raise ValueError(
                f"The 'batch_size' parameter of XCEBRA (references per session and step) must be at most the number "
                f"of usable reference time points of every session; session {s} has {sampler.reference_domain.size} "
                f"(T={data.n_timepoints}). Got {estimator.batch_size} instead.")


def fit_session_list(estimator: Any, neural: Sequence[Any], y: Any, labels: dict, checkpoint_dir: Any,
                     checkpoint_every: int) -> None:
    """``XCEBRA.fit`` on S recordings: builds, trains and sets the fitted state of ``estimator`` in place."""
    layout = estimator._validate_params()
    labels = labels_with_y(estimator.objectives, y, labels)
    datas = session_data(estimator.objectives, neural, labels)
    device = resolve_device(estimator.device, "XCEBRA")
    if current_group(device.type) is not None:
        raise ValueError("multi-session fits do not run data-parallel (torchrun / srun); run one process, or fit "
                         "each session on its own")
    if estimator.num_threads is not None:
        torch.set_num_threads(estimator.num_threads)
    seed = estimator.random_state if estimator.random_state is not None else secrets.randbelow(2 ** 31)
    lipschitz, clip = resolved_bound(estimator)
    embedders = make_session_embedders(estimator.model, [d.n_neurons for d in datas], estimator.hidden_units,
                                       estimator.output_dim, layout.blocks, layout.normalized, lipschitz, clip, seed,
                                       share_trunk=estimator.share_trunk)
    heads = build_heads(estimator)
    generator = torch.Generator().manual_seed(seed)
    samplers = [make_sampler(estimator, d, embedders[s], generator) for s, d in enumerate(datas)]
    _check_batch(estimator, samplers, datas)
    sampler = SessionSampler(samplers, generator)
    embedders.to(device)
    for head in heads:
        head.temperature.to(device)
    estimator._set_session_state(seed, datas, layout, samplers, embedders)
    plan = training_plan(estimator, checkpoint_every if checkpoint_dir else 0)
    fingerprint = _fingerprint(estimator, datas) if checkpoint_dir is not None else ""
    try:
        log = fit_sessions(embedders, heads, sampler, [d.tensor(device) for d in datas], plan,
                           coverage=layout.coverage, generator=generator, verbose=estimator.verbose,
                           checkpoint_dir=checkpoint_dir, fingerprint=fingerprint)
    except DivergenceError as error:
        estimator._set_trained_state(embedders, heads, error.log)
        raise
    estimator._set_trained_state(embedders, heads, log)
    estimator.anchors_ = _anchors(estimator, datas, seed)
    _warn_health(estimator, len(datas))


def _warn_health(estimator: Any, n_sessions: int) -> None:
    """The training-health checks of a single fit, with the right chance level per objective: S * B negatives
    for a label-driven objective (pooled over sessions), B for a time objective."""
    bounded = estimator.lipschitz_ is not None or estimator.output_clip_ is not None
    pooled = {o.name for o in estimator.objectives if o.distribution != "time"}
    for cross in (True, False):
        heads = [h for h in estimator._heads if (h.name in pooled) == cross]
        if not heads:
            continue
        names = {f"loss/{h.name}" for h in heads}
        log = {k: v for k, v in estimator.log_.items() if not k.startswith("loss/") or k in names}
        negatives = estimator.batch_size * (n_sessions if cross else 1)
        for category, message in training_warnings(log, negatives, heads, estimator.temperatures_,
                                                   estimator.output_dim, bounded=bounded, min_steps=100):
            warnings.warn(message, category, stacklevel=4)


def _anchors(estimator: Any, datas: Sequence[TimeSeries], seed: int) -> dict:
    """Up to :data:`ANCHORS_PER_SESSION` valid time points per session: their embedding and the labels the
    label-driven objectives use (``anchors_``; ``adapt`` matches a new session's positives on them)."""
    names = sorted({o.label for o in estimator.objectives if o.distribution != "time"})
    rng = np.random.default_rng(seed)
    window, left = estimator.sessions_.window, estimator.sessions_.left
    embedding, session, labels = [], [], {name: [] for name in names}
    for s, data in enumerate(datas):
        valid = np.arange(left, data.n_timepoints - (window - left) + 1)
        chosen = np.sort(rng.choice(valid, size=min(ANCHORS_PER_SESSION, len(valid)), replace=False))
        embedding.append(estimator.transform(data.neural, session=s)[chosen])
        session.append(np.full(len(chosen), s, dtype=np.int64))
        for name in names:
            labels[name].append(np.asarray(data.labels[name])[chosen])
    return {"embedding": np.concatenate(embedding).astype(np.float32), "session": np.concatenate(session),
            "labels": {name: np.concatenate(v) for name, v in labels.items()}}


def _scaled_ramp(estimator: Any, steps: int) -> tuple[int, int] | None:
    """The regularizer's ramp for a run of ``steps`` steps: ``"auto"`` at its fractions, a pair scaled."""
    ramp = estimator.regularizer_ramp
    if ramp is None:
        return None
    on, off = (steps // 4, steps // 2) if ramp == "auto" else (round(v * steps / estimator.max_steps) for v in ramp)
    return (on, off) if off > on else None


def adapt_new_session(estimator: Any, neural: Any, y: Any, labels: dict, max_steps: int | None,
                      random_state: int | None) -> int:
    """``XCEBRA.adapt``: a new input layer (shared trunk) or encoder (separate encoders) for ``neural``, trained
    against the frozen model; returns its session index."""
    if not hasattr(estimator, "sessions_"):
        raise ValueError("adapt needs a multi-session model (fitted with fit([neural_1, ...], label=[...]) or "
                         "loaded from one); this model was fitted on a single recording")
    steps = estimator.max_steps if max_steps is None else check_int("max_steps", max_steps, minimum=1)
    if random_state is not None and not is_int(random_state, 0):
        raise ValueError(f"random_state must be None or an int >= 0; got {random_state!r}")
    labels = labels_with_y(estimator.objectives, y, labels)
    data = TimeSeries.from_arrays(neural, **labels)
    check_labels(estimator.objectives, data, labels)
    for name, width in estimator.label_dims_.items():
        if name in data.labels and _label_width(data.labels[name]) != width:
            raise ValueError(f"label {name!r} has {_label_width(data.labels[name])} column(s) but the fitted sessions' "
                             f"has {width}; positives are matched on it, so they must agree")
    seed = random_state if random_state is not None else secrets.randbelow(2 ** 31)
    sessions = estimator.sessions_
    device = next(sessions.parameters()).device
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        embedder = new_session_embedder(sessions[0], estimator.model, data.n_neurons, estimator.hidden_units,
                                        estimator.output_dim, estimator.lipschitz_, estimator.output_clip_,
                                        share_trunk=sessions.share_trunk)
    embedder.encoder.net.to(device)  # a shared trunk is there already: only new layers move
    generator = torch.Generator().manual_seed(seed)
    sampler = make_sampler(estimator, data, embedder, generator)
    _check_batch(estimator, [sampler], [data])
    anchors = [None if o.distribution == "time" else
               LabelAnchors(estimator.anchors_["labels"][o.label], discrete=o.distribution == "discrete")
               for o in estimator.objectives]
    adapt_sampler = AdaptSampler(sampler, anchors, len(sessions), generator)
    base = training_plan(estimator, 0)
    plan = TrainingPlan(**{**base.__dict__, "max_steps": steps, "regularizer_ramp": _scaled_ramp(estimator, steps)})
    anchor_embedding = torch.from_numpy(estimator.anchors_["embedding"])
    log = adapt_session(embedder, estimator._heads, adapt_sampler, data.tensor(device), anchor_embedding, plan,
                        coverage=estimator.layout_.coverage, generator=generator, verbose=estimator.verbose,
                        share_trunk=sessions.share_trunk)
    sessions.append(embedder)
    for objective, distribution in zip(estimator.objectives, sampler.distributions):
        if objective.name in estimator.min_separation_:
            estimator.min_separation_[objective.name] += (int(distribution.min_separation),)
    estimator.n_features_in_ = tuple(estimator.n_features_in_) + (data.n_neurons,)
    estimator.n_sessions_ = len(sessions)
    estimator.adapt_logs_ = {**getattr(estimator, "adapt_logs_", {}), len(sessions) - 1: log}
    return len(sessions) - 1
