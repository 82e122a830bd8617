"""Baseline attribution methods, computed by captum, with the signature of the Jacobian methods.

:func:`make_attributor` returns a function ``attribute(windows) -> (b, D, N)``: for every window of
``window`` frames (``windows`` of shape (b, N, window)) the signed attribution of every embedding
dimension ``d`` to every neuron ``n``. It is what ``XCEBRA.attribution_map(neural, method=...)`` runs
for these methods, and what :mod:`xcebra.attribution.maps` averages over time.

Methods and their cost per time point (one "pass" is the encoder applied to one window; D is the
embedding dimension, N the number of neurons):

``"neuron-gradient"`` (captum ``Saliency`` with ``abs=False``)
    ``d z_d / d x`` summed over the frames of the window: the same numbers as ``method="jacobian"``
    (which computes them about twice as fast, sharing one forward pass between the D backward passes
    with ``torch.func``). D forward + D backward passes.
``"integrated-gradients"`` (captum ``IntegratedGradients``, Gauss-Legendre rule)
    Options: ``n_steps`` (default 50), ``baseline`` (default 0). D * n_steps forward + backward
    passes: the default costs 50 times ``"neuron-gradient"``. For long recordings lower ``n_steps``
    (the rule is exact for a linear encoder at any ``n_steps``; for an ``offset10`` encoder on 90
    neurons the map with 5 steps was within 4 %, with 10 steps within 1.5 % of the one with 64 steps,
    relative to its largest entry) or attribute a subset of time points (``num_samples``).
``"feature-ablation"`` (captum ``FeatureAblation``)
    Each neuron is replaced by ``baseline`` (default 0) in all frames of the window at once, and the
    change of every embedding dimension is recorded. N + 1 forward passes (no backward), shared by all
    D dimensions. Inherently slow for many neurons: prefer ``num_samples``.
``"shapley-sampling"`` (captum ``ShapleyValueSampling``)
    Shapley values of the neurons (each neuron = all its frames in the window), estimated from
    ``n_samples`` random orderings (default 25); ``baseline`` as above. 1 + n_samples * N forward
    passes, shared by all D dimensions. The slowest method: use ``num_samples``.
``"gradient-shap"`` (captum ``GradientShap``)
    Expected gradients between the input and baselines: ``n_samples`` (default 5) random points per
    time point, each on the segment from a random baseline to the input. ``baselines``: windows of
    shape (M, N, window) to draw from; default: windows of i.i.d. Gaussian noise N(0,
    ``baseline_std`` ** 2) (default 1) drawn afresh for each batch, ``n_baselines`` of them (default
    None: one per draw, b * n_samples, so no two draws share a baseline); choose ``baseline_std`` on
    the scale of the data, or pass windows taken from the recording (e.g. shuffled in time) as
    ``baselines``. ``stdevs`` (default 0) adds Gaussian noise to the input (captum's option).
    D * n_samples forward + backward passes.

Every method takes ``internal_batch_size`` (default 4096): the number of windows per forward (and
backward) pass, which bounds memory; on CPU a pass over 4096 windows cost 25-45 % less per window
than one over 1024 in our measurements. captum's gradient methods attribute one output dimension
(``target``) per call: a batch smaller than ``internal_batch_size`` is repeated to attribute several
dimensions in one pass, a larger one is split. The perturbation methods evaluate several perturbed
copies of a small batch in one pass (captum's ``perturbations_per_eval``).

For a convolutional encoder the window holds several frames of each neuron. Gradient methods
attribute each frame; a neuron's attribution is the sum over its frames (as ``lags="sum"`` for the
Jacobian). The perturbation methods (ablation, Shapley) perturb a neuron in all its frames at once
(one captum feature group per neuron), so their value is per neuron already.

Randomness (``"shapley-sampling"``, ``"gradient-shap"``) comes from captum, which draws from the global
torch and numpy generators. Each call seeds both from ``random_state`` and the number of the call (the
k-th batch of a map gets its own stream, the same for the same seed) inside a fork of the generators,
so the caller's global random state is unchanged. Not thread-safe for the same reason.

The encoder is never changed: not moved, cast, switched to eval/train, frozen or left with ``.grad``.
Windows are converted to the device and dtype of its parameters instead.

Each method is a class (:class:`NeuronGradient`, :class:`IntegratedGradients`, :class:`FeatureAblation`,
:class:`ShapleySampling`, :class:`GradientShap`) that declares its name, options and whether it draws
random numbers, and whose ``run`` makes its captum call; the batching and seeding they share is
:class:`xcebra.attribution._captum.BaselineAttributor`. They live in one module because each is one call
of captum with the same engine around it.

Examples
--------
>>> import torch
>>> from xcebra.attribution.baselines import make_attributor
>>> from xcebra.models import make_encoder
>>> from xcebra.models import Embedder
>>> encoder = make_encoder("offset5", n_neurons=6, hidden_units=8, output_dim=3)
>>> embedder = Embedder(encoder, [("all", slice(0, 3))], [False])
>>> attribute = make_attributor(embedder, "integrated-gradients", n_steps=8)
>>> attribute(torch.randn(10, 6, embedder.window)).shape
torch.Size([10, 3, 6])
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from ._captum import BaselineAttributor, _is_int, frame_baseline, resolve_options
from .base import AttributionMethod, Attributor

__all__ = ["make_attributor", "BaselineAttributor", "CaptumMethod", "NeuronGradient", "IntegratedGradients",
           "FeatureAblation", "ShapleySampling", "GradientShap", "BASELINES", "BASELINE_METHODS", "OPTIONS"]


class CaptumMethod(AttributionMethod):
    """A baseline computed by captum; ``run(attributor, x, dims, generator)`` makes its call.

    ``x`` (b, N, window) is a private copy of the windows on the encoder's device; ``dims`` is D; the
    ``generator`` is seeded for this batch when the method is stochastic (None otherwise). Returns the
    signed attributions (b, D, N).
    """

    @classmethod
    def check_options(cls, options: dict, blocks=None) -> None:
        resolve_options(cls.name, dict(cls.options), dict(options))

    @classmethod
    def attributor(cls, embedder: nn.Module, *, lags: str = "sum", random_state: int | None = 0,
                   first_batch: int = 0, **options: Any) -> Attributor:
        attribute = make_attributor(embedder, cls.name, random_state=random_state, **options)
        attribute.calls = first_batch  # the k-th batch of a map draws random stream k, however it is chunked
        return attribute

    @staticmethod
    def run(attributor: BaselineAttributor, x: torch.Tensor, dims: int,
            generator: torch.Generator | None) -> torch.Tensor:
        raise NotImplementedError


class NeuronGradient(CaptumMethod):
    """``"neuron-gradient"``: captum's ``Saliency`` (``abs=False``), the gradient summed over the window's frames."""

    name = "neuron-gradient"
    options = {"internal_batch_size": 4096}

    @staticmethod
    def run(attributor, x, dims, generator):
        saliency = attributor.captum.Saliency(attributor.forward)
        return attributor.by_target(lambda inputs, target: saliency.attribute(inputs, target=target, abs=False),
                                    x, dims, expansion=1, split=True)


class IntegratedGradients(CaptumMethod):
    """``"integrated-gradients"``: captum's ``IntegratedGradients`` (Gauss-Legendre rule) from ``baseline``."""

    name = "integrated-gradients"
    options = {"n_steps": 50, "baseline": 0.0, "internal_batch_size": 4096}

    @staticmethod
    def run(attributor, x, dims, generator):
        options = attributor.options
        ig = attributor.captum.IntegratedGradients(attributor.forward)
        baseline = frame_baseline(options["baseline"], x.shape[1], x.shape[2], x, "baseline")
        n_steps, internal = options["n_steps"], options["internal_batch_size"]

        def attribute(inputs, target):
            # captum splits the n_steps * rows scaled inputs into passes of internal_batch_size
            # (at least one step for every row)
            return ig.attribute(inputs, baselines=baseline, target=target, n_steps=n_steps,
                                internal_batch_size=max(internal, inputs.shape[0]))

        return attributor.by_target(attribute, x, dims, expansion=n_steps, split=False)


class FeatureAblation(CaptumMethod):
    """``"feature-ablation"``: captum's ``FeatureAblation``, each neuron replaced by ``baseline`` in all its frames."""

    name = "feature-ablation"
    options = {"baseline": 0.0, "internal_batch_size": 4096}

    @staticmethod
    def run(attributor, x, dims, generator):
        return attributor.perturbation(x, dims, attributor.captum.FeatureAblation(attributor.forward))


class ShapleySampling(CaptumMethod):
    """``"shapley-sampling"``: captum's ``ShapleyValueSampling`` over ``n_samples`` random orderings of the neurons."""

    name = "shapley-sampling"
    options = {"n_samples": 25, "baseline": 0.0, "internal_batch_size": 4096}
    stochastic = True

    @staticmethod
    def run(attributor, x, dims, generator):
        return attributor.perturbation(x, dims, attributor.captum.ShapleyValueSampling(attributor.forward),
                                       n_samples=attributor.options["n_samples"])


def _shap_baselines(options: dict, x: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    """(M, N, window) baselines of GradientShap: the given windows, or Gaussian noise drawn for this batch."""
    b, n, window = x.shape
    if options["baselines"] is None:
        count = options["n_baselines"] or b * options["n_samples"]
        baselines = torch.randn((count, n, window), generator=generator, device=x.device, dtype=x.dtype)
        return baselines * options["baseline_std"]
    baselines = torch.as_tensor(options["baselines"]).to(device=x.device, dtype=x.dtype)
    if baselines.ndim == 2:
        baselines = baselines[None]
    if baselines.ndim != 3 or tuple(baselines.shape[1:]) != (n, window):
        raise ValueError(
            f"The 'baselines' option of method 'gradient-shap' must have shape (M, {n}, {window}) for "
            f"windows of {n} neurons x {window} frames; got shape {tuple(baselines.shape)}")
    return baselines


class GradientShap(CaptumMethod):
    """``"gradient-shap"``: captum's ``GradientShap``, expected gradients between random baselines and the input."""

    name = "gradient-shap"
    options = {"n_samples": 5, "baselines": None, "n_baselines": None, "baseline_std": 1.0, "stdevs": 0.0,
               "internal_batch_size": 4096}
    stochastic = True

    @staticmethod
    def run(attributor, x, dims, generator):
        baselines = _shap_baselines(attributor.options, x, generator)
        shap = attributor.captum.GradientShap(attributor.forward)
        n_samples, stdevs = attributor.options["n_samples"], attributor.options["stdevs"]

        def attribute(inputs, target):
            return shap.attribute(inputs, baselines=baselines, target=target, n_samples=n_samples, stdevs=stdevs)

        return attributor.by_target(attribute, x, dims, expansion=n_samples, split=True)


#: the captum baselines, in the order ``xcebra.attribution.METHODS`` lists them
BASELINES = (NeuronGradient, IntegratedGradients, FeatureAblation, ShapleySampling, GradientShap)
_BY_NAME = {method.name: method for method in BASELINES}
BASELINE_METHODS = tuple(_BY_NAME)
#: method -> {option: default}; the options each method accepts (read from the classes)
OPTIONS: dict[str, dict[str, Any]] = {method.name: dict(method.options) for method in BASELINES}


def make_attributor(embedder: nn.Module, method: str, *, random_state: int | None = 0,
                    **options: Any) -> BaselineAttributor:
    """Build ``attribute(windows) -> (b, D, N)`` for a captum-backed baseline method.

    Parameters
    ----------
    embedder : nn.Module
        Maps windows (B, N, L) to embeddings (B, L - window + 1, D) and has attributes ``window`` and
        ``left`` (:class:`xcebra.models.Embedder`); it is called with ``L == window``.
    method : {"neuron-gradient", "integrated-gradients", "feature-ablation", "shapley-sampling", "gradient-shap"}
        See the module docstring for what each computes and costs per time point.
    random_state : int or None, default 0
        Seed for the random orderings (Shapley) and baselines (GradientShap); ``None``: fresh entropy.
    **options
        Method options (``OPTIONS[method]`` and the method class's ``options`` list them with their defaults): ``n_steps``,
        ``n_samples``, ``baseline``, ``baselines``, ``n_baselines``, ``baseline_std``, ``stdevs``,
        ``internal_batch_size``.

    Returns
    -------
    BaselineAttributor
        Callable on windows of shape (b, N, window), returning signed attributions (b, D, N).

    Raises
    ------
    ValueError
        Unknown method, an option the method does not take, or an invalid option value.

    Notes
    -----
    Cost per time point (forward/backward passes of the encoder on one window): neuron-gradient D + D;
    integrated-gradients D * n_steps each; gradient-shap D * n_samples each; feature-ablation N + 1
    forward; shapley-sampling 1 + n_samples * N forward. For many neurons the last two are slow; pass
    ``num_samples`` to ``attribution_map`` to average over a random subset of time points.

    Measured CPU time per 1000 time points (``offset10`` encoder, 256 hidden units, 14 outputs, 90
    neurons, batches of 1024, two threads, both threads' time summed): ``"jacobian"`` 3.3 s,
    neuron-gradient 3.5-3.9 s, integrated-gradients 8.2 s (``n_steps=2``) and 22 s (``n_steps=5``),
    gradient-shap 22 s (``n_samples=5``), feature-ablation 16 s, shapley-sampling 580 s (``n_samples=25``).
    On two free cores the wall time is roughly half of these.
    """
    if method not in _BY_NAME:
        raise ValueError(f"method must be one of {', '.join(repr(m) for m in BASELINE_METHODS)}; got {method!r}")
    if random_state is not None and not _is_int(random_state, 0):
        raise ValueError(f"random_state must be None or an int >= 0; got {random_state!r}")
    if not hasattr(embedder, "window"):
        raise ValueError(f"embedder must have a 'window' attribute (frames per window); got {type(embedder).__name__}")
    method_class = _BY_NAME[method]
    return BaselineAttributor(embedder, method_class, resolve_options(method, dict(method_class.options), options),
                              random_state)
