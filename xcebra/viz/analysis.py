"""Figures and report sections of an analysis (:class:`xcebra.pipeline.Analysis`): what ``xcebra report``
writes for user data and the demo extends with its own sections.

:func:`analysis_figures` draws every figure (training log, raster, embedding coloured by each label,
attribution maps, block maps, per-cell-type means, the hypothesis's ground truth and the AUC per method);
:func:`analysis_sections` arranges them, with tables, into sections for :func:`xcebra.viz.report.write_report`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from ..pipeline import Analysis
from ..typing import ArrayLike, NeuralArray
from .maps import plot_attribution_map, plot_block_map, plot_cell_type_means, plot_ground_truth, plot_method_comparison
from .recording import plot_embedding, plot_raster, plot_training_log

__all__ = ["analysis_figures", "analysis_sections", "label_columns"]

Figures = dict[str, tuple[str, Figure]]


def label_columns(name: str, values: ArrayLike, unit: str | None = None) -> list[tuple[str, str, np.ndarray]]:
    """(file key, axis label, column) for the first (up to) two columns of a label of shape (T,) or (T, d)."""
    values = np.asarray(values)
    suffix = f" ({unit})" if unit else ""
    safe = "".join(ch if ch.isalnum() else "_" for ch in name)
    if values.ndim == 1:
        return [(safe, f"{name}{suffix}", values)]
    if values.shape[1] == 2:
        return [(f"{safe}_{axis}", f"{name} {axis}{suffix}", values[:, j]) for j, axis in enumerate("xy")]
    return [(f"{safe}_{j}", f"{name}[{j}]{suffix}", values[:, j]) for j in range(min(values.shape[1], 2))]


def _recording_figures(model: Any, neural: NeuralArray, cell_types: Sequence[str] | None, time_stamps: Any,
                       raster_timepoints: int, neural_label: str) -> Figures:
    """The training log and the raster of the first ``raster_timepoints`` time points."""
    log = {("seconds per step" if k == "seconds" else k): v for k, v in model.log_.items()}
    log_figure = plot_training_log(log)
    for ax in log_figure.axes:
        if ax.get_title() == "seconds per step":
            ax.set_ylabel("wall time (s)")
    n_raster = min(int(neural.shape[0]), raster_timepoints)
    # an in-memory array is passed whole (the title then says how much is shown); a file-backed one is sliced
    raster, stamps = (neural, time_stamps) if isinstance(neural, np.ndarray) else (
        np.asarray(neural[:n_raster], dtype=np.float32), None if time_stamps is None else time_stamps[:n_raster])
    return {
        "training_log": ("Training log: each objective's InfoNCE loss, the Jacobian regularizer and its weight per "
                         "step.", log_figure),
        "raster": (f"Neural activity, first {n_raster} time points, neurons grouped by cell type."
                   if cell_types is not None else f"Neural activity, first {n_raster} time points.",
                   plot_raster(raster, cell_types=cell_types, max_timepoints=n_raster, time=stamps,
                               value_label=neural_label)),
    }


def _map_figures(analysis: Analysis, cell_types: Sequence[str] | None) -> Figures:
    """Per method: the map, the block map and (with cell types) the per-type means."""
    figures: Figures = {}
    for method, amap in analysis.attribution.items():
        figures[f"attribution_{method}"] = (
            f"Attribution map ({method}): |{method}| averaged over {amap.n_timepoints} time points, embedding "
            "dimensions (rows, grouped by block) by neurons.", plot_attribution_map(amap, cell_types=cell_types))
        figures[f"block_map_{method}"] = (
            f"Block-level map ({method}): RMS over each block's rows, scaled to the block's maximum. "
            "Blocks are identified up to an invertible linear map, so this is the quantity to compare, "
            "within a block.", plot_block_map(amap, cell_types=cell_types))
        if cell_types is not None:
            figures[f"cell_type_means_{method}"] = (
                f"Mean block attribution per cell type ({method}), one panel per block; dots are neurons.",
                plot_cell_type_means(amap, cell_types))
    return figures


def _hypothesis_figures(analysis: Analysis, cell_types: Sequence[str]) -> Figures:
    """The hypothesis's ground truth (scored blocks only) and the AUC per method."""
    results = analysis.hypothesis
    first = next(iter(results.values()))
    scored = first.map.scored
    unscored = [name for name, _ in first.map.blocks if name not in first.map.hypothesis]
    return {
        "ground_truth": (
            "Ground truth of the hypothesis, per scored block: which neurons the hypothesis connects to the block"
            + (f" (not scored, so not shown: {', '.join(unscored)})." if unscored else "."),
            plot_ground_truth(first.map.block_truth[scored], blocks=[b for b, keep in zip(first.map.blocks, scored)
                                                                      if keep], cell_types=cell_types)),
        "method_comparison": (
            "AUC per attribution method: block level (decide on this) and per entry of the scored blocks.",
            plot_method_comparison([{"method": m, "auc": r.block_auc, "level": "block"} for m, r in results.items()]
                                   + [{"method": m, "auc": r.entry_auc, "level": "entry"}
                                      for m, r in results.items()])),
    }


def analysis_figures(model: Any, neural: NeuralArray, analysis: Analysis, *,
                     labels: Mapping[str, ArrayLike] | None = None, cell_types: Sequence[str] | None = None,
                     time_stamps: Any = None, embedding_points: int = 10_000, raster_timepoints: int = 2000,
                     label_units: Mapping[str, str] | None = None,
                     neural_label: str = "activity (a.u.)") -> Figures:
    """Every figure of an analysis, by name: ``{name: (caption, Figure)}``.

    Parameters
    ----------
    model : the fitted model analysed (its ``log_`` and ``blocks_`` are drawn)
    neural : array of shape (T, N), the recording analysed (only the raster's rows are read)
    analysis : the result of :func:`xcebra.pipeline.analyze` on them
    labels : dict of str to array of shape (T,) or (T, d), optional
        Colour the embedding (one figure per label column, at most two columns per label).
    cell_types : sequence of str of length N, optional
        Groups neurons in the figures.
    time_stamps : array of shape (T,), optional
        Seconds, for the raster's time axis.
    embedding_points, raster_timepoints : int
        Points drawn in the embedding scatter plots; time points shown in the raster.
    label_units : dict of label name -> unit, optional
        Units shown on colour bars, e.g. ``{"position": "m"}``.
    neural_label : str, default "activity (a.u.)"
        Colour bar label of the raster.
    """
    figures = _recording_figures(model, neural, cell_types, time_stamps, raster_timepoints, neural_label)
    for name, values in (labels or {}).items():
        for key, label, column in label_columns(name, values, (label_units or {}).get(name)):
            figures[f"embedding_{key}"] = (f"Embedding blocks coloured by {label}.",
                                           plot_embedding(analysis.embedding, model.blocks_, column, color_label=label,
                                                          max_points=embedding_points))
    figures.update(_map_figures(analysis, cell_types))
    if analysis.hypothesis:
        figures.update(_hypothesis_figures(analysis, cell_types))
    return figures


def _cell_type_rows(per_type: Mapping[str, Mapping[str, Mapping[str, float]]]) -> list[dict[str, Any]]:
    return [{"method": method, "block": block, **dict(means)}
            for method, blocks in per_type.items() for block, means in blocks.items()]


def analysis_sections(model: Any, analysis: Analysis, figures: Figures) -> list[dict[str, Any]]:
    """The report's sections for an analysis: Training, Data, Embedding and decoding (with labels), Attribution
    maps, Mean attribution per cell type and block (with cell types) and Hypothesis test (with a hypothesis)."""
    sections: list[dict[str, Any]] = [
        {"heading": "Training", "figures": [figures["training_log"]],
         "table": {k: float(np.asarray(v)[-1]) for k, v in model.log_.items() if len(v)}},
        {"heading": "Data", "figures": [figures["raster"]]}]
    if analysis.decoding:
        rows = [{"label": label, "block": block, "R2 held-out (linear)": s["linear_r2"],
                 "R2 in-sample (linear)": s["linear_r2_train"], "kNN R2 held-out": s["knn_r2"]}
                for label, blocks in analysis.decoding.items() for block, s in blocks.items()]
        sections.append({"heading": "Embedding and decoding",
                         "text": "Held-out scores use 5 time-series splits (train on the past, test on the next "
                                 "segment); the in-sample linear R2 is the seed notebook's 'R2' number.",
                         "figures": [v for k, v in figures.items() if k.startswith("embedding_")], "table": rows})
    sections.append({"heading": "Attribution maps",
                     "figures": [v for k, v in figures.items() if k.startswith(("attribution_", "block_map_"))]})
    if analysis.per_type:
        sections.append({"heading": "Mean attribution per cell type and block",
                         "text": "Compare cell types within a block, not across blocks.",
                         "figures": [v for k, v in figures.items() if k.startswith("cell_type_means_")],
                         "table": _cell_type_rows(analysis.per_type)})
    if analysis.hypothesis:
        results = analysis.hypothesis
        rows = [{"method": m, "block AUC": r.block_auc, "entry AUC (scored rows)": r.entry_auc,
                 **{f"AUC {b}": v for b, v in r.per_block_auc.items()}} for m, r in results.items()]
        stated = "; ".join(f"{b} <- {', '.join(t)}" for b, t in next(iter(results.values())).map.hypothesis.items())
        sections.append({"heading": "Hypothesis test",
                         "text": f"Hypothesis: {stated}. The block AUC is the probability that a neuron of a "
                                 "hypothesised cell type has a larger attribution within that block than one of "
                                 "another type (0.5 = chance).",
                         "figures": [figures["ground_truth"], figures["method_comparison"]], "table": rows})
    return sections


def significance_report(result: Any, cell_types: Sequence[str] | None = None) -> tuple[Figures, dict[str, Any]]:
    """The figures and the report section of a :class:`xcebra.significance.SignificanceResult`.

    Returns ({name: (caption, Figure)}, section): the map with the selected entries marked, the per-neuron
    intervals (grouped by ``cell_types`` when given) and a table per block of the selected count and the
    consistency across seeds.
    """
    figures: Figures = {
        "significance_map": ("Attribution relative to the shadow neurons (1 = a typical non-driving neuron); "
                             "selected entries marked", result.plot_map(cell_types=cell_types)),
        "significance_intervals": ("Per neuron: mean over seeds and its interval; selected neurons filled",
                                   result.plot_intervals(cell_types=cell_types))}
    selected = result.selected()
    rows = [{"block": block, "selected neurons": len(selected[block]),
             "consistency (Spearman over seeds)": result.consistency[block]} for block in selected]
    if cell_types is not None:
        types = np.asarray(cell_types)
        for row in rows:
            chosen = types[selected[row["block"]]]
            row.update({f"share of {t} selected": float(np.mean(np.isin(np.flatnonzero(types == t),
                                                                        selected[row["block"]])))
                        for t in dict.fromkeys(types.tolist())})
            row["selected"] = ", ".join(f"{t} {int(np.sum(chosen == t))}" for t in dict.fromkeys(types.tolist()))
    section = {"heading": "Which neurons drive each block (significance)",
               "text": f"{result.n_seeds} fits of this configuration, each with {result.n_shadows} shadow neurons "
                       "(circularly shifted copies of real neurons: the null of a neuron that drives nothing). "
                       f"Benjamini-Hochberg at a false discovery rate of {result.fdr:g} per block; a block can "
                       f"select only if at least {result.min_selectable} neurons reach the smallest p-value. A "
                       "neuron correlated with a driver is selected too (docs: background, 'Significance of a map').",
               "figures": list(figures.values()), "table": rows}
    return figures, section
