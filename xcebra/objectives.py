"""Objectives (one contrastive loss on a slice of the embedding) and the block layout they imply.

Slices may nest, with the seed's semantics: ``Objective("behavior", dims=(0, 4))`` and
``Objective("time", dims=(0, 14))`` mean the behaviour loss sees dims 0:4 and the time loss all of
0:14. The embedding is cut into *disjoint blocks*, each owned by the narrowest objective that covers
it (here ``behavior`` = 0:4 and ``time`` = 4:14); with the cosine loss every block is normalised to
the unit sphere separately. Blocks are what the method identifies, each up to an invertible linear map.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from ._validation import check_float, check_int, check_option
from .models import Embedder  # noqa: F401  (re-exported: its home was this module)
from .sampling import DISTRIBUTIONS, label_autocorrelation_time

__all__ = ["Objective", "Layout", "Embedder", "block_layout", "LOSSES"]

LOSSES = ("cosine", "euclidean")

#: options each distribution accepts, with defaults
_DISTRIBUTION_OPTIONS = {
    "time": {"time_offset": 10},
    "time_delta": {"time_delta": 1, "min_separation": None},
    "delta_normal": {"delta": 0.1, "min_separation": None},
    "discrete": {},
}


@dataclass(frozen=True)
class Objective:
    """One InfoNCE objective on the slice ``dims = (start, stop)`` of the embedding.

    Parameters
    ----------
    name : str
        Names the objective, its loss in ``log_`` and the block it owns (``model.blocks_``).
    dims : (int, int)
        Half-open range of embedding dimensions the loss sees.
    distribution : {"time", "time_delta", "delta_normal", "discrete"}
        How positives are drawn (see :mod:`xcebra.sampling`).
    label : str, optional
        Keyword name of the label passed to ``fit``; required by all but ``time``.
    time_offset : int, default 10
        ``time``: the positive of ``t`` is ``t + time_offset``.
    time_delta : int, default 1
        ``time_delta``: lag of the empirical label changes.
    delta : float, default 0.1
        ``delta_normal``: standard deviation of the label perturbation (label units).
    min_separation : int, optional
        ``time_delta`` and ``delta_normal``: a positive lies at least this many time points from its
        reference. Default: the larger of the encoder's window and the label's autocorrelation time
        (:func:`xcebra.sampling.label_autocorrelation_time`, the lag where it falls below 1/e), at
        most an eighth of the valid time points; the fitted value is in ``min_separation_``.
        Within one window a positive shares input frames with its reference and can be matched on
        them, whatever the label says: on the demo's data such pairs let slow signals other than
        position (head direction, speed) into the behaviour block. Within the autocorrelation time
        a slow label's nearest match is almost always a temporal neighbour (99.9% of pairs on slow
        synthetic latents), so the behaviour objective turns into a time-contrastive one and learns
        whatever changes slowly. 1 only excludes the reference itself (the reference package's
        choice).
    loss : {"cosine", "euclidean"}, optional
        Overrides the estimator's ``loss`` for this objective.
    temperature : float, optional
        Overrides the estimator's ``temperature`` for this objective.
    weight : float, default 1.0
        Multiplies this objective's loss in the total.
    """

    name: str
    dims: tuple[int, int]
    distribution: str
    label: str | None = None
    time_offset: int | None = None
    time_delta: int | None = None
    delta: float | None = None
    min_separation: int | None = None
    loss: str | None = None
    temperature: float | None = None
    weight: float = 1.0

    def __post_init__(self):
        if not isinstance(self.name, str) or not self.name:
            raise ValueError(f"Objective name must be a non-empty string; got {self.name!r}")
        try:
            start, stop = self.dims
        except (TypeError, ValueError):
            raise ValueError(f"Objective '{self.name}': dims must be a pair (start, stop); got {self.dims!r}") from None
        start = check_int(f"Objective '{self.name}' dims start", start, minimum=0)
        stop = check_int(f"Objective '{self.name}' dims stop", stop, minimum=start + 1)
        object.__setattr__(self, "dims", (start, stop))
        check_option(f"Objective '{self.name}' distribution", self.distribution, DISTRIBUTIONS)
        allowed = _DISTRIBUTION_OPTIONS[self.distribution]
        for option in ("time_offset", "time_delta", "delta", "min_separation"):
            if getattr(self, option) is not None and option not in allowed:
                raise ValueError(
                    f"Objective '{self.name}': {option} does not apply to distribution '{self.distribution}'"
                    + (f" (it takes {', '.join(allowed)})" if allowed else " (it takes no options)"))
        if self.min_separation is not None:
            object.__setattr__(self, "min_separation",
                               check_int(f"Objective '{self.name}' min_separation", self.min_separation, minimum=1))
        if self.distribution == "time":
            if self.label is not None:
                raise ValueError(f"Objective '{self.name}': distribution 'time' uses no label; got label={self.label!r}")
        elif self.label is None:
            raise ValueError(
                f"Objective '{self.name}': distribution '{self.distribution}' needs label=<name of a label passed to fit>")
        if self.loss is not None:
            check_option(f"Objective '{self.name}' loss", self.loss, LOSSES)
        if self.temperature is not None:
            check_float(f"Objective '{self.name}' temperature", self.temperature, minimum=0.0, strict=True)
        check_float(f"Objective '{self.name}' weight", self.weight, minimum=0.0)

    @property
    def slice(self) -> slice:
        return slice(*self.dims)

    def distribution_options(self, window: int | None = None, label: np.ndarray | None = None,
                             n_valid: int | None = None) -> dict:
        """Options passed to the distribution, defaults filled in.

        The default ``min_separation`` of label-driven distributions is resolved only when ``window``
        (the encoder's receptive field in time points) is given: the larger of the window and the
        autocorrelation time of ``label`` ((T,) or (T, d) array, if given), capped at ``n_valid // 8``
        (``n_valid``: the valid time points) so that every reference keeps candidates. Otherwise it
        stays None (unresolved).
        """
        options = dict(_DISTRIBUTION_OPTIONS[self.distribution])
        for key in options:
            if getattr(self, key) is not None:
                options[key] = getattr(self, key)
        if "min_separation" in options and options["min_separation"] is None and window is not None:
            separation = check_int("window", window, minimum=1)
            if label is not None:
                decorrelation = label_autocorrelation_time(label)
                if n_valid is not None:
                    decorrelation = min(decorrelation, n_valid // 8)
                separation = max(separation, decorrelation)
            options["min_separation"] = separation
        return options


@dataclass(frozen=True)
class Layout:
    """Disjoint blocks of the embedding and how each objective maps onto them.

    Attributes
    ----------
    blocks : list of (name, slice), ordered, covering 0..output_dim contiguously.
    normalized : list of bool, per block: normalised to the unit sphere (cosine loss).
    coverage : tuple of int, per embedding dimension: how many objectives see it (weights of the regulariser).
    """

    blocks: list = field(default_factory=list)
    normalized: list = field(default_factory=list)
    coverage: tuple = ()

    @property
    def output_dim(self) -> int:
        return self.blocks[-1][1].stop

    @property
    def block_names(self) -> list[str]:
        return [name for name, _ in self.blocks]


def block_layout(objectives: Sequence[Objective], output_dim: int, default_loss: str = "cosine") -> Layout:
    """Derive the disjoint blocks from possibly nested objective slices; reject layouts that are ambiguous.

    Raises
    ------
    ValueError
        Duplicate names or slices, slices beyond ``output_dim``, dimensions no objective covers,
        partially overlapping slices, an objective that would own two separate blocks, or nested
        objectives with different losses.
    """
    output_dim = check_int("output_dim", output_dim, minimum=1)
    objectives = list(objectives)
    if not objectives:
        raise ValueError("objectives must contain at least one Objective; got none")
    for objective in objectives:
        if not isinstance(objective, Objective):
            raise TypeError(f"objectives must be xcebra.Objective instances; got {type(objective).__name__}")
    names = [o.name for o in objectives]
    if len(set(names)) != len(names):
        raise ValueError(f"objective names must be unique; got {names}")
    for o in objectives:
        if o.dims[1] > output_dim:
            raise ValueError(
                f"Objective '{o.name}' has dims {o.dims} but output_dim is {output_dim}; dims must lie within 0..{output_dim}")
    for i, a in enumerate(objectives):
        for b in objectives[i + 1:]:
            (a0, a1), (b0, b1) = a.dims, b.dims
            if a.dims == b.dims:
                raise ValueError(f"Objectives '{a.name}' and '{b.name}' have the same dims {a.dims}; give each its own slice")
            overlap = a0 < b1 and b0 < a1
            nested = (a0 <= b0 and b1 <= a1) or (b0 <= a0 and a1 <= b1)
            if overlap and not nested:
                raise ValueError(
                    f"Objectives '{a.name}' {a.dims} and '{b.name}' {b.dims} overlap partially; slices must be "
                    "disjoint or nested (one inside the other)")
            if overlap and (a.loss or default_loss) != (b.loss or default_loss):
                raise ValueError(
                    f"Objectives '{a.name}' and '{b.name}' are nested but use different losses "
                    f"({a.loss or default_loss!r} vs {b.loss or default_loss!r}); nested objectives must share the loss")
    owners = []
    for d in range(output_dim):
        covering = [o for o in objectives if o.dims[0] <= d < o.dims[1]]
        if not covering:
            gap_end = d
            while gap_end < output_dim and not any(o.dims[0] <= gap_end < o.dims[1] for o in objectives):
                gap_end += 1
            raise ValueError(
                f"embedding dims {d}..{gap_end - 1} are not covered by any objective (output_dim={output_dim}); "
                "objective slices must cover 0..output_dim without gaps")
        owners.append(min(covering, key=lambda o: o.dims[1] - o.dims[0]))
    blocks, normalized, seen = [], [], set()
    start = 0
    for d in range(1, output_dim + 1):
        if d == output_dim or owners[d] is not owners[start]:
            owner = owners[start]
            if owner.name in seen:
                raise ValueError(
                    f"Objective '{owner.name}' would own two separate blocks of the embedding; place nested "
                    "objectives at the start or end of the slice that contains them")
            seen.add(owner.name)
            blocks.append((owner.name, slice(start, d)))
            normalized.append((owner.loss or default_loss) == "cosine")
            start = d
    coverage = tuple(sum(o.dims[0] <= d < o.dims[1] for o in objectives) for d in range(output_dim))
    return Layout(blocks=blocks, normalized=normalized, coverage=coverage)
