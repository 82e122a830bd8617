"""``EmbeddingEstimator``: what every xcebra estimator shares once it is fitted.

An estimator of this package ends ``fit`` with an encoder (``encoder_``, an :class:`xcebra.models.Embedder`),
the blocks of its embedding (``blocks_``) and the number of neurons it saw (``n_features_in_``). From
these alone follow the fitted checks, ``transform`` and ``attribution_map``, so :class:`xcebra.XCEBRA`
and :class:`xcebra.SupervisedRegressor` inherit one implementation of each instead of two. How an
estimator trains is its own (both run the one loop of :mod:`xcebra.training.loop`).
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np
import torch
from sklearn.base import BaseEstimator
from sklearn.exceptions import NotFittedError

from .._validation import check_neural_array, is_int
from ..attribution.compute import compute_attribution_map, read_rows, resolve_method_options
from ..attribution.maps import AttributionMap
from ..models import Embedder
from ..training.forward import output_dim
from ..typing import NeuralArray

__all__ = ["EmbeddingEstimator"]


class EmbeddingEstimator(BaseEstimator):
    """Base class: the fitted checks, ``transform``, ``fit_transform`` and ``attribution_map``.

    Subclasses implement ``fit``, which sets ``encoder_`` (the :class:`xcebra.models.Embedder` that maps
    windows (B, N, window) to (B, 1, D)), ``blocks_`` (list of (name, slice)) and ``n_features_in_``, and
    ``_new_encoder``, which builds the fitted architecture again (pickling sends the weights only).
    """

    # ------------------------------------------------------------------ fitted state
    def __sklearn_is_fitted__(self) -> bool:
        return hasattr(self, "encoder_") or hasattr(self, "sessions_")

    def _check_is_fitted(self) -> None:
        if not self.__sklearn_is_fitted__():
            name = type(self).__name__
            loads = f", or load a fitted model with {name}.load(path)" if hasattr(type(self), "load") else ""
            raise NotFittedError(f"This {name} instance is not fitted yet. Call 'fit' with your data before using "
                                 f"this method{loads}.")

    def _check_neural(self, neural: Any, name: str = "neural", session: int | None = None) -> Any:
        n_features = self.n_features_in_ if session is None else self.n_features_in_[session]
        return check_neural_array(neural, n_features, name if session is None else f"{name} (session {session})")

    def _session_embedder(self, session: int | None) -> tuple[Embedder, int | None]:
        """The network that embeds ``session`` and the session index to check data against (None: one recording).

        A model fitted on one recording takes ``session=None`` (or 0); a multi-session model needs the index.
        """
        sessions = getattr(self, "sessions_", None)
        if sessions is None:
            if session not in (None, 0):
                raise ValueError(f"session={session!r}, but this model was fitted on one recording; leave session out")
            return self.encoder_, None
        if session is None:
            raise ValueError(f"this model was fitted on {len(sessions)} sessions; pass session=0..{len(sessions) - 1} "
                             "to say whose encoder embeds neural")
        if not is_int(session, 0) or session >= len(sessions):
            raise ValueError(f"session must be an int in 0..{len(sessions) - 1} (the model has {len(sessions)} "
                             f"sessions); got {session!r}")
        return sessions[int(session)], int(session)

    def _device_of_model(self) -> torch.device:
        network = getattr(self, "sessions_", None)
        return next((self.encoder_ if network is None else network).parameters()).device

    def _new_encoder(self) -> Embedder:
        """An encoder of the fitted architecture (weights to be loaded); the global random state is left alone."""
        raise NotImplementedError

    def _new_sessions(self) -> Any:
        """The fitted sessions' networks (weights to be loaded), for multi-session estimators."""
        raise NotImplementedError

    def __getstate__(self) -> dict:
        """Pickling (Dask sends fitted models between processes): the encoder travels as its weights.

        A bounded encoder (``lipschitz``) is a parametrized module, which torch does not pickle; the
        weights are loaded into the same architecture on unpickling (:meth:`_new_encoder`).
        """
        state = dict(super().__getstate__())  # a copy: the base may return the instance dict itself
        for key in ("encoder_", "sessions_"):
            network = state.pop(key, None)
            if network is not None:
                state["_encoder_weights"] = {k: v.detach().cpu() for k, v in network.state_dict().items()}
                state["_encoder_device"] = str(next(network.parameters()).device)
                state["_network_key"] = key
        return state

    def __setstate__(self, state: dict) -> None:
        weights = state.pop("_encoder_weights", None)
        device = state.pop("_encoder_device", "cpu")
        key = state.pop("_network_key", "encoder_")
        super().__setstate__(state)
        if weights is not None:
            embedder = self._new_encoder() if key == "encoder_" else self._new_sessions()
            embedder.load_state_dict(weights, strict=True)
            if device.startswith("cuda") and not torch.cuda.is_available():
                device = "cpu"  # a model fitted on a GPU unpickles on a CPU-only machine
            setattr(self, key, embedder.to(device).eval())

    def _default_block_ranks(self) -> Callable[[list[str]], dict[str, int | None]] | None:
        """What ``"ing-block"`` keeps per block when ``block_ranks`` leaves a block out; None: full rank."""
        return None

    # ------------------------------------------------------------------ use
    @torch.no_grad()
    def transform(self, neural: NeuralArray, *, session: int | None = None, batch_size: int = 50_000) -> np.ndarray:
        """Embed every time point.

        Parameters
        ----------
        neural : array of shape (T, N)
            Any array-like with ``shape`` and slicing (numpy array, ``np.memmap``, h5py dataset); it is
            read ``batch_size`` rows at a time, so it need not fit in memory.
        session : int, optional
            Multi-session models: which session's encoder embeds ``neural`` (N is that session's neuron
            count). Leave it out for a model fitted on one recording.
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
        embedder, session = self._session_embedder(session)
        neural = self._check_neural(neural, session=session)
        if not is_int(batch_size, 1):
            raise ValueError(f"batch_size must be an int >= 1; got {batch_size!r}")
        n = neural.shape[0]
        window, left = embedder.window, embedder.left
        device = self._device_of_model()
        out = np.empty((n, output_dim(embedder)), dtype=np.float32)
        embedder.eval()
        for start in range(0, n, batch_size):
            stop = min(start + batch_size, n)
            frames = read_rows(neural, start - left, stop - left + window - 1)  # checks for NaN / inf
            x = torch.from_numpy(frames).to(device).T.contiguous()[None]
            out[start:stop] = embedder(x)[0].cpu().numpy()
        return out

    def fit_transform(self, neural: NeuralArray, y: Any = None, **kwargs: Any) -> np.ndarray:
        """``fit(neural, y, **kwargs).transform(neural)``."""
        return self.fit(neural, y, **kwargs).transform(neural)

    def attribution_map(self, neural: NeuralArray, method: str = "ing", *, session: int | None = None,
                        num_samples: int | None = None, lags: str = "sum", batch_size: int = 1024,
                        random_state: int | None = 0, verbose: bool | None = None,
                        **method_options: Any) -> AttributionMap:
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
            ``xcebra.attribution.METHODS`` lists them all.
        session : int, optional
            Multi-session models: the session whose encoder (its own, or its input layer and the shared
            layers) is attributed; ``neural`` is that session's recording and the map's columns its neurons.
            Leave it out for a model fitted on one recording.
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
            ``block_ranks``: {block name: int or None} or one entry per block. Blocks left out, or all when it
            is not given, take the estimator's default: for :class:`xcebra.XCEBRA`,
            :meth:`~xcebra.XCEBRA.identified_ranks` (the label's dimension for a block trained on a continuous
            label, e.g. 2 for position in a 4-dimensional cosine block; full rank otherwise); for
            :class:`xcebra.SupervisedRegressor`, full rank.

        Returns
        -------
        AttributionMap
            ``values`` of shape (output_dim, N): mean over time points of the absolute attribution;
            only time points with a complete window are used (no padding). ``blocks`` is ``blocks_``.
        """
        self._check_is_fitted()
        embedder, session = self._session_embedder(session)
        neural = self._check_neural(neural, session=session)
        method_options = self._attribution_options(method, method_options)
        return compute_attribution_map(
            embedder, neural, method, self.blocks_, num_samples=num_samples, lags=lags, batch_size=batch_size,
            random_state=random_state, verbose=self.verbose if verbose is None else verbose, **method_options)

    def _attribution_options(self, method: str, options: dict) -> dict:
        """``options`` with ``block_ranks`` of ``"ing-block"`` resolved to one int or None per block, in order."""
        return resolve_method_options(method, options, self.blocks_, self._default_block_ranks())
