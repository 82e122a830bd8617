"""Figures of a recording and of a fit: raster, trajectory, training log, embedding.

Each function returns a :class:`matplotlib.figure.Figure` built with the object-oriented API (see
:mod:`xcebra.viz`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from matplotlib import colors as mcolors
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from ._axes import (_new_figure, _figure_and_axes, _array, _max_points, _time_axis, _cell_type_groups, _check_blocks,
                    _label_groups, _robust_limits)

__all__ = ["plot_raster", "plot_trajectory", "plot_training_log", "plot_embedding"]


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
