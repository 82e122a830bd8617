"""Figures and reports: data, training, embeddings and attribution maps, and the HTML report.

Every function returns a :class:`matplotlib.figure.Figure` built with the object-oriented API. Figures
are not registered with ``pyplot`` (no ``plt.show``, nothing to close, no double display in Jupyter)
unless you pass an ``ax`` of your own, in which case the plot is drawn into it and ``ax.figure`` is
returned. Save a figure with ``fig.savefig("map.png", dpi=120)`` or collect several into an HTML page
with :func:`xcebra.viz.report.write_report`.

Neurons can be grouped by cell type (``cell_types``, one string per neuron): groups are ordered by
first appearance in ``cell_types`` and neurons keep their original order inside a group, so the
layout is stable from run to run. Each group is marked by a coloured strip and its name.

Attribution scores are compared within a block of the embedding, not across blocks: contrastive
learning identifies each block only up to an invertible linear map and blocks of different widths
live on different scales (docs: background, "Identifiable per block"). The block-level figures say so.

Modules: :mod:`.recording` (raster, trajectory, training log, embedding), :mod:`.maps` (attribution
maps, ground truth, per-type means, method comparison), :mod:`.report` (HTML report, PNG export),
:mod:`.analysis` (the figures and sections of a :class:`xcebra.pipeline.Analysis`) and :mod:`.sessions`
(the consistency matrix of several sessions). ``xcebra.plotting`` and ``xcebra.report``, their former
homes, re-export the functions that lived there.

Example
-------
>>> import numpy as np, types
>>> values = np.abs(np.random.default_rng(0).normal(size=(6, 8)))
>>> blocks = [("behavior", slice(0, 2)), ("time", slice(2, 6))]
>>> block_values = np.stack([np.sqrt((values[s] ** 2).mean(0)) for _, s in blocks])
>>> amap = types.SimpleNamespace(values=values, blocks=blocks, block_values=block_values, method="ing")
>>> fig = plot_attribution_map(amap, cell_types=["grid"] * 4 + ["place"] * 4)
>>> len(fig.axes)  # the map and its colour bar
2
"""

from .maps import plot_attribution_map, plot_block_map, plot_cell_type_means, plot_ground_truth, plot_method_comparison
from .recording import plot_embedding, plot_raster, plot_trajectory, plot_training_log
from .report import save_figures, save_outputs, write_report
from .sessions import plot_consistency_matrix

__all__ = ["plot_raster", "plot_trajectory", "plot_training_log", "plot_embedding", "plot_attribution_map",
           "plot_block_map", "plot_ground_truth", "plot_cell_type_means", "plot_method_comparison", "write_report",
           "save_figures", "save_outputs", "plot_consistency_matrix"]
