"""Ground truth for real recordings from cell-type hypotheses: which cell types should drive which block.

On simulated data the true connectivity between latents and neurons is known; on a recording it is
not. What one usually has is a *hypothesis*: "the behaviour block should be driven by grid and place
cells, the time block by head-direction and speed cells". This module turns such a hypothesis into
a boolean ground-truth map for the embedding layout of a fitted model (:func:`hypothesis_map`) and
scores an attribution map against it (:func:`test_hypothesis`).

Scores are computed per block of the embedding, because contrastive learning identifies each block
only up to an invertible linear map (docs: background, "Identifiable per block"): the block-level AUC uses
``amap.block_values`` (RMS over the rows of each block) and is the number to decide on; the
per-entry AUC over ``amap.values`` is reported for comparison with the original xCEBRA notebook.
Blocks that the hypothesis does not mention are not scored.

Example
-------
>>> import numpy as np, types
>>> cell_types = ["grid", "grid", "place", "head_direction"]
>>> blocks = [("behavior", slice(0, 2)), ("time", slice(2, 3))]
>>> values = np.array([[0.9, 0.8, 0.7, 0.1], [0.8, 0.9, 0.6, 0.2], [0.1, 0.2, 0.1, 0.9]])
>>> block_values = np.stack([np.sqrt((values[s] ** 2).mean(0)) for _, s in blocks])
>>> amap = types.SimpleNamespace(values=values, blocks=blocks, block_values=block_values)
>>> result = test_hypothesis(amap, cell_types, {"behavior": ["grid", "place"], "time": ["head_direction"]})
>>> result.block_auc
1.0
"""

from __future__ import annotations

import dataclasses
import logging
import math
import numbers
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from xcebra import metrics
from xcebra._validation import check_finite

__all__ = ["HypothesisMap", "HypothesisResult", "hypothesis_map", "test_hypothesis"]

logger = logging.getLogger("xcebra")

Blocks = Sequence[tuple[str, slice]]


# ----------------------------------------------------------------------------------------------
# Ground-truth maps


@dataclasses.dataclass(frozen=True, eq=False)
class HypothesisMap:
    """Boolean ground truth derived from a cell-type hypothesis, returned by :func:`hypothesis_map`.

    Attributes
    ----------
    block_truth : ndarray of shape (n_blocks, n_neurons), bool
        ``block_truth[b, i]`` is True if neuron ``i`` has a cell type that the hypothesis says drives
        block ``b``. Rows of blocks absent from the hypothesis are all False (and not scored).
    ground_truth : ndarray of shape (output_dim, n_neurons), bool
        ``block_truth`` with each block's row repeated over the block's embedding dimensions.
    blocks : tuple of (str, slice)
        The embedding layout, contiguous from 0 to ``output_dim``.
    cell_types : ndarray of shape (n_neurons,), str
        Cell type per neuron.
    scored_blocks : tuple of str
        Names of the blocks the hypothesis mentions, in layout order.
    hypothesis : dict of str to tuple of str
        The hypothesis, block name -> cell types (duplicates removed, order kept).
    """

    block_truth: np.ndarray
    ground_truth: np.ndarray
    blocks: tuple[tuple[str, slice], ...]
    cell_types: np.ndarray
    scored_blocks: tuple[str, ...]
    hypothesis: dict[str, tuple[str, ...]]

    @property
    def scored(self) -> np.ndarray:
        """Bool mask of shape (n_blocks,): True for the blocks the hypothesis mentions."""
        return np.array([name in self.hypothesis for name, _ in self.blocks], dtype=bool)

    @property
    def scored_rows(self) -> np.ndarray:
        """Bool mask of shape (output_dim,): True for the embedding dimensions of scored blocks."""
        return np.repeat(self.scored, [s.stop - s.start for _, s in self.blocks])

    @property
    def output_dim(self) -> int:
        """Number of embedding dimensions covered by ``blocks``."""
        return int(self.blocks[-1][1].stop)

    def __repr__(self) -> str:
        return (f"HypothesisMap(n_neurons={len(self.cell_types)}, output_dim={self.output_dim}, "
                f"blocks={[name for name, _ in self.blocks]}, hypothesis={self.hypothesis})")


def hypothesis_map(cell_types: Sequence[str] | np.ndarray, hypothesis: Mapping[str, Iterable[str]],
                   blocks: Blocks) -> HypothesisMap:
    """Build the ground-truth attribution map implied by a cell-type hypothesis.

    Parameters
    ----------
    cell_types : sequence of str of length n_neurons
        Cell type of each neuron, e.g. ``RatInABoxData.cell_types``.
    hypothesis : mapping of str to iterable of str
        Block name -> cell types that should drive that block, e.g.
        ``{"behavior": ["grid", "place"], "time": ["head_direction", "speed"]}``. Blocks of the
        layout that are not mentioned are not scored.
    blocks : sequence of (str, slice)
        The embedding layout, as ``model.blocks_`` or ``amap.blocks``: named slices covering
        ``0..output_dim`` contiguously, e.g. ``[("behavior", slice(0, 4)), ("time", slice(4, 14))]``.

    Returns
    -------
    HypothesisMap
        ``block_truth`` of shape (n_blocks, n_neurons) and ``ground_truth`` of shape
        (output_dim, n_neurons), both bool.

    Raises
    ------
    TypeError
        If ``cell_types`` holds non-strings, ``hypothesis`` is not a mapping of names to lists of
        names, or ``blocks`` is not a list of (name, slice) pairs.
    ValueError
        If ``cell_types`` is empty, ``blocks`` are not contiguous from 0, the hypothesis names a
        block that is not in ``blocks``, lists a cell type that no neuron has, or gives a block no
        cell types.

    Examples
    --------
    >>> hmap = hypothesis_map(["grid", "place", "speed"], {"behavior": ["grid", "place"]},
    ...                       [("behavior", slice(0, 2)), ("time", slice(2, 4))])
    >>> hmap.block_truth
    array([[ True,  True, False],
           [False, False, False]])
    >>> hmap.scored_blocks
    ('behavior',)
    """
    types = _check_cell_types(cell_types)
    layout = _check_blocks(blocks)
    block_names = [name for name, _ in layout]
    spec = _check_hypothesis(hypothesis, block_names, types)

    block_truth = np.zeros((len(layout), len(types)), dtype=bool)
    for b, (name, _) in enumerate(layout):
        if name in spec:
            block_truth[b] = np.isin(types, spec[name])
    widths = [s.stop - s.start for _, s in layout]
    ground_truth = np.repeat(block_truth, widths, axis=0)
    scored_blocks = tuple(name for name in block_names if name in spec)
    return HypothesisMap(block_truth=block_truth, ground_truth=ground_truth, blocks=layout, cell_types=types,
                         scored_blocks=scored_blocks, hypothesis={name: spec[name] for name in scored_blocks})


def _check_cell_types(cell_types: Any) -> np.ndarray:
    if isinstance(cell_types, str):
        raise TypeError(f"cell_types must be a sequence of strings, one per neuron; got the single string "
                        f"{cell_types!r}")
    try:
        entries = list(cell_types)
    except TypeError as error:
        raise TypeError(f"cell_types must be a sequence of strings, one per neuron; got "
                        f"{type(cell_types).__name__}") from error
    if len(entries) == 0:
        raise ValueError("cell_types must name the type of every neuron; got an empty sequence")
    for i, entry in enumerate(entries):
        if not isinstance(entry, str):
            raise TypeError(f"cell_types must hold strings; entry {i} is {entry!r} of type {type(entry).__name__}")
    return np.array([str(entry) for entry in entries])


def _check_blocks(blocks: Any) -> tuple[tuple[str, slice], ...]:
    expected = 'a list of (name, slice) pairs such as [("behavior", slice(0, 4)), ("time", slice(4, 14))]'
    if isinstance(blocks, (str, bytes)) or not isinstance(blocks, Iterable):
        raise TypeError(f"blocks must be {expected}; got {blocks!r}")
    layout = []
    stop = 0
    for i, pair in enumerate(blocks):
        if not (isinstance(pair, Sequence) and len(pair) == 2 and isinstance(pair[0], str)
                and isinstance(pair[1], slice)):
            raise TypeError(f"blocks must be {expected}; entry {i} is {pair!r}")
        name, dims = pair
        if not all(isinstance(v, numbers.Integral) for v in (dims.start, dims.stop)) or dims.step not in (None, 1):
            raise ValueError(f"blocks must use slices with integer start and stop and step 1; block {name!r} "
                             f"has {dims}")
        if dims.start != stop or dims.stop <= dims.start:
            where = "start at 0" if i == 0 else f"continue where block {layout[-1][0]!r} stops ({stop})"
            raise ValueError(f"blocks must be contiguous and non-empty: block {name!r} should {where} and end "
                             f"after it starts; got {dims}")
        if name in {n for n, _ in layout}:
            raise ValueError(f"blocks must have unique names; {name!r} appears twice")
        layout.append((name, slice(int(dims.start), int(dims.stop))))
        stop = int(dims.stop)
    if not layout:
        raise ValueError(f"blocks must be {expected}; got an empty layout")
    return tuple(layout)


def _check_hypothesis(hypothesis: Any, block_names: list[str], types: np.ndarray) -> dict[str, tuple[str, ...]]:
    if not isinstance(hypothesis, Mapping):
        raise TypeError(f"hypothesis must be a mapping from block name to cell types, e.g. "
                        f"{{'behavior': ['grid', 'place']}}; got {type(hypothesis).__name__}")
    if len(hypothesis) == 0:
        raise ValueError(f"hypothesis must name at least one block to score; got an empty mapping (blocks are "
                         f"{_listing(block_names)})")
    unknown = [name for name in hypothesis if name not in block_names]
    if unknown:
        raise ValueError(f"hypothesis names block(s) {_listing(unknown)} that are not in the embedding layout; "
                         f"the blocks are {_listing(block_names)}")
    present = list(dict.fromkeys(types.tolist()))
    spec = {}
    for name, members in hypothesis.items():
        if isinstance(members, str):
            raise TypeError(f"hypothesis[{name!r}] must be a list of cell types; got the string {members!r} "
                            f"(write [{members!r}])")
        if not isinstance(members, Iterable):
            raise TypeError(f"hypothesis[{name!r}] must be a list of cell types; got {members!r}")
        members = list(members)
        for member in members:
            if not isinstance(member, str):
                raise TypeError(f"hypothesis[{name!r}] must hold cell type names (str); got {member!r} of type "
                                f"{type(member).__name__}")
        if not members:
            raise ValueError(f"hypothesis[{name!r}] is empty; list the cell types that drive block {name!r} or "
                             "leave the block out of the hypothesis")
        missing = [m for m in dict.fromkeys(members) if m not in present]
        if missing:
            raise ValueError(f"hypothesis[{name!r}] lists cell type(s) {_listing(missing)} that no neuron has; "
                             f"cell_types holds {_listing(present)}")
        spec[name] = tuple(dict.fromkeys(members))
    return spec


def _listing(names: Iterable[Any]) -> str:
    return ", ".join(repr(n) for n in names)


# ----------------------------------------------------------------------------------------------
# Scores


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

    rows = hmap.scored_rows
    entry_truth, entry_values = hmap.ground_truth[rows], values[rows]
    if entry_truth.all() or not entry_truth.any():
        entry_auc = math.nan
        notes["entries"] = "the scored rows of the ground truth have a single class, so entry_auc is undefined"
    else:
        entry_auc = metrics.attribution_auc(entry_values, entry_truth)
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
