"""The demo's configuration: :class:`DemoConfig`, its presets, the training precision, and the data and the
model it describes (:func:`simulate`, :func:`build_model`)."""

from __future__ import annotations

import dataclasses
import numbers
from collections.abc import Mapping
from typing import Any

import torch

from .._files import jsonable
from ..datasets.ratinabox import RatInABoxData, ratinabox
from ..estimators import XCEBRA
from ..objectives import Objective

__all__ = ["DemoConfig", "PRESETS", "PRECISIONS", "BEHAVIOR_HYPOTHESIS", "SEED_HYPOTHESIS", "with_steps",
           "training_precision", "simulate", "build_model"]

#: The hypothesis the demo scores: within the behaviour block, grid and place cells drive it.
BEHAVIOR_HYPOTHESIS: dict[str, list[str]] = {"behavior": ["grid", "place"]}
#: The seed notebook's hypothesis, scored per entry over both blocks (reported for comparison only).
SEED_HYPOTHESIS: dict[str, list[str]] = {"behavior": ["grid", "place"], "time": ["head_direction", "speed"]}


@dataclasses.dataclass(frozen=True)
class DemoConfig:
    """Everything :func:`run_demo` needs besides the output directory and the model seed.

    The defaults are the seed notebook's: RatInABox defaults (90 neurons, 2000 s at 0.1 s, noise 0.25,
    Poisson spikes), two objectives (behaviour on dims 0-3 with ``time_delta`` positives on position, each
    at least the encoder's window from its reference; time on dims 0-13 with offset 10), ``offset10``
    encoder with 256 hidden units, 14 output dims, cosine InfoNCE at temperature 1, batch 2500, 1000 steps,
    learning rate 3e-4 and a Jacobian regularizer of weight 0.1 ramped in over steps 250-500.

    ``methods[0]`` is the headline map of the hypothesis test (``summary["headline_method"]``):
    ``"ing-block"``, the Inverted Neuron Gradient per block. A cell-type hypothesis splits the neurons into
    populations, one per block, and the time objective also encodes position in the time block; then the
    encoder is identified up to a block lower-triangular linear map, whose inverse mixes time-latent cells
    into the behaviour rows of the whole-Jacobian inverse (the paper's ``"ing"``, reported next to it), while
    the behaviour block's own inverse stays exact (docs/design-notes.md, Attribution).
    """

    # data (xcebra.datasets.ratinabox)
    duration: float = 2000.0
    dt: float = 0.1
    data_seed: int = 231209234
    n_grid: int = 30
    n_head_direction: int = 20
    n_place: int = 20
    n_speed: int = 20
    noise: float = 0.25
    grid_modules: int = 3
    trajectory: str = "simulated"  # or "sargolini": a real rat's path (at most 599.6 s), see datasets.ratinabox
    cache: Any = True
    # model (xcebra.XCEBRA)
    model: str = "offset10"
    hidden_units: int = 256
    output_dim: int = 14
    behavior_dims: tuple[int, int] = (0, 4)
    behavior_min_separation: int | None = None  # None: the larger of the encoder's window and the position's autocorrelation time
    time_offset: int = 10
    loss: str = "cosine"
    temperature: float = 1.0
    batch_size: int = 2500
    max_steps: int = 1000
    learning_rate: float = 3e-4
    regularizer_weight: float = 0.1
    regularizer_ramp: Any = (250, 500)
    precision: str = "auto"  # see training_precision
    # attribution
    methods: tuple[str, ...] = ("ing-block", "ing", "jacobian")  # the first is the hypothesis test's headline
    num_samples: int | None = None
    attribution_batch_size: int = 1024
    # figures
    raster_timepoints: int = 2000
    embedding_points: int = 10_000

    def to_dict(self) -> dict[str, Any]:
        return jsonable(dataclasses.asdict(self))


#: Named configurations: ``"default"`` is the seed's, ``"quick"`` a short run (< 2 min on 2 cores),
#: ``"tiny"`` a smoke test used by the test suite (seconds).
PRESETS: dict[str, DemoConfig] = {
    "default": DemoConfig(),
    "quick": DemoConfig(duration=600.0, batch_size=512, max_steps=120, learning_rate=1e-3,
                        regularizer_ramp="auto", num_samples=1500),
    "tiny": DemoConfig(duration=120.0, n_grid=6, n_head_direction=4, n_place=4, n_speed=4, hidden_units=32,
                       batch_size=128, max_steps=30, learning_rate=3e-3, regularizer_ramp="auto",
                       num_samples=300, attribution_batch_size=256, raster_timepoints=600,
                       embedding_points=1000),
}


PRECISIONS = ("auto", "fp32", "bf16")


def training_precision(requested: str) -> str:
    """The ``precision`` the demo trains with: ``"auto"`` is ``"bf16"`` on a CPU that multiplies bfloat16
    natively (AVX512-BF16 or AMX, as oneDNN reports), ``"fp32"`` otherwise and whenever CUDA is used.

    Why: a seed-configuration step with the regularizer takes 0.20 s in bf16 against 0.44 s in fp32 on a
    2-core CPU with AMX (docs: results, "Speed"; 478 s against 758 s for the whole fit on one with
    AVX512-BF16 only), with the same decoding and hypothesis scores within 0.002 (docs: results, "The seed
    demo on RatInABox data"); on CPUs without bf16 units autocast emulates it and is slower.
    """
    if requested not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(repr(p) for p in PRECISIONS)}; got {requested!r}")
    if requested != "auto":
        return requested
    if torch.cuda.is_available():
        return "fp32"
    try:
        native = bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):  # a torch build without oneDNN
        native = False
    return "bf16" if native else "fp32"


def with_steps(config: DemoConfig, steps: int) -> DemoConfig:
    """``config`` trained for ``steps`` steps; a ramp ``(on, off)`` in steps is scaled by ``steps / max_steps``."""
    if isinstance(steps, bool) or not isinstance(steps, numbers.Integral) or steps < 1:
        raise ValueError(f"steps must be an int >= 1; got {steps!r}")
    ramp = config.regularizer_ramp
    if isinstance(ramp, (tuple, list)):
        on, off = (round(v * steps / config.max_steps) for v in ramp)
        ramp = (on, off) if off > on else None
    return dataclasses.replace(config, max_steps=int(steps), regularizer_ramp=ramp)


def _resolve_config(quick: bool, config: Any) -> tuple[str, DemoConfig]:
    if isinstance(config, DemoConfig):
        return "custom", config
    if isinstance(config, str):
        if config not in PRESETS:
            raise ValueError(f"_config must be one of {', '.join(repr(k) for k in PRESETS)}, a DemoConfig or a "
                             f"dict of overrides; got {config!r}")
        return config, PRESETS[config]
    name = "quick" if quick else "default"
    base = PRESETS[name]
    if config is None:
        return name, base
    if not isinstance(config, Mapping):
        raise TypeError(f"_config must be a preset name, a DemoConfig or a dict of overrides; got "
                        f"{type(config).__name__}")
    fields = {f.name for f in dataclasses.fields(DemoConfig)}
    unknown = sorted(set(config) - fields)
    if unknown:
        raise ValueError(f"_config has unknown field(s) {unknown}; DemoConfig fields are {sorted(fields)}")
    return f"{name}+overrides", dataclasses.replace(base, **dict(config))


def simulate(config: DemoConfig, *, verbose: bool = False) -> RatInABoxData:
    """The RatInABox recording of ``config`` (:func:`xcebra.datasets.ratinabox`): spikes (T, N), position (T, 2)."""
    return ratinabox(duration=config.duration, dt=config.dt, seed=config.data_seed, n_grid=config.n_grid,
                     n_head_direction=config.n_head_direction, n_place=config.n_place, n_speed=config.n_speed,
                     noise=config.noise, grid_modules=config.grid_modules, trajectory=config.trajectory,
                     cache=config.cache, verbose=verbose)


def build_model(config: DemoConfig, *, precision: str, random_state: int | None = 0, verbose: bool = False) -> XCEBRA:
    """The demo's unfitted :class:`xcebra.XCEBRA`: a ``behavior`` objective on position and a ``time`` objective."""
    ramp = config.regularizer_ramp
    return XCEBRA(
        objectives=[Objective("behavior", dims=tuple(config.behavior_dims), distribution="time_delta",
                              label="position", min_separation=config.behavior_min_separation),
                    Objective("time", dims=(0, config.output_dim), distribution="time",
                              time_offset=config.time_offset)],
        model=config.model, hidden_units=config.hidden_units, output_dim=config.output_dim, loss=config.loss,
        temperature=config.temperature, batch_size=config.batch_size, max_steps=config.max_steps,
        learning_rate=config.learning_rate, regularizer_weight=config.regularizer_weight,
        regularizer_ramp=tuple(ramp) if isinstance(ramp, list) else ramp, precision=precision,
        random_state=random_state, verbose=verbose)
