"""Which neurons significantly drive each block: a shadow-neuron null, a seed ensemble, and FDR decisions.

An attribution map gives every neuron some positive number for every block; on a recording without a
ground truth nothing says which numbers are real. :func:`significance` turns a map into a decision per
(block, neuron), with an error rate, from two ingredients:

- **Shadow neurons, the null.** Each fit gets ``n_shadows`` extra input columns, each a circularly
  time-shifted copy of a real neuron (Boruta-style feature selection). A shadow keeps its source
  neuron's rate, distribution and autocorrelation, but the shift (at least a tenth of the recording and
  three autocorrelation times of the labels and of the neural data) breaks its relation to the labels,
  the latents and the other neurons; every shadow has its own shift, so the shadows together are not a
  shifted copy of the recording. What the fitted model attributes to the shadows, per block, is the
  attribution of a neuron that does not drive that block.
- **A seed ensemble.** ``n_seeds`` fits, clones of the estimator with ``random_state = base + m``, each
  with its own shadow shifts, all through :func:`xcebra.parallel.fit_many` (Dask workers, SLURM, or a
  local cluster); with ``out_dir`` a rerun reads the fits already written there instead of fitting
  them again.

Choices, and why
----------------
- **Four shadows per neuron** (``n_shadows = 4 * n_neurons``; slot ``k`` copies neuron ``k % n_neurons`` in
  every seed, only its shift changes). The null then holds the population's own mix of rates and
  autocorrelations, and a shadow slot's statistic is a mean over seeds of copies of *one* neuron, just
  as a real neuron's is: pooling shadows of different neurons across seeds would make the null means
  less dispersed than a real neuron's and the p-values too small. Why four and not one: the smallest
  p-value is ``1 / (n_shadows + 1)``, so Benjamini-Hochberg can select in a block only when at least
  ``n_neurons / (fdr * (n_shadows + 1))`` neurons reach it (:attr:`SignificanceResult.min_selectable`):
  20 at ``fdr = 0.05`` with one shadow per neuron, 5 with four. On two synthetic recordings (50 neurons,
  32 driving the time block; ``python -m benchmarks.quality.significance_calibration``, docs: background, "Significance
  of a map") one shadow per neuron selected no neuron of the time block, four selected 13.5 on average
  with no false discovery. The price: only the encoder's first layer sees the wider input (a training
  step of the demo's encoder took at most 20% longer with 5x the input columns, on a busy machine), but
  shadows are slow signals a time-contrastive block can use, so they shift that block's map more than
  one shadow per neuron does (the behaviour block's map and decoding were unchanged beyond seed noise).
- **Scale-free per seed: divide by the seed's median shadow value in the block.** Fits differ in the
  overall scale of their maps (the embedding's scale, the block's width, the regularizer), so raw
  values averaged over seeds would let one fit dominate. A value of 3 reads "three times the
  attribution of a typical non-driving neuron in this fit". The median is robust to a few shadows that
  happen to catch signal. Ranks would also be scale-free, but throw away the effect size that the
  interval reports.
- **Value: the mean over seeds of the normalised attribution; interval: Student's t over seeds**
  (``confidence``, default 95%). The interval covers the variability between fits (initialisation,
  batches, shadow shifts) *for this recording*; it says nothing about another recording of the same
  cells.
- **p-value: empirical, against the block's pooled shadow null, with the same statistic.**
  ``p = (1 + #{shadow statistics >= value}) / (1 + n_shadows)`` (ties count against the neuron), where a
  shadow slot's statistic is, like a real neuron's, its mean normalised value over the seeds. If a
  non-driving neuron's statistic is exchangeable with the shadows', this p-value is valid (never
  below uniform) at any sample size.
- **Decisions: Benjamini-Hochberg at ``fdr``, per block.** All p-values of a block share one null
  sample; such conformal p-values are positively dependent (PRDS; Bates, Candès, Lei, Romano and Sesia,
  *Testing for outliers with conformal p-values*, Ann. Statist. 2023), the condition under which BH
  controls the false discovery rate. Blocks answer different questions (and a block identifies its
  own latent only), so each block is its own family; the FDR holds per block, not over all blocks.
- **Consistency: the mean pairwise Spearman correlation of the block's real-neuron map across seeds**
  (the analogue for maps of CEBRA's consistency of embeddings). Ranks ignore each seed's scale.
- **Attribution method: ``"ing-block"`` by default**: each block's own Jacobian rows are inverted, at
  the rank its objective identifies, so a block's decision does not depend on how another block was
  learned (docs: design notes, "Attribution": the per-block inverse recovers the behaviour columns even
  when the time block also encodes behaviour).

What this does not test (docs: background, "Significance of a map"): a neuron that does not drive a
block but is correlated with one that does carries the driver's information and is selected too; the
shadows break cross-neuron structure, so the null is that of an *isolated* neuron.

Layering: this module uses :mod:`.estimator`, :mod:`.parallel` and :mod:`.plotting`; nothing in the
package imports it except the command line and the report.
"""

from __future__ import annotations

import json
import logging
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from ._validation import as_float_array, check_finite, check_float, check_int, check_option

__all__ = ["significance", "SignificanceResult", "empirical_p_values", "benjamini_hochberg", "consistency_scores",
           "seed_intervals", "normalise_by_null", "shadow_sources", "shadow_shifts", "minimum_shift", "add_shadows",
           "CSV_COLUMNS"]

logger = logging.getLogger("xcebra")

#: the columns of ``significance.csv``, in order
CSV_COLUMNS = ("block", "neuron", "value", "ci_low", "ci_high", "p_value", "selected")
#: the shortest shift as a share of the recording: shadows start at least this far from their source
_MIN_SHIFT_SHARE = 0.1
#: shadows per neuron by default (see the module docstring)
_SHADOWS_PER_NEURON = 4
#: the shortest shift in autocorrelation times: correlation ~ exp(-3) = 0.05 for an exponential decay
_AUTOCORRELATION_TIMES = 3


# ---------------------------------------------------------------------------------------------- statistics
def empirical_p_values(values: Any, null: Any) -> np.ndarray:
    """Right-tailed empirical p-values of ``values`` against a null sample, row by row.

    ``p = (1 + #{null >= value}) / (1 + n_null)``: ties count against the value, and the +1 makes the
    p-value valid (``P(p <= a) <= a``) whenever a null value is exchangeable with the null sample.

    Parameters
    ----------
    values : array of shape (..., n_values)
    null : array of shape (..., n_null)
        The same leading shape as ``values``; row ``i`` of ``values`` is tested against row ``i`` of
        ``null``.

    Returns
    -------
    ndarray of shape (..., n_values), float64, in ``[1 / (n_null + 1), 1]``.

    Examples
    --------
    >>> empirical_p_values([3.0, 1.0, 0.5], [0.2, 1.0, 2.0, 0.7])
    array([0.2, 0.6, 0.8])
    """
    values = np.asarray(values, dtype=np.float64)
    null = np.asarray(null, dtype=np.float64)
    if values.ndim < 1 or null.ndim != values.ndim or null.shape[:-1] != values.shape[:-1]:
        raise ValueError(f"values and null must have the same leading shape (..., n) and (..., n_null); got "
                         f"{values.shape} and {null.shape}")
    if null.shape[-1] < 1:
        raise ValueError(f"null must hold at least one value per row; got shape {null.shape}")
    check_finite("values", values, hint="Attribution values must be finite")
    check_finite("null", null, hint="Attribution values must be finite")
    flat_values = values.reshape(-1, values.shape[-1])
    flat_null = np.sort(null.reshape(-1, null.shape[-1]), axis=-1)
    n_null = flat_null.shape[-1]
    # null values >= v are those from the first index where the sorted null is >= v
    at_least = np.stack([n_null - np.searchsorted(row, v, side="left") for row, v in zip(flat_null, flat_values)])
    return ((1.0 + at_least) / (1.0 + n_null)).reshape(values.shape)


def benjamini_hochberg(p_values: Any, fdr: float) -> np.ndarray:
    """Benjamini-Hochberg step-up decisions at false discovery rate ``fdr``, row by row.

    With the p-values of a row sorted, ``p_(1) <= ... <= p_(n)``, the largest ``k`` with
    ``p_(k) <= fdr * k / n`` is found and the ``k`` smallest are rejected (selected); none if no ``k`` qualifies.

    Parameters
    ----------
    p_values : array of shape (..., n)
        Each row is one family of hypotheses.
    fdr : float in (0, 1)

    Returns
    -------
    ndarray of shape (..., n), bool: True where the hypothesis is rejected.

    Examples
    --------
    >>> benjamini_hochberg([0.01, 0.03, 0.02, 0.5], 0.05)
    array([ True,  True,  True, False])
    """
    fdr = check_float("fdr", fdr, minimum=0.0, strict=True, maximum=1.0)
    p = np.asarray(p_values, dtype=np.float64)
    if p.ndim < 1 or p.shape[-1] < 1:
        raise ValueError(f"p_values must have shape (..., n) with n >= 1; got {p.shape}")
    if np.any(~np.isfinite(p)) or np.any((p < 0) | (p > 1)):
        raise ValueError("p_values must be finite numbers in [0, 1]")
    flat = p.reshape(-1, p.shape[-1])
    n = flat.shape[-1]
    thresholds = fdr * np.arange(1, n + 1) / n
    selected = np.zeros(flat.shape, dtype=bool)
    for row, out in zip(flat, selected):
        order = np.argsort(row, kind="stable")
        passing = np.flatnonzero(row[order] <= thresholds)
        if len(passing):
            out[order[:passing[-1] + 1]] = True
    return selected.reshape(p.shape)


def normalise_by_null(values: Any, null: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Divide each (seed, block) row of real and shadow values by that row's median shadow value.

    A row whose shadows are mostly exactly zero (e.g. an output clip holding the block) is divided by
    its mean shadow value instead; a row whose shadows are all zero keeps its scale (divisor 1).

    Parameters
    ----------
    values : array of shape (n_seeds, n_blocks, n_neurons)
        Attribution of the real neurons, per seed and block.
    null : array of shape (n_seeds, n_blocks, n_shadows)
        Attribution of the shadows, per seed and block.

    Returns
    -------
    values, null : float64 arrays of the input shapes, divided
    scale : ndarray of shape (n_seeds, n_blocks), the divisors
    """
    values = np.asarray(values, dtype=np.float64)
    null = np.asarray(null, dtype=np.float64)
    if values.ndim != 3 or null.ndim != 3 or values.shape[:2] != null.shape[:2]:
        raise ValueError(f"values and null must have shapes (n_seeds, n_blocks, n) and (n_seeds, n_blocks, n_null); "
                         f"got {values.shape} and {null.shape}")
    scale = np.median(null, axis=-1)
    fallback = np.mean(null, axis=-1)
    scale = np.where(scale > 0, scale, np.where(fallback > 0, fallback, 1.0))
    return values / scale[..., None], null / scale[..., None], scale


def seed_intervals(values: Any, confidence: float = 0.95) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mean over seeds and its Student-t confidence interval.

    Parameters
    ----------
    values : array of shape (n_seeds, ...), n_seeds >= 2
    confidence : float in (0, 1), default 0.95

    Returns
    -------
    mean, low, high : arrays of shape (...): ``mean -/+ t_{(1 + confidence) / 2, n_seeds - 1} * sd / sqrt(n_seeds)``
    (``sd`` with ``ddof=1``).
    """
    from scipy import stats

    values = np.asarray(values, dtype=np.float64)
    confidence = check_float("confidence", confidence, minimum=0.0, strict=True, maximum=1.0 - 1e-12)
    if values.ndim < 1 or values.shape[0] < 2:
        raise ValueError(f"values must have at least two seeds along axis 0; got shape {values.shape}")
    n = values.shape[0]
    mean = values.mean(axis=0)
    half = stats.t.ppf(0.5 + confidence / 2, df=n - 1) * values.std(axis=0, ddof=1) / math.sqrt(n)
    return mean, mean - half, mean + half


def consistency_scores(values: Any) -> np.ndarray:
    """Mean pairwise Spearman rank correlation across seeds, per block.

    Parameters
    ----------
    values : array of shape (n_seeds, n_blocks, n_neurons), n_seeds >= 2
        A map per seed (any scale: ranks only).

    Returns
    -------
    ndarray of shape (n_blocks,): the mean over the ``n_seeds * (n_seeds - 1) / 2`` pairs of seeds of the
    Spearman correlation of the block's rows; NaN where some seed's row is constant (no ranking).
    """
    from scipy.stats import rankdata

    values = np.asarray(values, dtype=np.float64)
    if values.ndim != 3 or values.shape[0] < 2 or values.shape[2] < 2:
        raise ValueError(f"values must have shape (n_seeds >= 2, n_blocks, n_neurons >= 2); got {values.shape}")
    ranks = rankdata(values, axis=-1)
    centred = ranks - ranks.mean(axis=-1, keepdims=True)
    norms = np.sqrt((centred ** 2).sum(axis=-1))
    n_seeds = values.shape[0]
    scores = np.zeros(values.shape[1])
    for a in range(n_seeds):
        for b in range(a + 1, n_seeds):
            with np.errstate(invalid="ignore", divide="ignore"):
                scores += (centred[a] * centred[b]).sum(axis=-1) / (norms[a] * norms[b])
    return scores / (n_seeds * (n_seeds - 1) / 2)


# ---------------------------------------------------------------------------------------------- shadows
def minimum_shift(n_timepoints: int, window: int, series: Sequence[np.ndarray] = ()) -> int:
    """The shortest circular shift of a shadow: far enough that it no longer follows its source.

    The largest of a tenth of the recording, the encoder's window, and three autocorrelation times
    (:func:`xcebra.sampling.label_autocorrelation_time`) of each array in ``series`` (labels, neural
    data); at most ``n_timepoints // 2``, the farthest a circular shift can go (a warning says when the
    autocorrelation asks for more: the shadows then stay correlated with their sources, and the null is
    conservative).
    """
    from .sampling import label_autocorrelation_time

    shift = max(math.ceil(_MIN_SHIFT_SHARE * n_timepoints), int(window))
    for array in series:
        array = np.asarray(array)
        if array.dtype.kind in "iub":  # class labels: their runs set the time scale
            array = array.astype(np.float64)
        shift = max(shift, _AUTOCORRELATION_TIMES * label_autocorrelation_time(array))
    if shift > n_timepoints // 2:
        logger.warning("significance: the recording (%d time points) is shorter than 2 x %d, the shift that "
                       "decorrelates its slowest label or neurons; shadows are shifted by up to %d and stay partly "
                       "correlated with their sources, so the null is conservative", n_timepoints, shift,
                       n_timepoints // 2)
        shift = n_timepoints // 2
    return int(shift)


def shadow_sources(n_neurons: int, n_shadows: int, random_state: int) -> np.ndarray:
    """The real neuron each shadow slot copies, the same in every seed.

    Slot ``k`` copies neuron ``k % n_neurons`` for every full round of ``n_neurons`` slots; the slots
    beyond the last full round copy a random subset of the neurons (sorted, drawn from ``random_state``).

    Returns
    -------
    ndarray of shape (n_shadows,), int64.
    """
    rng = np.random.default_rng([random_state, 0x5AD0])
    rounds, rest = divmod(n_shadows, n_neurons)
    extra = np.sort(rng.choice(n_neurons, size=rest, replace=False))
    return np.concatenate([np.tile(np.arange(n_neurons), rounds), extra]).astype(np.int64)


def shadow_shifts(n_timepoints: int, n_shadows: int, min_shift: int, random_state: int, seed_index: int) -> np.ndarray:
    """Circular shifts of the shadows of one seed, uniform in ``[min_shift, n_timepoints - min_shift]``.

    Drawn from ``np.random.default_rng([random_state, seed_index])``: each seed has its own shifts, and
    the same arguments give the same shifts (so a rerun finds its fits in ``out_dir``).

    Returns
    -------
    ndarray of shape (n_shadows,), int64.
    """
    if not 1 <= min_shift <= n_timepoints - min_shift:
        raise ValueError(f"min_shift must be in [1, n_timepoints / 2] = [1, {n_timepoints // 2}]; got {min_shift}")
    rng = np.random.default_rng([random_state, seed_index])
    return rng.integers(min_shift, n_timepoints - min_shift, size=n_shadows, endpoint=True).astype(np.int64)


def add_shadows(neural: np.ndarray, sources: np.ndarray, shifts: np.ndarray) -> np.ndarray:
    """``neural`` with the shadow columns appended: column ``N + k`` is ``neural[(t - shifts[k]) % T, sources[k]]``.

    Parameters
    ----------
    neural : ndarray of shape (T, N)
    sources, shifts : int arrays of shape (n_shadows,)

    Returns
    -------
    ndarray of shape (T, N + n_shadows), the dtype of ``neural``.
    """
    n_timepoints = neural.shape[0]
    rows = (np.arange(n_timepoints)[:, None] - shifts[None, :]) % n_timepoints
    return np.concatenate([neural, neural[rows, sources[None, :]]], axis=1)


# ---------------------------------------------------------------------------------------------- result
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
        Seconds spent fitting (``fit_seconds``, fits read from ``out_dir`` included) and attributing
        (``map_seconds``).
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
        import pandas as pd

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
        import csv
        import io

        from ._files import atomic_write_bytes

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
        from matplotlib import colors as mcolors
        from matplotlib.ticker import NullFormatter

        from . import plotting

        values = self.values
        order = np.arange(self.n_neurons)
        groups = None
        if cell_types is not None:
            order, groups = plotting._cell_type_groups(_check_cell_types(cell_types, self.n_neurons), self.n_neurons,
                                                       "the result has that many neurons")
        fig, ax = plotting._figure_and_axes(ax, max(6.0, min(12.0, 3.0 + 0.08 * self.n_neurons)),
                                            max(2.8, 1.8 + 0.55 * self.n_blocks))
        positive = values[values > 0]
        low = float(positive.min()) if positive.size else 1e-3
        high = max(float(values.max()), low * 10)
        image = ax.imshow(np.clip(values[:, order], low, None), aspect="auto", interpolation="nearest",
                          cmap=plotting._MAP_CMAP, norm=mcolors.LogNorm(vmin=low, vmax=high))
        rows, cols = np.nonzero(self.selected_mask[:, order])
        ax.scatter(cols, rows, s=12, marker="o", facecolor="white", edgecolor="black", linewidths=0.6,
                   label=f"selected (BH, FDR {self.fdr:g})")
        ax.set_yticks(range(self.n_blocks), [f"{name}\n{int(row.sum())} selected"
                                             for name, row in zip(self.block_names, self.selected_mask)])
        ax.tick_params(axis="y", length=0)
        for row in range(1, self.n_blocks):
            ax.axhline(row - 0.5, color="white", linewidth=2.0)
        if groups is not None:
            plotting._label_groups(ax, groups, "x")
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
        from matplotlib.figure import Figure

        from . import plotting

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
            order, groups = plotting._cell_type_groups(_check_cell_types(cell_types, self.n_neurons), self.n_neurons,
                                                       "the result has that many neurons")
        if ax is None:
            fig = Figure(figsize=(max(6.0, min(12.0, 3.0 + 0.09 * self.n_neurons)), 2.9 * len(names)),
                         layout="constrained")
            axes = fig.subplots(len(names), 1, squeeze=False)[:, 0]
        else:
            fig, axes = plotting._figure_and_axes(ax, 0.0, 0.0)[0], [ax]  # checks that ax is an Axes
        for ax_, name in zip(axes, names):
            b = self.block_names.index(name)
            for g, (group, start, stop) in enumerate(groups):
                color = plotting._GROUP_COLORS[g % len(plotting._GROUP_COLORS)] if cell_types is not None else "0.2"
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


# ---------------------------------------------------------------------------------------------- front door
def significance(estimator: Any, neural: Any, *, n_seeds: int = 5, n_shadows: int | None = None, fdr: float = 0.05,
                 method: str = "ing-block", confidence: float = 0.95, num_samples: int | None = None,
                 client: Any = None, out_dir: str | os.PathLike | None = None, random_state: int = 0,
                 verbose: bool | None = None, **labels: Any) -> SignificanceResult:
    """Which neurons significantly drive each block: values, intervals, p-values and FDR decisions.

    Fits ``n_seeds`` clones of ``estimator`` (``random_state = base + m``, where ``base`` is the
    estimator's ``random_state``, or ``random_state`` when that is None) on ``neural`` with
    ``n_shadows`` shadow neurons appended (circularly shifted copies of real neurons, new shifts in
    each seed), attributes each fit with ``method``, and tests every (block, neuron) against the
    block's shadows. The module docstring says why each choice was made.

    Parameters
    ----------
    estimator : XCEBRA
        The configuration; not changed (fitted or not: only its parameters are used).
    neural : array of shape (T, N)
        Read whole.
    n_seeds : int, default 5
        Fits in the ensemble (>= 2).
    n_shadows : int, optional
        Shadow neurons per fit; default 4 N (four per neuron). The smallest p-value is ``1 / (n_shadows + 1)``.
    fdr : float, default 0.05
        False discovery rate of the Benjamini-Hochberg decisions, per block.
    method : str, default "ing-block"
        Any method of :meth:`xcebra.XCEBRA.attribution_map`.
    confidence : float, default 0.95
        Level of the intervals over seeds.
    num_samples : int, optional
        Attribute this many time points per fit (drawn uniformly) instead of all of them.
    client : distributed.Client, optional
        Where the fits run (e.g. a SLURM cluster's client); default: a local cluster for this call
        (:func:`xcebra.parallel.local_client`; call this under ``if __name__ == "__main__":`` in a script).
    out_dir : path, optional
        Write each fit there (:func:`xcebra.parallel.fit_many`); a rerun with the same arguments reads
        them instead of fitting again.
    random_state : int, default 0
        Seeds the shadows (which neurons, which shifts), and the fits when the estimator's is None.
    verbose : bool, optional
        Progress bars; default: ``estimator.verbose``.
    **labels : arrays of shape (T,) or (T, d)
        The labels the objectives use, as for ``fit``.

    Returns
    -------
    SignificanceResult

    Raises
    ------
    ValueError, TypeError
        A bad argument (the message names it, its value and what is expected), or data that ``fit``
        would refuse.
    xcebra.parallel.FitManyError
        Some fits failed (the finished ones are in ``out_dir``, and a rerun fits only the rest).

    Examples
    --------
    >>> result = significance(model, data.neural, position=data.behavior, n_seeds=5)  # doctest: +SKIP
    >>> result.selected()["behavior"]  # doctest: +SKIP
    >>> result.to_frame().head()  # doctest: +SKIP
    """
    import time

    from tqdm.auto import tqdm

    from .attribution import METHODS
    from .data import TimeSeries
    from .estimator import XCEBRA

    if not isinstance(estimator, XCEBRA):
        raise TypeError(f"estimator must be an xcebra.XCEBRA; got {type(estimator).__name__}")
    estimator._validate_params()
    n_seeds = check_int("n_seeds", n_seeds, minimum=2)
    fdr = check_float("fdr", fdr, minimum=0.0, strict=True, maximum=1.0)
    if fdr >= 1.0:
        raise ValueError(f"fdr must be < 1; got {fdr}")
    confidence = check_float("confidence", confidence, minimum=0.0, strict=True, maximum=1.0)
    if confidence >= 1.0:
        raise ValueError(f"confidence must be < 1; got {confidence}")
    check_option("method", method, METHODS)
    random_state = check_int("random_state", random_state, minimum=0)
    if num_samples is not None:
        num_samples = check_int("num_samples", num_samples, minimum=1)
    if verbose is not None and not isinstance(verbose, bool):
        raise TypeError(f"verbose must be None or a bool; got {verbose!r}")
    verbose = bool(estimator.verbose) if verbose is None else verbose
    neural = as_float_array("neural", neural, (2,), "(time points, neurons)")
    data = TimeSeries.from_arrays(neural, **labels)  # NaN, shapes, lengths: one clear error before any fit
    estimator._check_labels_for_objectives(data, labels)
    n_timepoints, n_neurons = neural.shape
    if n_neurons < 2:
        raise ValueError(f"neural must have at least 2 neurons to rank them; got shape {neural.shape}")
    n_shadows = _SHADOWS_PER_NEURON * n_neurons if n_shadows is None else check_int("n_shadows", n_shadows, minimum=1)
    labels = {name: np.asarray(value) for name, value in labels.items()}

    window = _window(estimator.model)
    min_shift = minimum_shift(n_timepoints, window, [*labels.values(), neural])
    sources = shadow_sources(n_neurons, n_shadows, random_state)
    base = estimator.random_state if estimator.random_state is not None else random_state
    seeds = tuple(int(base) + m for m in range(n_seeds))
    shifts = np.stack([shadow_shifts(n_timepoints, n_shadows, min_shift, random_state, m) for m in range(n_seeds)])
    logger.info("significance: %d seeds, %d shadows shifted by %d..%d of %d time points", n_seeds, n_shadows,
                min_shift, n_timepoints - min_shift, n_timepoints)

    started = time.perf_counter()
    models = _fit_seeds(estimator, neural, labels, sources, shifts, seeds, client, out_dir, verbose)
    fitted = time.perf_counter()
    real, null = [], []
    for model, seed_shifts in tqdm(list(zip(models, shifts)), disable=not verbose, desc="significance maps",
                                   unit="fit", dynamic_ncols=True):
        amap = model.attribution_map(add_shadows(neural, sources, seed_shifts), method=method,
                                     num_samples=num_samples, verbose=False)
        block_values = amap.block_values
        real.append(block_values[:, :n_neurons])
        null.append(block_values[:, n_neurons:])
    block_names = tuple(name for name, _ in models[0].blocks_)
    result = _summarise(np.stack(real), np.stack(null), block_names, fdr=fdr, confidence=confidence)
    timings = {"fit_seconds": fitted - started, "map_seconds": time.perf_counter() - fitted}
    return SignificanceResult(**result, fdr=fdr, confidence=confidence, method=method, sources=sources,
                              shifts=shifts, random_states=seeds, timings=timings)


def _summarise(real: np.ndarray, null: np.ndarray, block_names: tuple, *, fdr: float, confidence: float) -> dict:
    """The statistics of raw block maps: real (n_seeds, n_blocks, N), null (n_seeds, n_blocks, S)."""
    seed_values, seed_null, scales = normalise_by_null(real, null)
    values, ci_low, ci_high = seed_intervals(seed_values, confidence)
    null_values = seed_null.mean(axis=0)
    p_values = empirical_p_values(values, null_values)
    consistency = dict(zip(block_names, consistency_scores(real).tolist()))
    return dict(block_names=block_names, values=values, ci_low=ci_low, ci_high=ci_high, p_values=p_values,
                selected_mask=benjamini_hochberg(p_values, fdr), null_values=null_values, seed_values=seed_values,
                seed_null=seed_null, scales=scales, consistency=consistency)


def _window(model: str) -> int:
    from .models import make_encoder

    return int(make_encoder(model, 1, 2, 1).window)  # the window depends on the architecture only


def _fit_seeds(estimator: Any, neural: np.ndarray, labels: Mapping[str, np.ndarray], sources: np.ndarray,
               shifts: np.ndarray, seeds: Sequence[int], client: Any, out_dir: Any, verbose: bool) -> list:
    """One fit per seed, each on the recording with its own shadows, as one :func:`xcebra.parallel.fit_many`
    call (each job its ``random_state``), so that the fits spread over the workers together."""
    from . import parallel

    jobs = [{"neural": add_shadows(neural, sources, shifts[m]), **labels} for m in range(len(seeds))]
    return parallel.fit_many(estimator, jobs, client=client, out_dir=out_dir, verbose=verbose,
                             params=[{"random_state": seed} for seed in seeds])
