"""``XCEBRA``: the scikit-learn style front door: ``fit``, ``transform``, ``score``, ``attribution_map``, ``save``, ``load``.

The class holds the hyper-parameters and the fitted state and calls the functional core: the parameter
checks (:mod:`._params`), what a fit builds (:mod:`._build`), the training loop
(:func:`xcebra.training.contrastive.fit`), the post-fit diagnostics (:mod:`xcebra.training.diagnostics`),
the shared ``transform`` and ``attribution_map`` (:class:`.base.EmbeddingEstimator`) and the model file
(:mod:`.model_file`).
"""

from __future__ import annotations

import logging
import os
import warnings
from typing import Any, Sequence

import numpy as np
import torch

from .._validation import is_int
from ..data import TimeSeries
from ..exceptions import DivergenceError
from ..models import Embedder
from ..session_models import SessionEmbedders, make_session_embedders
from ..objectives import Layout, Objective
from ..sampling import BatchSampler
from ..training.checkpoint import prepare_checkpoint_dir
from ..training.contrastive import LossHead
from ..training.contrastive import fit as _train
from ..training.diagnostics import training_warnings
from ..training.distributed import is_rank_zero
from ..typing import NeuralArray
from ._build import (build_networks, check_labels, fit_fingerprint, heldout_losses, labels_with_y, make_sampler,
                     placement, training_plan)
from ._params import check_constraints, identified_ranks, resolved_bound, validate_params
from .base import EmbeddingEstimator
from .model_file import load_model, save_model
from .sessions import adapt_new_session, fit_session_list, is_session_list

__all__ = ["XCEBRA"]

logger = logging.getLogger("xcebra")
#: fits shorter than this are not judged by the collapse check (an encoder near its initialisation is near chance)
_JUDGED_STEPS = 100


class XCEBRA(EmbeddingEstimator):
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
        References (and negatives) per step; in a multi-session fit, per session and step.
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
        estimate is unbiased); ``None`` uses all of them. In a multi-session fit, per session: each
        session's encoder gets the penalty its own single-session fit would.
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
    share_trunk : bool, default False
        Multi-session fits only (``fit`` on a list of recordings; ignored for one recording). False: each
        session has a whole encoder of its own, as the reference package's multi-session models do, and the
        sessions meet only in the embedding space, through the label-driven positives drawn across
        sessions; ``adapt`` trains a whole new encoder against the fitted sessions' anchors. True: each
        session has its own input layer (neurons -> hidden units) and every later layer is one network
        shared by all sessions, so ``adapt`` trains only a new input layer (fewer weights per session,
        faster ``adapt`` steps). Separate encoders are the default because they rank each animal's cells
        better and decode better; a step then costs about one step of each session's own fit (docs:
        results, "Many animals in one model"). Model files written before this parameter existed load
        as ``True``, their layout.

    Attributes
    ----------
    encoder_ : torch.nn.Module, the trained network (encoder + block normalisation).
    blocks_ : list of (name, slice), the disjoint blocks of the embedding.
    log_ : dict of str -> ndarray (max_steps,): total loss, each objective's loss (``loss/<name>``),
        ``regularizer``, ``regularizer_weight`` and ``seconds`` (wall time of each step); with a
        euclidean objective also ``embedding_std``, the standard deviation of the references'
        embedding over the euclidean dimensions (root mean per-dimension variance, embedding units).
        After training, fit reads this log for the two failures a fit can hide (:mod:`xcebra.training.diagnostics`):
        :class:`xcebra.diagnostics.EmbeddingCollapseWarning` when an objective's loss ended at
        ``log(batch_size)`` (a constant embedding), and, only for a euclidean fit without a bound,
        :class:`xcebra.diagnostics.EmbeddingGrowthWarning` when its embedding inflated.
    n_features_in_ : int, number of neurons seen in fit; a tuple of one count per session for a multi-session fit.
    sessions_ : :class:`xcebra.session_models.SessionEmbedders`, multi-session fits only (instead of ``encoder_``):
        one encoder per session, or one input layer per session and the later layers shared (``share_trunk``);
        ``n_sessions_`` their number.
    anchors_ : dict, multi-session fits only: up to 2,000 labelled embeddings per fitted session
        (``"embedding"`` (K, output_dim), ``"session"`` (K,), ``"labels"`` {name: (K,) or (K, d)}), the targets
        of :meth:`adapt`; ``adapt_logs_`` {session index: log} the logs of the adapted sessions.
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
                 output_clip: float | None = None, share_trunk: bool = False):
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
        self.share_trunk = share_trunk

    # ------------------------------------------------------------------ checks and building blocks
    # thin methods over ._params and ._build, kept because xcebra.parallel and xcebra.significance call them
    def _check_constraints(self) -> None:
        check_constraints(self)

    def _validate_params(self) -> Layout:
        return validate_params(self)

    def _check_labels_for_objectives(self, data: TimeSeries, given: dict) -> None:
        check_labels(self.objectives, data, given)

    def _fit_fingerprint(self, data: TimeSeries) -> str:
        return fit_fingerprint(self, data)

    def _default_block_ranks(self):
        return self.identified_ranks

    def _new_encoder(self) -> Embedder:
        return build_networks(self, self.layout_, self.n_features_in_, 0)[0]

    def _new_sessions(self) -> SessionEmbedders:
        layout = self.layout_
        return make_session_embedders(self.model, self.n_features_in_, self.hidden_units, self.output_dim,
                                      layout.blocks, layout.normalized, *resolved_bound(self),
                                      share_trunk=self.share_trunk)

    # ------------------------------------------------------------------ fit
    def fit(self, neural: NeuralArray, y: Any = None, *, checkpoint_dir: str | os.PathLike | None = None,
            checkpoint_every: int = 100, **labels: Any) -> "XCEBRA":
        """Train the encoder.

        Parameters
        ----------
        neural : array of shape (T, N), or a list of S such arrays (T_s, N_s)
            Neural activity (spike counts, calcium traces, ...), one row per time point. A list fits one
            model on S sessions (recordings, animals) with their own neurons: each session has its own
            encoder (``share_trunk``), and label-driven objectives draw positives across
            sessions matched on the label, so their blocks are one space for all sessions; the time
            objective pairs time points within a session. Each label is then a list of S arrays, in the
            same units in every session; ``batch_size`` counts references per session and step. See
            :mod:`xcebra.session_sampling` and :meth:`adapt`.
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
        if not is_int(checkpoint_every, 1):
            raise ValueError(f"checkpoint_every must be an int >= 1; got {checkpoint_every!r}")
        for stale in ("encoder_", "sessions_", "anchors_", "n_sessions_", "adapt_logs_"):
            self.__dict__.pop(stale, None)  # a refit replaces the whole fitted state
        if is_session_list(neural):
            if checkpoint_dir is not None:
                checkpoint_dir = prepare_checkpoint_dir(checkpoint_dir)
            fit_session_list(self, neural, y, labels, checkpoint_dir, checkpoint_every)
            return self
        layout = self._validate_params()
        labels = labels_with_y(self.objectives, y, labels)
        data = TimeSeries.from_arrays(neural, **labels)
        check_labels(self.objectives, data, labels)
        unused = set(data.labels) - {o.label for o in self.objectives}
        if unused:
            logger.info("labels not used by any objective: %s", ", ".join(sorted(unused)))
        if self.num_threads is not None:
            torch.set_num_threads(self.num_threads)
        device, group, seed = placement(self, data)
        embedder, heads = build_networks(self, layout, data.n_neurons, seed)
        generator = torch.Generator().manual_seed(seed)
        sampler = make_sampler(self, data, embedder, generator)
        if self.batch_size > sampler.reference_domain.size:
            raise ValueError(
                f"The 'batch_size' parameter of XCEBRA must be at most the number of usable reference time "
                f"points ({sampler.reference_domain.size} of T={data.n_timepoints}, after the encoder's window "
                f"of {embedder.window} and the objectives' offsets). Got {self.batch_size} instead.")
        embedder.to(device)
        for head in heads:
            head.temperature.to(device)
        plan = training_plan(self, checkpoint_every if checkpoint_dir else 0)
        if checkpoint_dir is not None:
            checkpoint_dir = prepare_checkpoint_dir(checkpoint_dir)
        self._set_data_state(seed, data, layout, sampler)
        try:
            log = _train(embedder, heads, sampler, data.tensor(device), plan, coverage=layout.coverage,
                         generator=generator, verbose=self.verbose, checkpoint_dir=checkpoint_dir,
                         fingerprint=fit_fingerprint(self, data) if checkpoint_dir else "", group=group)
        except DivergenceError as error:
            # keep the last good weights and the log of the completed steps: the failed step changed nothing
            self._set_trained_state(embedder, heads, error.log)
            raise
        self._set_trained_state(embedder, heads, log)
        if is_rank_zero():
            self._check_training_health()
        return self

    def _set_data_state(self, seed: int, data: TimeSeries, layout: Layout, sampler: BatchSampler) -> None:
        """What fit learned before training: the seed, the bounds, the layout and what the data looked like."""
        self.random_state_ = seed
        self.lipschitz_, self.output_clip_ = resolved_bound(self)
        self.n_features_in_ = data.n_neurons
        self.layout_ = layout
        self.blocks_ = list(layout.blocks)
        self.label_names_ = tuple(sorted(data.labels))
        self.min_separation_ = {objective.name: distribution.min_separation
                                for objective, distribution in zip(self.objectives, sampler.distributions)
                                if hasattr(distribution, "min_separation")}
        self.label_dims_ = {name: 1 if label.ndim == 1 else int(label.shape[1]) for name, label in data.labels.items()}

    def _set_session_state(self, seed: int, datas: Sequence[TimeSeries], layout: Layout, samplers: Sequence[BatchSampler],
                           embedders: SessionEmbedders) -> None:
        """``_set_data_state`` for S sessions: ``n_features_in_`` and each ``min_separation_`` become per-session tuples."""
        self._set_data_state(seed, datas[0], layout, samplers[0])
        self.n_features_in_ = tuple(d.n_neurons for d in datas)
        self.n_sessions_ = len(datas)
        self.min_separation_ = {name: tuple(
            int(dist.min_separation) for s in samplers for o, dist in zip(self.objectives, s.distributions)
            if o.name == name) for name in self.min_separation_}

    def _set_trained_state(self, embedder: Embedder | SessionEmbedders, heads: list[LossHead],
                           log: dict[str, np.ndarray]) -> None:
        setattr(self, "sessions_" if isinstance(embedder, SessionEmbedders) else "encoder_", embedder)
        self.log_ = log
        self.temperatures_ = {h.name: float(h.temperature().detach()) for h in heads}
        self._heads = heads

    def _check_training_health(self) -> None:
        """Warn about the failures a finished fit can hide (:mod:`xcebra.training.diagnostics`), from its log alone."""
        bounded = self.lipschitz_ is not None or self.output_clip_ is not None
        for category, message in training_warnings(self.log_, self.batch_size, self._heads, self.temperatures_,
                                                   self.output_dim, bounded=bounded, min_steps=_JUDGED_STEPS):
            warnings.warn(message, category, stacklevel=3)

    # ------------------------------------------------------------------ scores
    def score(self, neural: Any, y: Any = None, *, session: int | None = None, n_batches: int = 10,
              random_state: int = 0, **labels: Any) -> float:
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
        session, n_batches, random_state : see :meth:`objective_losses`.
        **labels : arrays of shape (T,) or (T, d)

        Returns
        -------
        float, bits.
        """
        self._check_is_fitted()
        labels = labels_with_y(self.objectives, y, labels)
        losses, negatives = self._objective_losses(neural, n_batches, None, random_state, labels, session)
        weights = {o.name: o.weight for o in self.objectives}
        bits = {name: (np.log(negatives) - loss) / np.log(2) for name, loss in losses.items()}
        return float(sum(weights[n] * b for n, b in bits.items()) / sum(weights[n] for n in bits))

    def objective_losses(self, neural: Any, *, session: int | None = None, n_batches: int = 10,
                         batch_size: int | None = None, random_state: int = 0, **labels: Any) -> dict[str, float]:
        """Each objective's InfoNCE loss on (held-out) data, with positive pairs drawn as in training.

        Parameters
        ----------
        neural : array of shape (T, N)
            New data (e.g. a later segment of the recording); read whole.
        session : int, optional
            Multi-session models: the session ``neural`` comes from; its pairs are drawn within it.
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
        return self._objective_losses(neural, n_batches, batch_size, random_state, labels, session)[0]

    def _objective_losses(self, neural: Any, n_batches: int, batch_size: int | None, random_state: int,
                          labels: dict, session: int | None = None) -> tuple[dict[str, float], int]:
        """({objective: mean loss}, the number of negatives per reference they were computed with)."""
        embedder, session = self._session_embedder(session)
        return heldout_losses(self, self._check_neural(neural, session=session), n_batches, batch_size, random_state,
                              labels, embedder)

    def adapt(self, neural: NeuralArray, y: Any = None, *, max_steps: int | None = None,
              random_state: int | None = None, **labels: Any) -> int:
        """Add a new session (an unseen recording, any neuron count) to a fitted multi-session model.

        Trains a new encoder for ``neural`` (with ``share_trunk=True`` only a new input layer on the shared
        layers); every fitted session, and any shared layer, stays bit for bit as it was. The new session's
        label-driven positives are drawn, with probability ``S / (S + 1)``, among ``anchors_`` (up to 2,000
        labelled embeddings per fitted session, kept with the model), so its blocks land in the model's space;
        its time positives are its own.

        Parameters
        ----------
        neural : array of shape (T, N)
        y : array of shape (T,) or (T, d), optional
            The label, when the objectives name exactly one.
        max_steps : int, optional
            Training steps; default the estimator's ``max_steps`` (the regularizer's ramp is scaled to it).
        random_state : int, optional
            Seeds the new layer and the batches.
        **labels : arrays of shape (T,) or (T, d), in the fitted sessions' units.

        Returns
        -------
        int, the new session's index (``n_sessions_ - 1``): pass it as ``session=`` to ``transform`` and
        ``attribution_map``. Its training log is ``adapt_logs_[index]``.
        """
        self._check_is_fitted()
        return adapt_new_session(self, neural, y, labels, max_steps, random_state)

    def identified_ranks(self, blocks: Sequence[str] | None = None) -> dict[str, int | None]:
        """The rank ``"ing-block"`` keeps per block by default: {block name: int or None (full rank)}.

        A block owned by an objective on a continuous label (``time_delta`` or ``delta_normal``) is
        identified as a function of that label, so its Jacobian has the label's dimension d as rank (2 for
        position); the rank is d when the block could hold more (a cosine block of width w spans w - 1
        directions, a euclidean one w), and None otherwise. Blocks of ``time`` and ``discrete`` objectives
        are None. ``blocks``: only these block names (default: all).
        """
        self._check_is_fitted()
        return identified_ranks(self.objectives, self.blocks_, self.layout_.normalized, getattr(self, "label_dims_", {}),
                                blocks)

    # ------------------------------------------------------------------ files
    def save(self, path: str | os.PathLike) -> None:
        """Write the fitted model to ``path`` (safetensors weights + JSON header; atomic; no pickle).

        In data-parallel training (:mod:`xcebra.training.distributed`) only rank 0 writes; on other ranks this
        does nothing.
        """
        self._check_is_fitted()
        if is_rank_zero():
            save_model(self, path)

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
        return load_model(cls, path, device)
