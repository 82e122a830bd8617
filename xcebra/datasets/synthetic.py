"""Synthetic neural data with a known ground-truth attribution map.

The generative model follows the synthetic setting of the xCEBRA paper (Schneider et al.,
AISTATS 2025), made no easier:

1. **Latents** ``z_t`` (``n_latents = n_behavior_latents + n_time_latents``), standardised to
   unit variance. The *behaviour* block is a smooth bounded random walk (an animal moving in a
   box: smooth velocity, position reflected at the walls), which crosses the box in a few hundred
   samples. The *time* block is Gaussian white noise low-pass filtered with a Gaussian kernel of
   width 10 samples, so a time-contrastive objective with offset 10 sees it as slow while it makes
   hundreds of independent excursions over 12,000 samples. The two blocks (and all latents) are
   drawn independently.
2. **Connectivity** ``latent_truth`` ``(n_latents, N)``: entry ``(i, n)`` is ``True`` when neuron
   ``n`` is driven by latent ``i``; drawn as Bernoulli(``connection_prob``) and then fixed so that
   every neuron has at least one latent, every latent drives at least two neurons, and there is
   always at least one pure-behaviour, one pure-time and one mixed neuron.
3. **Mixing**: each neuron has its own random two-layer network
   ``softplus(g * standardise(w2 . tanh(W1 z_S + b1)) + b2)`` over *only* its connected latents
   ``S``. The tanh layer mixes the latents of ``S``, so they interact inside the neuron (the
   response is not a sum of one-latent responses). The unconnected weights are exact zeros and the
   computation is element-wise, so a rate is bit-for-bit independent of unconnected latents. The
   rates are scaled to a mean of 2 counts per bin.
4. **Noise**: ``"gaussian"``: ``neural = rates + noise_level * std_n(rates) * N(0, 1)``;
   ``"poisson"``: ``neural ~ Poisson(rates)`` (counts with mean ~2 per bin, stored as float32).
   In both cases ``E[neural] = rates``.

What the ground truth means
---------------------------
``block_truth`` ``(2, N)`` is the quantity xCEBRA identifies: contrastive training recovers each
embedding block (behaviour, time) only up to an invertible linear map, so the attribution of a
neuron to a *block* is identifiable, not the attribution to a single embedding dimension. Use
:meth:`SyntheticData.ground_truth` to expand it to an embedding layout such as
``model.blocks_``. ``latent_truth`` is the per-entry map; it matches an embedding only if that
embedding's basis is aligned with the latents (e.g. when attributing the latents themselves).
"""

from __future__ import annotations

import dataclasses

import numpy as np

from xcebra._validation import check_float, check_int, check_option

__all__ = ["SyntheticData", "make_synthetic", "NOISE_MODELS"]

#: Noise models accepted by :func:`make_synthetic`.
NOISE_MODELS = ("gaussian", "poisson")
BLOCK_NAMES = ("behavior", "time")

_TIME_SMOOTHING = 10.0     # std (samples) of the Gaussian kernel that smooths the time latents
_VELOCITY_SMOOTHING = 10.0  # std (samples) of the kernel that smooths the behaviour velocity
_BEHAVIOR_STEP = 0.01      # rms step of the behaviour random walk, in box widths per sample
_N_HIDDEN = 8              # hidden tanh units per neuron
_HIDDEN_GAIN = 2.5         # std of the summed input weights of a hidden unit (latents have unit variance)
_OUTPUT_GAIN = 1.5         # gain in front of the standardised output drive
_MEAN_COUNT = 2.0          # mean rate over all neurons and time points, in counts per bin


@dataclasses.dataclass(frozen=True, eq=False)
class _Mixing:
    """Parameters of the per-neuron networks (see :meth:`SyntheticData.mixing`).

    ``w1`` is ``(n_latents, n_neurons, n_hidden)`` with exact zeros where a neuron is not
    connected to a latent; ``b1`` and ``w2`` are ``(n_neurons, n_hidden)``; ``center``, ``scale``,
    ``bias`` and ``gain`` are ``(n_neurons,)``.
    """

    w1: np.ndarray
    b1: np.ndarray
    w2: np.ndarray
    center: np.ndarray
    scale: np.ndarray
    bias: np.ndarray
    gain: np.ndarray

    def drive(self, latents: np.ndarray) -> np.ndarray:
        """Return the output drive ``w2 . tanh(W1 z + b1)`` as float64, shape ``(T, n_neurons)``.

        Element-wise products and sums in a fixed order (no BLAS), so every row is computed the
        same way whatever the other rows are, and zero weights contribute exactly nothing.
        """
        z = np.asarray(latents, dtype=np.float64)
        out = np.zeros((z.shape[0], self.w1.shape[1]), dtype=np.float64)
        for h in range(self.w1.shape[2]):
            pre = np.broadcast_to(self.b1[:, h], out.shape).copy()
            for i in range(self.w1.shape[0]):
                weights = self.w1[i, :, h]
                connected = weights != 0.0
                if connected.any():
                    pre[:, connected] += z[:, i:i + 1] * weights[connected]
            out += self.w2[:, h] * np.tanh(pre)
        return out

    def __call__(self, latents: np.ndarray) -> np.ndarray:
        drive = (self.drive(latents) - self.center) / self.scale
        return (self.gain * _softplus(_OUTPUT_GAIN * drive + self.bias)).astype(np.float32)


def _softplus(x: np.ndarray) -> np.ndarray:
    return np.logaddexp(0.0, x)


@dataclasses.dataclass(frozen=True, eq=False)
class SyntheticData:
    """Synthetic neural recording with known latents and ground-truth attribution.

    Made by :func:`make_synthetic`; see the module docstring for the generative model.
    Comparison is by identity (``eq=False``): the fields are arrays.

    Attributes
    ----------
    neural : ndarray of shape (n_timepoints, n_neurons), float32
        Observed activity: ``rates`` plus Gaussian noise, or Poisson counts drawn from ``rates``.
    rates : ndarray of shape (n_timepoints, n_neurons), float32
        Noise-free activity, ``mixing(latents)``; equal to the expectation of ``neural``.
    behavior : ndarray of shape (n_timepoints, n_behavior_latents), float32
        The observed auxiliary variable: a copy of the behaviour latents.
    latents : ndarray of shape (n_timepoints, n_latents), float32
        All latents, columns ``[behaviour latents..., time latents...]``, each with zero mean and
        unit variance.
    latent_truth : ndarray of shape (n_latents, n_neurons), bool
        ``latent_truth[i, n]`` is True when neuron ``n`` depends on latent ``i``. This per-entry
        map only matches an embedding whose basis is aligned with the latents.
    block_truth : ndarray of shape (2, n_neurons), bool
        Row 0 ("behavior"): some behaviour latent drives neuron ``n``; row 1 ("time"): some time
        latent does. This is what xCEBRA identifies, since each embedding block is recovered only
        up to an invertible linear map. Both rows contain True and False.
    block_names : tuple of str
        ``("behavior", "time")``, the names of the rows of ``block_truth``.
    latent_blocks : list of (str, slice)
        ``[("behavior", slice(0, nb)), ("time", slice(nb, nb + nt))]``: the columns of
        ``latents`` that form each block.
    noise : str
        ``"gaussian"`` or ``"poisson"``.

    Examples
    --------
    >>> data = make_synthetic(n_timepoints=1000, random_state=0)
    >>> data.neural.shape, data.latents.shape, data.block_truth.shape
    ((1000, 50), (1000, 6), (2, 50))
    >>> data.ground_truth([("behavior", slice(0, 4)), ("time", slice(4, 14))]).shape
    (14, 50)
    """

    neural: np.ndarray
    rates: np.ndarray
    behavior: np.ndarray
    latents: np.ndarray
    latent_truth: np.ndarray
    block_truth: np.ndarray
    block_names: tuple
    latent_blocks: list
    noise: str
    _mixing: _Mixing = dataclasses.field(repr=False)

    @property
    def n_neurons(self) -> int:
        """Number of neurons ``N``."""
        return self.neural.shape[1]

    def ground_truth(self, blocks) -> np.ndarray:
        """Expand ``block_truth`` to an embedding layout.

        Parameters
        ----------
        blocks : list of (str, slice)
            Embedding blocks such as ``model.blocks_``, e.g.
            ``[("behavior", slice(0, 4)), ("time", slice(4, 14))]``. Names must be in
            ``block_names``; the slices must be in order and cover ``0..output_dim`` without gaps
            or overlaps, with step 1.

        Returns
        -------
        ndarray of shape (output_dim, n_neurons), bool
            Every row of a block is a copy of that block's row of ``block_truth``.

        Raises
        ------
        ValueError
            If a name is unknown, or the slices are not a contiguous cover starting at 0.
        """
        try:
            blocks = list(blocks)
        except TypeError:
            raise ValueError(
                f"blocks must be a list of (name, slice) pairs; got {blocks!r}") from None
        if not blocks:
            raise ValueError("blocks must contain at least one (name, slice) pair; got []")
        rows = []
        expected_start = 0
        for position, block in enumerate(blocks):
            if not (isinstance(block, (tuple, list)) and len(block) == 2):
                raise ValueError(
                    f"blocks[{position}] must be a (name, slice) pair; got {block!r}")
            name, dims = block
            if name not in self.block_names:
                allowed = ", ".join(repr(n) for n in self.block_names)
                raise ValueError(
                    f"blocks[{position}] has name {name!r}; the name must be one of {allowed}")
            if not isinstance(dims, slice) or dims.step not in (None, 1):
                raise ValueError(
                    f"blocks[{position}] ({name!r}) must have a slice with step 1; got {dims!r}")
            if dims.start is None and dims.stop is not None:
                dims = slice(0, dims.stop)
            if not (isinstance(dims.start, (int, np.integer))
                    and isinstance(dims.stop, (int, np.integer))):
                raise ValueError(
                    f"blocks[{position}] ({name!r}) must have integer start and stop; got {dims!r}")
            if dims.start != expected_start:
                raise ValueError(
                    f"blocks[{position}] ({name!r}) must start at {expected_start} so that the "
                    f"blocks cover the embedding contiguously; got {dims!r}")
            if dims.stop <= dims.start:
                raise ValueError(
                    f"blocks[{position}] ({name!r}) must be non-empty (stop > start); got {dims!r}")
            row = self.block_truth[self.block_names.index(name)]
            rows.append(np.repeat(row[None, :], dims.stop - dims.start, axis=0))
            expected_start = int(dims.stop)
        return np.concatenate(rows, axis=0)

    def mixing(self, latents: np.ndarray) -> np.ndarray:
        """Apply the noise-free map from latents to rates.

        Parameters
        ----------
        latents : ndarray of shape (n_samples, n_latents)
            Latent values, columns ordered as in ``latents``.

        Returns
        -------
        ndarray of shape (n_samples, n_neurons), float32
            Non-negative rates. Deterministic and row-wise: ``mixing(self.latents)`` equals
            ``self.rates`` exactly, and ``mixing(z)[t]`` depends only on ``z[t]``. The rate of
            neuron ``n`` is exactly independent of latents ``i`` with
            ``latent_truth[i, n] == False``.
        """
        z = np.asarray(latents)
        n_latents = self.latent_truth.shape[0]
        if z.ndim != 2 or z.shape[1] != n_latents:
            raise ValueError(
                f"latents must have shape (n_samples, {n_latents}); got shape {z.shape}")
        return self._mixing(z)


def _smooth_noise(rng: np.random.Generator, n_timepoints: int, n_columns: int,
                  sigma: float) -> np.ndarray:
    """Gaussian white noise filtered by a Gaussian kernel of std ``sigma`` samples, float64 (T, d).

    The noise is drawn with a margin of ``4 sigma`` on each side, so the output has no edge effects.
    """
    half = int(np.ceil(4 * sigma))
    kernel = np.exp(-0.5 * (np.arange(-half, half + 1) / sigma) ** 2)
    kernel /= np.sqrt(np.sum(kernel ** 2))
    noise = rng.standard_normal((n_columns, n_timepoints + 2 * half))
    return np.stack([np.convolve(column, kernel, mode="valid") for column in noise], axis=1)


def _standardise(x: np.ndarray) -> np.ndarray:
    return (x - x.mean(axis=0)) / x.std(axis=0)


def _behavior_latents(rng: np.random.Generator, n_timepoints: int, n_columns: int,
                      timescale: float = 1.0) -> np.ndarray:
    """A smooth random walk in the unit box, reflected at the walls, standardised, float64 (T, d).

    ``timescale`` stretches the walk in time: its velocity is smoothed over ``timescale`` times more
    samples and its steps are ``timescale`` times smaller, so it crosses the box that much more slowly.
    """
    velocity = (_BEHAVIOR_STEP / timescale) * _smooth_noise(rng, n_timepoints, n_columns,
                                                           _VELOCITY_SMOOTHING * timescale)
    position = rng.uniform(0.0, 1.0, size=n_columns) + np.cumsum(velocity, axis=0)
    position = np.mod(position, 2.0)
    position = np.where(position > 1.0, 2.0 - position, position)  # reflection at 0 and 1
    return _standardise(position)


def _connectivity(rng: np.random.Generator, n_behavior: int, n_time: int, n_neurons: int,
                  connection_prob: float) -> np.ndarray:
    """Draw the (n_latents, n_neurons) bool connectivity and fix it to meet the guarantees.

    Three random neurons are made pure-behaviour, pure-time and mixed; afterwards connections are
    only added, and never to the two pure neurons, so the three classes survive. Empty neurons get
    one random latent; latents with fewer than two neurons get more among the other
    ``n_neurons - 2 >= 8`` neurons.
    """
    n_latents = n_behavior + n_time
    behavior, time = np.arange(n_behavior), np.arange(n_behavior, n_latents)
    truth = rng.random((n_latents, n_neurons)) < connection_prob
    pure_behavior, pure_time, mixed = rng.permutation(n_neurons)[:3]

    truth[time, pure_behavior] = False
    if not truth[behavior, pure_behavior].any():
        truth[rng.choice(behavior), pure_behavior] = True
    truth[behavior, pure_time] = False
    if not truth[time, pure_time].any():
        truth[rng.choice(time), pure_time] = True
    if not truth[behavior, mixed].any():
        truth[rng.choice(behavior), mixed] = True
    if not truth[time, mixed].any():
        truth[rng.choice(time), mixed] = True

    for neuron in np.flatnonzero(~truth.any(axis=0)):
        truth[rng.integers(n_latents), neuron] = True

    free = np.ones(n_neurons, dtype=bool)
    free[[pure_behavior, pure_time]] = False
    for latent in range(n_latents):
        missing = 2 - int(truth[latent].sum())
        if missing > 0:
            candidates = np.flatnonzero(free & ~truth[latent])
            truth[latent, rng.choice(candidates, size=missing, replace=False)] = True
    return truth


def _make_mixing(rng: np.random.Generator, truth: np.ndarray, latents: np.ndarray) -> _Mixing:
    """Draw the per-neuron networks; centre, scale and gain are fitted on ``latents``."""
    n_latents, n_neurons = truth.shape
    fan_in = truth.sum(axis=0)  # (n_neurons,), >= 1
    w1 = rng.standard_normal((n_latents, n_neurons, _N_HIDDEN)) * (
        _HIDDEN_GAIN / np.sqrt(fan_in))[None, :, None]
    w1 = np.where(truth[:, :, None], w1, 0.0)
    b1 = rng.standard_normal((n_neurons, _N_HIDDEN))
    w2 = rng.standard_normal((n_neurons, _N_HIDDEN)) / np.sqrt(_N_HIDDEN)
    bias = rng.uniform(-0.5, 1.0, size=n_neurons)
    ones = np.ones(n_neurons)
    mixing = _Mixing(w1=w1, b1=b1, w2=w2, center=np.zeros(n_neurons), scale=ones, bias=bias,
                     gain=ones)
    drive = mixing.drive(latents)
    center, scale = drive.mean(axis=0), drive.std(axis=0)
    scale = np.where(scale > 0, scale, 1.0)
    mixing = dataclasses.replace(mixing, center=center, scale=scale)
    mean_rate = float(np.mean(mixing(latents), dtype=np.float64))
    return dataclasses.replace(mixing, gain=np.full(n_neurons, _MEAN_COUNT / mean_rate))


def make_synthetic(n_timepoints: int = 12_000, n_neurons: int = 50, n_behavior_latents: int = 3,
                   n_time_latents: int = 3, noise: str = "gaussian", noise_level: float = 0.5,
                   connection_prob: float = 0.3, latent_timescale: float = 1.0,
                   random_state: int | None = 0) -> SyntheticData:
    """Simulate neural activity driven by behaviour and time latents, with known attribution.

    Parameters
    ----------
    n_timepoints : int, default=12000
        Number of time points ``T`` (>= 10).
    n_neurons : int, default=50
        Number of neurons ``N`` (>= 10, so that the connectivity guarantees can always be met).
    n_behavior_latents : int, default=3
        Number of behaviour latents (>= 1): a smooth random walk in a box, also returned as
        ``behavior``.
    n_time_latents : int, default=3
        Number of time latents (>= 1): low-pass filtered Gaussian noise, smooth on ~10 samples.
    noise : {"gaussian", "poisson"}, default="gaussian"
        Observation noise. ``"gaussian"`` adds ``noise_level * std_n(rates) * N(0, 1)`` per neuron
        ``n``; ``"poisson"`` draws counts ``Poisson(rates)``, with rates scaled to a mean of 2
        counts per bin (``noise_level`` is then unused).
    noise_level : float, default=0.5
        Gaussian noise std relative to each neuron's rate std (>= 0; 0 gives ``neural == rates``).
    connection_prob : float, default=0.3
        Probability that a latent drives a neuron, in (0, 1]; the drawn map is then fixed so that
        every neuron has a latent, every latent drives >= 2 neurons, and pure-behaviour, pure-time
        and mixed neurons all exist.
    latent_timescale : float, default=1.0
        How slowly the latents change (> 0), as a factor on their time scales: the time latents are
        smoothed over ``10 * latent_timescale`` samples, and the behaviour walk moves
        ``latent_timescale`` times more slowly (smoother velocity, smaller steps). 1 is the paper-like
        fast regime; 5 gives slow latents, where neighbouring samples are nearly identical (the regime in
        which an unbounded euclidean embedding inflates). 1.0 reproduces earlier releases bit for bit.
    random_state : int or None, default=0
        Seed of ``np.random.default_rng``; the same seed gives identical arrays. None: fresh
        entropy.

    Returns
    -------
    SyntheticData
        Arrays ``neural``, ``rates`` ``(T, N)``, ``latents`` ``(T, nb + nt)``, ``behavior``
        ``(T, nb)`` and the ground truth ``latent_truth`` ``(nb + nt, N)`` and ``block_truth``
        ``(2, N)``.

    Raises
    ------
    ValueError
        If an argument is out of range or ``noise`` is unknown; the message names the argument,
        the value received and what is allowed.
    TypeError
        If an integer argument is not an integer or a float argument is not a real number.

    Examples
    --------
    >>> data = make_synthetic(n_timepoints=2000, noise="poisson", random_state=1)
    >>> data.neural.shape, data.neural.dtype
    ((2000, 50), dtype('float32'))
    >>> bool(data.block_truth.any(axis=1).all() and (~data.block_truth).any(axis=1).all())
    True
    """
    n_timepoints = check_int("n_timepoints", n_timepoints, minimum=10)
    n_neurons = check_int("n_neurons", n_neurons, minimum=10)
    n_behavior = check_int("n_behavior_latents", n_behavior_latents, minimum=1)
    n_time = check_int("n_time_latents", n_time_latents, minimum=1)
    check_option("noise", noise, NOISE_MODELS)
    noise_level = check_float("noise_level", noise_level, minimum=0.0)
    connection_prob = check_float("connection_prob", connection_prob, minimum=0.0, strict=True,
                                  maximum=1.0)
    timescale = check_float("latent_timescale", latent_timescale, minimum=0.0, strict=True)
    if random_state is not None:
        random_state = check_int("random_state", random_state, minimum=0)

    # One generator per stage, so changing e.g. the noise model leaves latents and rates alone.
    seeds = np.random.SeedSequence(random_state).spawn(5)
    rng_behavior, rng_time, rng_truth, rng_mixing, rng_noise = (
        np.random.default_rng(seed) for seed in seeds)

    latents64 = np.concatenate([
        _behavior_latents(rng_behavior, n_timepoints, n_behavior, timescale),
        _standardise(_smooth_noise(rng_time, n_timepoints, n_time, _TIME_SMOOTHING * timescale)),
    ], axis=1)
    latents = latents64.astype(np.float32)
    latent_truth = _connectivity(rng_truth, n_behavior, n_time, n_neurons, connection_prob)
    mixing = _make_mixing(rng_mixing, latent_truth, latents)
    rates = mixing(latents)

    if noise == "gaussian":
        std = rates.std(axis=0, dtype=np.float64)
        neural = rates + noise_level * std * rng_noise.standard_normal(rates.shape)
    else:
        neural = rng_noise.poisson(rates.astype(np.float64))
    block_truth = np.stack([latent_truth[:n_behavior].any(axis=0),
                            latent_truth[n_behavior:].any(axis=0)])
    return SyntheticData(
        neural=neural.astype(np.float32),
        rates=rates,
        behavior=latents[:, :n_behavior].copy(),
        latents=latents,
        latent_truth=latent_truth,
        block_truth=block_truth,
        block_names=BLOCK_NAMES,
        latent_blocks=[("behavior", slice(0, n_behavior)),
                       ("time", slice(n_behavior, n_behavior + n_time))],
        noise=noise,
        _mixing=mixing,
    )
