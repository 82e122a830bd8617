"""Training: the one loop, the steps it runs, checkpoints, data parallelism and the post-fit diagnostics.

- :mod:`.loop`: :func:`~.loop.run`, Adam over a task's steps with divergence checks, log, progress, checkpoints;
- :mod:`.contrastive`: the xCEBRA step (pairs, one forward pass, InfoNCE, regularizer) and :func:`fit`;
- :mod:`.regression`: the supervised reference's step (MSE on a standardised target);
- :mod:`.forward`: each distinct time point of a step embedded once;
- :mod:`.checkpoint`: atomic checkpoints and resume;
- :mod:`.distributed`: data-parallel training over processes (``torchrun``, ``srun``);
- :mod:`.diagnostics`: the failures a finished fit can hide, read from its log.

The names below were the module ``xcebra.training`` before it became this package; they stay importable
from here.
"""

from __future__ import annotations

import warnings

from ..exceptions import DivergenceError
from .checkpoint import CHECKPOINT_FORMAT, CHECKPOINT_NAME
from .contrastive import LossHead, evaluate_losses, fit
from .diagnostics import SPREAD_LIMIT, EmbeddingGrowthWarning, euclidean_spread  # noqa: F401  (their old home)
from .forward import embed_indices
from .loop import TrainingPlan, make_adam, run

__all__ = ["LossHead", "TrainingPlan", "DivergenceError", "fit", "run", "embed_indices", "evaluate_losses",
           "make_adam", "CHECKPOINT_FORMAT", "CHECKPOINT_NAME"]

#: retired warnings (issue #27, decision log "Fewer alarms"): reading them still works, with a DeprecationWarning
_RETIRED_WARNINGS = ("LossIncreaseWarning", "EmbeddingOutlierWarning")
_RETIRED_CLASSES: dict[str, type] = {}


def __getattr__(name: str):
    if name in _RETIRED_WARNINGS:
        warnings.warn(f"xcebra.training.{name} is no longer raised (fit's post-fit checks are "
                      "xcebra.diagnostics.EmbeddingCollapseWarning and EmbeddingGrowthWarning); it will be removed",
                      DeprecationWarning, stacklevel=2)
        if name not in _RETIRED_CLASSES:
            _RETIRED_CLASSES[name] = type(name, (UserWarning,), {"__doc__": "Retired: never raised.",
                                                                 "__module__": __name__})
        return _RETIRED_CLASSES[name]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
