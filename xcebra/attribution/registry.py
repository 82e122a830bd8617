"""The registry of attribution methods, built from their classes: every name, its options, whether it is stochastic.

Each method's class (:mod:`.jacobian`, :mod:`.ing`, :mod:`.baselines`) writes these once; everything that
needs to know them (argument checks, ``xcebra attribute --method``, the chunked map of
:mod:`xcebra.parallel`, the benchmarks) reads them from here.

Example
-------
>>> from xcebra.attribution.registry import METHODS, get_method
>>> METHODS[:4]
('ing', 'ing-lstsq', 'ing-block', 'jacobian')
>>> get_method("gradient-shap").stochastic, sorted(get_method("ing-block").options)
(True, ['block_ranks'])
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from .base import AttributionMethod
from .baselines import BASELINES
from .ing import Ing, IngBlock, IngLstsq
from .jacobian import Jacobian, JacobianMethod

__all__ = ["REGISTRY", "METHODS", "JACOBIAN_METHODS", "STOCHASTIC_METHODS", "get_method", "per_time_attribution"]

#: name -> method class, in the order ``attribution_map`` documents them: ING (the default) and its variants,
#: the Jacobian, then the captum baselines
REGISTRY: dict[str, type[AttributionMethod]] = {method.name: method
                                                for method in (Ing, IngLstsq, IngBlock, Jacobian, *BASELINES)}
#: every method name ``attribution_map`` accepts
METHODS = tuple(REGISTRY)
#: the methods computed from the encoder's Jacobian (they take ``lags``)
JACOBIAN_METHODS = tuple(name for name, method in REGISTRY.items() if issubclass(method, JacobianMethod))
#: the methods that draw random numbers: the k-th batch of a map uses random stream k
STOCHASTIC_METHODS = tuple(name for name, method in REGISTRY.items() if method.stochastic)


def get_method(name: str) -> type[AttributionMethod]:
    """The class of the method called ``name``; a ValueError lists every name otherwise."""
    try:
        return REGISTRY[name]
    except (KeyError, TypeError):
        raise ValueError(f"method must be one of {', '.join(repr(m) for m in METHODS)}; got {name!r}") from None


def per_time_attribution(embedder: nn.Module, windows: torch.Tensor, method: str, lags: str = "sum",
                         block_ranks: Any = None) -> torch.Tensor:
    """Signed per-time-point attribution (B, D, N) of windows (B, N, window) by a method computed from the Jacobian.

    ``method``: one of :data:`JACOBIAN_METHODS`; ``block_ranks`` (``"ing-block"`` only): one int or None
    per block of ``embedder.block_slices``.
    """
    found = REGISTRY.get(method) if isinstance(method, str) else None
    if found is None or not issubclass(found, JacobianMethod):
        family = sorted(JACOBIAN_METHODS, key=lambda name: name != Jacobian.name)  # the Jacobian, then its inverses
        raise ValueError(f"method must be one of {', '.join(repr(m) for m in family)}; got {method!r}")
    options = {"block_ranks": block_ranks} if "block_ranks" in found.options else {}
    return found.attribute(embedder, windows, lags, **options)
