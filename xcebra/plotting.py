"""Former home of the figures, now :mod:`xcebra.viz`; ``xcebra.plotting.plot_*`` keep working from here."""

from .viz._axes import (_GROUP_COLORS, _MAP_CMAP, _cell_type_groups, _figure_and_axes,  # noqa: F401  (code written
                        _label_groups)  # against this module's helpers; new code imports them from xcebra.viz._axes)
from .viz.maps import plot_attribution_map, plot_block_map, plot_cell_type_means, plot_ground_truth, plot_method_comparison
from .viz.recording import plot_embedding, plot_raster, plot_trajectory, plot_training_log

__all__ = ["plot_raster", "plot_trajectory", "plot_training_log", "plot_embedding", "plot_attribution_map",
           "plot_block_map", "plot_ground_truth", "plot_cell_type_means", "plot_method_comparison"]
