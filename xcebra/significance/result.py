"""The result of a significance analysis: per (block, neuron) value, interval, p-value and decision; table, files, figures."""

from __future__ import annotations

import csv
import io
import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np
from matplotlib import colors as mcolors
from matplotlib.figure import Figure
from matplotlib.ticker import NullFormatter

from .._files import atomic_write_bytes
from .._validation import check_option
from ..viz import _axes

__all__ = ["SignificanceResult", "CSV_COLUMNS"]

#: the columns of ``significance.csv``, in order
CSV_COLUMNS = ("block", "neuron", "value", "ci_low", "ci_high", "p_value", "selected")


@dataclass(frozen=True, eq=False)
class SignificanceResult:
    """Per (block, neuron): value, interval, p-value and decision; returned by :func:`significance`.

    Attributes
    ----------
    block_names : tuple of str
        The blocks (``estimator.blocks_``), the rows of every (n_blocks, ...) array.
    values : ndarray of shape (n_blocks, n_neurons)
        Mean over seeds of the neuron's block attribution, each seed divided by its median shadow value
        in that block (1 = a typical non-driving neuron).
    ci_low, ci_high : ndarray of shape (n_blocks, n_neurons)
        Student-t interval over seeds at ``confidence``.
    p_values : ndarray of shape (n_blocks, n_neurons)
        Empirical p-value of ``values`` against ``null_values`` of the same block.
    selected_mask : ndarray of shape (n_blocks, n_neurons), bool
        Benjamini-Hochberg decisions at ``fdr``, per block.
    null_values : ndarray of shape (n_blocks, n_shadows)
        The shadows' statistic (mean over seeds of their normalised attribution): the null sample.
    seed_values : ndarray of shape (n_seeds, n_blocks, n_neurons)
        The real neurons' normalised attribution in each seed.
    seed_null : ndarray of shape (n_seeds, n_blocks, n_shadows)
        The shadows' normalised attribution in each seed.
    scales : ndarray of shape (n_seeds, n_blocks)
        The divisor of each seed and block (its median shadow attribution, in the map's units).
    consistency : dict of str -> float
        Per block, the mean pairwise Spearman correlation of the real-neuron maps across seeds.
    fdr, confidence : float
    method : str
        The attribution method.
    sources : ndarray of shape (n_shadows,), int
        The neuron each shadow slot copies.
    shifts : ndarray of shape (n_seeds, n_shadows), int
        The circular shift of each shadow in each seed (time points).
    random_states : tuple of int
        The estimator's ``random_state`` in each seed.
    timings : dict of str -> float
        ``seconds``: the analysis' wall time; ``fit_seconds``: worker seconds spent fitting (fits read from
        ``out_dir`` not counted); ``map_seconds``: worker seconds spent on the maps, which run on the workers
        while other fits go on, so the parts overlap and do not add up to ``seconds``; ``fits_read``: fits
        read from ``out_dir`` instead of fitted.
    """

    block_names: tuple
    values: np.ndarray
    ci_low: np.ndarray
    ci_high: np.ndarray
    p_values: np.ndarray
    selected_mask: np.ndarray
    null_values: np.ndarray
    seed_values: np.ndarray
    seed_null: np.ndarray
    scales: np.ndarray
    consistency: dict
    fdr: float
    confidence: float
    method: str
    sources: np.ndarray
    shifts: np.ndarray
    random_states: tuple
    timings: dict = field(default_factory=dict)

    @property
    def n_blocks(self) -> int:
        return len(self.block_names)

    @property
    def n_neurons(self) -> int:
        return int(self.values.shape[1])

    @property
    def n_seeds(self) -> int:
        return int(self.seed_values.shape[0])

    @property
    def n_shadows(self) -> int:
        return int(self.null_values.shape[1])

    @property
    def min_selectable(self) -> int:
        """The fewest neurons a block needs at the smallest p-value for BH to select any: ``ceil(N / (fdr (S + 1)))``.

        The p-values cannot go below ``1 / (n_shadows + 1)``; a block driven by fewer neurons than this
        selects nothing however strong they are. More shadows lower it.
        """
        return max(1, math.ceil(self.n_neurons / (self.fdr * (self.n_shadows + 1)) - 1e-9))

    def selected(self) -> dict[str, np.ndarray]:
        """{block name: indices of the selected neurons (sorted, int64)}."""
        return {name: np.flatnonzero(row).astype(np.int64) for name, row in zip(self.block_names, self.selected_mask)}

    def to_frame(self, cell_types: Sequence[str] | None = None):
        """One row per (block, neuron): block, neuron, value, ci_low, ci_high, p_value, selected (and cell_type).

        Parameters
        ----------
        cell_types : sequence of str of length n_neurons, optional
            Adds a ``cell_type`` column.

        Returns
        -------
        pandas.DataFrame with ``n_blocks * n_neurons`` rows, blocks in order, neurons 0-based.
        """
        import pandas as pd  # an optional dependency (the test extra), needed only here

        columns = self._columns(cell_types)
        return pd.DataFrame(columns, columns=list(columns))

    def _columns(self, cell_types: Sequence[str] | None) -> dict[str, np.ndarray]:
        n_blocks, n_neurons = self.values.shape
        columns = {
            "block": np.repeat(np.array(self.block_names, dtype=object), n_neurons),
            "neuron": np.tile(np.arange(n_neurons, dtype=np.int64), n_blocks),
            "value": self.values.ravel(), "ci_low": self.ci_low.ravel(), "ci_high": self.ci_high.ravel(),
            "p_value": self.p_values.ravel(), "selected": self.selected_mask.ravel(),
        }
        if cell_types is not None:
            columns["cell_type"] = np.tile(_check_cell_types(cell_types, n_neurons), n_blocks)
        return columns

    def save(self, directory: str | os.PathLike, *, cell_types: Sequence[str] | None = None,
             figures: bool = False) -> dict[str, Path]:
        """Write ``significance.csv`` and ``consistency.json`` into ``directory`` (created if needed).

        ``significance.csv`` has the columns ``block, neuron, value, ci_low, ci_high, p_value, selected``
        (:data:`CSV_COLUMNS`; ``selected`` as ``True`` / ``False``), plus ``cell_type`` when
        ``cell_types`` is given. ``consistency.json`` holds ``consistency`` ({block: mean pairwise
        Spearman}) and the settings: ``fdr``, ``confidence``, ``method``, ``n_seeds``, ``n_shadows``,
        ``min_selectable``, ``random_states``, ``selected`` ({block: neuron indices}) and ``timings``.
        With ``figures``, also ``significance_map.png`` and ``significance_intervals.png``.

        Returns
        -------
        dict of str -> Path: the files written, by name.
        """


        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        columns = self._columns(cell_types)
        text = io.StringIO()
        writer = csv.writer(text, lineterminator="\n")
        writer.writerow(list(columns))
        for i in range(len(columns["block"])):
            writer.writerow([_csv_cell(columns[name][i]) for name in columns])
        written = {"significance.csv": directory / "significance.csv",
                   "consistency.json": directory / "consistency.json"}
        atomic_write_bytes(written["significance.csv"], text.getvalue().encode())
        summary = {
            "consistency": {name: _json_float(value) for name, value in self.consistency.items()},
            "fdr": self.fdr, "confidence": self.confidence, "method": self.method, "n_seeds": self.n_seeds,
            "n_shadows": self.n_shadows, "min_selectable": self.min_selectable,
            "random_states": list(self.random_states),
            "selected": {name: idx.tolist() for name, idx in self.selected().items()},
            "timings": {k: _json_float(v) for k, v in self.timings.items()},
        }
        atomic_write_bytes(written["consistency.json"], (json.dumps(summary, indent=1) + "\n").encode())
        if figures:
            for name, figure in (("significance_map.png", self.plot_map(cell_types=cell_types)),
                                 ("significance_intervals.png", self.plot_intervals(cell_types=cell_types))):
                figure.savefig(directory / name, dpi=120)
                written[name] = directory / name
        return written

    # ------------------------------------------------------------------ figures
    def plot_map(self, ax: Any = None, *, cell_types: Sequence[str] | None = None):
        """Heatmap of ``values`` (blocks by neurons, log colour scale), selected entries marked with a dot.

        Parameters
        ----------
        ax : matplotlib Axes, optional
            Draw into it instead of a new figure.
        cell_types : sequence of str of length n_neurons, optional
            Group the neurons by cell type.

        Returns
        -------
        matplotlib.figure.Figure
        """


        values = self.values
        order = np.arange(self.n_neurons)
        groups = None
        if cell_types is not None:
            order, groups = _axes._cell_type_groups(_check_cell_types(cell_types, self.n_neurons), self.n_neurons,
                                                       "the result has that many neurons")
        fig, ax = _axes._figure_and_axes(ax, max(6.0, min(12.0, 3.0 + 0.08 * self.n_neurons)),
                                            max(2.8, 1.8 + 0.55 * self.n_blocks))
        positive = values[values > 0]
        low = float(positive.min()) if positive.size else 1e-3
        high = max(float(values.max()), low * 10)
        image = ax.imshow(np.clip(values[:, order], low, None), aspect="auto", interpolation="nearest",
                          cmap=_axes._MAP_CMAP, norm=mcolors.LogNorm(vmin=low, vmax=high))
        rows, cols = np.nonzero(self.selected_mask[:, order])
        ax.scatter(cols, rows, s=12, marker="o", facecolor="white", edgecolor="black", linewidths=0.6,
                   label=f"selected (BH, FDR {self.fdr:g})")
        ax.set_yticks(range(self.n_blocks), [f"{name}\n{int(row.sum())} selected"
                                             for name, row in zip(self.block_names, self.selected_mask)])
        ax.tick_params(axis="y", length=0)
        for row in range(1, self.n_blocks):
            ax.axhline(row - 0.5, color="white", linewidth=2.0)
        if groups is not None:
            _axes._label_groups(ax, groups, "x")
            ax.set_xlabel("neuron (grouped by cell type)")
        else:
            ax.set_xlabel("neuron (index)")
        ax.set_ylabel("block")
        ax.set_title(f"Attribution / median shadow ({self.method}, mean of {self.n_seeds} fits)")
        ax.legend(loc="upper right", fontsize="small", framealpha=0.8)
        colorbar = fig.colorbar(image, ax=ax, label="value (x median shadow)", fraction=0.04, pad=0.02)
        ticks = [t for t in (0.1, 0.2, 0.5, 1, 2, 5, 10, 20, 50, 100) if low <= t <= high]
        if len(ticks) < 3:  # a narrow range: a few ticks spread over it
            ticks = [float(f"{t:.2g}") for t in np.geomspace(low, high, 4)]
        colorbar.set_ticks(ticks, labels=[f"{t:g}" for t in ticks])
        colorbar.ax.yaxis.set_minor_formatter(NullFormatter())
        return fig

    def plot_intervals(self, cell_types: Sequence[str] | None = None, block: str | None = None, ax: Any = None):
        """Per-neuron value and interval, grouped by cell type, with the null's selection threshold.

        Parameters
        ----------
        cell_types : sequence of str of length n_neurons, optional
            Order and colour the neurons by cell type.
        block : str, optional
            One block; default: every block, one panel each (``ax`` then must be None).
        ax : matplotlib Axes, optional
            Draw the one ``block`` into it.

        Returns
        -------
        matplotlib.figure.Figure
            Filled markers are selected neurons; the dashed line is the largest shadow statistic (a value
            above it has the smallest possible p-value), the dotted line 1 (the median shadow). With at most
            60 neurons the x ticks name each neuron's index.
        """


        if block is not None:
            check_option("block", block, self.block_names)
            names = [block]
        else:
            names = list(self.block_names)
        if ax is not None and len(names) != 1:
            raise ValueError(f"ax draws one block; pass block= one of {', '.join(repr(n) for n in self.block_names)}")
        order = np.arange(self.n_neurons)
        groups = [("all neurons", 0, self.n_neurons)]
        if cell_types is not None:
            order, groups = _axes._cell_type_groups(_check_cell_types(cell_types, self.n_neurons), self.n_neurons,
                                                       "the result has that many neurons")
        if ax is None:
            fig = Figure(figsize=(max(6.0, min(12.0, 3.0 + 0.09 * self.n_neurons)), 2.9 * len(names)),
                         layout="constrained")
            axes = fig.subplots(len(names), 1, squeeze=False)[:, 0]
        else:
            fig, axes = _axes._figure_and_axes(ax, 0.0, 0.0)[0], [ax]  # checks that ax is an Axes
        for ax_, name in zip(axes, names):
            b = self.block_names.index(name)
            for g, (group, start, stop) in enumerate(groups):
                color = _axes._GROUP_COLORS[g % len(_axes._GROUP_COLORS)] if cell_types is not None else "0.2"
                x = np.arange(start, stop)
                neurons = order[start:stop]
                value = self.values[b, neurons]
                ax_.vlines(x, self.ci_low[b, neurons], self.ci_high[b, neurons], color=color, linewidth=1.0)
                chosen = self.selected_mask[b, neurons]
                ax_.scatter(x[chosen], value[chosen], s=18, color=color, zorder=3,
                            label=group if cell_types is not None else "selected")
                ax_.scatter(x[~chosen], value[~chosen], s=18, facecolor="white", edgecolor=color, zorder=3,
                            label=None if cell_types is not None else "not selected")
                if start > 0:
                    ax_.axvline(start - 0.5, color="0.8", linewidth=0.8)
            ax_.axhline(float(self.null_values[b].max()), color="0.3", linestyle="--", linewidth=0.9,
                        label="largest shadow")
            ax_.axhline(1.0, color="0.5", linestyle=":", linewidth=0.9)
            ax_.set_ylabel("value (x median shadow)")
            if self.n_neurons <= 60:  # positions follow the grouping: label them with the neuron's index
                ax_.set_xticks(np.arange(self.n_neurons), [str(j) for j in order], fontsize="x-small")
            ax_.set_title(f"{name}: {int(self.selected_mask[b].sum())} of {self.n_neurons} selected "
                          f"(FDR {self.fdr:g}), consistency {self.consistency[name]:.2f}", fontsize="medium")
            ax_.legend(loc="upper right", fontsize="x-small", ncols=min(4, len(groups) + 1), framealpha=0.8)
            ax_.set_xlim(-0.7, self.n_neurons - 0.3)
        axes[-1].set_xlabel("neuron index" + (" (grouped by cell type)" if cell_types is not None else ""))
        if ax is None:  # a caller's figure keeps its own title
            fig.suptitle(f"Per-neuron value, {self.confidence:.0%} interval over {self.n_seeds} seeds; "
                         "filled: selected", fontsize="medium")
        return fig

    def __repr__(self) -> str:
        counts = ", ".join(f"{name}: {int(row.sum())}/{self.n_neurons}"
                           for name, row in zip(self.block_names, self.selected_mask))
        return (f"SignificanceResult(method={self.method!r}, n_seeds={self.n_seeds}, n_shadows={self.n_shadows}, "
                f"fdr={self.fdr:g}, selected={{{counts}}})")


def _check_cell_types(cell_types: Any, n_neurons: int) -> np.ndarray:
    if isinstance(cell_types, str):
        raise TypeError(f"cell_types must be a sequence of strings, one per neuron; got the single string "
                        f"{cell_types!r}")
    types = np.asarray(list(cell_types), dtype=object)
    if types.ndim != 1 or len(types) != n_neurons:
        raise ValueError(f"cell_types must have one entry per neuron ({n_neurons}); got {len(types)}")
    return types.astype(str)


def _csv_cell(value: Any) -> str:
    if isinstance(value, (bool, np.bool_)):
        return "True" if value else "False"
    if isinstance(value, (float, np.floating)):
        return repr(float(value))
    return str(value)


def _json_float(value: Any) -> float | None:
    value = float(value)
    return value if math.isfinite(value) else None
