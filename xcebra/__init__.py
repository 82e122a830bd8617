"""xcebra: which neurons drive which latent factors, with identifiability guarantees.

An implementation of xCEBRA (Schneider et al., "Time-series attribution maps with regularized
contrastive learning", AISTATS 2025): regularized multi-objective contrastive learning on time series
and the Inverted Neuron Gradient attribution map.
"""

import logging as _logging

__version__ = "0.1.0"

_logging.getLogger("xcebra").addHandler(_logging.NullHandler())

from . import diagnostics, metrics  # noqa: E402
from .attribution import AttributionMap  # noqa: E402
from .data import TimeSeries  # noqa: E402
from .estimators import SupervisedRegressor, XCEBRA  # noqa: E402
from .objectives import Objective  # noqa: E402
from . import datasets  # noqa: E402
from . import estimator, supervised  # noqa: E402,F401  (the estimators' former modules: xcebra.estimator.XCEBRA)
from . import parallel  # noqa: E402  (imports dask only when used)

__all__ = ["XCEBRA", "Objective", "SupervisedRegressor", "AttributionMap", "TimeSeries", "diagnostics", "metrics", "datasets", "parallel", "__version__"]
