"""Figures for xcebra: data, training, embeddings and attribution maps.

Every function returns a :class:`matplotlib.figure.Figure` built with the object-oriented API. Figures
are not registered with ``pyplot`` (no ``plt.show``, nothing to close, no double display in Jupyter)
unless you pass an ``ax`` of your own, in which case the plot is drawn into it and ``ax.figure`` is
returned. Save a figure with ``fig.savefig("map.png", dpi=120)`` or collect several into an HTML page
with :func:`xcebra.report.write_report`.

Neurons can be grouped by cell type (``cell_types``, one string per neuron): groups are ordered by
first appearance in ``cell_types`` and neurons keep their original order inside a group, so the
layout is stable from run to run. Each group is marked by a coloured strip and its name.

Attribution scores are compared within a block of the embedding, not across blocks: contrastive
learning identifies each block only up to an invertible linear map and blocks of different widths
live on different scales (docs: background, "Identifiable per block"). The block-level figures say so.

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

from __future__ import annotations

import numbers
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from matplotlib import colors as mcolors
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import MaxNLocator
from matplotlib.transforms import ScaledTranslation

from ._validation import check_int

__all__ = [
    "plot_raster",
    "plot_trajectory",
    "plot_training_log",
    "plot_embedding",
    "plot_attribution_map",
    "plot_block_map",
    "plot_ground_truth",
    "plot_cell_type_means",
    "plot_method_comparison",
]

#: colours of cell-type groups, in order of first appearance
_GROUP_COLORS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
                 "#bcbd22", "#17becf")
_MAP_CMAP = "viridis"
#: width of the cell-type strip and the gap between it and the image, in points
_STRIP_WIDTH = 5.0
_STRIP_GAP = 2.0


# ----------------------------------------------------------------------------------------------
# Validation helpers


def _new_figure(width: float, height: float) -> Figure:
    return Figure(figsize=(width, height), layout="constrained")


def _figure_and_axes(ax: Axes | None, width: float, height: float) -> tuple[Figure, Axes]:
    if ax is None:
        fig = _new_figure(width, height)
        return fig, fig.add_subplot()
    if not isinstance(ax, Axes):
        raise TypeError(f"ax must be a matplotlib Axes or None; got {type(ax).__name__}")
    return ax.figure, ax


def _array(name: str, value: Any, ndim: int, *, numeric: bool = True) -> np.ndarray:
    try:
        array = np.asarray(value)
    except Exception as error:  # noqa: BLE001 - any failure to convert is the caller's input
        raise TypeError(f"{name} must be array-like; got {type(value).__name__} ({error})") from error
    if numeric and (array.dtype == object or array.dtype.kind not in "biuf"):
        raise TypeError(f"{name} must hold numbers; got an array of dtype {array.dtype}")
    if array.ndim != ndim:
        raise ValueError(f"{name} must be a {ndim}-D array; got shape {array.shape}")
    return array


def _max_points(name: str, value: int | None) -> int | None:
    return None if value is None else check_int(name, value, minimum=1)


def _time_axis(time: Any, n_timepoints: int) -> tuple[np.ndarray, str]:
    """Time stamps and the axis label: seconds if ``time`` is given, else sample indices."""
    if time is None:
        return np.arange(n_timepoints, dtype=float), "time (sample)"
    time = _array("time", time, 1).astype(float)
    if len(time) != n_timepoints:
        raise ValueError(f"time has {len(time)} entries; expected {n_timepoints} (one per time point)")
    return time, "time (s)"


def _cell_type_groups(cell_types: Any, n_neurons: int, source: str) -> tuple[np.ndarray, list[tuple[str, int, int]]]:
    """Neuron order grouped by cell type (types by first appearance, stable inside a type) and the groups.

    Returns ``order`` (n_neurons,) and ``groups`` as (name, start, stop) positions in the new order.
    """
    types = np.asarray(cell_types)
    if types.ndim != 1:
        raise ValueError(f"cell_types must be a 1-D sequence with one entry per neuron; got shape {types.shape}")
    if len(types) != n_neurons:
        raise ValueError(f"cell_types has {len(types)} entries; expected {n_neurons} (one per neuron, {source})")
    names = [str(t) for t in types.tolist()]
    first_seen = list(dict.fromkeys(names))
    rank = {name: i for i, name in enumerate(first_seen)}
    order = np.argsort(np.array([rank[n] for n in names], dtype=int), kind="stable")
    groups, start = [], 0
    for name in first_seen:
        count = names.count(name)
        groups.append((name, start, start + count))
        start += count
    return order, groups


def _amap_arrays(amap: Any) -> tuple[np.ndarray, list[tuple[str, slice]], str]:
    """``amap.values`` as a float array, its blocks checked against the rows, and the method name."""
    for attribute in ("values", "blocks"):
        if not hasattr(amap, attribute):
            raise TypeError(f"amap must have a {attribute!r} attribute (an xcebra.AttributionMap); "
                            f"got {type(amap).__name__}")
    values = _array("amap.values", amap.values, 2).astype(float)
    blocks = _check_blocks("amap.blocks", amap.blocks, values.shape[0])
    return values, blocks, str(getattr(amap, "method", "") or "")


def _check_blocks(name: str, blocks: Any, n_rows: int) -> list[tuple[str, slice]]:
    try:
        checked = [(str(block_name), block_slice) for block_name, block_slice in blocks]
    except (TypeError, ValueError) as error:
        raise ValueError(f"{name} must be a list of (name, slice) pairs; got {blocks!r}") from error
    if not checked:
        raise ValueError(f"{name} must hold at least one (name, slice) pair; got an empty list")
    for block_name, block_slice in checked:
        if not isinstance(block_slice, slice):
            raise ValueError(f"{name}: block {block_name!r} must be given as a slice; got {block_slice!r}")
        start, stop, step = block_slice.indices(n_rows)
        if step != 1 or stop <= start or (block_slice.stop or 0) > n_rows:
            raise ValueError(f"{name}: block {block_name!r} is {block_slice}, which is not a non-empty range "
                             f"of the {n_rows} rows (dimensions) available")
    return checked


def _block_values(amap: Any, values: np.ndarray, blocks: list) -> np.ndarray:
    block_values = getattr(amap, "block_values", None)
    if block_values is None:
        return np.stack([np.sqrt(np.mean(values[s] ** 2, axis=0)) for _, s in blocks])
    block_values = _array("amap.block_values", block_values, 2).astype(float)
    expected = (len(blocks), values.shape[1])
    if block_values.shape != expected:
        raise ValueError(f"amap.block_values has shape {block_values.shape}; expected {expected} "
                         "(one row per block, one column per neuron)")
    return block_values


def _method_suffix(method: str) -> str:
    return f" ({method})" if method else ""


# ----------------------------------------------------------------------------------------------
# Drawing helpers


def _label_groups(ax: Axes, groups: list[tuple[str, int, int]], axis: str, line_color: str = "white") -> None:
    """Mark neuron groups along ``axis`` ("x" or "y") of an image: separators, coloured strips, names.

    The strips sit just outside the image, at a fixed distance in points, and the tick labels (group
    names with counts) sit beyond them.
    """
    fig = ax.figure
    centres = [(start + stop - 1) / 2 for _, start, stop in groups]
    labels = [f"{name}\n(n={stop - start})" if axis == "x" else f"{name} (n={stop - start})"
              for name, start, stop in groups]
    offset = (_STRIP_GAP + _STRIP_WIDTH / 2) / 72
    pad = _STRIP_GAP + _STRIP_WIDTH + 3
    for i, (_, start, stop) in enumerate(groups):
        color = _GROUP_COLORS[i % len(_GROUP_COLORS)]
        if axis == "x":
            transform = ax.get_xaxis_transform() + ScaledTranslation(0, -offset, fig.dpi_scale_trans)
            strip = Line2D([start - 0.5, stop - 0.5], [0, 0], transform=transform)
            if start > 0:
                ax.axvline(start - 0.5, color=line_color, linewidth=0.8)
        else:
            transform = ax.get_yaxis_transform() + ScaledTranslation(-offset, 0, fig.dpi_scale_trans)
            strip = Line2D([0, 0], [start - 0.5, stop - 0.5], transform=transform)
            if start > 0:
                ax.axhline(start - 0.5, color=line_color, linewidth=0.8)
        strip.set(color=color, linewidth=_STRIP_WIDTH, solid_capstyle="butt", clip_on=False)
        ax.add_line(strip)
    if axis == "x":
        ax.set_xticks(centres, labels)
        ax.tick_params(axis="x", length=0, pad=pad)
        tick_labels = ax.get_xticklabels()
    else:
        ax.set_yticks(centres, labels)
        ax.tick_params(axis="y", length=0, pad=pad)
        tick_labels = ax.get_yticklabels()
    for i, label in enumerate(tick_labels):
        label.set_color(_GROUP_COLORS[i % len(_GROUP_COLORS)])
    if axis == "x" and len(groups) > 6:
        for label in tick_labels:
            label.set(rotation=45, ha="right", rotation_mode="anchor")


def _label_blocks(ax: Axes, blocks: list[tuple[str, slice]], line_color: str = "white",
                  show_dims: bool = True) -> None:
    """Block names as y tick labels at the block centres, horizontal lines between blocks."""
    centres, labels = [], []
    for i, (name, block) in enumerate(blocks):
        start, stop = block.start or 0, block.stop
        centres.append((start + stop - 1) / 2)
        if show_dims:
            labels.append(f"{name}\ndims {start}–{stop - 1}" if stop - start > 1 else f"{name}\ndim {start}")
        else:
            labels.append(name)
        if i > 0:
            ax.axhline(start - 0.5, color=line_color, linewidth=2.0)
    ax.set_yticks(centres, labels)
    ax.tick_params(axis="y", length=0)


def _neuron_image(ax: Axes, matrix: np.ndarray, cell_types: Any, source: str, *, cmap: Any = _MAP_CMAP,
                  norm: Any = None, vmin: float | None = None, vmax: float | None = None,
                  line_color: str = "white"):
    """Draw a (rows, N) matrix with neurons on x, grouped by cell type when given; returns the image."""
    if cell_types is not None:
        order, groups = _cell_type_groups(cell_types, matrix.shape[1], source)
        matrix = matrix[:, order]
    image = ax.imshow(matrix, aspect="auto", interpolation="nearest", cmap=cmap, norm=norm, vmin=vmin, vmax=vmax)
    if cell_types is not None:
        _label_groups(ax, groups, "x", line_color=line_color)
        ax.set_xlabel("neuron (grouped by cell type)")
    else:
        ax.set_xlabel("neuron (index)")
    return image


def _robust_limits(data: np.ndarray) -> tuple[float, float]:
    finite = data[np.isfinite(data)]
    if finite.size == 0:
        return 0.0, 1.0
    low, high = float(finite.min()), float(np.percentile(finite, 99.5))
    if high <= low:
        high = float(finite.max())
    if high <= low:
        high = low + 1.0
    return low, high


# ----------------------------------------------------------------------------------------------
# Data


def plot_raster(neural: Any, *, cell_types: Any = None, time: Any = None, max_timepoints: int | None = 2000,
                ax: Axes | None = None, value_label: str = "activity (a.u.)") -> Figure:
    """Heatmap of neural activity, neurons (rows) by time (columns).

    Parameters
    ----------
    neural : array of shape (n_timepoints, n_neurons)
        Spike counts or rates.
    cell_types : sequence of str of length n_neurons, optional
        Group the rows by cell type (types in order of first appearance), with labelled bands.
    time : array of shape (n_timepoints,), optional
        Time stamps in seconds for the x axis; sample indices if omitted.
    max_timepoints : int or None, default=2000
        Show the first ``max_timepoints`` time points (a contiguous window, so individual events stay
        visible); ``None`` shows all of them.
    ax : matplotlib Axes, optional
        Draw into this axes (and add the colour bar next to it) instead of a new figure.
    value_label : str, default="activity (a.u.)"
        Colour bar label.

    Returns
    -------
    matplotlib.figure.Figure
    """
    neural = _array("neural", neural, 2).astype(float)
    n_timepoints, n_neurons = neural.shape
    if n_timepoints == 0 or n_neurons == 0:
        raise ValueError(f"neural must have at least one time point and one neuron; got shape {neural.shape}")
    max_timepoints = _max_points("max_timepoints", max_timepoints)
    stamps, time_label = _time_axis(time, n_timepoints)
    shown = n_timepoints if max_timepoints is None else min(n_timepoints, max_timepoints)
    matrix = neural[:shown].T
    groups = None
    if cell_types is not None:
        order, groups = _cell_type_groups(cell_types, n_neurons, "neural has that many columns")
        matrix = matrix[order]
    fig, ax = _figure_and_axes(ax, 9.0, max(3.0, min(7.0, 2.0 + 0.03 * n_neurons)))
    step = (stamps[1] - stamps[0]) if shown > 1 else 1.0
    extent = (stamps[0] - step / 2, stamps[shown - 1] + step / 2, n_neurons - 0.5, -0.5)
    vmin, vmax = _robust_limits(matrix)
    image = ax.imshow(matrix, aspect="auto", interpolation="nearest", cmap="Greys", vmin=vmin, vmax=vmax,
                      extent=extent)
    ax.set_xlabel(time_label)
    if groups is not None:
        _label_groups(ax, groups, "y", line_color="tab:red")
        ax.set_ylabel("neuron (grouped by cell type)")
    else:
        ax.set_ylabel("neuron (index)")
    window = f"first {shown} of {n_timepoints} time points" if shown < n_timepoints else f"{n_timepoints} time points"
    ax.set_title(f"Neural activity, {n_neurons} neurons ({window})")
    fig.colorbar(image, ax=ax, label=value_label, fraction=0.04, pad=0.02)
    return fig


def plot_trajectory(position: Any, *, time: Any = None, max_timepoints: int | None = 2000,
                    unit: str = "m") -> Figure:
    """2-D trajectory: the whole path as a thin line, the first time points as dots coloured by time.

    Parameters
    ----------
    position : array of shape (n_timepoints, 2)
    time : array of shape (n_timepoints,), optional
        Time stamps in seconds for the colour bar; sample indices if omitted.
    max_timepoints : int or None, default=2000
        Number of leading time points drawn as coloured dots (``None``: all).
    unit : str, default="m"
        Unit of ``position``, shown on the axes.

    Returns
    -------
    matplotlib.figure.Figure
    """
    position = _array("position", position, 2).astype(float)
    if position.shape[1] != 2 or position.shape[0] == 0:
        raise ValueError(f"position must have shape (n_timepoints, 2); got shape {position.shape}")
    max_timepoints = _max_points("max_timepoints", max_timepoints)
    stamps, time_label = _time_axis(time, len(position))
    shown = len(position) if max_timepoints is None else min(len(position), max_timepoints)
    fig = _new_figure(6.4, 5.4)
    ax = fig.add_subplot()
    ax.plot(position[:, 0], position[:, 1], color="0.55", linewidth=0.3, alpha=0.6, zorder=1)
    dots = ax.scatter(position[:shown, 0], position[:shown, 1], c=stamps[:shown], cmap="viridis", s=6,
                      linewidths=0, zorder=2)
    ax.set_aspect("equal", adjustable="datalim")
    suffix = f" ({unit})" if unit else ""
    ax.set_xlabel(f"position x{suffix}")
    ax.set_ylabel(f"position y{suffix}")
    coloured = f"first {shown} of {len(position)} points coloured" if shown < len(position) else "coloured by time"
    ax.set_title(f"Trajectory ({coloured})")
    fig.colorbar(dots, ax=ax, label=time_label, shrink=0.9)
    return fig


# ----------------------------------------------------------------------------------------------
# Training


def _log_ylabel(name: str) -> str:
    if name == "loss":
        return "total loss"
    if name.startswith("loss/"):
        return "InfoNCE loss (nats)"
    if name == "regularizer":
        return "Jacobian penalty (a.u.)"
    if name == "regularizer_weight":
        return "regularizer weight"
    if name.startswith("temperature"):
        return "temperature"
    return "value"


def plot_training_log(log: Mapping[str, Any]) -> Figure:
    """One panel per logged quantity against the training step.

    Parameters
    ----------
    log : dict of str to 1-D array
        For example ``model.log_`` with keys ``"loss"``, ``"loss/behavior"``, ``"loss/time"``,
        ``"regularizer"``, ``"regularizer_weight"``. Long curves are drawn raw (light) with a
        running mean on top (dark).

    Returns
    -------
    matplotlib.figure.Figure
    """
    if not isinstance(log, Mapping):
        raise TypeError(f"log must be a dict of name -> 1-D array; got {type(log).__name__}")
    if not log:
        raise ValueError("log must hold at least one logged quantity; got an empty dict")
    series = {str(name): _array(f"log[{name!r}]", values, 1).astype(float) for name, values in log.items()}
    n_panels = len(series)
    n_cols = min(4, n_panels)
    n_rows = -(-n_panels // n_cols)
    fig = _new_figure(3.4 * n_cols, 2.7 * n_rows)
    axes = fig.subplots(n_rows, n_cols, squeeze=False).ravel()
    for ax in axes[n_panels:]:
        fig.delaxes(ax)
    for ax, (name, values) in zip(axes, series.items()):
        steps = np.arange(len(values))
        if len(values) == 0:
            ax.text(0.5, 0.5, "no values logged", ha="center", va="center", transform=ax.transAxes, color="0.4")
        elif len(values) > 100:
            window = max(2, len(values) // 50)
            smooth = np.convolve(values, np.ones(window) / window, mode="valid")
            ax.plot(steps, values, color="tab:blue", alpha=0.3, linewidth=0.8)
            ax.plot(steps[window - 1:], smooth, color="tab:blue", linewidth=1.5)
        else:
            ax.plot(steps, values, color="tab:blue", linewidth=1.5, marker="." if len(values) < 30 else None)
        ax.set_title(name)
        ax.set_xlabel("step")
        ax.set_ylabel(_log_ylabel(name))
        ax.grid(alpha=0.3)
    fig.suptitle("Training log")
    return fig


# ----------------------------------------------------------------------------------------------
# Embedding


def _embedding_dims(dims: Any, name: str, width: int) -> list[int]:
    """Offsets inside a block to plot: the given ones (checked) or the first up to three."""
    if isinstance(dims, Mapping):
        dims = dims.get(name)
    if dims is None:
        return list(range(min(3, width)))
    try:
        offsets = [int(d) for d in dims]
    except (TypeError, ValueError) as error:
        raise ValueError(f"dims must be a sequence of 2 or 3 integers or a dict block name -> sequence; "
                         f"got {dims!r}") from error
    if len(offsets) not in (2, 3) or any(not 0 <= d < width for d in offsets) or len(set(offsets)) != len(offsets):
        raise ValueError(f"dims for block {name!r} must be 2 or 3 distinct offsets in [0, {width}) "
                         f"(positions inside the block); got {list(dims)}")
    return offsets


def plot_embedding(embedding: Any, blocks: Sequence[tuple[str, slice]], color: Any, *, dims: Any = None,
                   max_points: int | None = 10_000, color_label: str = "") -> Figure:
    """Scatter of each embedding block, one subplot per block, coloured by a label.

    Parameters
    ----------
    embedding : array of shape (n_timepoints, output_dim)
        The output of ``model.transform``.
    blocks : list of (name, slice)
        The blocks to draw (``model.blocks_``).
    color : array of shape (n_timepoints,)
        The label to colour by (e.g. ``position[:, 0]``).
    dims : sequence of 2 or 3 ints, or dict block name -> sequence, optional
        Positions inside each block to draw; default the first three (3-D), or two for a block of
        width two. A block of width one is drawn against ``color``.
    max_points : int or None, default=10_000
        Draw at most this many points, evenly spaced over the recording.
    color_label : str
        Colour bar label, e.g. ``"position x (m)"``.

    Returns
    -------
    matplotlib.figure.Figure
    """
    embedding = _array("embedding", embedding, 2).astype(float)
    blocks = _check_blocks("blocks", blocks, embedding.shape[1])
    color = np.asarray(color)
    if color.ndim == 2 and color.shape[1] == 1:
        color = color[:, 0]
    color = _array("color", color, 1).astype(float)
    if len(color) != len(embedding):
        raise ValueError(f"color has {len(color)} entries; expected {len(embedding)} (one per row of embedding)")
    max_points = _max_points("max_points", max_points)
    if max_points is not None and len(embedding) > max_points:
        rows = np.linspace(0, len(embedding) - 1, max_points).round().astype(int)
    else:
        rows = np.arange(len(embedding))
    color_label = color_label or "label"
    finite = color[np.isfinite(color)]
    norm = mcolors.Normalize(*(finite.min(), finite.max()) if finite.size else (0.0, 1.0))
    fig = _new_figure(4.6 * len(blocks) + 1.0, 4.4)
    axes, scatter = [], None
    for i, (name, block) in enumerate(blocks):
        start, stop, _ = block.indices(embedding.shape[1])
        offsets = _embedding_dims(dims, name, stop - start)
        columns = [start + d for d in offsets]
        points = embedding[rows][:, columns]
        common = dict(c=color[rows], cmap="cool", norm=norm, s=2, linewidths=0, alpha=0.8)
        if len(columns) == 3:
            ax = fig.add_subplot(1, len(blocks), i + 1, projection="3d")
            scatter = ax.scatter(points[:, 0], points[:, 1], points[:, 2], **common)
            ax.set_zlabel(f"dim {columns[2]}")
            for axis in (ax.xaxis, ax.yaxis, ax.zaxis):
                axis.set_major_locator(MaxNLocator(4))
            ax.tick_params(labelsize=7, pad=0)
        else:
            ax = fig.add_subplot(1, len(blocks), i + 1)
            if len(columns) == 2:
                scatter = ax.scatter(points[:, 0], points[:, 1], **common)
            else:
                scatter = ax.scatter(points[:, 0], color[rows], **common)
        ax.set_xlabel(f"dim {columns[0]}")
        ax.set_ylabel(f"dim {columns[1]}" if len(columns) > 1 else color_label)
        span = f"dims {start}–{stop - 1}" if stop - start > 1 else f"dim {start}"
        ax.set_title(f"{name} block ({span})")
        axes.append(ax)
    fig.colorbar(scatter, ax=axes, label=color_label, shrink=0.7, pad=0.05)
    fig.suptitle(f"Embedding, {len(rows)} of {len(embedding)} time points, coloured by {color_label}")
    return fig


# ----------------------------------------------------------------------------------------------
# Attribution maps


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
