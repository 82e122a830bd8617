"""``AttributionMethod``: what every attribution method declares once, and the one call all of them answer.

A method is a class whose attributes say everything the rest of the package needs to know about it:
its ``name`` (what ``attribution_map(method=...)`` takes), its ``options`` with their defaults, and
whether it draws random numbers (``stochastic``: the k-th batch of a map then uses random stream k, so a
map computed in chunks equals the single-process one). :mod:`xcebra.attribution.registry` collects the
classes; argument checks, the CLI's choices and the benchmarks read the registry instead of lists of
names.

Every method answers the same call, :meth:`AttributionMethod.attributor`: given an embedder it returns
``attribute(windows) -> (b, D, N)``, the signed attribution of every embedding dimension to every neuron
for a batch of windows (b, N, window). :mod:`xcebra.attribution.compute` runs it over a recording in
batches and averages the absolute values.
"""

from __future__ import annotations

from typing import Any, Callable, ClassVar, Mapping, Sequence

import torch
from torch import nn

__all__ = ["AttributionMethod", "Attributor"]

#: ``attribute(windows)``: windows (b, N, window) -> signed attributions (b, D, N)
Attributor = Callable[[torch.Tensor], torch.Tensor]


class AttributionMethod:
    """Base class of the attribution methods (not instantiated: everything is a class attribute or method).

    Attributes
    ----------
    name : str
        The method's name in ``attribution_map(method=name)``.
    options : dict of str -> default
        The options the method takes (``attribution_map(..., **options)``), with their defaults.
    stochastic : bool
        Whether the method draws random numbers (seeded by ``random_state`` and the batch's number).
    """

    name: ClassVar[str]
    options: ClassVar[Mapping[str, Any]] = {}
    stochastic: ClassVar[bool] = False

    @classmethod
    def check_options(cls, options: Mapping[str, Any], blocks: Sequence | None = None) -> None:
        """Raise a ValueError naming the option for one this method does not take or an invalid value.

        ``blocks`` (list of (name, slice)), when known, lets a method check options that depend on the
        embedding's layout.
        """
        unknown = sorted(set(options) - set(cls.options))
        if unknown:
            takes = (f"takes the options {', '.join(repr(k) for k in cls.options)}" if cls.options
                     else "takes no options")
            raise ValueError(f"Method '{cls.name}' {takes}; got unknown option {unknown[0]!r}")

    @classmethod
    def attributor(cls, embedder: nn.Module, *, lags: str = "sum", random_state: int | None = 0,
                   first_batch: int = 0, **options: Any) -> Attributor:
        """``attribute(windows) -> (b, D, N)`` for ``embedder`` (not changed by it).

        Parameters
        ----------
        embedder : nn.Module
            Maps windows (B, N, window) to (B, 1, D); has ``window`` and ``left``.
        lags : {"sum", "abs"}
            Lag reduction of the Jacobian methods (the others attribute each frame and sum over lags).
        random_state : int or None
            Seed of a stochastic method.
        first_batch : int
            Global number of the first batch this attributor will see (a stochastic method draws random
            stream ``first_batch + k`` for its k-th call).
        **options
            The method's options, checked by :meth:`check_options`.
        """
        raise NotImplementedError
