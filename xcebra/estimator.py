"""Former home of :class:`xcebra.XCEBRA`, now :mod:`xcebra.estimators.xcebra`; the names below keep working."""

from .estimators._params import AUTO_LIPSCHITZ
from .estimators.model_file import MAX_OBJECTIVES_IN_FILE, MODEL_FORMAT, MODEL_FORMAT_VERSION
from .estimators.xcebra import XCEBRA

__all__ = ["XCEBRA", "AUTO_LIPSCHITZ", "MODEL_FORMAT", "MODEL_FORMAT_VERSION", "MAX_OBJECTIVES_IN_FILE"]
