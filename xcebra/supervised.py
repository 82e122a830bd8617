"""``SupervisedRegressor``: the xCEBRA encoders trained by regression on a label, as a reference.

The xCEBRA paper compares contrastive training with supervised training of the same network. This
estimator trains an encoder of :mod:`xcebra.models` with the mean squared error between its output
(through an optional linear readout) and the standardised target, then offers the same
``transform`` and ``attribution_map`` as :class:`xcebra.XCEBRA`, so that both produce maps of the
same kind from the same code (:func:`xcebra.attribution.compute.compute_attribution_map`).
"""

from __future__ import annotations

import logging
import math
import secrets
from typing import Any, Sequence

import numpy as np
import torch
from sklearn.base import BaseEstimator, RegressorMixin
from sklearn.exceptions import NotFittedError
from torch import nn
from tqdm.auto import tqdm

from ._validation import (as_float_array, check_finite, check_neural_array, check_parameters, is_int, is_real,
                          resolve_device)
from .attribution.compute import compute_attribution_map, read_rows, resolve_method_options
from .attribution.maps import AttributionMap
from .data import sliding_windows
from .models import MODELS, make_encoder
from .models import Embedder
from .regularizers import jacobian_penalty
from .exceptions import DivergenceError
from .training.loop import make_adam

__all__ = ["SupervisedRegressor"]

logger = logging.getLogger("xcebra")


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


class SupervisedRegressor(RegressorMixin, BaseEstimator):
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

    # ------------------------------------------------------------------ validation
    def _validate_params(self) -> None:
        check_parameters(self, _PARAMETER_CONSTRAINTS)

    def _check_is_fitted(self) -> None:
        if not hasattr(self, "encoder_"):
            raise NotFittedError("This SupervisedRegressor instance is not fitted yet. Call 'fit' with your data "
                                 "before using this method.")

    def __sklearn_is_fitted__(self) -> bool:
        return hasattr(self, "encoder_")

    def _check_neural(self, neural: Any, name: str = "neural") -> Any:
        return check_neural_array(neural, self.n_features_in_, name)

    # ------------------------------------------------------------------ fit
    def fit(self, neural: Any, target: Any) -> "SupervisedRegressor":
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
        window, left = embedder.window, embedder.left
        n_valid = neural_array.shape[0] - window + 1
        if n_valid < 1:
            raise ValueError(f"neural has {neural_array.shape[0]} time points but model '{self.model}' needs windows "
                             f"of {window}; got T={neural_array.shape[0]}")

        mean = target_array.mean(axis=0, dtype=np.float64)
        scale = target_array.std(axis=0, dtype=np.float64)
        scale[scale == 0] = 1.0
        standardised = torch.from_numpy(((target_array - mean) / scale).astype(np.float32)).to(device)
        embedder.to(device)
        readout.to(device)
        windows = sliding_windows(torch.from_numpy(neural_array).to(device), window)
        targets = standardised[left:left + n_valid]  # the time point of window j is j + left
        generator = torch.Generator(device=device).manual_seed(seed)
        parameters = list(embedder.parameters()) + list(readout.parameters())
        optimizer = make_adam(parameters, self.learning_rate)
        losses, penalties, totals = [], [], []
        weight = float(self.regularizer_weight)
        embedder.train()
        readout.train()
        bar = tqdm(total=self.max_steps, disable=not self.verbose, desc="supervised fit", unit="step",
                   dynamic_ncols=True)
        try:
            for step in range(self.max_steps):
                index = torch.randint(n_valid, (self.batch_size,), generator=generator, device=device)
                if weight > 0:
                    batch = windows[index].clone().requires_grad_(True)
                    embedding = embedder(batch)[:, 0]
                    loss = torch.mean((readout(embedding) - targets[index]) ** 2)
                    penalty = jacobian_penalty(embedding, batch, generator=generator)
                    objective = loss + weight * penalty
                else:
                    prediction = readout(embedder(windows[index])[:, 0])
                    loss = objective = torch.mean((prediction - targets[index]) ** 2)
                optimizer.zero_grad(set_to_none=True)
                objective.backward()
                value = float(loss.detach())
                if weight > 0:
                    penalties.append(float(penalty.detach()))
                    totals.append(float(objective.detach()))
                if not math.isfinite(value) or (weight > 0 and not math.isfinite(totals[-1])):
                    raise DivergenceError(f"training diverged at step {step}: loss={value:.4g}. The weights from "
                                          "before this step were kept; lower learning_rate or check the data")
                optimizer.step()
                losses.append(value)
                bar.update(1)
                if self.verbose and (step % 10 == 0 or step == self.max_steps - 1):
                    bar.set_postfix({"mse": f"{value:.4f}"}, refresh=False)
        finally:
            bar.close()
            optimizer.zero_grad(set_to_none=True)
            embedder.eval()
            readout.eval()
            self.encoder_ = embedder
            self.readout_ = readout
            self.blocks_ = blocks
            self.n_features_in_ = neural_array.shape[1]
            self.n_outputs_ = n_targets
            self.output_dim_ = output_dim
            self.target_mean_ = mean
            self.target_scale_ = scale
            self.random_state_ = seed
            self.log_ = {"loss": np.asarray(losses, dtype=np.float64)}
            if weight > 0:
                # the failing step, if any, logged its penalty before raising: keep the logs aligned
                self.log_["regularizer"] = np.asarray(penalties[:len(losses)], dtype=np.float64)
                self.log_["total"] = np.asarray(totals[:len(losses)], dtype=np.float64)
            self._target_1d = target_1d
        return self

    # ------------------------------------------------------------------ use
    def _device_of_model(self) -> torch.device:
        return next(self.encoder_.parameters()).device

    @torch.no_grad()
    def transform(self, neural: Any, *, batch_size: int = 50_000) -> np.ndarray:
        """Embed every time point: ndarray of shape (T, output_dim), float32.

        ``neural`` is read ``batch_size`` rows at a time (``np.memmap`` and h5py datasets work); at the
        edges of the recording the first and last frames are repeated to complete the windows.
        """
        self._check_is_fitted()
        neural = self._check_neural(neural)
        if not is_int(batch_size, 1):
            raise ValueError(f"batch_size must be an int >= 1; got {batch_size!r}")
        n = neural.shape[0]
        window, left = self.encoder_.window, self.encoder_.left
        device = self._device_of_model()
        out = np.empty((n, self.output_dim_), dtype=np.float32)
        for start in range(0, n, batch_size):
            stop = min(start + batch_size, n)
            frames = read_rows(neural, start - left, stop - left + window - 1)
            check_finite(f"neural (rows {start}..{stop - 1})", frames)
            x = torch.from_numpy(frames).to(device).T.contiguous()[None]
            out[start:stop] = self.encoder_(x)[0].cpu().numpy()
        return out

    @torch.no_grad()
    def predict(self, neural: Any, *, batch_size: int = 50_000) -> np.ndarray:
        """Predicted target in its original units: (T,) or (T, d_target) as the target given to ``fit``."""
        embedding = self.transform(neural, batch_size=batch_size)
        device = self._device_of_model()
        standardised = self.readout_(torch.from_numpy(embedding).to(device)).cpu().numpy().astype(np.float64)
        prediction = standardised * self.target_scale_ + self.target_mean_
        return prediction[:, 0] if self._target_1d else prediction

    def attribution_map(self, neural: Any, method: str = "ing", *, num_samples: int | None = None,
                        lags: str = "sum", batch_size: int = 1024, random_state: int | None = 0,
                        verbose: bool | None = None, **method_options: Any) -> AttributionMap:
        """Attribute each embedding dimension to the neurons, averaged over time.

        The same methods and options as :meth:`xcebra.XCEBRA.attribution_map` (``"ing"``,
        ``"ing-lstsq"``, ``"ing-block"``, ``"jacobian"``, and the captum baselines of
        :mod:`xcebra.attribution.baselines`); see :func:`xcebra.attribution.compute.compute_attribution_map`.
        ``"ing-block"`` inverts every block at full rank unless ``block_ranks`` ({block name: int}) says otherwise.

        Returns
        -------
        AttributionMap with ``values`` of shape (output_dim, N) and ``blocks`` = ``blocks_``.
        """
        self._check_is_fitted()
        neural = self._check_neural(neural)
        method_options = resolve_method_options(method, method_options, self.blocks_)
        return compute_attribution_map(
            self.encoder_, neural, method, self.blocks_, num_samples=num_samples, lags=lags,
            batch_size=batch_size, random_state=random_state,
            verbose=self.verbose if verbose is None else verbose, **method_options)
