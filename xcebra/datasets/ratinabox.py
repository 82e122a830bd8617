"""Simulated rat-in-a-box data set: grid, head-direction, place and speed cells of one foraging agent.

The simulation uses the `RatInABox <https://github.com/RatInABox-Lab/RatInABox>`_ package (optional
extra ``pip install "xcebra[demo]"``). Its defaults mirror the data set of the xCEBRA RatInABox demo:
90 neurons (30 grid cells in 3 modules, 20 head-direction, 20 place and 20 speed cells), 2000 s in
0.1 s bins (20,000 time points), firing-rate noise 0.25 and Poisson spike counts.

How the data are made
---------------------
1. Trajectory. A ratinabox ``Agent`` forages in a 1 m x 1 m ``Environment`` (solid walls, default
   motion model fit to Sargolini et al. 2006). The agent is stepped with ``dt / k`` where
   ``k = ceil(dt / 0.05)``, because its rotational-velocity process has a 0.08 s coherence time and
   would be mis-integrated with coarser steps; position, velocity and head direction are read at the
   end of every bin of width ``dt``. This loop (about 0.25 ms per agent step) is the only part that
   runs step by step.
2. Tuning, vectorised over all time points at once:

   - grid cells: ``ratinabox.Neurons.GridCells`` ("rectified_cosines"), evaluated with
     ``get_state(evaluate_at=None, pos=position)``. Cells are split evenly (``np.array_split``) into
     ``grid_modules`` modules with scales geometrically spaced from 0.3 m to 0.8 m (0.3, 0.49, 0.8 m
     for three modules; 0.5 m for a single module); one random orientation in [0, pi/3) per module,
     random spatial phases per cell.
   - place cells: ``ratinabox.Neurons.PlaceCells`` (Gaussian fields of width 0.2 m, centres spread by
     ``uniform_jitter``), evaluated with ``get_state(evaluate_at=None, pos=position)``.
   - head-direction cells: ``ratinabox.Neurons.HeadDirectionCells`` (preferred directions evenly
     spaced on the circle, von Mises tuning of 45 degrees spread). Its ``get_state`` takes one head
     direction at a time, so the same formula (``ratinabox.utils.von_mises`` with the cells'
     ``preferred_angles`` and ``angular_tunings``) is applied to all head directions at once.
   - speed cells: ratinabox only offers a single linear ``SpeedCell``; we use a population with
     sigmoidal speed tuning, ``rate = r_max * sigmoid((speed - threshold) / slope)``, thresholds drawn
     uniformly in [0.05, 0.15] m/s (around the agent's mean speed of about 0.1 m/s) and slopes in
     [0.01, 0.04] m/s.

   Every population fires between 0 and ``r_max = 10 Hz``.
3. Noise. As ratinabox's ``Neurons(noise_std=..., noise_coherence_time=0.5)``: additive
   Ornstein-Uhlenbeck noise with a 0.5 s coherence time, here with a standard deviation of
   ``noise * r_max`` (ratinabox's default ``max_fr`` is 1, so ``noise`` is in the same units as
   ratinabox's ``noise_std`` for its default cells). It is sampled exactly as an AR(1) process,
   vectorised with :func:`scipy.signal.lfilter`. Noisy rates are clipped at 0.
4. Spikes. ``spikes ~ Poisson(rates * dt)`` per bin.

Randomness: ratinabox draws from NumPy's global legacy generator, which is seeded with ``seed`` for
the duration of the simulation and restored afterwards; everything else uses
``numpy.random.default_rng`` streams spawned from ``seed``. The cell parameters are drawn before the
trajectory, so a shorter simulation with the same seed has the same cells and the same trajectory
as the start of a longer one.

Results are cached on disk (one compressed ``.npz`` per distinct set of arguments); see
:func:`ratinabox`.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import logging
import math
import os
import time
from pathlib import Path
from typing import Any

import numpy as np

from xcebra._files import atomic_write_bytes
from xcebra._validation import check_float, check_int, check_option

__all__ = ["RatInABoxData", "ratinabox", "CELL_TYPES", "TRAJECTORIES"]

logger = logging.getLogger("xcebra")

#: Cell type names, in the order in which the neurons are grouped.
CELL_TYPES: tuple[str, ...] = ("grid", "head_direction", "place", "speed")
#: Sources of the path: ratinabox's foraging model, or the real rat of Sargolini et al. 2006 (in the ratinabox wheel)
TRAJECTORIES: tuple[str, ...] = ("simulated", "sargolini")
#: usable length of the Sargolini recording: 0.1 .. 599.74 s at 50 Hz
SARGOLINI_DURATION_S = 599.6

# Bump whenever the simulation or the file layout changes: old cache files are then never read.
_FORMAT_VERSION = 1
_MAX_RATE_HZ = 10.0
_NOISE_COHERENCE_TIME_S = 0.5
_MAX_AGENT_DT_S = 0.05
_GRID_SCALE_RANGE_M = (0.3, 0.8)
_SINGLE_MODULE_SCALE_M = 0.5
_PLACE_FIELD_WIDTH_M = 0.2
_HD_SPREAD_DEGREES = 45.0
_SPEED_THRESHOLD_RANGE = (0.05, 0.15)
_SPEED_SLOPE_RANGE = (0.01, 0.04)

_CHUNK = 20_000  # time points per vectorised rate evaluation
_ARRAY_FIELDS = ("spikes", "rates", "position", "head_direction", "speed", "time", "cell_types")
_INSTALL_HINT = 'The ratinabox data set needs the optional dependency ratinabox: pip install "xcebra[demo]"'


@dataclasses.dataclass(frozen=True, eq=False)
class RatInABoxData:
    """A simulated rat-in-a-box recording, returned by :func:`ratinabox`.

    Attributes
    ----------
    spikes : ndarray of shape (n_timepoints, n_neurons), float32
        Poisson spike counts per time bin.
    rates : ndarray of shape (n_timepoints, n_neurons), float32
        Noisy firing rates in Hz (clipped at 0) from which the spikes were drawn.
    position : ndarray of shape (n_timepoints, 2), float32
        Agent position in metres, inside the box [0, 1] x [0, 1].
    head_direction : ndarray of shape (n_timepoints,), float32
        Head direction in radians, in [0, 2 pi), anticlockwise from the x axis.
    speed : ndarray of shape (n_timepoints,), float32
        Agent speed in m/s.
    time : ndarray of shape (n_timepoints,), float32
        Time in seconds at the end of each bin: ``dt, 2 dt, ..., duration``.
    cell_types : ndarray of shape (n_neurons,), str
        One of ``"grid"``, ``"head_direction"``, ``"place"``, ``"speed"`` per neuron; neurons are
        grouped by type in this order.
    params : dict
        The arguments that determine the data (``duration``, ``dt``, ``seed``, ``n_grid``,
        ``n_head_direction``, ``n_place``, ``n_speed``, ``noise``, ``grid_modules``).
    """

    spikes: np.ndarray
    rates: np.ndarray
    position: np.ndarray
    head_direction: np.ndarray
    speed: np.ndarray
    time: np.ndarray
    cell_types: np.ndarray
    params: dict[str, Any]

    @property
    def n_timepoints(self) -> int:
        """Number of time bins."""
        return int(self.spikes.shape[0])

    @property
    def n_neurons(self) -> int:
        """Number of neurons."""
        return int(self.spikes.shape[1])

    def __repr__(self) -> str:
        counts = {name: int(np.sum(self.cell_types == name)) for name in CELL_TYPES}
        return (f"RatInABoxData(n_timepoints={self.n_timepoints}, n_neurons={self.n_neurons}, "
                f"cell_types={counts}, params={self.params})")


def ratinabox(duration: float = 2000.0, dt: float = 0.1, seed: int = 231209234, n_grid: int = 30,
              n_head_direction: int = 20, n_place: int = 20, n_speed: int = 20, noise: float = 0.25,
              grid_modules: int = 3, trajectory: str = "simulated", cache: bool | str | os.PathLike = True,
              verbose: bool = False) -> RatInABoxData:
    """Simulate (or load from the cache) an agent foraging in a 1 m box and four cell populations.

    See the module docstring for the cell models, the noise model and how randomness is handled.
    The default call takes about 10-15 s on one CPU core; later calls with the same arguments
    read the cache in well under a second.

    Parameters
    ----------
    duration : float, default=2000.0
        Length of the recording in seconds; ``n_timepoints = round(duration / dt)``.
    dt : float, default=0.1
        Bin width in seconds (at most ``duration``).
    seed : int, default=231209234
        Seed in [0, 2**32) for the trajectory, the cells, the noise and the spikes.
    n_grid, n_head_direction, n_place, n_speed : int, default=30, 20, 20, 20
        Number of neurons of each type (>= 0, at least one neuron in total).
    noise : float, default=0.25
        Standard deviation of the additive Ornstein-Uhlenbeck rate noise, relative to the maximal
        firing rate (10 Hz); 0 gives noiseless rates.
    grid_modules : int, default=3
        Number of grid modules (>= 1 and at most ``n_grid`` when there are grid cells).
    trajectory : {"simulated", "sargolini"}, default="simulated"
        Where the path comes from. ``"simulated"``: ratinabox's foraging model, seeded by ``seed``.
        ``"sargolini"``: a real rat's path, the 600 s recording (50 Hz, 1 m box) of Sargolini et al.
        2006 that ships inside the ratinabox wheel (no download), read at the end of every bin by
        linear interpolation; velocity from its finite differences, head direction along the
        velocity. ``duration`` is then at most 599.6 s; ``seed`` still draws the cells, noise and spikes.
    cache : bool or path-like, default=True
        Directory for cached results. ``True`` uses ``$XCEBRA_CACHE`` if set, else
        ``~/.cache/xcebra``; ``False`` neither reads nor writes a cache.
    verbose : bool, default=False
        Show a progress bar while simulating.

    Returns
    -------
    RatInABoxData
        ``spikes`` and ``rates`` of shape (n_timepoints, n_neurons), ``position`` (n_timepoints, 2),
        ``head_direction``, ``speed`` and ``time`` (n_timepoints,), ``cell_types`` (n_neurons,) and
        ``params``.

    Raises
    ------
    ImportError
        If ratinabox is not installed.
    ValueError, TypeError
        If an argument is out of range or of the wrong type; the message names it.

    Notes
    -----
    The cache file name is a hash of every argument that affects the data, the file format
    version and the installed ratinabox version. Files are written atomically (temporary file in
    the same directory, then :func:`os.replace`); an unreadable or inconsistent file is ignored
    with a warning and replaced by a new simulation.

    Examples
    --------
    >>> from xcebra.datasets.ratinabox import ratinabox
    >>> data = ratinabox(duration=20.0, cache=False)
    >>> data.spikes.shape, data.position.shape
    ((200, 90), (200, 2))
    >>> sorted(set(data.cell_types.tolist()))
    ['grid', 'head_direction', 'place', 'speed']
    """
    params = _validate(duration=duration, dt=dt, seed=seed, n_grid=n_grid,
                       n_head_direction=n_head_direction, n_place=n_place, n_speed=n_speed,
                       noise=noise, grid_modules=grid_modules, trajectory=trajectory)
    directory = _cache_directory(cache)
    version = _ratinabox_version()
    path = None
    if directory is not None:
        path = directory / f"ratinabox_{_cache_key(params, version)}.npz"
        data = _load_cache(path, params)
        if data is not None:
            logger.info("Loaded the ratinabox data set from the cache file %s", path)
            return data

    start = time.perf_counter()
    logger.info("Simulating the ratinabox data set: %s", params)
    arrays = _simulate(**params, verbose=verbose)
    logger.info("Simulated %d time points x %d neurons in %.1f s", arrays["spikes"].shape[0],
                arrays["spikes"].shape[1], time.perf_counter() - start)
    data = RatInABoxData(**arrays, params=dict(params))
    if path is not None:
        _save_cache(path, data, version)
    return data


# ----------------------------------------------------------------------------------------------
# Arguments, cache location and key


def _validate(*, duration: Any, dt: Any, seed: Any, n_grid: Any, n_head_direction: Any,
              n_place: Any, n_speed: Any, noise: Any, grid_modules: Any, trajectory: Any = "simulated"
              ) -> dict[str, Any]:
    """Check the arguments and return them normalised (floats as float, counts as int)."""
    params: dict[str, Any] = {
        "duration": check_float("duration", duration, 0.0, strict=True),
        "dt": check_float("dt", dt, 0.0, strict=True),
        "seed": check_int("seed", seed, 0, 2**32 - 1),
    }
    if params["dt"] > params["duration"]:
        raise ValueError(f"dt must be <= duration ({params['duration']} s) so that there is at least one "
                         f"time bin; got dt={params['dt']}")
    counts = {"n_grid": n_grid, "n_head_direction": n_head_direction, "n_place": n_place, "n_speed": n_speed}
    for name, value in counts.items():
        params[name] = check_int(name, value, 0)
    total = sum(params[name] for name in counts)
    if total < 1:
        raise ValueError("n_grid + n_head_direction + n_place + n_speed must be >= 1 (at least one neuron); "
                         f"got {total}")
    params["noise"] = check_float("noise", noise, 0.0)
    params["grid_modules"] = check_int("grid_modules", grid_modules, 1)
    if params["n_grid"] > 0 and params["grid_modules"] > params["n_grid"]:
        raise ValueError(f"grid_modules must be <= n_grid ({params['n_grid']}) so that every module has a "
                         f"cell; got {params['grid_modules']}")
    check_option("trajectory", trajectory, TRAJECTORIES)
    if trajectory != "simulated":  # absent for the simulated path, so that earlier cache files stay valid
        params["trajectory"] = trajectory
        if params["duration"] > SARGOLINI_DURATION_S:
            raise ValueError(f"duration must be <= {SARGOLINI_DURATION_S} s with trajectory='sargolini' (the "
                             f"length of that recording); got {params['duration']}")
    return params


def _import_ratinabox() -> Any:
    try:
        import ratinabox as rb  # exports the classes Environment, Agent, GridCells, ... and utils
    except ImportError as error:
        raise ImportError(_INSTALL_HINT) from error
    return rb


def _ratinabox_version() -> str:
    _import_ratinabox()
    from importlib.metadata import PackageNotFoundError, version
    try:
        return version("ratinabox")
    except PackageNotFoundError:  # e.g. a source checkout on sys.path
        return "unknown"


def _cache_directory(cache: Any) -> Path | None:
    if cache is False:
        return None
    if cache is True:
        env = os.environ.get("XCEBRA_CACHE")
        return Path(env).expanduser() if env else Path.home() / ".cache" / "xcebra"
    if isinstance(cache, (str, os.PathLike)):
        return Path(cache).expanduser()
    raise TypeError(f"cache must be True, False or a directory path; got {cache!r} of type "
                    f"{type(cache).__name__}")


def _cache_key(params: dict[str, Any], version: str) -> str:
    payload = json.dumps({"format": _FORMAT_VERSION, "ratinabox": version, "params": params}, sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()[:24]


# ----------------------------------------------------------------------------------------------
# Cache files


def _load_cache(path: Path, params: dict[str, Any]) -> RatInABoxData | None:
    """Return the cached data, or None if the file is absent, unreadable or does not match."""
    if not path.exists():
        return None
    try:
        with np.load(path, allow_pickle=False) as archive:
            arrays = {name: archive[name] for name in _ARRAY_FIELDS}
            meta = json.loads(str(archive["meta"][()]))
        if meta.get("format") != _FORMAT_VERSION or meta.get("params") != params:
            raise ValueError("its parameters do not match the request")
        n_timepoints = round(params["duration"] / params["dt"])
        n_neurons = sum(params[name] for name in ("n_grid", "n_head_direction", "n_place", "n_speed"))
        expected = {"spikes": (n_timepoints, n_neurons), "rates": (n_timepoints, n_neurons),
                    "position": (n_timepoints, 2), "head_direction": (n_timepoints,),
                    "speed": (n_timepoints,), "time": (n_timepoints,), "cell_types": (n_neurons,)}
        for name, shape in expected.items():
            if arrays[name].shape != shape:
                raise ValueError(f"{name} has shape {arrays[name].shape}, expected {shape}")
            if name != "cell_types" and (arrays[name].dtype != np.float32 or not np.isfinite(arrays[name]).all()):
                raise ValueError(f"{name} is not a finite float32 array")
        if not set(arrays["cell_types"].tolist()) <= set(CELL_TYPES):
            raise ValueError("cell_types holds unknown names")
    except Exception as error:  # noqa: BLE001 - any defect of a cache file means: simulate again
        logger.warning("Ignoring the unreadable ratinabox cache file %s (%s: %s); simulating again",
                       path, type(error).__name__, error)
        return None
    return RatInABoxData(**arrays, params=dict(params))


def _save_cache(path: Path, data: RatInABoxData, version: str) -> None:
    """Write ``data`` to ``path`` atomically (temporary file + rename); a failure is logged, not raised."""
    meta = json.dumps({"format": _FORMAT_VERSION, "ratinabox": version, "params": data.params})
    buffer = io.BytesIO()
    np.savez_compressed(buffer, meta=np.array(meta), **{name: getattr(data, name) for name in _ARRAY_FIELDS})
    try:
        atomic_write_bytes(path, buffer.getvalue())
    except OSError as error:
        logger.warning("Could not write the ratinabox cache file %s (%s); continuing without it", path, error)
        return
    logger.info("Saved the ratinabox data set to the cache file %s", path)


# ----------------------------------------------------------------------------------------------
# Simulation


def _grid_scales(n_modules: int) -> np.ndarray:
    """Grid scales in metres, one per module."""
    if n_modules == 1:
        return np.array([_SINGLE_MODULE_SCALE_M])
    return np.geomspace(*_GRID_SCALE_RANGE_M, n_modules)


def _sargolini_path(n_timepoints: int, dt: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Position (T, 2) in m, velocity (T, 2) in m/s and heading (T, 2) unit vectors of the real rat, at each bin's end."""
    from importlib import resources

    with resources.as_file(resources.files("ratinabox") / "data" / "sargolini.npz") as path:
        with np.load(path) as recording:
            times, path_xy = np.asarray(recording["t"], dtype=np.float64), np.asarray(recording["pos"], np.float64)
    # the recording starts at its first sample: bin k ends (k + 1) * dt after it
    ends = times[0] + np.arange(1, n_timepoints + 1) * dt
    velocity_xy = np.gradient(path_xy, times, axis=0)
    position = np.stack([np.interp(ends, times, path_xy[:, i]) for i in range(2)], axis=1)
    velocity = np.stack([np.interp(ends, times, velocity_xy[:, i]) for i in range(2)], axis=1)
    speed = np.linalg.norm(velocity, axis=1, keepdims=True)
    heading = np.divide(velocity, speed, out=np.tile([1.0, 0.0], (n_timepoints, 1)), where=speed > 0)
    return position, velocity, heading


def _simulate(*, duration: float, dt: float, seed: int, n_grid: int, n_head_direction: int, n_place: int,
              n_speed: int, noise: float, grid_modules: int, trajectory: str = "simulated",
              verbose: bool = False) -> dict[str, np.ndarray]:
    """Run the simulation; return the arrays of :class:`RatInABoxData` (without ``params``)."""
    rb = _import_ratinabox()
    from tqdm.auto import tqdm

    n_timepoints = round(duration / dt)
    substeps = max(1, math.ceil(dt / _MAX_AGENT_DT_S - 1e-9))
    tuning_rng, noise_rng, spike_rng = (np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(3))

    position = np.empty((n_timepoints, 2))
    velocity = np.empty((n_timepoints, 2))
    heading = np.empty((n_timepoints, 2))
    global_state = np.random.get_state()
    np.random.seed(seed)  # ratinabox draws from numpy's global generator
    try:
        environment = rb.Environment(params={"dimensionality": "2D", "scale": 1.0, "aspect": 1.0,
                                                         "boundary_conditions": "solid"})
        agent = rb.Agent(environment, params={"dt": dt / substeps, "save_history": False})
        populations = _make_cells(rb, agent, tuning_rng, n_grid=n_grid, n_head_direction=n_head_direction,
                                  n_place=n_place, grid_modules=grid_modules)
        bar = tqdm(range(n_timepoints if trajectory == "simulated" else 0), disable=not verbose, desc="ratinabox",
                   unit="bin", mininterval=0.5)
        if trajectory == "sargolini":
            position, velocity, heading = _sargolini_path(n_timepoints, dt)
        for t in bar:
            for _ in range(substeps):
                agent.update()
            position[t] = agent.pos
            velocity[t] = agent.measured_velocity
            heading[t] = agent.head_direction
    finally:
        np.random.set_state(global_state)

    head_direction = rb.utils.get_angle(heading, is_array=True)
    speed = np.linalg.norm(velocity, axis=1)
    blocks: list[np.ndarray] = []
    cell_types: list[str] = []
    if n_grid:
        blocks.append(_spatial_rates(populations["grid"], position))
    if n_head_direction:
        blocks.append(_head_direction_rates(rb, populations["head_direction"], head_direction))
    if n_place:
        blocks.append(_spatial_rates(populations["place"], position))
    if n_speed:
        blocks.append(_speed_rates(speed, n_speed, tuning_rng))
    for name, n in zip(CELL_TYPES, (n_grid, n_head_direction, n_place, n_speed)):
        cell_types += [name] * n
    clean = np.concatenate(blocks, axis=1)

    rates = np.maximum(clean + _ou_noise(clean.shape, dt, noise * _MAX_RATE_HZ, noise_rng), 0.0)
    spikes = spike_rng.poisson(rates * dt)
    return {
        "spikes": spikes.astype(np.float32),
        "rates": rates.astype(np.float32),
        "position": position.astype(np.float32),
        "head_direction": head_direction.astype(np.float32),
        "speed": speed.astype(np.float32),
        "time": (np.arange(1, n_timepoints + 1) * dt).astype(np.float32),
        "cell_types": np.array(cell_types, dtype=f"<U{max(len(c) for c in CELL_TYPES)}"),
    }


def _make_cells(rb: Any, agent: Any, rng: np.random.Generator, *, n_grid: int, n_head_direction: int,
                n_place: int, grid_modules: int) -> dict[str, Any]:
    """Create the ratinabox populations (grid, head-direction, place) attached to ``agent``."""
    rate_range = {"min_fr": 0.0, "max_fr": _MAX_RATE_HZ, "save_history": False}
    populations = {}
    if n_grid:
        module = np.concatenate([np.full(len(part), i) for i, part in
                                 enumerate(np.array_split(np.arange(n_grid), grid_modules))])
        orientations = rng.uniform(0.0, np.pi / 3, size=grid_modules)
        populations["grid"] = rb.GridCells(agent, params={
            "n": n_grid, "gridscale": list(_grid_scales(grid_modules)[module]),
            "orientation": list(orientations[module]), "description": "rectified_cosines",
            "name": "GridCells", **rate_range})
    if n_head_direction:
        populations["head_direction"] = rb.HeadDirectionCells(agent, params={
            "n": n_head_direction, "angular_spread_degrees": _HD_SPREAD_DEGREES,
            "name": "HeadDirectionCells", **rate_range})
    if n_place:
        populations["place"] = rb.PlaceCells(agent, params={
            "n": n_place, "description": "gaussian", "widths": _PLACE_FIELD_WIDTH_M,
            "name": "PlaceCells", **rate_range})
    return populations


def _spatial_rates(cells: Any, position: np.ndarray) -> np.ndarray:
    """Rates (n_timepoints, n_cells) of ratinabox GridCells/PlaceCells at all positions.

    Uses the vectorised ``get_state(evaluate_at=None, pos=...)``, in chunks of time points so that its
    (n_cells, chunk, 2, 2) intermediates stay small for long recordings.
    """
    chunks = [cells.get_state(evaluate_at=None, pos=position[start:start + _CHUNK]).T
              for start in range(0, len(position), _CHUNK)]
    return np.concatenate(chunks, axis=0)


def _head_direction_rates(rb: Any, cells: Any, angles: np.ndarray) -> np.ndarray:
    """Rates (n_timepoints, n_cells) of ratinabox HeadDirectionCells for many head directions at once.

    Same formula as ``HeadDirectionCells.get_state``, which accepts a single direction only.
    """
    tuning = rb.utils.von_mises(angles[:, None], cells.preferred_angles[None, :],
                                cells.angular_tunings[None, :], norm=1)
    return tuning * (cells.max_fr - cells.min_fr) + cells.min_fr


def _speed_rates(speed: np.ndarray, n_cells: int, rng: np.random.Generator) -> np.ndarray:
    """Rates (n_timepoints, n_cells) of sigmoidally speed-tuned cells with random thresholds and slopes."""
    thresholds = rng.uniform(*_SPEED_THRESHOLD_RANGE, size=n_cells)
    slopes = rng.uniform(*_SPEED_SLOPE_RANGE, size=n_cells)
    drive = (speed[:, None] - thresholds[None, :]) / slopes[None, :]
    return _MAX_RATE_HZ * 0.5 * (1.0 + np.tanh(0.5 * drive))  # sigmoid, without overflow warnings


def _ou_noise(shape: tuple[int, int], dt: float, std: float, rng: np.random.Generator) -> np.ndarray:
    """Stationary Ornstein-Uhlenbeck noise sampled exactly on a grid of step ``dt``, shape (T, N)."""
    if std == 0:
        return np.zeros(shape)
    from scipy.signal import lfilter

    decay = math.exp(-dt / _NOISE_COHERENCE_TIME_S)
    innovations = rng.standard_normal(shape)
    start = rng.standard_normal((1, shape[1])) * std  # the value before the first bin
    return lfilter([std * math.sqrt(1.0 - decay**2)], [1.0, -decay], innovations, axis=0, zi=decay * start)[0]
