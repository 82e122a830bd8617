"""Scores of an attribution map against a cell-type hypothesis (:func:`test_hypothesis`), per block and per entry."""

from __future__ import annotations

import dataclasses
import logging
import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from .. import metrics
from .._validation import check_finite
from .ground_truth import HypothesisMap, hypothesis_map

__all__ = ["HypothesisResult", "test_hypothesis"]

logger = logging.getLogger("xcebra")


@dataclasses.dataclass(frozen=True, eq=False)
class HypothesisResult:
    """How well an attribution map agrees with a cell-type hypothesis; returned by :func:`test_hypothesis`.

    All scores use only the blocks the hypothesis mentions (``map.scored_blocks``).

    Attributes
    ----------
    block_auc : float
        Mean of ``per_block_auc`` over the scored blocks whose truth has both classes (NaN if none).
        The score to decide on (invariant to the basis learned within a block).
    per_block_auc : dict of str to float
        ROC AUC of ``amap.block_values[b]`` against ``block_truth[b]``: the probability that a neuron
        the hypothesis connects to block ``b`` has a larger attribution than one it does not. NaN when
        the block's truth has a single class; ``notes`` says why.
    entry_auc : float
        ROC AUC over all entries of the scored rows of ``amap.values`` against ``ground_truth`` (the
        original notebook's metric; depends on the basis within each block).
    gap : dict of str to float
        Per scored block, mean ``block_values`` of connected neurons minus that of unconnected ones
        (NaN when single-class).
    per_type : dict of str to dict of str to float
        For every block of the layout (scored or not), the mean block value per cell type.
    map : HypothesisMap
        The ground truth used.
    notes : dict of str to str
        Explanations for NaN scores, by block name (``"entries"`` for ``entry_auc``).
    """

    block_auc: float
    per_block_auc: dict[str, float]
    entry_auc: float
    gap: dict[str, float]
    per_type: dict[str, dict[str, float]]
    map: HypothesisMap
    notes: dict[str, str] = dataclasses.field(default_factory=dict)

    def summary(self) -> str:
        """A plain-text table: one row per block with dims, AUC, gap, hypothesis and per-type means."""
        types = list(dict.fromkeys(self.map.cell_types.tolist()))
        head = ["block", "dims", "AUC", "gap", "driven by"] + types
        rows = []
        for name, dims in self.map.blocks:
            scored = name in self.per_block_auc
            rows.append([name, f"{dims.start}:{dims.stop}",
                         _fmt(self.per_block_auc[name]) if scored else "-",
                         _fmt(self.gap[name], signed=True) if scored else "-",
                         ", ".join(self.map.hypothesis[name]) if scored else "(not scored)"]
                        + [_fmt(self.per_type[name][t]) for t in types])
        widths = [max(len(str(r[c])) for r in [head] + rows) for c in range(len(head))]
        lines = [f"Hypothesis test: block AUC {_fmt(self.block_auc)} (decide on this), "
                 f"entry AUC {_fmt(self.entry_auc)}",
                 "  ".join(h.ljust(w) for h, w in zip(head, widths)).rstrip()]
        lines += ["  ".join(str(v).ljust(w) for v, w in zip(row, widths)).rstrip() for row in rows]
        lines += [f"note ({key}): {text}" for key, text in self.notes.items()]
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable dict of the scores and the hypothesis; NaN becomes None."""
        return {
            "block_auc": _clean(self.block_auc),
            "per_block_auc": {k: _clean(v) for k, v in self.per_block_auc.items()},
            "entry_auc": _clean(self.entry_auc),
            "gap": {k: _clean(v) for k, v in self.gap.items()},
            "per_type": {b: {t: _clean(v) for t, v in d.items()} for b, d in self.per_type.items()},
            "hypothesis": {k: list(v) for k, v in self.map.hypothesis.items()},
            "blocks": [[name, s.start, s.stop] for name, s in self.map.blocks],
            "notes": dict(self.notes),
        }

    def __repr__(self) -> str:
        return (f"HypothesisResult(block_auc={_fmt(self.block_auc)}, entry_auc={_fmt(self.entry_auc)}, "
                f"per_block_auc={ {k: _clean(v) for k, v in self.per_block_auc.items()} })")


def _block_scores(hmap: HypothesisMap, block_values: np.ndarray) -> tuple[dict, float, dict, dict]:
    """Per scored block: AUC and gap (NaN, with a note, for a single-class block); and their mean, ``block_auc``."""
    notes: dict[str, str] = {}
    scored = np.flatnonzero(hmap.scored)
    names = [hmap.blocks[b][0] for b in scored]
    # One row at a time, so that the names cannot get mixed up (NaN for a single-class row).
    per_block_auc = {name: float(metrics.block_auc(block_values[[b]], hmap.block_truth[[b]]))
                     for b, name in zip(scored, names)}
    defined = [v for v in per_block_auc.values() if not math.isnan(v)]
    block_auc = float(np.mean(defined)) if defined else math.nan
    gap: dict[str, float] = {}
    for b, name in zip(scored, names):
        truth = hmap.block_truth[b]
        if truth.all() or not truth.any():
            which = "every neuron" if truth.all() else "no neuron"
            notes[name] = (f"the hypothesis connects {which} to block {name!r}, so its AUC and gap are undefined "
                           "(NaN) and it is left out of block_auc")
            gap[name] = math.nan
        else:
            gap[name] = metrics.gap(block_values[b][None], truth[None])["gap"]
    if math.isnan(block_auc):
        notes["block_auc"] = "no scored block has both connected and unconnected neurons"
    return per_block_auc, block_auc, gap, notes


def _entry_auc(hmap: HypothesisMap, values: np.ndarray, notes: dict[str, str]) -> float:
    """AUC over the entries of the scored rows (NaN, with a note in ``notes``, when they have a single class)."""
    rows = hmap.scored_rows
    entry_truth, entry_values = hmap.ground_truth[rows], values[rows]
    if entry_truth.all() or not entry_truth.any():
        notes["entries"] = "the scored rows of the ground truth have a single class, so entry_auc is undefined"
        return math.nan
    return metrics.attribution_auc(entry_values, entry_truth)


def test_hypothesis(amap: Any, cell_types: Sequence[str] | np.ndarray,
                    hypothesis: Mapping[str, Iterable[str]]) -> HypothesisResult:
    """Score an attribution map against the ground truth implied by a cell-type hypothesis.

    Parameters
    ----------
    amap : AttributionMap or object with the same attributes
        ``values`` of shape (output_dim, n_neurons), ``blocks`` (list of (name, slice)) and
        ``block_values`` of shape (n_blocks, n_neurons), the RMS of ``values`` over each block's rows.
    cell_types : sequence of str of length n_neurons
        Cell type of each neuron.
    hypothesis : mapping of str to iterable of str
        Block name -> cell types that should drive it; see :func:`hypothesis_map`.

    Returns
    -------
    HypothesisResult
        ``block_auc``, ``per_block_auc``, ``entry_auc``, ``gap``, ``per_type``, the ``map`` used and
        ``notes``; ``summary()`` prints a table.

    Raises
    ------
    ValueError
        If the shapes of ``amap`` disagree with each other or with ``cell_types``, ``amap`` holds
        non-finite values, or the hypothesis is invalid (see :func:`hypothesis_map`).

    Examples
    --------
    >>> result = test_hypothesis(model.attribution_map(neural), data.cell_types,  # doctest: +SKIP
    ...                          {"behavior": ["grid", "place"], "time": ["head_direction", "speed"]})
    >>> print(result.summary())  # doctest: +SKIP
    """
    values, block_values, blocks = _check_amap(amap)
    n_neurons = values.shape[1]
    n_types = len(cell_types) if hasattr(cell_types, "__len__") and not isinstance(cell_types, str) else None
    if n_types is not None and n_types != n_neurons:
        raise ValueError(f"cell_types has {n_types} entries but the attribution map has {n_neurons} neurons; "
                         "they must match")
    hmap = hypothesis_map(cell_types, hypothesis, blocks)
    if len(hmap.cell_types) != n_neurons:  # e.g. an iterator without len()
        raise ValueError(f"cell_types has {len(hmap.cell_types)} entries but the attribution map has {n_neurons} "
                         "neurons; they must match")
    if hmap.output_dim != values.shape[0]:
        raise ValueError(f"amap.blocks cover {hmap.output_dim} embedding dimensions but amap.values has "
                         f"{values.shape[0]} rows; they must match")

    per_block_auc, block_auc, gap, notes = _block_scores(hmap, block_values)
    entry_auc = _entry_auc(hmap, values, notes)
    for text in notes.values():
        logger.warning("test_hypothesis: %s", text)

    present = list(dict.fromkeys(hmap.cell_types.tolist()))
    per_type = {name: {t: float(block_values[b, hmap.cell_types == t].mean()) for t in present}
                for b, (name, _) in enumerate(hmap.blocks)}
    return HypothesisResult(block_auc=block_auc, per_block_auc=per_block_auc, entry_auc=entry_auc, gap=gap,
                            per_type=per_type, map=hmap, notes=notes)


test_hypothesis.__test__ = False  # type: ignore[attr-defined]  # not a pytest test when imported into one


def _check_amap(amap: Any) -> tuple[np.ndarray, np.ndarray, Any]:
    missing = [a for a in ("values", "blocks", "block_values") if not hasattr(amap, a)]
    if missing:
        raise TypeError(f"amap must be an attribution map with attributes values, blocks and block_values; "
                        f"{type(amap).__name__} lacks {', '.join(missing)}")
    values = np.asarray(amap.values, dtype=np.float64)
    block_values = np.asarray(amap.block_values, dtype=np.float64)
    if values.ndim != 2:
        raise ValueError(f"amap.values must have shape (output_dim, n_neurons); got shape {values.shape}")
    blocks = list(amap.blocks)
    if block_values.shape != (len(blocks), values.shape[1]):
        raise ValueError(f"amap.block_values must have shape (n_blocks, n_neurons) = ({len(blocks)}, "
                         f"{values.shape[1]}); got shape {block_values.shape}")
    check_finite("amap.values", values)
    check_finite("amap.block_values", block_values)
    return values, block_values, blocks


def _fmt(value: float, signed: bool = False) -> str:
    if math.isnan(value):
        return "nan"
    return f"{value:+.3g}" if signed else f"{value:.3f}"


def _clean(value: float) -> float | None:
    return None if math.isnan(value) else float(value)
