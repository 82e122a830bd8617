"""The engine of the captum-backed baselines: one target per captum call, seeding, baselines, option checks.

:class:`BaselineAttributor` turns one method of :mod:`xcebra.attribution.baselines` into
``attribute(windows) -> (b, D, N)``. What the methods share lives here: attributing several output
dimensions per captum call (or parts of a batch per call), the per-batch random streams of the
stochastic methods (captum draws from the global generators, which are seeded in a fork and restored),
the frame baselines, and the checks of the options.
"""

from __future__ import annotations

import numbers
from contextlib import contextmanager
from typing import Any, Callable, Iterator

import numpy as np
import torch
from torch import nn

__all__ = ["BaselineAttributor", "resolve_options", "frame_baseline"]


def _is_int(value: Any, minimum: int) -> bool:
    return (isinstance(value, (numbers.Integral, np.integer)) and not isinstance(value, (bool, np.bool_))
            and value >= minimum)


def _is_real(value: Any, minimum: float) -> bool:
    return (isinstance(value, (numbers.Real, np.floating)) and not isinstance(value, (bool, np.bool_))
            and bool(np.isfinite(value)) and value >= minimum)


def _is_baseline(value: Any) -> bool:
    """A finite real number or a finite numeric array (its shape is checked against the windows later)."""
    if _is_real(value, -np.inf):
        return True
    try:
        array = np.asarray(value.detach().cpu() if isinstance(value, torch.Tensor) else value)
    except (TypeError, ValueError):
        return False
    return array.dtype.kind in "biuf" and array.ndim >= 1 and bool(np.isfinite(array).all())


#: option -> (check, what it must be), for every option of every captum method
_CONSTRAINTS: dict[str, tuple[Callable[[Any], bool], str]] = {
    "n_steps": (lambda v: _is_int(v, 1), "an int >= 1"),
    "n_samples": (lambda v: _is_int(v, 1), "an int >= 1"),
    "n_baselines": (lambda v: v is None or _is_int(v, 1), "None or an int >= 1"),
    "internal_batch_size": (lambda v: _is_int(v, 1), "an int >= 1"),
    "baseline_std": (lambda v: _is_real(v, 0.0), "a float >= 0"),
    "stdevs": (lambda v: _is_real(v, 0.0), "a float >= 0"),
    "baseline": (_is_baseline, "a finite float or an array of shape (N,), (N, 1) or (N, window)"),
    "baselines": (lambda v: v is None or _is_baseline(v), "None or an array of baseline windows (M, N, window)"),
}


def resolve_options(method: str, allowed: dict[str, Any], options: dict[str, Any]) -> dict[str, Any]:
    """``options`` checked against the ``allowed`` ones of ``method`` (with defaults) and filled in."""
    for name in options:
        if name not in allowed:
            takes = f"takes the options {', '.join(repr(k) for k in allowed)}" if allowed else "takes no options"
            raise ValueError(f"Method '{method}' {takes}; got unknown option {name!r}")
    resolved = {**allowed, **options}
    for name, value in options.items():
        check, expected = _CONSTRAINTS[name]
        if not check(value):
            raise ValueError(f"The '{name}' option of method '{method}' must be {expected}. Got {value!r} instead.")
    return resolved


def _import_captum():
    try:
        import captum.attr
    except ImportError as error:  # pragma: no cover - depends on the environment
        raise ImportError("The baseline attribution methods need captum: pip install 'xcebra[baselines]'") from error
    return captum.attr


def frame_baseline(value: Any, n_neurons: int, window: int, like: torch.Tensor, name: str) -> torch.Tensor | float:
    """A scalar, or a (1, N, window) tensor from an array of shape (N,), (N, 1), (N, window) or (1, N, window)."""
    if _is_real(value, -np.inf):
        return float(value)
    tensor = torch.as_tensor(value).to(device=like.device, dtype=like.dtype)
    if tensor.ndim == 1:
        tensor = tensor[:, None]
    if tensor.ndim == 3 and tensor.shape[0] == 1:
        tensor = tensor[0]
    if tensor.ndim != 2 or tensor.shape[0] != n_neurons or tensor.shape[1] not in (1, window):
        raise ValueError(f"The '{name}' option must have shape ({n_neurons},), ({n_neurons}, 1) or "
                         f"({n_neurons}, {window}) for windows of {n_neurons} neurons x {window} frames; "
                         f"got shape {tuple(torch.as_tensor(value).shape)}")
    return tensor.expand(n_neurons, window).contiguous()[None]


class BaselineAttributor:
    """``attribute(windows)`` for one captum-backed method: the batching, seeding and checks all of them share.

    The method itself is a class of :mod:`xcebra.attribution.baselines` whose ``run(attributor, x, dims,
    generator)`` makes its captum call through :meth:`by_target` or :meth:`perturbation`; built by
    :func:`xcebra.attribution.baselines.make_attributor`.

    Attributes
    ----------
    method : str, the method's name.
    options : dict, every option of the method with defaults filled in.
    random_state : int or None
    calls : int, number of batches attributed so far (the k-th call uses random stream k).
    captum : the ``captum.attr`` module.
    """

    def __init__(self, embedder: nn.Module, method_class: type, options: dict[str, Any], random_state: int | None):
        self.embedder = embedder
        self.method_class = method_class
        self.method = method_class.name
        self.options = options
        self.random_state = random_state
        self.calls = 0
        self._seeds = np.random.SeedSequence(random_state)
        self.captum = _import_captum()

    # ------------------------------------------------------------------ helpers
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, N, window) -> (B, D): the embedding of each window."""
        return self.embedder(x)[:, 0]

    def _target_dims(self, windows: torch.Tensor) -> int:
        with torch.no_grad():
            return int(self.forward(windows[:1]).shape[1])  # an empty batch embeds to (0, D) too

    def _feature_mask(self, windows: torch.Tensor) -> torch.Tensor:
        """(1, N, window): feature group n = all frames of neuron n (contiguous: captum views it flat)."""
        n, window = windows.shape[1:]
        return torch.arange(n, device=windows.device)[None, :, None].expand(1, n, window).contiguous()

    def _call_seed(self) -> int:
        child = np.random.SeedSequence(self._seeds.entropy, spawn_key=(self.calls,))
        return int(child.generate_state(1)[0])

    @contextmanager
    def _seeded(self, device: torch.device) -> Iterator[torch.Generator]:
        """Seed torch and numpy's global generators for captum; restore both afterwards."""
        seed = self._call_seed()
        numpy_state = np.random.get_state()
        devices = [device.index if device.index is not None else torch.cuda.current_device()] \
            if device.type == "cuda" else []
        try:
            with torch.random.fork_rng(devices=devices):
                torch.manual_seed(seed)
                np.random.seed(seed)
                yield torch.Generator(device=device).manual_seed(seed)
        finally:
            np.random.set_state(numpy_state)

    # ------------------------------------------------------------------ the two ways captum is called
    def by_target(self, attribute: Callable, x: torch.Tensor, dims: int, expansion: int,
                   split: bool) -> torch.Tensor:
        """(b, D, N) from ``attribute(inputs, target) -> (rows, N, window)``, one target per output dim.

        captum attributes one target per call; about ``internal_batch_size / expansion`` input rows go
        into each call (captum multiplies each row by ``expansion``: n_steps, n_samples): several
        dims per call when the batch is small (the windows repeated, one target per row; bigger
        passes are faster per window on CPU), parts of the batch per call when it is large (``split``).
        """
        rows = max(1, self.options["internal_batch_size"] // expansion)
        b = x.shape[0]
        if split and b > rows:
            size = -(-b // -(-b // rows))  # parts of equal size (a small remainder makes a slow pass)
            return torch.cat([self.by_target(attribute, x[i:i + size], dims, expansion, split)
                              for i in range(0, b, size)])
        per_call = max(1, rows // b)
        parts = []
        for first in range(0, dims, per_call):
            k = min(per_call, dims - first)
            inputs = (x.repeat(k, 1, 1) if k > 1 else x).detach().requires_grad_(True)
            target = first if k == 1 else torch.arange(first, first + k, device=x.device).repeat_interleave(b)
            values = attribute(inputs, target).sum(-1)  # sum over the frames of each neuron
            parts.append(values.reshape(k, b, -1).transpose(0, 1))
        return torch.cat(parts, 1)

    def perturbation(self, x: torch.Tensor, dims: int, algorithm, **kwargs) -> torch.Tensor:
        # target=None and a (B, D) output: captum attributes every output element in the same passes,
        # so the N + 1 (or 1 + n_samples * N) forward passes are shared by all D dimensions
        b, n, window = x.shape
        baseline = frame_baseline(self.options["baseline"], n, window, x, "baseline")
        # several perturbed copies of the batch per forward pass, up to internal_batch_size windows
        per_pass = max(1, min(n, self.options["internal_batch_size"] // b))
        values = algorithm.attribute(x, baselines=baseline, target=None, feature_mask=self._feature_mask(x),
                                     perturbations_per_eval=per_pass, **kwargs)
        if values.numel() != b * dims * n * window:
            raise RuntimeError(
                f"captum's {type(algorithm).__name__} returned attributions of shape {tuple(values.shape)} for "
                f"{b} windows x {dims} outputs; this captum version does not attribute multi-output models "
                "(xcebra is tested with captum 0.9)")
        # every frame of a neuron's feature group carries the whole group's value: take one frame
        return values.reshape(b, dims, n, window)[..., 0]

    # ------------------------------------------------------------------ entry point
    def __call__(self, windows: torch.Tensor) -> torch.Tensor:
        """Attribute a batch of windows.

        Parameters
        ----------
        windows : tensor of shape (b, N, window)

        Returns
        -------
        tensor of shape (b, D, N), signed; detached, on the encoder's device, in its dtype.
        """
        window = self.embedder.window
        if not isinstance(windows, torch.Tensor) or windows.ndim != 3 or windows.shape[2] != window:
            shape = tuple(windows.shape) if hasattr(windows, "shape") else type(windows).__name__
            raise ValueError(f"windows must be a tensor of shape (b, N, {window}) for an encoder with a window of "
                             f"{window} frames; got {shape}")
        parameter = next(self.embedder.parameters(), None)
        device = parameter.device if parameter is not None else windows.device
        dtype = parameter.dtype if parameter is not None else windows.dtype
        # a private copy (gradient methods make their inputs require grad)
        x = windows.detach().to(device=device, dtype=dtype, copy=True)
        dims = self._target_dims(x)
        if self.method_class.stochastic:
            with self._seeded(device) as generator:
                result = self.method_class.run(self, x, dims, generator)
        else:
            result = self.method_class.run(self, x, dims, None)
        self.calls += 1
        return result.detach().to(dtype)  # captum's perturbation methods accumulate in float32
