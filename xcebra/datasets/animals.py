"""Several simulated animals: one rat-in-a-box recording per animal, each with its own cells and path.

A multi-session data set for fitting one model on recordings that differ in their neurons but share
what the neurons encode (position, head direction, speed in the same 1 m box). Each animal is a call of
:func:`xcebra.datasets.ratinabox.ratinabox` with

- its own seed, so its own grid phases and orientations, place fields, head-direction and speed tunings,
  its own noise and spikes and, for a simulated path, its own trajectory;
- its own numbers of grid, head-direction, place and speed cells (``cell_counts``), so the recordings
  have different neuron counts;
- either a simulated path or the real rat's path of Sargolini et al. 2006 (``real_trajectories``). All
  real-path animals run along that same single recording; only their cells differ.

Randomness: the seeds of animal ``i`` come from ``numpy.random.SeedSequence(seed, spawn_key=(i, k))``,
the children of the ``i``-th child of ``SeedSequence(seed)``. Animal ``i`` therefore does not depend on ``n_animals``:
``ratinabox_animals(2, ...)`` gives the first two animals of ``ratinabox_animals(4, ...)``. Every animal
is cached on disk by :func:`~xcebra.datasets.ratinabox.ratinabox` like a single recording.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from .._validation import check_float, check_int
from .ratinabox import CELL_TYPES, SARGOLINI_DURATION_S, RatInABoxData, ratinabox

__all__ = ["ratinabox_animals", "DEFAULT_CELL_RANGE"]

logger = logging.getLogger("xcebra")

#: inclusive range of the number of cells of each type drawn per animal when ``cell_counts`` is None
DEFAULT_CELL_RANGE: tuple[int, int] = (10, 30)

# Animal i's two streams are children (i, 0) and (i, 1) of SeedSequence(seed): the simulation seed and the
# draw of its cell counts stay independent of each other and of the other animals.
_SIMULATION_STREAM = 0
_COUNTS_STREAM = 1
# Redraws of an animal's cell counts whose total repeats an earlier animal's: with 4 types of 10-30 cells
# there are 81 possible totals, so for a handful of animals one or two redraws are the most ever needed.
_MAX_REDRAWS = 1000


def ratinabox_animals(n_animals: int = 4, duration: float = 500.0, *, dt: float = 0.1, seed: int = 0,
                      cell_counts: Sequence[Mapping[str, int]] | None = None,
                      real_trajectories: Sequence[int] = (0,), noise: float = 0.25, grid_modules: int = 3,
                      cache: bool | str | os.PathLike = True, verbose: bool = False) -> list[RatInABoxData]:
    """Simulate (or load from the cache) several animals foraging in the same 1 m box, one recording each.

    Parameters
    ----------
    n_animals : int, default=4
        Number of animals (>= 1).
    duration : float, default=500.0
        Length of each recording in seconds. An animal on the real path gets
        ``min(duration, 599.6)`` s, the length of that recording.
    dt : float, default=0.1
        Bin width in seconds, the same for every animal.
    seed : int, default=0
        Seed in [0, 2**32) from which every animal's seed (and its default cell counts) is derived.
    cell_counts : sequence of dict, optional
        One dict per animal, ``{"grid": int, "head_direction": int, "place": int, "speed": int}``: the
        number of cells of each type (>= 0, at least one cell per animal; a missing key means no cell
        of that type). Default: each animal draws each count uniformly from 10 to 30 inclusive, redrawn
        until its total differs from the earlier animals' totals (possible for up to 81 animals), so that
        every animal has its own number of neurons and its own mix of cell types.
    real_trajectories : sequence of int, default=(0,)
        Indices (in ``[0, n_animals)``, no repeats) of the animals whose path is the real rat's
        (``trajectory="sargolini"``); the others forage along their own simulated paths. ``()`` for
        simulated paths only.
    noise : float, default=0.25
        Rate noise relative to the maximal firing rate, as in :func:`~xcebra.datasets.ratinabox.ratinabox`.
    grid_modules : int, default=3
        Number of grid modules of every animal (>= 1 and at most the animal's number of grid cells when it
        has any).
    cache : bool or path-like, default=True
        Cache directory, as in :func:`~xcebra.datasets.ratinabox.ratinabox` (one file per animal).
    verbose : bool, default=False
        Show a progress bar while each animal is simulated.

    Returns
    -------
    list of RatInABoxData
        One recording per animal, in order. Animal ``i`` has ``spikes`` and ``rates`` of shape
        (n_timepoints_i, n_neurons_i), ``position`` (n_timepoints_i, 2) in metres, ``cell_types``
        (n_neurons_i,); its ``params`` hold its own seed and counts, so ``ratinabox(**data.params)``
        gives the same recording.

    Raises
    ------
    ValueError, TypeError
        If an argument is out of range or of the wrong type; the message names it (and the animal).
    ImportError
        If ratinabox is not installed.

    Examples
    --------
    >>> from xcebra.datasets import ratinabox_animals
    >>> animals = ratinabox_animals(n_animals=2, duration=5.0, cache=False)
    >>> [a.spikes.shape for a in animals]
    [(50, 85), (50, 79)]
    >>> [a.params.get("trajectory", "simulated") for a in animals]
    ['sargolini', 'simulated']
    """
    plans = _plan(n_animals=n_animals, duration=duration, dt=dt, seed=seed, cell_counts=cell_counts,
                  real_trajectories=real_trajectories, noise=noise, grid_modules=grid_modules)
    animals = []
    for index, plan in enumerate(plans):
        logger.info("Animal %d of %d: %s", index + 1, len(plans), plan)
        animals.append(ratinabox(**plan, cache=cache, verbose=verbose))
    return animals


def _plan(*, n_animals: Any, duration: Any, dt: Any, seed: Any, cell_counts: Any, real_trajectories: Any,
          noise: Any, grid_modules: Any) -> list[dict[str, Any]]:
    """Check every argument and return the keyword arguments of :func:`ratinabox` for each animal.

    Everything is checked before the first animal is simulated, so a bad entry for the last animal
    does not cost the simulation of the others.
    """
    n_animals = check_int("n_animals", n_animals, 1)
    duration = check_float("duration", duration, 0.0, strict=True)
    dt = check_float("dt", dt, 0.0, strict=True)
    seed = check_int("seed", seed, 0, 2**32 - 1)
    noise = check_float("noise", noise, 0.0)
    grid_modules = check_int("grid_modules", grid_modules, 1)
    real = _real_indices(real_trajectories, n_animals)
    shortest = min(duration, SARGOLINI_DURATION_S) if real else duration
    if dt > shortest:
        raise ValueError(f"dt must be <= the shortest recording ({shortest} s) so that every animal has at "
                         f"least one time bin; got dt={dt}")
    if cell_counts is None:
        counts = _default_counts(n_animals, seed)
    else:
        counts = [_check_counts(i, entry) for i, entry in enumerate(_entries(cell_counts, n_animals))]
    for i, count in enumerate(counts):
        if 0 < count["grid"] < grid_modules:
            raise ValueError(f"grid_modules must be <= the number of grid cells of every animal that has some "
                             f"(animal {i} has {count['grid']}); got {grid_modules}")
    plans = []
    for i, count in enumerate(counts):
        plan = {"duration": duration, "dt": dt, "seed": _simulation_seed(seed, i),
                **{f"n_{name}": count[name] for name in CELL_TYPES}, "noise": noise, "grid_modules": grid_modules}
        if i in real:
            plan.update(duration=min(duration, SARGOLINI_DURATION_S), trajectory="sargolini")
        plans.append(plan)
    return plans


def _real_indices(real_trajectories: Any, n_animals: int) -> frozenset[int]:
    if isinstance(real_trajectories, (str, bytes, Mapping)) or not isinstance(real_trajectories,
                                                                               (Sequence, np.ndarray)):
        raise TypeError(f"real_trajectories must be a sequence of animal indices, e.g. (0,) or (); got "
                        f"{real_trajectories!r} of type {type(real_trajectories).__name__}")
    indices = [check_int(f"real_trajectories[{k}]", value, 0, n_animals - 1)
               for k, value in enumerate(real_trajectories)]
    repeated = sorted({i for i in indices if indices.count(i) > 1})
    if repeated:
        raise ValueError(f"real_trajectories must not repeat an animal; got {list(real_trajectories)!r} "
                         f"(repeated: {repeated})")
    return frozenset(indices)


def _entries(cell_counts: Any, n_animals: int) -> list[Any]:
    if isinstance(cell_counts, (str, bytes, Mapping)) or not isinstance(cell_counts, Sequence):
        raise TypeError(f"cell_counts must be None or a sequence of {n_animals} dicts (one per animal); got "
                        f"{type(cell_counts).__name__}")
    if len(cell_counts) != n_animals:
        raise ValueError(f"cell_counts has {len(cell_counts)} entries but n_animals is {n_animals}; give one "
                         "dict of cell counts per animal")
    return list(cell_counts)


def _check_counts(index: int, entry: Any) -> dict[str, int]:
    """One animal's ``{"grid": n, ...}`` as a dict with every cell type (missing types have 0 cells)."""
    name = f"cell_counts[{index}]"
    if not isinstance(entry, Mapping):
        raise TypeError(f"{name} must be a dict of cell counts, e.g. {{'grid': 20, 'place': 10}}; got "
                        f"{type(entry).__name__}")
    unknown = [key for key in entry if key not in CELL_TYPES]
    if unknown:
        known = ", ".join(repr(t) for t in CELL_TYPES)
        raise ValueError(f"{name} has unknown cell type(s) {', '.join(repr(k) for k in unknown)}; "
                         f"the known cell types are {known}")
    counts = {t: check_int(f"{name}[{t!r}]", entry.get(t, 0), 0) for t in CELL_TYPES}
    if sum(counts.values()) < 1:
        raise ValueError(f"{name} must give animal {index} at least one cell; got {dict(entry)!r}")
    return counts


def _default_counts(n_animals: int, seed: int) -> list[dict[str, int]]:
    """Cell counts per animal, each type in DEFAULT_CELL_RANGE, the totals all different where possible."""
    low, high = DEFAULT_CELL_RANGE
    counts: list[dict[str, int]] = []
    totals: set[int] = set()
    for i in range(n_animals):
        rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(i, _COUNTS_STREAM)))
        for _ in range(_MAX_REDRAWS):
            draw = {t: int(n) for t, n in zip(CELL_TYPES, rng.integers(low, high, size=len(CELL_TYPES),
                                                                           endpoint=True))}
            if sum(draw.values()) not in totals:
                break
        counts.append(draw)
        totals.add(sum(draw.values()))
    return counts


def _simulation_seed(seed: int, index: int) -> int:
    """Animal ``index``'s ratinabox seed, in [0, 2**32)."""
    sequence = np.random.SeedSequence(seed, spawn_key=(index, _SIMULATION_STREAM))
    return int(sequence.generate_state(1, dtype=np.uint32)[0])
