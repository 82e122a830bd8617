"""``XCEBRA``'s hyper-parameters: their constraints, checked at ``fit`` with one message shape, and what they
resolve to (the block layout, the Lipschitz bound, the regularizer's ramp, the JSON form saved in model files).

Functions of the estimator rather than methods, so that :mod:`.xcebra` holds the front door only.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any, Sequence

import numpy as np
import torch

from .._validation import check_parameters, is_int, is_real
from ..models import MODELS
from ..objectives import LOSSES, Layout, Objective, block_layout

__all__ = ["AUTO_LIPSCHITZ", "PARAMETER_CONSTRAINTS", "check_constraints", "validate_params", "resolved_bound",
           "regularizer_ramp", "params_to_json", "identified_ranks"]

#: the Lipschitz bound of a fit with a euclidean objective and ``lipschitz="auto"`` (the default); chosen on
#: benchmarks/quality/quality_defaults.py (docs: results, "The euclidean default")
AUTO_LIPSCHITZ = 4.0
_FLOAT32_MAX = float(np.finfo(np.float32).max)


def _is_ramp(v: Any) -> bool:
    return v is None or v == "auto" or (
        isinstance(v, (tuple, list)) and len(v) == 2 and all(is_int(x, 0) for x in v) and v[0] < v[1])


#: parameter -> (check, what it must be); one message shape for all: "The 'p' parameter of XCEBRA must be ..."
PARAMETER_CONSTRAINTS = {
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
    "share_trunk": (lambda v: isinstance(v, bool), "a bool"),
}


def check_constraints(estimator: Any) -> None:
    """Every hyper-parameter of ``estimator`` (an XCEBRA) against :data:`PARAMETER_CONSTRAINTS`; ValueError naming it."""
    check_parameters(estimator, PARAMETER_CONSTRAINTS)
    for name in ("temperature", "min_temperature"):  # they become float32 tensors
        if getattr(estimator, name) > _FLOAT32_MAX:
            raise ValueError(f"The '{name}' parameter of XCEBRA must be at most {_FLOAT32_MAX:.4g} (the largest "
                             f"float32). Got {getattr(estimator, name)!r} instead.")
    objectives = estimator.objectives
    if isinstance(objectives, Objective) or not isinstance(objectives, (list, tuple)):
        raise ValueError("The 'objectives' parameter of XCEBRA must be a list of xcebra.Objective. "
                         f"Got {objectives!r} instead.")


def validate_params(estimator: Any) -> Layout:
    """Check every hyper-parameter and return the block layout the objectives imply."""
    check_constraints(estimator)
    objectives = list(estimator.objectives)
    if objectives and all(isinstance(o, Objective) for o in objectives):
        covered = max(o.dims[1] for o in objectives)
        if covered < estimator.output_dim:  # before block_layout, whose cost grows with output_dim
            raise ValueError(
                f"embedding dims {covered}..{estimator.output_dim - 1} are not covered by any objective "
                f"(output_dim={estimator.output_dim}); objective slices must cover 0..output_dim without gaps")
    return block_layout(objectives, estimator.output_dim, estimator.loss)


def resolved_bound(estimator: Any) -> tuple[float | None, float | None]:
    """``(lipschitz, output_clip)`` as the encoder is built: ``lipschitz="auto"`` resolved."""
    lipschitz = estimator.lipschitz
    if lipschitz == "auto":
        euclidean = any((o.loss or estimator.loss) == "euclidean" for o in estimator.objectives)
        lipschitz = AUTO_LIPSCHITZ if euclidean else None
    return lipschitz, estimator.output_clip


def regularizer_ramp(estimator: Any) -> tuple[int, int] | None:
    """The regularizer's ramp in steps: ``"auto"`` is ``(max_steps // 4, max_steps // 2)`` as in the seed."""
    if estimator.regularizer_ramp == "auto":
        on, off = estimator.max_steps // 4, estimator.max_steps // 2
        return (on, off) if off > on else None
    return None if estimator.regularizer_ramp is None else tuple(int(v) for v in estimator.regularizer_ramp)


def params_to_json(estimator: Any) -> dict[str, Any]:
    """``get_params()`` as JSON values: objectives as dicts, the device as a string, the ramp as a list."""
    params = estimator.get_params(deep=False)
    params["objectives"] = [asdict(o) for o in estimator.objectives]
    params["device"] = str(params["device"])
    if isinstance(params["regularizer_ramp"], tuple):
        params["regularizer_ramp"] = list(params["regularizer_ramp"])
    return params


def identified_ranks(objectives: Sequence[Objective], blocks: Sequence[tuple[str, slice]], normalized: Sequence[bool],
                     label_dims: dict[str, int], wanted: Sequence[str] | None = None) -> dict[str, int | None]:
    """The rank ``"ing-block"`` keeps per block by default (see :meth:`xcebra.XCEBRA.identified_ranks`).

    ``blocks`` and ``normalized``: the fitted layout; ``label_dims``: each label's number of columns;
    ``wanted``: only these block names (default: all).
    """
    names = [name for name, _ in blocks]
    wanted = names if wanted is None else list(wanted)
    unknown = [b for b in wanted if b not in names]
    if unknown:
        raise ValueError(f"blocks names {unknown[0]!r}, which this model does not have; its blocks are "
                         f"{', '.join(repr(n) for n in names)}")
    owners = {o.name: o for o in objectives}
    ranks: dict[str, int | None] = {}
    for (name, part), is_normalized in zip(blocks, normalized):
        if name not in wanted:
            continue
        objective = owners[name]
        ranks[name] = None
        if objective.distribution in ("time_delta", "delta_normal"):
            if objective.label not in label_dims:
                raise ValueError(
                    f"this model does not record the dimension of label {objective.label!r} (it was saved by an "
                    f"older xcebra); pass block_ranks={{{name!r}: d}} with d the number of columns of that label")
            width = part.stop - part.start - (1 if is_normalized else 0)
            d = label_dims[objective.label]
            ranks[name] = d if d < width else None
    return ranks
