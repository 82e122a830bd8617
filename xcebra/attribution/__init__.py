"""Attribution maps: which neurons drive which embedding dimension.

- :mod:`.registry`: every method, from its class (:mod:`.base`): ``METHODS``, ``get_method``;
- :mod:`.jacobian` (the Jacobian per time point), :mod:`.ing` (the Inverted Neuron Gradient, whole or per
  block; its linear algebra in :mod:`.pinv`) and :mod:`.baselines` (the captum baselines; their engine in
  :mod:`._captum`): the methods;
- :mod:`.compute`: any method over a recording, in batches; :mod:`.maps`: the result type and its exact sums;
- :mod:`.scores`: how well a map matches a ground truth.
"""

from .jacobian import lag_summed_jacobian, reduce_lags, window_jacobian
from .maps import AttributionMap, PartialSums, accumulate_map, finalize, partial_sums, select_time_points
from .pinv import block_pseudo_inverse, pseudo_inverse
from .registry import METHODS, get_method, per_time_attribution

__all__ = ["AttributionMap", "PartialSums", "accumulate_map", "partial_sums", "finalize", "select_time_points",
           "window_jacobian", "lag_summed_jacobian", "reduce_lags", "pseudo_inverse", "block_pseudo_inverse",
           "per_time_attribution", "get_method", "METHODS"]
