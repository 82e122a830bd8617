"""``XCEBRA``: the scikit-learn style front door: fit, transform, attribution_map, save, load."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import secrets
import warnings
from dataclasses import asdict
from typing import Any, Sequence

import numpy as np
import torch
from sklearn.base import BaseEstimator
from sklearn.exceptions import NotFittedError

from . import __version__
from ._files import read_tensors, write_tensors
from ._validation import check_neural_array, check_parameters, is_int, is_real, resolve_device
from .attribution.compute import compute_attribution_map, read_rows, resolve_method_options
from .attribution.maps import AttributionMap
from .data import TimeSeries
from .losses import Temperature
from .models import MODELS, Embedder, make_encoder
from .objectives import LOSSES, Layout, Objective, block_layout
from .sampling import BatchSampler, Domain, make_distribution
from .exceptions import DivergenceError, EmbeddingCollapseWarning, EmbeddingGrowthWarning
from .training.checkpoint import fingerprint_data, prepare_checkpoint_dir
from .training.contrastive import LossHead, evaluate_losses
from .training.contrastive import fit as _train
from .training.diagnostics import SPREAD_LIMIT, collapse_message, collapsed_objectives, euclidean_spread, growth_message
from .training.distributed import current_group, is_rank_zero
from .training.loop import TrainingPlan

__all__ = ["XCEBRA"]

#: fits shorter than this are not judged by the collapse check (an encoder near its initialisation is near chance)
_JUDGED_STEPS = 100
#: the Lipschitz bound of a fit with a euclidean objective and ``lipschitz="auto"`` (the default); chosen on
#: benchmarks/quality_defaults.py (docs: results, "The euclidean default")
AUTO_LIPSCHITZ = 4.0

logger = logging.getLogger("xcebra")
MODEL_FORMAT = "xcebra-model"
MODEL_FORMAT_VERSION = 1
#: hyper-parameters introduced after format version 1, with the value older files imply
_ADDED_PARAMETERS = {"precision": "fp32", "lipschitz": None, "output_clip": None}
_RESERVED_FIT_ARGUMENTS = ("checkpoint_dir", "checkpoint_every")
_FLOAT32_MAX = float(np.finfo(np.float32).max)
#: a model file declaring more objectives than this is refused (the layout check is quadratic in their number)
MAX_OBJECTIVES_IN_FILE = 1024


def _is_ramp(v):
    return v is None or v == "auto" or (
        isinstance(v, (tuple, list)) and len(v) == 2 and all(is_int(x, 0) for x in v) and v[0] < v[1])


#: parameter -> (check, what it must be); one message shape for all: "The 'p' parameter of XCEBRA must be ..."
_PARAMETER_CONSTRAINTS = {
    "model": (lambda v: v in MODELS, f"one of {', '.join(repr(m) for m in MODELS)}"),
    "hidden_units": (lambda v: is_int(v, 1), "an int >= 1"),
    "output_dim": (lambda v: is_int(v, 1), "an int >= 1"),
    "loss": (lambda v: v in LOSSES, "one of 'cosine', 'euclidean'"),
    "temperature": (lambda v: is_real(v, 0, strict=True), "a float > 0"),
    "learn_temperature": (lambda v: isinstance(v, bool), "a bool"),
    "min_temperature": (lambda v: is_real(v, 0), "a float >= 0"),
    "batch_size": (lambda v: is_int(v, 2), "an int >= 2"),
    "max_steps": (lambda v: is_int(v, 0), "an int >= 0"),
    "learning_rate": (lambda v: is_real(v, 0, strict=True), "a float > 0"),
    "regularizer_weight": (lambda v: is_real(v, 0), "a float >= 0"),
    "regularizer_ramp": (_is_ramp, "None, 'auto' or a pair of ints (on, off) with 0 <= on < off"),
    "regularizer_batch_size": (lambda v: v is None or is_int(v, 1), "None or an int >= 1"),
    "regularizer_projections": (lambda v: is_int(v, 1), "an int >= 1"),
    "regularizer_exact": (lambda v: isinstance(v, bool), "a bool"),
    "random_state": (lambda v: v is None or is_int(v, 0), "None or an int >= 0"),
    "device": (lambda v: isinstance(v, (str, torch.device)), "'auto', 'cpu', 'cuda' or a torch.device"),
    "num_threads": (lambda v: v is None or is_int(v, 1), "None or an int >= 1"),
    "verbose": (lambda v: isinstance(v, bool), "a bool"),
    "precision": (lambda v: v in ("fp32", "bf16"), "one of 'fp32', 'bf16'"),
    "lipschitz": (lambda v: v is None or v == "auto" or is_real(v, 0, strict=True), "'auto', None or a float > 0"),
    "output_clip": (lambda v: v is None or is_real(v, 0, strict=True), "None or a float > 0"),
}


def _label_dims_from_header(header: dict) -> dict:
    """``label_dims`` of a model file: {label name: columns}; files written before it was recorded give {}."""
    dims = header.get("label_dims", {})
    if not isinstance(dims, dict) or not all(isinstance(k, str) and is_int(v, 1) for k, v in dims.items()):
        raise ValueError(f"label_dims must map label names to column counts >= 1; got {dims!r:.200}")
    if not set(dims) <= set(header["label_names"]):
        raise ValueError(f"label_dims names labels {sorted(set(dims) - set(header['label_names']))} "
                         "that label_names does not list")
    return dict(dims)


def _data_summary(data: TimeSeries) -> list[float]:
    """A few numbers that differ when two processes were given different data (shape, sums)."""
    summary = [float(v) for v in data.neural.shape] + [float(np.sum(data.neural, dtype=np.float64))]
    for name in sorted(data.labels):
        label = np.asarray(data.labels[name], dtype=np.float64)
        summary += [float(len(name)), float(label.size), float(label.sum())]
    return summary


class XCEBRA(BaseEstimator):
    """Regularized multi-objective contrastive learning (xCEBRA) with identifiable attribution maps.

    One encoder embeds windows of neural activity; its output is split into blocks, each trained by an
    InfoNCE objective with its own positive pairs (:class:`xcebra.Objective`), plus a Jacobian
    regularizer whose weight ramps up during training. ``attribution_map`` then tells which neurons
    drive which block (Inverted Neuron Gradient).

    Parameters
    ----------
    objectives : list of Objective
        Slices may nest (see :func:`xcebra.objectives.block_layout`); the learned blocks are ``blocks_``.
    model : {"offset1", "offset5", "offset10", "offset36"}, default "offset10"
        Encoder; the number is its receptive field in time points.
    hidden_units : int, default 256
    output_dim : int, default 14
    loss : {"cosine", "euclidean"}, default "cosine"
        Similarity of the InfoNCE losses. With ``"cosine"`` every block is normalised to the unit sphere.
    temperature : float, default 1.0
    learn_temperature : bool, default False
        Learn one temperature per objective, starting at ``temperature``, kept >= ``min_temperature``.
    min_temperature : float, default 0.01
    batch_size : int, default 512
        References (and negatives) per step.
    max_steps : int, default 1000
    learning_rate : float, default 3e-4
        Adam.
    regularizer_weight : float, default 0.1
        Final weight of the Jacobian regularizer (0 disables it).
    regularizer_ramp : "auto", None or (on, off), default "auto"
        Linear ramp of the weight from 0 at step ``on`` to ``regularizer_weight`` at ``off``, constant
        after; ``"auto"`` is ``(max_steps // 4, max_steps // 2)`` as in the seed; ``None``: constant.
        The regularizer is not computed while its weight is 0.
    regularizer_batch_size : int or None, default 256
        The regularizer is estimated on this many of each step's references (a uniform subset, so the
        estimate is unbiased); ``None`` uses all of them.
    regularizer_projections : int, default 1
        Random projections for the Frobenius-norm estimate.
    regularizer_exact : bool, default False
        Exact Frobenius norm (output_dim backward passes) instead of projections.
    random_state : int or None
        Seeds weight initialisation, sampling and projections: the same value gives the same weights.
    device : "auto", "cpu", "cuda" or torch.device, default "auto"
    num_threads : int or None
        If given, ``torch.set_num_threads(num_threads)`` is called in ``fit``.
    verbose : bool, default True
        Progress bars and log messages.
    precision : {"fp32", "bf16"}, default "fp32"
        Arithmetic of the encoder's forward and backward passes during training, the Jacobian
        regularizer's included. ``"bf16"`` runs them under ``torch.autocast`` in bfloat16 (weights,
        optimiser state, losses and block normalisation stay in float32; convolutions run as bfloat16
        matrix products), 2.2-2.3x faster per step than fp32 on the seed configuration on a CPU with AMX
        units (docs: results, "Speed"); for its effect on quality see docs: results, "Quality on synthetic
        data with known ground truth" and "The seed demo on RatInABox data". ``transform`` and
        ``attribution_map`` always compute in float32 (Jacobians and pseudo-inverses in float32/float64).
    lipschitz : "auto", float or None, default "auto"
        Bound the encoder's Lipschitz constant: every linear and convolution weight is spectrally
        normalised (divided by its largest singular value, estimated by one power iteration per
        training-mode forward pass) and the output is multiplied by ``lipschitz``
        (:func:`xcebra.models.bound_lipschitz`), so a change ``dx`` of the input moves the embedding by at
        most about ``lipschitz * |dx|`` (times 1.13 per GELU, the activation's largest slope).
        ``"auto"``: 4.0 when any objective uses the euclidean loss, None otherwise (cosine fits are bounded
        by their normalisation and keep the unconstrained encoder). The resolved value is ``lipschitz_``.
        Why a bound by default: the euclidean InfoNCE has no lower bound, so on slowly changing data a time
        objective lowers its loss by inflating the embedding without limit, and its attribution maps lose
        the neurons that drive it (docs: results, "The euclidean default").
        ``None``: unconstrained, as in the reference package's plain models; with a euclidean loss this
        risks that inflation (fit then warns with :class:`xcebra.diagnostics.EmbeddingGrowthWarning`).
    output_clip : float or None, default None
        Clip every embedding coordinate to ``[-output_clip, output_clip]`` (:func:`xcebra.models.clip_output`),
        as the reference package's bounded euclidean models do (``offset1-model-mse-clip-5-5`` is
        ``output_clip=5.0``). ``None``: no clip. A coordinate held at the clip has zero gradient there,
        so its attribution is zero at those time points.

    Attributes
    ----------
    encoder_ : torch.nn.Module, the trained network (encoder + block normalisation).
    blocks_ : list of (name, slice), the disjoint blocks of the embedding.
    log_ : dict of str -> ndarray (max_steps,): total loss, each objective's loss (``loss/<name>``),
        ``regularizer``, ``regularizer_weight`` and ``seconds`` (wall time of each step); with a
        euclidean objective also ``embedding_std``, the standard deviation of the references'
        embedding over the euclidean dimensions (root mean per-dimension variance, embedding units).
        After training, fit reads this log for the two failures a fit can hide (:mod:`xcebra.diagnostics`):
        :class:`xcebra.diagnostics.EmbeddingCollapseWarning` when an objective's loss ended at
        ``log(batch_size)`` (a constant embedding), and, only for a euclidean fit without a bound,
        :class:`xcebra.diagnostics.EmbeddingGrowthWarning` when its embedding inflated.
    n_features_in_ : int, number of neurons seen in fit.
    random_state_ : int, the seed actually used.
    lipschitz_, output_clip_ : float or None, the bounds the encoder was built with (``"auto"`` resolved).
    label_names_ : tuple of str, the labels passed to fit.
    min_separation_ : dict, objective name -> the ``min_separation`` its positives were drawn with
        (label-driven objectives; the default resolved from the window and the label, see
        :class:`Objective`).
    label_dims_ : dict of str -> int, each label's number of columns (1 for a (T,) label); sets the
        default ranks of ``attribution_map(method="ing-block")`` (see :meth:`identified_ranks`).

    Examples
    --------
    >>> import xcebra
    >>> data = xcebra.datasets.make_synthetic(n_timepoints=2000, random_state=0)
    >>> model = xcebra.XCEBRA(
    ...     [xcebra.Objective("behavior", dims=(0, 3), distribution="time_delta", label="position"),
    ...      xcebra.Objective("time", dims=(0, 6), distribution="time", time_offset=10)],
    ...     model="offset1", output_dim=6, max_steps=20, verbose=False, random_state=0)
    >>> model.fit(data.neural, position=data.behavior).transform(data.neural).shape
    (2000, 6)
    """

    def __init__(self, objectives: Sequence[Objective], model: str = "offset10", hidden_units: int = 256,
                 output_dim: int = 14, loss: str = "cosine", temperature: float = 1.0,
                 learn_temperature: bool = False, min_temperature: float = 0.01, batch_size: int = 512,
                 max_steps: int = 1000, learning_rate: float = 3e-4, regularizer_weight: float = 0.1,
                 regularizer_ramp: Any = "auto", regularizer_batch_size: int | None = 256,
                 regularizer_projections: int = 1, regularizer_exact: bool = False,
                 random_state: int | None = None, device: Any = "auto", num_threads: int | None = None,
                 verbose: bool = True, precision: str = "fp32", lipschitz: float | str | None = "auto",
                 output_clip: float | None = None):
        self.objectives = objectives
        self.model = model
        self.hidden_units = hidden_units
        self.output_dim = output_dim
        self.loss = loss
        self.temperature = temperature
        self.learn_temperature = learn_temperature
        self.min_temperature = min_temperature
        self.batch_size = batch_size
        self.max_steps = max_steps
        self.learning_rate = learning_rate
        self.regularizer_weight = regularizer_weight
        self.regularizer_ramp = regularizer_ramp
        self.regularizer_batch_size = regularizer_batch_size
        self.regularizer_projections = regularizer_projections
        self.regularizer_exact = regularizer_exact
        self.random_state = random_state
        self.device = device
        self.num_threads = num_threads
        self.verbose = verbose
        self.precision = precision
        self.lipschitz = lipschitz
        self.output_clip = output_clip

    # ------------------------------------------------------------------ validation
    def _check_constraints(self) -> None:
        check_parameters(self, _PARAMETER_CONSTRAINTS)
        for name in ("temperature", "min_temperature"):  # they become float32 tensors
            if getattr(self, name) > _FLOAT32_MAX:
                raise ValueError(f"The '{name}' parameter of XCEBRA must be at most {_FLOAT32_MAX:.4g} (the largest "
                                 f"float32). Got {getattr(self, name)!r} instead.")
        if isinstance(self.objectives, Objective) or not isinstance(self.objectives, (list, tuple)):
            raise ValueError("The 'objectives' parameter of XCEBRA must be a list of xcebra.Objective. "
                             f"Got {self.objectives!r} instead.")

    def _validate_params(self) -> Layout:
        self._check_constraints()
        objectives = list(self.objectives)
        if objectives and all(isinstance(o, Objective) for o in objectives):
            covered = max(o.dims[1] for o in objectives)
            if covered < self.output_dim:  # before block_layout, whose cost grows with output_dim
                raise ValueError(
                    f"embedding dims {covered}..{self.output_dim - 1} are not covered by any objective "
                    f"(output_dim={self.output_dim}); objective slices must cover 0..output_dim without gaps")
        return block_layout(objectives, self.output_dim, self.loss)

    def _resolved_bound(self) -> tuple[float | None, float | None]:
        """``(lipschitz, output_clip)`` as the encoder is built: ``lipschitz="auto"`` resolved."""
        lipschitz = self.lipschitz
        if lipschitz == "auto":
            euclidean = any((o.loss or self.loss) == "euclidean" for o in self.objectives)
            lipschitz = AUTO_LIPSCHITZ if euclidean else None
        return lipschitz, self.output_clip

    def _ramp(self) -> tuple[int, int] | None:
        if self.regularizer_ramp == "auto":
            on, off = self.max_steps // 4, self.max_steps // 2
            return (on, off) if off > on else None
        return None if self.regularizer_ramp is None else tuple(int(v) for v in self.regularizer_ramp)

    def _check_is_fitted(self) -> None:
        if not hasattr(self, "encoder_"):
            raise NotFittedError(
                "This XCEBRA instance is not fitted yet. Call 'fit' with your data before using this method, "
                "or load a fitted model with XCEBRA.load(path).")

    def __sklearn_is_fitted__(self) -> bool:
        return hasattr(self, "encoder_")

    def _check_neural(self, neural: Any, name: str = "neural") -> Any:
        return check_neural_array(neural, self.n_features_in_, name)

    def _check_labels_for_objectives(self, data: TimeSeries, given: dict) -> None:
        """Every objective's label was passed, and ``discrete`` ones are 1-D integer class labels."""
        for objective in self.objectives:
            if objective.label is None:
                continue
            if objective.label not in data.labels:
                names = ", ".join(repr(k) for k in data.labels) or "none"
                raise ValueError(
                    f"Objective '{objective.name}' needs label {objective.label!r}, which was not passed to fit "
                    f"(labels given: {names}); call fit(neural, {objective.label}=...)")
            if objective.distribution != "discrete":
                continue
            label = data.labels[objective.label]
            if label.dtype.kind != "i":
                dtype = getattr(given[objective.label], "dtype", None)
                dtype = np.asarray(given[objective.label]).dtype if dtype is None else dtype
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

    # ------------------------------------------------------------------ building blocks
    def _build(self, layout: Layout, n_neurons: int, seed: int) -> tuple[Embedder, list[LossHead]]:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            encoder = make_encoder(self.model, n_neurons, self.hidden_units, self.output_dim,
                                   *self._resolved_bound())
        embedder = Embedder(encoder, layout.blocks, layout.normalized)
        heads = []
        for objective in self.objectives:
            temperature = objective.temperature if objective.temperature is not None else self.temperature
            heads.append(LossHead(
                name=objective.name, dims=objective.slice, similarity=objective.loss or self.loss,
                temperature=Temperature(temperature, learnable=self.learn_temperature, minimum=self.min_temperature),
                weight=objective.weight))
        return embedder, heads

    def _make_sampler(self, data: TimeSeries, embedder: Embedder, generator: torch.Generator,
                      batch_size: int | None = None) -> BatchSampler:
        """The objectives' distributions set up on ``data``, behind one batch sampler (fit and held-out losses)."""
        window, left = embedder.window, embedder.left
        if data.n_timepoints < window + 1:
            raise ValueError(
                f"neural has {data.n_timepoints} time points but model '{self.model}' needs windows of {window} "
                f"and at least one more time point; got T={data.n_timepoints}")
        offsets = [(o.distribution_options()["time_offset"], o.name) for o in self.objectives if o.distribution == "time"]
        if offsets and data.n_timepoints < window + max(offsets)[0]:
            offset, name = max(offsets)
            raise ValueError(
                f"neural has {data.n_timepoints} time points but model '{self.model}' needs windows of {window} and "
                f"Objective '{name}' pairs time point t with t + {offset} (time_offset={offset}), so T must be at "
                f"least {window + offset}; got T={data.n_timepoints}")
        domain = Domain.for_window(data.n_timepoints, left, window - left)
        distributions = []
        for objective in self.objectives:
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
        return BatchSampler(distributions, domain, self.batch_size if batch_size is None else batch_size, generator)

    def _fit_fingerprint(self, data: TimeSeries) -> str:
        params = self._params_to_json()
        params.pop("verbose"), params.pop("device"), params.pop("num_threads")
        digest = hashlib.blake2b(json.dumps(params, sort_keys=True).encode(), digest_size=16).hexdigest()
        return digest + fingerprint_data(torch.from_numpy(data.neural), data.labels)

    # ------------------------------------------------------------------ public API
    def _labels_with_y(self, y: Any, labels: dict) -> dict:
        """``labels`` with ``y`` as the one label the objectives name (scikit-learn's ``fit(X, y)``)."""
        if y is None:
            return labels
        named = sorted({o.label for o in self.objectives if o.label is not None})
        if len(named) != 1:
            listed = ", ".join(repr(n) for n in named) or "none"
            raise ValueError(
                f"y was given, but the objectives name {len(named)} labels ({listed}); y stands for the label "
                f"only when exactly one is named: pass each label by name instead, e.g. fit(neural, "
                f"{named[0] if named else 'position'}=...)")
        if named[0] in labels:
            raise ValueError(f"label {named[0]!r} was given twice, as y and as {named[0]}=...; pass it once")
        return {**labels, named[0]: y}

    def fit(self, neural: Any, y: Any = None, *, checkpoint_dir: str | os.PathLike | None = None,
            checkpoint_every: int = 100, **labels: Any) -> "XCEBRA":
        """Train the encoder.

        Parameters
        ----------
        neural : array of shape (T, N)
            Neural activity (spike counts, calcium traces, ...), one row per time point.
        y : array of shape (T,) or (T, d), optional
            The label, when the objectives name exactly one (``fit(neural, position)`` is then
            ``fit(neural, position=position)``); this is how a scikit-learn ``Pipeline`` passes it.
        checkpoint_dir : path, optional
            Save a checkpoint there every ``checkpoint_every`` steps (atomically) and resume from it if
            one from the same data and parameters exists (a killed run restarted with the same call
            continues and ends with the same weights). A checkpoint that cannot be read (damaged after
            it was written) or comes from another run is refused with a ValueError naming it; it is
            never overwritten. These two names are reserved, not labels.
        checkpoint_every : int, default 100
        **labels : arrays of shape (T,) or (T, d)
            Auxiliary variables named by the objectives' ``label`` (e.g. ``position=pos``).

        Returns
        -------
        self

        Raises
        ------
        ValueError
            Invalid hyper-parameters or data (each message names the argument, the value and what is
            expected), a checkpoint in ``checkpoint_dir`` from another run, or a damaged checkpoint
            (named in the message and left untouched: delete it to start afresh).
        TypeError
            ``neural`` or a label does not hold numbers.
        xcebra.training.DivergenceError
            A loss, gradient or weight became non-finite at some step; ``encoder_`` then holds the weights
            from before that step and ``log_`` the log of the completed steps.
        """
        layout = self._validate_params()
        labels = self._labels_with_y(y, labels)
        if not is_int(checkpoint_every, 1):
            raise ValueError(f"checkpoint_every must be an int >= 1; got {checkpoint_every!r}")
        data = TimeSeries.from_arrays(neural, **labels)
        self._check_labels_for_objectives(data, labels)
        unused = set(data.labels) - {o.label for o in self.objectives}
        if unused:
            logger.info("labels not used by any objective: %s", ", ".join(sorted(unused)))
        if self.num_threads is not None:
            torch.set_num_threads(self.num_threads)
        device = resolve_device(self.device, "XCEBRA")
        group = current_group(device.type)
        seed = self.random_state if self.random_state is not None else secrets.randbelow(2 ** 31)
        if group is not None:
            if device.type == "cuda" and device.index is None:
                device = torch.device("cuda", group.local_rank)
            seed = group.broadcast_int(seed)  # one seed for all ranks: they draw the same batches
            group.check_same("data shapes and checksums", _data_summary(data))
        embedder, heads = self._build(layout, data.n_neurons, seed)
        generator = torch.Generator().manual_seed(seed)
        sampler = self._make_sampler(data, embedder, generator)
        if self.batch_size > sampler.reference_domain.size:
            raise ValueError(
                f"The 'batch_size' parameter of XCEBRA must be at most the number of usable reference time "
                f"points ({sampler.reference_domain.size} of T={data.n_timepoints}, after the encoder's window "
                f"of {embedder.window} and the objectives' offsets). Got {self.batch_size} instead.")
        embedder.to(device)
        for head in heads:
            head.temperature.to(device)
        plan = TrainingPlan(
            max_steps=self.max_steps, learning_rate=self.learning_rate,
            regularizer_weight=self.regularizer_weight, regularizer_ramp=self._ramp(),
            regularizer_batch_size=self.regularizer_batch_size, regularizer_projections=self.regularizer_projections,
            regularizer_exact=self.regularizer_exact, checkpoint_every=checkpoint_every if checkpoint_dir else 0,
            precision=self.precision)
        neural_tensor = data.tensor(device)
        if checkpoint_dir is not None:
            checkpoint_dir = prepare_checkpoint_dir(checkpoint_dir)
        self.random_state_ = seed
        self.lipschitz_, self.output_clip_ = self._resolved_bound()
        self.n_features_in_ = data.n_neurons
        self.layout_ = layout
        self.blocks_ = list(layout.blocks)
        self.label_names_ = tuple(sorted(data.labels))
        self.min_separation_ = {objective.name: distribution.min_separation
                                for objective, distribution in zip(self.objectives, sampler.distributions)
                                if hasattr(distribution, "min_separation")}
        self.label_dims_ = {name: 1 if label.ndim == 1 else int(label.shape[1]) for name, label in data.labels.items()}
        try:
            self.log_ = _train(embedder, heads, sampler, neural_tensor, plan, coverage=layout.coverage,
                               generator=generator, verbose=self.verbose, checkpoint_dir=checkpoint_dir,
                               fingerprint=self._fit_fingerprint(data) if checkpoint_dir else "", group=group)
        except DivergenceError as error:
            # keep the last good weights and the log of the completed steps: the failed step changed nothing
            self.encoder_ = embedder
            self.log_ = error.log
            self.temperatures_ = {h.name: float(h.temperature().detach()) for h in heads}
            self._heads = heads
            raise
        self.encoder_ = embedder
        self.temperatures_ = {h.name: float(h.temperature().detach()) for h in heads}
        self._heads = heads
        if is_rank_zero():
            self._check_training_health()
        return self

    def _check_training_health(self) -> None:
        """Warn about the failures a finished fit can hide (:mod:`xcebra.diagnostics`), from its log alone."""
        chance = float(np.log(self.batch_size))  # every score equal: each reference's loss is log(negatives)
        collapsed = collapsed_objectives(self.log_, chance, min_steps=_JUDGED_STEPS)
        if collapsed:
            warnings.warn(collapse_message(collapsed, chance), EmbeddingCollapseWarning, stacklevel=3)
        euclidean = [head for head in self._heads if head.similarity == "euclidean"]
        if not euclidean or self.lipschitz_ is not None or self.output_clip_ is not None:
            return  # a bounded embedding cannot inflate
        n_dims = len({d for head in euclidean for d in range(*head.dims.indices(self.output_dim))})
        temperature = max(self.temperatures_[head.name] for head in euclidean)
        spread = euclidean_spread(self.log_, n_dims, temperature)
        if spread is not None and spread > SPREAD_LIMIT:
            warnings.warn(growth_message(self.log_, spread, temperature), EmbeddingGrowthWarning, stacklevel=3)

    def __getstate__(self) -> dict:
        """Pickling (Dask sends fitted models between processes): the encoder travels as its weights.

        A bounded encoder (``lipschitz``) is a parametrized module, which torch does not pickle; the
        weights are loaded into the same architecture on unpickling, as :meth:`load` does.
        """
        state = dict(super().__getstate__())  # a copy: the base may return the instance dict itself
        encoder = state.pop("encoder_", None)
        if encoder is not None:
            state["_encoder_weights"] = {k: v.detach().cpu() for k, v in encoder.state_dict().items()}
            state["_encoder_device"] = str(self._device_of_model())
        return state

    def __setstate__(self, state: dict) -> None:
        weights = state.pop("_encoder_weights", None)
        device = state.pop("_encoder_device", "cpu")
        super().__setstate__(state)
        if weights is not None:
            embedder, _ = self._build(self.layout_, self.n_features_in_, 0)
            embedder.load_state_dict(weights, strict=True)
            if device.startswith("cuda") and not torch.cuda.is_available():
                device = "cpu"  # a model fitted on a GPU unpickles on a CPU-only machine
            self.encoder_ = embedder.to(device).eval()

    def _device_of_model(self) -> torch.device:
        return next(self.encoder_.parameters()).device

    @torch.no_grad()
    def transform(self, neural: Any, *, batch_size: int = 50_000) -> np.ndarray:
        """Embed every time point.

        Parameters
        ----------
        neural : array of shape (T, N)
            Any array-like with ``shape`` and slicing (numpy array, ``np.memmap``, h5py dataset); it is
            read ``batch_size`` rows at a time, so it need not fit in memory.
        batch_size : int, default 50,000
            Time points embedded per pass.

        Returns
        -------
        ndarray of shape (T, output_dim), float32.

        Notes
        -----
        A convolutional encoder needs ``left`` frames before and ``right - 1`` after each time point
        (``model.encoder_.encoder.offset``). At the edges of the recording the first and last frames
        are repeated to provide them, so the first and last few rows are embedded from padded windows.
        """
        self._check_is_fitted()
        neural = self._check_neural(neural)
        if not is_int(batch_size, 1):
            raise ValueError(f"batch_size must be an int >= 1; got {batch_size!r}")
        n = neural.shape[0]
        window, left = self.encoder_.window, self.encoder_.left
        device = self._device_of_model()
        out = np.empty((n, self.output_dim), dtype=np.float32)
        self.encoder_.eval()
        for start in range(0, n, batch_size):
            stop = min(start + batch_size, n)
            frames = read_rows(neural, start - left, stop - left + window - 1)  # checks for NaN / inf
            x = torch.from_numpy(frames).to(device).T.contiguous()[None]
            out[start:stop] = self.encoder_(x)[0].cpu().numpy()
        return out

    def fit_transform(self, neural: Any, y: Any = None, **kwargs) -> np.ndarray:
        """``fit(neural, y, **kwargs).transform(neural)``."""
        return self.fit(neural, y, **kwargs).transform(neural)

    def score(self, neural: Any, y: Any = None, *, n_batches: int = 10, random_state: int = 0,
              **labels: Any) -> float:
        """Goodness of fit on (held-out) data, in bits above chance: higher is better.

        Each objective's InfoNCE loss ``L`` (:meth:`objective_losses`, positive pairs drawn as in training,
        ``M`` negatives per reference) becomes ``(log(M) - L) / log(2)`` bits, as CEBRA's goodness of fit:
        0 for an embedding that maps every time point to one vector, ``log2(M)`` at most for the cosine
        loss. The score is the mean over objectives, weighted by their ``weight``. It lets
        ``GridSearchCV`` and :func:`xcebra.parallel.sweep` rank models; compare models scored on the same
        data with the same ``batch_size`` and temperature.

        Parameters
        ----------
        neural : array of shape (T, N)
        y : array of shape (T,) or (T, d), optional
            The label, when the objectives name exactly one (as in :meth:`fit`).
        n_batches, random_state : see :meth:`objective_losses`.
        **labels : arrays of shape (T,) or (T, d)

        Returns
        -------
        float, bits.
        """
        self._check_is_fitted()
        labels = self._labels_with_y(y, labels)
        losses, negatives = self._objective_losses(neural, n_batches, None, random_state, labels)
        weights = {o.name: o.weight for o in self.objectives}
        bits = {name: (np.log(negatives) - loss) / np.log(2) for name, loss in losses.items()}
        return float(sum(weights[n] * b for n, b in bits.items()) / sum(weights[n] for n in bits))

    def objective_losses(self, neural: Any, *, n_batches: int = 10, batch_size: int | None = None,
                         random_state: int = 0, **labels: Any) -> dict[str, float]:
        """Each objective's InfoNCE loss on (held-out) data, with positive pairs drawn as in training.

        Parameters
        ----------
        neural : array of shape (T, N)
            New data (e.g. a later segment of the recording); read whole.
        n_batches : int, default 10
            Batches averaged; each draws references, negatives and positives as ``fit`` does.
        batch_size : int, optional
            References per batch; default: the estimator's ``batch_size``, capped by the usable
            reference time points of ``neural``.
        random_state : int, default 0
            Seeds the batches: the same value scores two models on the same pairs.
        **labels : arrays of shape (T,) or (T, d)
            The labels the objectives use, on the same time points as ``neural``.

        Returns
        -------
        dict of objective name -> float
            Mean loss over the batches (lower is better; comparable between models only at the same
            batch size and temperature).
        """
        self._check_is_fitted()
        return self._objective_losses(neural, n_batches, batch_size, random_state, labels)[0]

    def _objective_losses(self, neural: Any, n_batches: int, batch_size: int | None, random_state: int,
                          labels: dict) -> tuple[dict[str, float], int]:
        """({objective: mean loss}, the number of negatives per reference they were computed with)."""
        if not is_int(n_batches, 1):
            raise ValueError(f"n_batches must be an int >= 1; got {n_batches!r}")
        if batch_size is not None and not is_int(batch_size, 1):
            raise ValueError(f"batch_size must be None or an int >= 1; got {batch_size!r}")
        data = TimeSeries.from_arrays(self._check_neural(neural), **labels)
        self._check_labels_for_objectives(data, labels)
        generator = torch.Generator().manual_seed(random_state)
        sampler = self._make_sampler(data, self.encoder_, generator)
        sampler.batch_size = min(batch_size or self.batch_size, sampler.reference_domain.size)
        losses = evaluate_losses(self.encoder_, self._heads, sampler, data.tensor(self._device_of_model()), n_batches)
        return {head.name: float(value) for head, value in zip(self._heads, losses)}, sampler.batch_size

    def attribution_map(self, neural: Any, method: str = "ing", *, num_samples: int | None = None,
                        lags: str = "sum", batch_size: int = 1024, random_state: int | None = 0,
                        verbose: bool | None = None, **method_options: Any) -> AttributionMap:
        """Attribute each embedding dimension to the neurons, averaged over time.

        Parameters
        ----------
        neural : array of shape (T, N)
            Read in batches (``np.memmap`` and h5py datasets work without loading everything).
        method : str, default "ing"
            ``"ing"`` (Inverted Neuron Gradient: pseudo-inverse of the Jacobian, batched SVD),
            ``"ing-lstsq"`` (same by minimum-norm least squares), ``"ing-block"`` (each block's rows inverted
            on their own, keeping the rank the block's objective identifies: see ``block_ranks``),
            ``"jacobian"`` (the plain Jacobian), or a
            baseline: ``"neuron-gradient"``, ``"integrated-gradients"``, ``"feature-ablation"``,
            ``"shapley-sampling"``, ``"gradient-shap"`` (captum; see :mod:`xcebra.attribution.baselines`).
        num_samples : int, optional
            Attribute this many time points drawn uniformly without replacement (seeded by
            ``random_state``) instead of all of them; ``AttributionMap.stderr`` tells the precision.
        lags : {"sum", "abs"}, default "sum"
            How a convolutional encoder's per-lag Jacobian is reduced to neurons before inverting
            (see :mod:`xcebra.attribution.jacobian` for why ``"sum"`` is the default).
        batch_size : int, default 1024
            Time points per batch.
        random_state : int or None, default 0
            Seed for ``num_samples`` (and for sampling baselines).
        verbose : bool, optional
            Progress bar; defaults to the estimator's ``verbose``.
        **method_options
            Passed to baseline methods (``n_steps``, ``n_samples``, ...). ``"ing-block"`` takes
            ``block_ranks``: {block name: int or None} (blocks left out, or all when it is not given, take
            :meth:`identified_ranks`: the label's dimension for a block trained on a continuous label, e.g.
            2 for position in a 4-dimensional cosine block; full rank otherwise).

        Returns
        -------
        AttributionMap
            ``values`` of shape (output_dim, N): mean over time points of the absolute attribution;
            only time points with a complete window are used (no padding).
        """
        self._check_is_fitted()
        neural = self._check_neural(neural)
        method_options = self._attribution_options(method, method_options)
        return compute_attribution_map(
            self.encoder_, neural, method, self.blocks_, num_samples=num_samples, lags=lags, batch_size=batch_size,
            random_state=random_state, verbose=self.verbose if verbose is None else verbose, **method_options)

    def identified_ranks(self, blocks: Sequence[str] | None = None) -> dict[str, int | None]:
        """The rank ``"ing-block"`` keeps per block by default: {block name: int or None (full rank)}.

        A block owned by an objective on a continuous label (``time_delta`` or ``delta_normal``) is
        identified as a function of that label, so its Jacobian has the label's dimension d as rank (2 for
        position); the rank is d when the block could hold more (a cosine block of width w spans w - 1
        directions, a euclidean one w), and None otherwise. Blocks of ``time`` and ``discrete`` objectives
        are None. ``blocks``: only these block names (default: all).
        """
        self._check_is_fitted()
        label_dims = getattr(self, "label_dims_", {})
        names = [name for name, _ in self.blocks_]
        wanted = names if blocks is None else list(blocks)
        unknown = [b for b in wanted if b not in names]
        if unknown:
            raise ValueError(f"blocks names {unknown[0]!r}, which this model does not have; its blocks are "
                             f"{', '.join(repr(n) for n in names)}")
        owners = {o.name: o for o in self.objectives}
        ranks: dict[str, int | None] = {}
        for (name, part), normalized in zip(self.blocks_, self.layout_.normalized):
            if name not in wanted:
                continue
            objective = owners[name]
            ranks[name] = None
            if objective.distribution in ("time_delta", "delta_normal"):
                if objective.label not in label_dims:
                    raise ValueError(
                        f"this model does not record the dimension of label {objective.label!r} (it was saved by an "
                        f"older xcebra); pass block_ranks={{{name!r}: d}} with d the number of columns of that label")
                width = part.stop - part.start - (1 if normalized else 0)
                d = label_dims[objective.label]
                ranks[name] = d if d < width else None
        return ranks

    def _attribution_options(self, method: str, options: dict) -> dict:
        """``options`` with ``block_ranks`` of ``"ing-block"`` resolved to one int or None per block, in order.

        ``block_ranks`` may be a dict {block name: int or None} (blocks left out take
        :meth:`identified_ranks`) or a sequence with one entry per block; absent, every block takes
        :meth:`identified_ranks`.
        """
        return resolve_method_options(method, options, self.blocks_, self.identified_ranks)

    # ------------------------------------------------------------------ files
    def _params_to_json(self) -> dict:
        params = self.get_params(deep=False)
        params["objectives"] = [asdict(o) for o in self.objectives]
        params["device"] = str(params["device"])
        if isinstance(params["regularizer_ramp"], tuple):
            params["regularizer_ramp"] = list(params["regularizer_ramp"])
        return params

    def save(self, path: str | os.PathLike) -> None:
        """Write the fitted model to ``path`` (safetensors weights + JSON header; atomic; no pickle).

        In data-parallel training (:mod:`xcebra.training.distributed`) only rank 0 writes; on other ranks this does nothing.
        """
        self._check_is_fitted()
        if not is_rank_zero():
            return
        tensors = {f"model.{k}": v for k, v in self.encoder_.state_dict().items()}
        for head in self._heads:
            tensors[f"temperature.{head.name}"] = head.temperature.log_value.detach().reshape(1)
        tensors.update({f"log.{k}": torch.from_numpy(np.asarray(v, dtype=np.float64)) for k, v in self.log_.items()})
        header = {
            "format": MODEL_FORMAT, "format_version": MODEL_FORMAT_VERSION, "xcebra_version": __version__,
            "params": self._params_to_json(), "n_features_in": self.n_features_in_,
            "random_state": self.random_state_, "log_keys": sorted(self.log_),
            "label_names": list(self.label_names_),
            "min_separation": dict(self.min_separation_),
            "label_dims": {name: self.label_dims_[name] for name in sorted(self.label_dims_)},
        }
        write_tensors(path, tensors, header)

    @classmethod
    def load(cls, path: str | os.PathLike, device: Any = "cpu") -> "XCEBRA":
        """Read a model written by :meth:`save`. Never runs code from the file; a pickle is refused.

        Every value in the file is checked before it is used: the hyper-parameters must be valid, every
        declared size must match the weights actually stored (so a header claiming a huge model cannot
        make this allocate anything), and the checksum must match the contents.

        Raises
        ------
        ValueError
            The file is not an xcebra model (e.g. a pickle or a ``torch.save`` archive), is truncated or
            corrupted, has an unknown format version, or its header and weights do not agree.
        """
        target = resolve_device(device, "XCEBRA")
        tensors, header = read_tensors(path, expected_format=MODEL_FORMAT)
        version = header.get("format_version")
        if not is_int(version) or version != MODEL_FORMAT_VERSION:
            raise ValueError(
                f"{str(path)!r} has model format version {version!r}; this xcebra ({__version__}) reads version "
                f"{MODEL_FORMAT_VERSION}. Upgrade xcebra to read it")
        try:
            model, layout, embedder, heads, log, temperatures = cls._from_file(tensors, header, device)
        except (KeyError, TypeError, ValueError, RuntimeError, IndexError, AttributeError, OverflowError,
                RecursionError) as error:
            detail = f"missing entry {error}" if isinstance(error, KeyError) else str(error)
            raise ValueError(f"{str(path)!r} is not a consistent xcebra model file: {detail}") from error
        embedder.to(target).eval()
        model.encoder_ = embedder
        model._heads = heads
        model.layout_ = layout
        model.blocks_ = list(layout.blocks)
        model.n_features_in_ = header["n_features_in"]
        model.random_state_ = header["random_state"]
        model.lipschitz_, model.output_clip_ = model._resolved_bound()
        model.log_ = log
        model.label_names_ = tuple(header["label_names"])
        # files written before the separation was recorded lack it
        model.min_separation_ = {str(k): int(v) for k, v in header.get("min_separation", {}).items()}
        model.temperatures_ = temperatures
        return model

    @classmethod
    def _from_file(cls, tensors: dict, header: dict, device: Any):
        """Build the model a file describes, checking each value against the stored tensors before using it."""
        params = header["params"]
        if not isinstance(params, dict):
            raise TypeError(f"params must be a JSON object; got {type(params).__name__}")
        expected_names = set(cls._get_param_names())
        # parameters added after format version 1 was first written take their default when absent
        params = {**{k: v for k, v in _ADDED_PARAMETERS.items() if k not in params}, **params}
        if set(params) != expected_names:
            missing, extra = sorted(expected_names - set(params)), sorted(set(params) - expected_names)
            raise ValueError(f"params do not match XCEBRA's (missing {missing}, unexpected {extra})")
        raw_objectives = params["objectives"]
        if not isinstance(raw_objectives, list) or not 1 <= len(raw_objectives) <= MAX_OBJECTIVES_IN_FILE:
            raise ValueError(f"objectives must be a list of 1 to {MAX_OBJECTIVES_IN_FILE} entries")
        objectives = []
        for entry in raw_objectives:
            if not isinstance(entry, dict) or not isinstance(entry.get("dims"), list):
                raise TypeError(f"an objective must be a JSON object with a list 'dims'; got {entry!r:.200}")
            objectives.append(Objective(**{**entry, "dims": tuple(entry["dims"])}))
        params = dict(params, objectives=objectives, device=device)
        if isinstance(params["regularizer_ramp"], list):
            params["regularizer_ramp"] = tuple(params["regularizer_ramp"])
        model = cls(**params)
        model._check_constraints()
        n_features = header["n_features_in"]
        if not is_int(n_features, 1):
            raise ValueError(f"n_features_in must be an int >= 1; got {n_features!r:.100}")
        random_state = header["random_state"]
        if random_state is not None and not is_int(random_state, 0):
            raise ValueError(f"random_state must be None or an int >= 0; got {random_state!r:.100}")
        label_names, log_keys = header["label_names"], header["log_keys"]
        for key, value in (("label_names", label_names), ("log_keys", log_keys)):
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise TypeError(f"{key} must be a list of strings")
        # the tensors must be exactly those this model stores: nothing missing, nothing extra
        names = {f"temperature.{o.name}" for o in objectives} | {f"log.{k}" for k in log_keys}
        weights = {k[6:]: v for k, v in tensors.items() if k.startswith("model.")}
        unexpected = sorted(k for k in tensors if not k.startswith("model.") and k not in names)
        missing = sorted(k for k in names if k not in tensors)
        if unexpected or missing:
            raise ValueError(f"its tensors do not match its header (missing {missing[:3]}, unexpected {unexpected[:3]})")
        # sizes: build the encoder on the meta device (no memory) and compare every shape with the file's
        # weights before anything real is allocated; a header claiming a huge model fails here
        try:
            with torch.device("meta"):
                skeleton = make_encoder(model.model, n_features, model.hidden_units, model.output_dim,
                                        *model._resolved_bound())
        except (RuntimeError, ValueError, OverflowError, MemoryError) as error:
            raise ValueError(f"its declared sizes cannot describe a model ({error})") from None
        expected = {f"encoder.{k}": v for k, v in skeleton.state_dict().items()}
        if set(expected) != set(weights):
            raise ValueError(f"its weights do not match model {model.model!r} (expected {len(expected)} tensors "
                             f"named like {sorted(expected)[:2]}, found {len(weights)})")
        for key, value in expected.items():
            if weights[key].shape != value.shape or weights[key].dtype != value.dtype:
                raise ValueError(
                    f"weight {key!r} has shape {tuple(weights[key].shape)} and dtype {weights[key].dtype}, but "
                    f"n_features_in={n_features}, hidden_units={model.hidden_units}, output_dim={model.output_dim} "
                    f"need {tuple(value.shape)} and {value.dtype}")
            if not bool(torch.isfinite(weights[key]).all()):
                raise ValueError(f"weight {key!r} holds non-finite values")
        layout = model._validate_params()  # now cheap: output_dim matches a stored weight
        embedder, heads = model._build(layout, n_features, 0)
        embedder.load_state_dict(weights, strict=True)
        for head in heads:
            value = tensors[f"temperature.{head.name}"]
            if value.shape != (1,) or not value.dtype.is_floating_point or not bool(torch.isfinite(value).all()):
                raise ValueError(f"temperature of objective {head.name!r} must be one finite float; got {value!r:.100}")
            head.temperature.log_value.data.copy_(value[0])
        log = {}
        for key in log_keys:
            value = tensors[f"log.{key}"]
            if value.ndim != 1 or value.dtype != torch.float64:
                raise ValueError(f"log entry {key!r} must be a 1-D float64 array; got shape {tuple(value.shape)} "
                                 f"and dtype {value.dtype}")
            log[key] = value.numpy()
        if len({len(v) for v in log.values()}) > 1:
            raise ValueError("its log entries have different lengths")
        temperatures = {h.name: float(h.temperature().detach()) for h in heads}
        model.label_dims_ = _label_dims_from_header(header)
        return model, layout, embedder, heads, log, temperatures
