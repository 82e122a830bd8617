"""Former home of :mod:`xcebra.training.diagnostics` (training health read from a finished fit's log).

Kept so that ``xcebra.diagnostics.EmbeddingGrowthWarning`` and the other names below keep working; new
code imports them from :mod:`xcebra.training.diagnostics` (the warning classes also from
:mod:`xcebra.exceptions`).
"""

from .training.diagnostics import (SPREAD_LIMIT, EmbeddingCollapseWarning, EmbeddingGrowthWarning, collapse_message,
                                   collapsed_objectives, euclidean_spread, growth_message)

__all__ = ["EmbeddingGrowthWarning", "EmbeddingCollapseWarning", "SPREAD_LIMIT", "euclidean_spread",
           "collapsed_objectives", "growth_message", "collapse_message"]
