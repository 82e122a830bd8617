"""Type aliases shared by the signatures of the package: what an array argument may be.

Docstrings say the shapes (``neural : array of shape (T, N)``); these aliases say the kinds, once:

- :data:`ArrayLike`: anything :func:`numpy.asarray` accepts (lists, numpy arrays, tensors on the CPU);
- :data:`NeuralArray`: a (T, N) recording that is read in batches of rows and never loaded whole, so a
  ``numpy.memmap`` or an h5py dataset works as well as an array (:class:`RowReadable`);
- :data:`Labels`: named labels, each (T,) or (T, d), as passed to ``fit(neural, **labels)``;
- :data:`Blocks`: the embedding's disjoint blocks, ``[(name, slice), ...]`` (``model.blocks_``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol, Union, runtime_checkable

import numpy as np
from numpy.typing import ArrayLike

__all__ = ["ArrayLike", "RowReadable", "NeuralArray", "Labels", "Blocks"]


@runtime_checkable
class RowReadable(Protocol):
    """A 2-D array-like that can be read by rows: ``shape`` and ``x[start:stop]`` (numpy, memmap, h5py)."""

    @property
    def shape(self) -> tuple[int, ...]: ...

    def __getitem__(self, key: Any) -> Any: ...


#: a (T, N) recording: an array, a memory map or an h5py dataset (read ``batch_size`` rows at a time)
NeuralArray = Union[np.ndarray, RowReadable]
#: labels by name, each of shape (T,) or (T, d)
Labels = Mapping[str, ArrayLike]
#: the embedding's disjoint blocks, in order: (name, slice of the embedding's columns)
Blocks = Sequence[tuple[str, slice]]
