"""Figures across sessions: the consistency matrix of several recordings' embeddings.

Each function returns a :class:`matplotlib.figure.Figure` built with the object-oriented API (see
:mod:`xcebra.viz`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import matplotlib
import numpy as np
from matplotlib import colors as mcolors
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from .._validation import check_float
from ..metrics import consistency_summary
from ._axes import _MAP_CMAP, _array, _figure_and_axes

__all__ = ["plot_consistency_matrix", "consistency_report"]

#: cells whose colour is darker than this relative luminance get white text, the others black
_DARK_LUMINANCE = 0.45
_NAN_COLOR = "#f2f2f2"
_NAN_TEXT = "n/a"


def plot_consistency_matrix(matrix: Any, *, session_names: Sequence[str] | None = None, title: str | None = None,
                            ax: Axes | None = None, vmin: float = 0.0, vmax: float = 1.0) -> Figure:
    """Heatmap of a consistency matrix, with its value written in every cell.

    Parameters
    ----------
    matrix : array of shape (S, S)
        Entry [i, j]: how well session i's embedding predicts session j's (an R2, dimensionless), e.g.
        from :func:`xcebra.metrics.session_consistency`. NaN entries are drawn in light grey and
        marked ``"n/a"``.
    session_names : sequence of S str, optional
        Tick labels of the rows and columns; default the session indices ``"0"``, ``"1"``, ...
    title : str, optional
        Default ``"Consistency across sessions"`` with the mean of the off-diagonal entries.
    ax : matplotlib Axes, optional
        Draw into this axes (and add the colour bar next to it) instead of a new figure.
    vmin, vmax : float, default=0.0, 1.0
        Range of the colour scale. Values outside it get the end colours (the colour bar shows an
        arrow); the numbers in the cells are always the values themselves.

    Returns
    -------
    matplotlib.figure.Figure
        The new figure, or ``ax.figure`` when ``ax`` is given.

    Examples
    --------
    >>> import numpy as np
    >>> fig = plot_consistency_matrix(np.array([[1.0, 0.92], [0.88, 1.0]]), session_names=["rat A", "rat B"])
    >>> [text.get_text() for text in fig.axes[0].texts]
    ['1.00', '0.92', '0.88', '1.00']
    """
    values = _square(matrix)
    n_sessions = values.shape[0]
    names = _names(session_names, n_sessions)
    vmin = check_float("vmin", vmin)
    vmax = check_float("vmax", vmax)
    if vmin >= vmax:
        raise ValueError(f"vmin must be < vmax ({vmax}); got vmin={vmin}")
    side = max(3.5, min(10.0, 1.8 + 0.65 * n_sessions))
    fig, ax = _figure_and_axes(ax, side + 1.0, side)
    cmap = matplotlib.colormaps[_MAP_CMAP].with_extremes(bad=_NAN_COLOR)
    norm = mcolors.Normalize(vmin=vmin, vmax=vmax)
    image = ax.imshow(values, cmap=cmap, norm=norm, interpolation="nearest")
    _annotate(ax, values, cmap, norm)
    ax.set_xticks(range(n_sessions), names, rotation=45 if max(map(len, names)) > 3 else 0,
                  ha="right" if max(map(len, names)) > 3 else "center", rotation_mode="anchor")
    ax.set_yticks(range(n_sessions), names)
    ax.tick_params(length=0)
    ax.set_xlabel("to session")
    ax.set_ylabel("from session")
    ax.set_title(title if title is not None else _default_title(values))
    fig.colorbar(image, ax=ax, label="R2", fraction=0.046, pad=0.04, extend=_extend(values, vmin, vmax))
    return fig


def _square(matrix: Any) -> np.ndarray:
    values = _array("matrix", matrix, 2).astype(float)
    if values.shape[0] != values.shape[1] or values.shape[0] == 0:
        raise ValueError(f"matrix must be a non-empty square (S, S) array, one row and one column per session; "
                         f"got shape {values.shape}")
    if np.isinf(values).any():
        raise ValueError("matrix must hold finite values or NaN; got an infinite entry at "
                         f"{tuple(int(i) for i in np.argwhere(np.isinf(values))[0])}")
    return values


def _names(session_names: Sequence[str] | None, n_sessions: int) -> list[str]:
    if session_names is None:
        return [str(i) for i in range(n_sessions)]
    if isinstance(session_names, str) or not isinstance(session_names, (Sequence, np.ndarray)):
        raise TypeError(f"session_names must be a sequence of {n_sessions} str; got {type(session_names).__name__}")
    if len(session_names) != n_sessions:
        raise ValueError(f"session_names has {len(session_names)} entries; expected {n_sessions} (one per row and "
                         "column of matrix)")
    return [str(name) for name in session_names]


def _annotate(ax: Axes, values: np.ndarray, cmap: mcolors.Colormap, norm: mcolors.Normalize) -> None:
    """Write each value in its cell, in white on dark colours and black on light ones."""
    n_sessions = values.shape[0]
    fontsize = max(5.0, min(10.0, 60.0 / n_sessions))
    for (row, column), value in np.ndenumerate(values):
        if np.isnan(value):
            text, color = _NAN_TEXT, "0.35"
        else:
            red, green, blue, _ = cmap(norm(value))
            dark = 0.2126 * red + 0.7152 * green + 0.0722 * blue < _DARK_LUMINANCE
            text, color = f"{value:.2f}", "white" if dark else "black"
        ax.text(column, row, text, ha="center", va="center", color=color, fontsize=fontsize)


def _default_title(values: np.ndarray) -> str:
    if values.shape[0] < 2:
        return "Consistency across sessions"
    mean = consistency_summary(values)
    return f"Consistency across sessions (mean off-diagonal R2 {_NAN_TEXT if np.isnan(mean) else f'{mean:.2f}'})"


def _extend(values: np.ndarray, vmin: float, vmax: float) -> str:
    """Which ends of the colour bar get an arrow: the ends that some value lies beyond."""
    below = bool(np.any(values[~np.isnan(values)] < vmin))
    above = bool(np.any(values[~np.isnan(values)] > vmax))
    return {(False, False): "neither", (True, False): "min", (False, True): "max", (True, True): "both"}[below, above]


def consistency_report(matrices: dict[str, Any], session_names: Sequence[str] | None = None
                       ) -> tuple[dict[str, tuple[str, Figure]], dict[str, Any]]:
    """The figures and report section of consistency matrices, one per label: ``{label: (S, S) array}``.

    Returns ({name: (caption, Figure)}, section), as :func:`xcebra.viz.analysis.significance_report`.
    """
    figures = {f"consistency_{name}": (
        f"Consistency across sessions of the block aligned by {name}: R2 of the row session's label-binned mean "
        "embedding mapping linearly onto the column session's.",
        plot_consistency_matrix(matrix, session_names=session_names, title=f"consistency by {name}"))
        for name, matrix in matrices.items()}
    rows = [{"label": name, "mean off-diagonal R2": consistency_summary(matrix),
             "lowest off-diagonal R2": float(np.nanmin(np.where(np.eye(len(matrix), dtype=bool), np.nan, matrix)))}
            for name, matrix in matrices.items()]
    section = {"heading": "Consistency across sessions",
               "text": "Each session's block embedding, averaged within bins of the label (10 per dimension, shared "
                       "by all sessions), regressed linearly on another session's (docs: the multi-session guide). "
                       "1: the sessions embed the label the same way up to a linear map.",
               "figures": [figure for figure in figures.values()], "table": rows}
    return figures, section
