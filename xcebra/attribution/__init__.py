"""Attribution maps: encoder Jacobians, the Inverted Neuron Gradient, and captum-backed baselines."""

from .jacobian import block_pseudo_inverse, per_time_attribution, pseudo_inverse, reduce_lags, window_jacobian
from .maps import AttributionMap, PartialSums, accumulate_map, finalize, partial_sums, select_time_points

__all__ = ["AttributionMap", "PartialSums", "accumulate_map", "partial_sums", "finalize", "select_time_points",
           "window_jacobian", "reduce_lags", "pseudo_inverse", "block_pseudo_inverse", "per_time_attribution",
           "METHODS"]

#: every method name accepted by ``XCEBRA.attribution_map``
METHODS = ("ing", "ing-lstsq", "ing-block", "jacobian", "neuron-gradient", "integrated-gradients", "feature-ablation",
           "shapley-sampling", "gradient-shap")
