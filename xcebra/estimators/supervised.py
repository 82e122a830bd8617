"""``SupervisedRegressor``: the xCEBRA encoders trained by regression on a label, as a reference.

The xCEBRA paper compares contrastive training with supervised training of the same network. This
estimator trains an encoder of :mod:`xcebra.models` with the mean squared error between its output
(through an optional linear readout) and the standardised target, in the same training loop as
:class:`xcebra.XCEBRA` (:mod:`xcebra.training.regression`), and shares ``transform`` and
``attribution_map`` with it (:class:`.base.EmbeddingEstimator`), so both produce maps of the same kind
from the same code.
"""

from __future__ import annotations

import secrets
from typing import Any, Sequence

import numpy as np
import torch
from sklearn.base import RegressorMixin
from torch import nn

from .._validation import as_float_array, check_finite, check_parameters, is_int, is_real, resolve_device
from ..data import sliding_windows
from ..exceptions import DivergenceError
from ..models import MODELS, Embedder, make_encoder
from ..training.regression import fit_regression
from ..typing import ArrayLike, NeuralArray
from .base import EmbeddingEstimator

__all__ = ["SupervisedRegressor"]


#: parameter -> (check, what it must be); message: "The 'p' parameter of SupervisedRegressor must be ..."
_PARAMETER_CONSTRAINTS = {
    "model": (lambda v: v in MODELS, f"one of {', '.join(repr(m) for m in MODELS)}"),
    "hidden_units": (lambda v: is_int(v, 1), "an int >= 1"),
    "output_dim": (lambda v: v is None or is_int(v, 1), "None or an int >= 1"),
    "batch_size": (lambda v: is_int(v, 1), "an int >= 1"),
    "max_steps": (lambda v: is_int(v, 0), "an int >= 0"),
    "learning_rate": (lambda v: is_real(v, 0, strict=True), "a float > 0"),
    "regularizer_weight": (lambda v: is_real(v, 0), "a float >= 0"),
    "random_state": (lambda v: v is None or is_int(v, 0), "None or an int >= 0"),
    "device": (lambda v: isinstance(v, (str, torch.device)), "'auto', 'cpu', 'cuda' or a torch.device"),
    "verbose": (lambda v: isinstance(v, bool), "a bool"),
}


def _check_blocks(blocks: Any, output_dim: int) -> list[tuple[str, slice]]:
    """(name, (start, stop) or slice) pairs covering 0..output_dim contiguously -> list of (name, slice)."""
    expected = (f"a list of (name, (start, stop)) covering 0..{output_dim} contiguously, "
                "e.g. [('behavior', (0, 2)), ('rest', (2, 4))]")
    if not isinstance(blocks, (list, tuple)) or not blocks:
        raise ValueError(f"The 'blocks' parameter of SupervisedRegressor must be None or {expected}. "
                         f"Got {blocks!r} instead.")
    result, start, names = [], 0, set()
    for item in blocks:
        try:
            name, dims = item
            span = (dims.start, dims.stop) if isinstance(dims, slice) else tuple(dims)
            a, b = span
        except (TypeError, ValueError):
            raise ValueError(f"The 'blocks' parameter of SupervisedRegressor must be None or {expected}. "
                             f"Got {blocks!r} instead.") from None
        if not isinstance(name, str) or name in names or not (is_int(a, 0) and is_int(b, 0)) \
                or a != start or b <= a:
            raise ValueError(f"The 'blocks' parameter of SupervisedRegressor must be None or {expected}. "
                             f"Got {blocks!r} instead.")
        names.add(name)
        result.append((name, slice(int(a), int(b))))
        start = int(b)
    if start != output_dim:
        raise ValueError(f"The 'blocks' parameter of SupervisedRegressor must be None or {expected}. "
                         f"Got {blocks!r} instead (it ends at {start}).")
    return result


def _check_data(neural: Any, target: Any) -> tuple[np.ndarray, np.ndarray, bool]:
    """(neural (T, N), target (T, d_target), whether the target was 1-D), checked as ``fit`` needs them."""
    neural_array = as_float_array("neural", neural, ndim=(2,))
    if neural_array.shape[0] == 0 or neural_array.shape[1] == 0:
        raise ValueError(f"neural must have at least one time point and one neuron; got shape {neural_array.shape}")
    check_finite("neural", neural_array)
    target_array = as_float_array("target", target, ndim=(1, 2))
    target_1d = target_array.ndim == 1
    if target_1d:
        target_array = target_array[:, None]
    if target_array.shape[0] != neural_array.shape[0]:
        raise ValueError(f"target has {target_array.shape[0]} rows but neural has {neural_array.shape[0]}; "
                         "they must match in time")
    if target_array.shape[1] == 0:
        raise ValueError("target must have at least one column; got shape "
                         f"{(target_array.shape[0], 0)}")
    check_finite("target", target_array)
    return neural_array, target_array, target_1d


class SupervisedRegressor(RegressorMixin, EmbeddingEstimator):
    """An xCEBRA encoder trained by regression (MSE) on a target: the supervised reference.

    The encoder maps a window of neural activity to an embedding of ``output_dim`` dimensions; a
    linear readout maps the embedding to the standardised target (no readout when ``output_dim`` is
    the number of target columns: the embedding is then the prediction). Training draws
    ``batch_size`` time points with complete windows uniformly at random each step (Adam).

    Parameters
    ----------
    model : {"offset1", "offset5", "offset10", "offset36"}, default "offset1"
    hidden_units : int, default 256
    output_dim : int or None, default None
        Embedding dimensions (what ``transform`` returns and ``attribution_map`` explains); None: the
        number of target columns.
    blocks : list of (name, (start, stop)), optional
        Named blocks of the embedding for the attribution map; default ``[("supervised", (0, output_dim))]``.
    batch_size : int, default 512
    max_steps : int, default 1000
    learning_rate : float, default 3e-4
    regularizer_weight : float, default 0.0
        Weight of xCEBRA's Jacobian regularizer (:func:`xcebra.regularizers.jacobian_penalty`, one random
        projection per sample, over the whole batch) added to the MSE; 0 computes no penalty. It lets the
        supervised reference be compared with and without the regularizer.
    random_state : int or None
        Seeds initialisation and sampling (and the regularizer's projections): the same value gives the
        same weights.
    device : "auto", "cpu", "cuda" or torch.device, default "auto"
    verbose : bool, default True

    Attributes
    ----------
    encoder_ : xcebra.models.Embedder, the encoder (no normalisation).
    readout_ : torch.nn.Module, linear map embedding -> standardised target (``nn.Identity`` if none).
    blocks_ : list of (name, slice).
    log_ : dict, ``"loss"``: ndarray (max_steps,), the training MSE on the standardised target; with a
        regularizer also ``"regularizer"`` (the penalty: half the mean squared Frobenius norm estimate, as in
        :class:`xcebra.XCEBRA` with each dimension seen by one objective) and
        ``"total"`` (MSE + weight * penalty, what was minimised).
    target_mean_, target_scale_ : ndarray (d_target,), the standardisation of the target.
    n_features_in_ : int
        Number of neurons seen in fit.
    n_outputs_ : int
        Number of target columns.
    output_dim_ : int
        Embedding dimensions.
    random_state_ : int
        The seed actually used.

    Examples
    --------
    >>> import numpy as np
    >>> from xcebra.supervised import SupervisedRegressor
    >>> rng = np.random.default_rng(0)
    >>> neural = rng.normal(size=(500, 8)).astype("float32")
    >>> target = np.tanh(neural[:, :2])
    >>> model = SupervisedRegressor(hidden_units=16, max_steps=50, verbose=False, random_state=0)
    >>> model.fit(neural, target).transform(neural).shape
    (500, 2)
    >>> model.attribution_map(neural, method="jacobian", verbose=False).values.shape
    (2, 8)
    """

    def __init__(self, model: str = "offset1", hidden_units: int = 256, output_dim: int | None = None,
                 blocks: Sequence | None = None, batch_size: int = 512, max_steps: int = 1000,
                 learning_rate: float = 3e-4, regularizer_weight: float = 0.0, random_state: int | None = None,
                 device: Any = "auto", verbose: bool = True):
        self.model = model
        self.hidden_units = hidden_units
        self.output_dim = output_dim
        self.blocks = blocks
        self.batch_size = batch_size
        self.max_steps = max_steps
        self.learning_rate = learning_rate
        self.regularizer_weight = regularizer_weight
        self.random_state = random_state
        self.device = device
        self.verbose = verbose

    def _validate_params(self) -> None:
        check_parameters(self, _PARAMETER_CONSTRAINTS)

    def _new_encoder(self) -> Embedder:
        with torch.random.fork_rng(devices=[]):
            encoder = make_encoder(self.model, self.n_features_in_, self.hidden_units, self.output_dim_)
        return Embedder(encoder, self.blocks_, [False] * len(self.blocks_))

    # ------------------------------------------------------------------ fit
    def fit(self, neural: NeuralArray, target: ArrayLike) -> "SupervisedRegressor":
        """Train the encoder (and readout) to predict the standardised ``target``.

        Parameters
        ----------
        neural : array of shape (T, N)
        target : array of shape (T,) or (T, d_target)
            The variable to regress (position, head direction, ...), same time points as ``neural``.

        Returns
        -------
        self

        Raises
        ------
        ValueError
            Invalid parameters or data (each message names the argument).
        xcebra.training.DivergenceError
            The loss became NaN or infinite; the model keeps the weights from before that step (fitted).
        """
        self._validate_params()
        neural_array, target_array, target_1d = _check_data(neural, target)
        n_targets = target_array.shape[1]
        output_dim = n_targets if self.output_dim is None else int(self.output_dim)
        blocks = ([("supervised", slice(0, output_dim))] if self.blocks is None
                  else _check_blocks(self.blocks, output_dim))
        device = resolve_device(self.device, "SupervisedRegressor")
        seed = self.random_state if self.random_state is not None else secrets.randbelow(2 ** 31)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            encoder = make_encoder(self.model, neural_array.shape[1], self.hidden_units, output_dim)
            readout = nn.Identity() if output_dim == n_targets else nn.Linear(output_dim, n_targets)
        embedder = Embedder(encoder, blocks, [False] * len(blocks))
        n_valid = neural_array.shape[0] - embedder.window + 1
        if n_valid < 1:
            raise ValueError(f"neural has {neural_array.shape[0]} time points but model '{self.model}' needs windows "
                             f"of {embedder.window}; got T={neural_array.shape[0]}")
        mean = target_array.mean(axis=0, dtype=np.float64)
        scale = target_array.std(axis=0, dtype=np.float64)
        scale[scale == 0] = 1.0
        standardised = torch.from_numpy(((target_array - mean) / scale).astype(np.float32)).to(device)
        embedder.to(device)
        readout.to(device)
        windows = sliding_windows(torch.from_numpy(neural_array).to(device), embedder.window)
        targets = standardised[embedder.left:embedder.left + n_valid]  # the time point of window j is j + left
        self.blocks_, self.n_features_in_, self.n_outputs_, self.output_dim_ = (blocks, neural_array.shape[1], n_targets,
                                                                                output_dim)
        self.target_mean_, self.target_scale_, self.random_state_, self._target_1d = mean, scale, seed, target_1d
        try:
            log = fit_regression(embedder, readout, windows, targets, batch_size=self.batch_size,
                                 max_steps=self.max_steps, learning_rate=self.learning_rate,
                                 weight=self.regularizer_weight, verbose=self.verbose,
                                 generator=torch.Generator(device=device).manual_seed(seed))
        except DivergenceError as error:
            # fitted with the weights from before the failed step and the log of the completed steps
            self.encoder_, self.readout_, self.log_ = embedder, readout, error.log
            raise
        self.encoder_, self.readout_, self.log_ = embedder, readout, log
        return self

    # ------------------------------------------------------------------ use
    @torch.no_grad()
    def predict(self, neural: NeuralArray, *, batch_size: int = 50_000) -> np.ndarray:
        """Predicted target in its original units: (T,) or (T, d_target) as the target given to ``fit``."""
        embedding = self.transform(neural, batch_size=batch_size)
        device = self._device_of_model()
        standardised = self.readout_(torch.from_numpy(embedding).to(device)).cpu().numpy().astype(np.float64)
        prediction = standardised * self.target_scale_ + self.target_mean_
        return prediction[:, 0] if self._target_1d else prediction
