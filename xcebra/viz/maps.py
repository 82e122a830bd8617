"""Figures of attribution maps: the map, its block-level summary, a ground truth, per-cell-type means,
and a comparison of methods.

Attribution scores are compared within a block of the embedding, not across blocks: contrastive
learning identifies each block only up to an invertible linear map and blocks of different widths
live on different scales (docs: background, "Identifiable per block"). The block-level figures say so.
"""

from __future__ import annotations

import numbers
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from matplotlib import colors as mcolors
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from ._axes import (_GROUP_COLORS, _new_figure, _figure_and_axes, _cell_type_groups, _amap_arrays, _check_blocks,
                    _block_values, _method_suffix, _label_blocks, _neuron_image)

__all__ = ["plot_attribution_map", "plot_block_map", "plot_ground_truth", "plot_cell_type_means",
           "plot_method_comparison"]


def plot_attribution_map(amap: Any, *, cell_types: Any = None, ax: Axes | None = None,
                         title: str | None = None) -> Figure:
    """Heatmap of an attribution map: embedding dimensions (rows, grouped by block) by neurons.

    Parameters
    ----------
    amap : AttributionMap
        Uses ``amap.values`` (output_dim, N), ``amap.blocks`` and ``amap.method``.
    cell_types : sequence of str of length N, optional
        Order and group the neurons by cell type, with labelled bands.
    ax : matplotlib Axes, optional
        Draw into this axes instead of a new figure.
    title : str, optional
        Default ``"Attribution map (<method>)"``.

    Returns
    -------
    matplotlib.figure.Figure
    """
    values, blocks, method = _amap_arrays(amap)
    n_dims, n_neurons = values.shape
    fig, ax = _figure_and_axes(ax, max(6.0, min(12.0, 3.0 + 0.08 * n_neurons)), max(3.2, min(7.0, 1.8 + 0.25 * n_dims)))
    image = _neuron_image(ax, values, cell_types, "amap.values has that many columns", vmin=0.0)
    _label_blocks(ax, blocks)
    ax.set_ylabel("embedding dimension (block)")
    ax.set_title(title if title is not None else f"Attribution map{_method_suffix(method)}")
    fig.colorbar(image, ax=ax, label=f"|{method or 'attribution'}|, mean over time (a.u.)", fraction=0.04, pad=0.02)
    return fig


def plot_block_map(amap: Any, *, cell_types: Any = None) -> Figure:
    """The block-level map (n_blocks, N), each row divided by its maximum.

    A block is identified only up to an invertible linear map, so ``amap.block_values`` (the RMS over
    a block's rows) is the per-block quantity that is meaningful; rows are scaled to their own maximum
    because scores compare neurons within a block, not across blocks.

    Parameters
    ----------
    amap : AttributionMap
    cell_types : sequence of str of length N, optional
        Order and group the neurons by cell type, with labelled bands.

    Returns
    -------
    matplotlib.figure.Figure
    """
    values, blocks, method = _amap_arrays(amap)
    block_values = _block_values(amap, values, blocks)
    peak = np.nanmax(np.abs(block_values), axis=1, keepdims=True)
    scaled = np.divide(block_values, peak, out=np.zeros_like(block_values), where=peak > 0)
    n_neurons = values.shape[1]
    fig = _new_figure(max(6.0, min(12.0, 3.0 + 0.08 * n_neurons)), max(3.2, 1.8 + 0.55 * len(blocks)))
    ax = fig.add_subplot()
    image = _neuron_image(ax, scaled, cell_types, "amap.values has that many columns", vmin=0.0, vmax=1.0)
    ax.set_yticks(range(len(blocks)), [name for name, _ in blocks])
    ax.tick_params(axis="y", length=0)
    for row in range(1, len(blocks)):
        ax.axhline(row - 0.5, color="white", linewidth=2.0)
    ax.set_ylabel("block")
    ax.set_title(f"Block attribution map{_method_suffix(method)}: each row scaled to its maximum, "
                 "compare within a block")
    fig.colorbar(image, ax=ax, label="RMS / block max", fraction=0.04, pad=0.02)
    return fig


def plot_ground_truth(truth: Any, *, blocks: Sequence[tuple[str, slice]] | None = None,
                      cell_types: Any = None) -> Figure:
    """Boolean ground-truth map: which neurons drive which embedding dimension (or block).

    Parameters
    ----------
    truth : bool array of shape (output_dim, N) or (n_blocks, N)
    blocks : list of (name, slice), optional
        Label the rows by block: either each row is a dimension (``truth`` has as many rows as the
        blocks span) or each row is a block (``truth`` has ``len(blocks)`` rows).
    cell_types : sequence of str of length N, optional
        Order and group the neurons by cell type, with labelled bands.

    Returns
    -------
    matplotlib.figure.Figure
    """
    truth = np.asarray(truth)
    if truth.ndim != 2:
        raise ValueError(f"truth must be a 2-D boolean array (rows x neurons); got shape {truth.shape}")
    if truth.dtype != bool:
        if truth.dtype.kind not in "biuf" or not np.isin(truth, (0, 1)).all():
            raise ValueError(f"truth must be boolean (or 0/1); got dtype {truth.dtype} with other values")
        truth = truth.astype(bool)
    n_rows, n_neurons = truth.shape
    fig = _new_figure(max(6.0, min(12.0, 3.0 + 0.08 * n_neurons)), max(2.8, min(7.0, 1.8 + 0.25 * n_rows)))
    ax = fig.add_subplot()
    cmap = mcolors.ListedColormap(["#f2f2f2", "#1f4e79"])
    image = _neuron_image(ax, truth.astype(float), cell_types, "truth has that many columns", cmap=cmap,
                          vmin=-0.5, vmax=1.5, line_color="tab:orange")
    ylabel, drives = "row", "row"
    if blocks is not None:
        blocks = list(blocks)
        if len(blocks) == n_rows and n_rows != _blocks_span(blocks):
            ax.set_yticks(range(n_rows), [str(name) for name, _ in blocks])
            ax.tick_params(axis="y", length=0)
            for row in range(1, n_rows):
                ax.axhline(row - 0.5, color="tab:orange", linewidth=1.5)
            ylabel, drives = "block", "block"
        else:
            checked = _check_blocks("blocks", blocks, n_rows)
            if _blocks_span(checked) != n_rows:
                raise ValueError(f"blocks span {_blocks_span(checked)} dimensions but truth has {n_rows} rows; "
                                 f"expected {_blocks_span(checked)} rows (one per dimension) or {len(checked)} "
                                 "(one per block)")
            _label_blocks(ax, checked, line_color="tab:orange")
            ylabel, drives = "embedding dimension (block)", "dimension"
    ax.set_ylabel(ylabel)
    ax.set_title(f"Ground truth ({int(truth.sum())} of {truth.size} entries connected)")
    colorbar = fig.colorbar(image, ax=ax, label=f"neuron drives {drives}", fraction=0.04, pad=0.02, ticks=[0, 1])
    colorbar.ax.set_yticklabels(["no", "yes"])
    return fig


def _blocks_span(blocks: Sequence[tuple[str, slice]]) -> int:
    return max(int(getattr(block, "stop", 0) or 0) for _, block in blocks)


def plot_cell_type_means(amap: Any, cell_types: Any) -> Figure:
    """For each block, the mean block value per cell type with standard errors across neurons.

    This shows which cell types drive which block. Dots are the individual neurons. Each block has
    its own y scale: compare cell types within a block, not across blocks.

    Parameters
    ----------
    amap : AttributionMap
        Uses ``amap.block_values`` (n_blocks, N) and ``amap.blocks``.
    cell_types : sequence of str of length N

    Returns
    -------
    matplotlib.figure.Figure
    """
    values, blocks, method = _amap_arrays(amap)
    block_values = _block_values(amap, values, blocks)
    order, groups = _cell_type_groups(cell_types, values.shape[1], "amap.values has that many columns")
    ordered = block_values[:, order]
    n_types = len(groups)
    fig = _new_figure(max(3.0, 0.75 * n_types + 1.6) * len(blocks), 3.8)
    axes = fig.subplots(1, len(blocks), squeeze=False)[0]
    positions = np.arange(n_types)
    colors = [_GROUP_COLORS[i % len(_GROUP_COLORS)] for i in range(n_types)]
    for ax, (name, _), row in zip(axes, blocks, ordered):
        means, errors = [], []
        for i, (_, start, stop) in enumerate(groups):
            group = row[start:stop]
            means.append(float(np.mean(group)))
            errors.append(float(np.std(group, ddof=1) / np.sqrt(len(group))) if len(group) > 1 else 0.0)
            jitter = np.linspace(-0.22, 0.22, len(group)) if len(group) > 1 else np.zeros(1)
            ax.scatter(positions[i] + jitter, group, s=6, color="0.15", alpha=0.45, linewidths=0, zorder=3)
        ax.bar(positions, means, yerr=errors, color=colors, alpha=0.85, capsize=4, width=0.7,
               error_kw=dict(linewidth=1.2), zorder=2)
        ax.set_xticks(positions, [g[0] for g in groups], rotation=30 if n_types > 3 else 0,
                      ha="right" if n_types > 3 else "center")
        ax.set_xlabel("cell type")
        ax.set_ylabel("mean block value (a.u.)")
        ax.set_title(f"{name} block")
        ax.grid(axis="y", alpha=0.3, zorder=0)
        ax.set_ylim(bottom=0)
    fig.suptitle(f"Block attribution by cell type{_method_suffix(method)} (mean ± s.e.m. over neurons; "
                 "compare within a block)")
    return fig


# ----------------------------------------------------------------------------------------------
# Benchmarks


def plot_method_comparison(table: Sequence[Mapping[str, Any]]) -> Figure:
    """Bar chart of AUC per attribution method, with one dot per row (e.g. per seed).

    Parameters
    ----------
    table : list of dict
        Rows with keys ``"method"`` (str) and ``"auc"`` (float), optionally ``"seed"`` and ``"level"``
        (e.g. ``"entry"`` / ``"block"``; rows with different levels are drawn as grouped bars).
        Bars show the mean over rows, error bars the standard error when a method has several rows.

    Returns
    -------
    matplotlib.figure.Figure
    """
    if isinstance(table, Mapping) or not isinstance(table, Sequence) or isinstance(table, str):
        raise TypeError(f"table must be a list of dicts with keys 'method' and 'auc'; got {type(table).__name__}")
    if len(table) == 0:
        raise ValueError("table must hold at least one row; got an empty list")
    rows = []
    for i, row in enumerate(table):
        if not isinstance(row, Mapping):
            raise TypeError(f"table[{i}] must be a dict; got {type(row).__name__}")
        for key in ("method", "auc"):
            if key not in row:
                raise ValueError(f"table[{i}] is missing the key {key!r}; each row needs 'method' and 'auc' "
                                 f"(got keys {sorted(map(str, row))})")
        auc = row["auc"]
        if isinstance(auc, bool) or not isinstance(auc, numbers.Real) or not (np.isnan(auc) or 0 <= auc <= 1):
            raise ValueError(f"table[{i}]['auc'] must be a number in [0, 1] (or NaN); got {auc!r}")
        level = row.get("level")
        rows.append((str(row["method"]), None if level is None else str(level), float(auc)))
    methods = list(dict.fromkeys(method for method, _, _ in rows))
    levels = list(dict.fromkeys(level for _, level, _ in rows))
    width = 0.8 / len(levels)
    labelled: set = set()
    fig = _new_figure(max(4.5, 1.0 + 0.9 * len(methods) * max(1, 0.7 * len(levels))), 4.0)
    ax = fig.add_subplot()
    for j, level in enumerate(levels):
        color = _GROUP_COLORS[j % len(_GROUP_COLORS)]
        for i, method in enumerate(methods):
            aucs = np.array([auc for m, lv, auc in rows if m == method and lv == level])
            aucs = aucs[np.isfinite(aucs)]
            if aucs.size == 0:
                continue
            x = i + (j - (len(levels) - 1) / 2) * width
            error = np.std(aucs, ddof=1) / np.sqrt(aucs.size) if aucs.size > 1 else 0.0
            label = level if level is not None and level not in labelled else None
            labelled.add(level)
            ax.bar(x, aucs.mean(), width=width * 0.9, yerr=error, color=color, alpha=0.8, capsize=3, label=label)
            if aucs.size > 1:
                jitter = np.linspace(-width * 0.25, width * 0.25, aucs.size)
                ax.scatter(x + jitter, aucs, s=12, color="0.1", zorder=3, linewidths=0)
            top = max(aucs.mean() + error, aucs.max())
            # three decimals: a hypothesis test is read against thresholds such as 0.99, which two would blur
            ax.text(x, min(1.0, top) + 0.015, f"{aucs.mean():.3f}", ha="center", va="bottom",
                    fontsize=8 if len(levels) < 3 else 6.5)
    ax.axhline(0.5, color="0.4", linestyle="--", linewidth=1, label="chance")
    long_names = max(len(m) for m in methods) > 10 or len(methods) > 5
    ax.set_xticks(range(len(methods)), methods, rotation=30 if long_names else 0,
                  ha="right" if long_names else "center")
    ax.set_xlabel("attribution method")
    ax.set_ylabel("AUC (0.5 = chance)")
    ax.set_ylim(0, 1.08)
    ax.grid(axis="y", alpha=0.3)
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, title="level" if levels != [None] else None,
              frameon=False)
    n_seeds = len({row.get("seed") for row in table if "seed" in row})
    seeds = f", {n_seeds} seeds" if n_seeds > 1 else ""
    ax.set_title(f"Attribution AUC by method{seeds}")
    return fig
