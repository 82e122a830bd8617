"""Shared pieces of the figures: argument checks, cell-type grouping, block labels, colours.

Private to :mod:`xcebra.viz`: the figure modules (:mod:`.recording`, :mod:`.maps`) import these helpers;
users call the figure functions.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.transforms import ScaledTranslation

from .._validation import check_int


#: colours of cell-type groups, in order of first appearance
_GROUP_COLORS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
                 "#bcbd22", "#17becf")
_MAP_CMAP = "viridis"
#: width of the cell-type strip and the gap between it and the image, in points
_STRIP_WIDTH = 5.0
_STRIP_GAP = 2.0


# ----------------------------------------------------------------------------------------------
# Checks


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
