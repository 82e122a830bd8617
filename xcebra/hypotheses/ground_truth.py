"""Ground truth from a cell-type hypothesis: which neurons should drive which block (:func:`hypothesis_map`)."""

from __future__ import annotations

import dataclasses
import numbers
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from ..typing import Blocks

__all__ = ["HypothesisMap", "hypothesis_map", "check_cell_types"]


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
    types = check_cell_types(cell_types)
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


def check_cell_types(cell_types: Any) -> np.ndarray:
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
