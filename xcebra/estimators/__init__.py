"""The estimators: :class:`XCEBRA` (contrastive) and :class:`SupervisedRegressor` (the regression reference).

Both derive from :class:`.base.EmbeddingEstimator`, which holds what a fitted encoder gives either of
them: the fitted checks, ``transform`` and ``attribution_map``; both train in the one loop of
:mod:`xcebra.training.loop`.
"""

from .base import EmbeddingEstimator
from .supervised import SupervisedRegressor
from .xcebra import XCEBRA

__all__ = ["XCEBRA", "SupervisedRegressor", "EmbeddingEstimator"]
