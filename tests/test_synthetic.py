"""Tests for xcebra.datasets.synthetic: shapes, determinism, exact ground truth, noise, recoverability."""

from __future__ import annotations

import doctest
import re
import warnings

import numpy as np
import pytest
from sklearn.exceptions import ConvergenceWarning
from sklearn.metrics import r2_score
from sklearn.neural_network import MLPRegressor
from threadpoolctl import threadpool_limits

from xcebra.datasets import synthetic
from xcebra.datasets.synthetic import SyntheticData, make_synthetic


@pytest.fixture(scope="module", params=[0, 1, 2], ids=lambda seed: f"seed{seed}")
def default_data(request) -> SyntheticData:
    """The default data set for three seeds, shared by the statistical checks."""
    return make_synthetic(random_state=request.param)


@pytest.fixture(scope="module")
def small() -> SyntheticData:
    """A small data set with uneven blocks for the cheap checks."""
    return make_synthetic(n_timepoints=2000, n_neurons=20, n_behavior_latents=2,
                          n_time_latents=4, random_state=3)


def _autocorrelation(x: np.ndarray, lag: int) -> np.ndarray:
    """Lag-``lag`` autocorrelation of each column of ``x`` (T, d)."""
    x = x - x.mean(axis=0)
    return (x[:-lag] * x[lag:]).mean(axis=0) / x.var(axis=0)


# --- shapes, dtypes, determinism -------------------------------------------------------------

@pytest.mark.parametrize("noise", ["gaussian", "poisson"])
def test_shapes_and_dtypes(noise):
    d = make_synthetic(n_timepoints=500, n_neurons=12, n_behavior_latents=2, n_time_latents=4,
                       noise=noise, random_state=1)
    assert d.neural.shape == d.rates.shape == (500, 12)
    assert d.latents.shape == (500, 6)
    assert d.behavior.shape == (500, 2)
    assert d.latent_truth.shape == (6, 12)
    assert d.block_truth.shape == (2, 12)
    for array in (d.neural, d.rates, d.behavior, d.latents):
        assert array.dtype == np.float32
        assert np.isfinite(array).all()
    assert d.latent_truth.dtype == bool and d.block_truth.dtype == bool
    assert d.block_names == ("behavior", "time")
    assert d.latent_blocks == [("behavior", slice(0, 2)), ("time", slice(2, 6))]
    assert d.noise == noise
    assert d.n_neurons == 12
    np.testing.assert_array_equal(d.behavior, d.latents[:, :2])
    assert (d.rates >= 0).all()


@pytest.mark.parametrize("noise", ["gaussian", "poisson"])
def test_same_seed_gives_identical_arrays(noise):
    kwargs = dict(n_timepoints=800, n_neurons=15, noise=noise)
    a, b = make_synthetic(random_state=7, **kwargs), make_synthetic(random_state=7, **kwargs)
    for name in ("neural", "rates", "behavior", "latents", "latent_truth", "block_truth"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name), err_msg=name)


def test_different_seeds_differ():
    a = make_synthetic(n_timepoints=800, random_state=0)
    b = make_synthetic(n_timepoints=800, random_state=1)
    for name in ("neural", "rates", "latents", "latent_truth"):
        assert not np.array_equal(getattr(a, name), getattr(b, name)), name


def test_noise_model_leaves_latents_and_rates_unchanged():
    gaussian = make_synthetic(n_timepoints=800, noise="gaussian", random_state=5)
    poisson = make_synthetic(n_timepoints=800, noise="poisson", random_state=5)
    np.testing.assert_array_equal(gaussian.latents, poisson.latents)
    np.testing.assert_array_equal(gaussian.latent_truth, poisson.latent_truth)
    np.testing.assert_array_equal(gaussian.rates, poisson.rates)


# --- the mixing and its exact ground truth ---------------------------------------------------

def test_mixing_reproduces_rates_exactly(default_data):
    data = default_data
    np.testing.assert_array_equal(data.mixing(data.latents), data.rates)
    # row-wise: a slice of latents gives the same slice of rates
    np.testing.assert_array_equal(data.mixing(data.latents[100:350]), data.rates[100:350])
    assert data.mixing(data.latents[:3]).dtype == np.float32


def test_mixing_rejects_wrong_shape(small):
    with pytest.raises(ValueError, match=re.escape("latents must have shape (n_samples, 6); got shape (10, 5)")):
        small.mixing(np.zeros((10, 5)))


@pytest.mark.parametrize("latent", range(6))
def test_rate_depends_exactly_on_connected_latents(small, latent):
    rng = np.random.default_rng(latent)
    perturbed = small.latents.copy()
    perturbed[:, latent] += rng.normal(0.0, 3.0, size=len(perturbed)).astype(np.float32)
    rates = small.mixing(perturbed)
    connected = small.latent_truth[latent]
    # unconnected neurons: bit-for-bit identical
    np.testing.assert_array_equal(rates[:, ~connected], small.rates[:, ~connected])
    # connected neurons: the rate changes at most time points
    changed = (rates[:, connected] != small.rates[:, connected]).mean(axis=0)
    assert connected.sum() >= 2
    assert (changed > 0.9).all(), changed


def test_latents_interact_inside_neurons(default_data):
    """For neurons with two latents i, j the mixed second difference is not zero (non-additive)."""
    data = default_data
    rng = np.random.default_rng(0)
    base = data.latents[rng.choice(len(data.latents), size=200, replace=False)]
    strengths = []
    for neuron in np.flatnonzero(data.latent_truth.sum(axis=0) >= 2):
        i, j = np.flatnonzero(data.latent_truth[:, neuron])[:2]
        corners = []
        for di, dj in [(0, 0), (1, 0), (0, 1), (1, 1)]:
            z = base.copy()
            z[:, i] += di
            z[:, j] += dj
            corners.append(data.mixing(z)[:, neuron].astype(np.float64))
        second_difference = corners[3] - corners[1] - corners[2] + corners[0]
        scale = np.std(data.rates[:, neuron])
        strengths.append(np.mean(np.abs(second_difference)) / scale)
    assert len(strengths) >= 10
    # an additive response f(z_i) + g(z_j) would give exactly 0
    assert min(strengths) > 0.05, strengths


def test_block_truth_is_blockwise_or_of_latent_truth(small):
    for row, (name, dims) in enumerate(small.latent_blocks):
        assert small.block_names[row] == name
        np.testing.assert_array_equal(small.block_truth[row], small.latent_truth[dims].any(axis=0))


def _assert_connectivity_guarantees(d: SyntheticData) -> None:
    assert d.latent_truth.any(axis=0).all(), "every neuron has a latent"
    assert (d.latent_truth.sum(axis=1) >= 2).all(), "every latent drives >= 2 neurons"
    behavior, time = d.block_truth
    assert (behavior & ~time).any(), "a pure-behaviour neuron"
    assert (time & ~behavior).any(), "a pure-time neuron"
    assert (behavior & time).any(), "a mixed neuron"
    assert behavior.any() and (~behavior).any() and time.any() and (~time).any()


@pytest.mark.parametrize("seed", range(20))
@pytest.mark.parametrize("n_neurons", [10, 50])
def test_connectivity_guarantees_for_many_seeds(seed, n_neurons):
    _assert_connectivity_guarantees(
        make_synthetic(n_timepoints=50, n_neurons=n_neurons, random_state=seed))


@pytest.mark.parametrize("connection_prob", [1e-3, 0.05, 0.95, 1.0])
@pytest.mark.parametrize("layout", [(1, 1), (1, 8), (8, 1)])
def test_connectivity_guarantees_at_extremes(connection_prob, layout):
    n_behavior, n_time = layout
    for seed in range(3):
        _assert_connectivity_guarantees(make_synthetic(
            n_timepoints=50, n_neurons=10, n_behavior_latents=n_behavior, n_time_latents=n_time,
            connection_prob=connection_prob, random_state=seed))


def test_connection_prob_sets_density():
    sparse = make_synthetic(n_timepoints=50, n_neurons=200, connection_prob=0.2, random_state=0)
    dense = make_synthetic(n_timepoints=50, n_neurons=200, connection_prob=0.8, random_state=0)
    assert 0.15 < sparse.latent_truth.mean() < 0.35
    assert 0.7 < dense.latent_truth.mean() < 0.9


# --- latents ----------------------------------------------------------------------------------

def test_latents_standardised_and_smooth(default_data):
    d = default_data
    np.testing.assert_allclose(d.latents.mean(axis=0), 0.0, atol=1e-5)
    np.testing.assert_allclose(d.latents.std(axis=0), 1.0, atol=1e-5)
    time = d.latents[:, d.latent_blocks[1][1]]
    assert (_autocorrelation(time, 10) > 0.5).all()      # slow for a time offset of 10
    assert (_autocorrelation(time, 1000) < 0.5).all()    # not near-constant
    assert (np.abs(_autocorrelation(time, 200)) < 0.3).all()  # many independent excursions
    behavior = d.behavior
    assert (_autocorrelation(behavior, 10) > 0.5).all()
    assert (_autocorrelation(behavior, 1000) < 0.5).all()
    # the behaviour walk stays in a box: bounded, about uniform (|z| <= sqrt(3) for a uniform)
    assert (np.abs(behavior) < 3.0).all()


def test_behavior_and_time_blocks_nearly_uncorrelated(default_data):
    d = default_data
    nb = d.behavior.shape[1]
    cross = np.corrcoef(d.latents.T)[:nb, nb:]
    assert np.abs(cross).max() < 0.2, cross


# --- noise ------------------------------------------------------------------------------------

@pytest.mark.parametrize("seed", [0, 1])
def test_poisson_counts(seed):
    d = make_synthetic(n_timepoints=4000, noise="poisson", random_state=seed)
    assert (d.neural >= 0).all()
    np.testing.assert_array_equal(d.neural, np.round(d.neural))
    assert 0.5 <= d.neural.mean() <= 10.0
    assert 0.5 <= d.neural.mean(axis=0).min() and d.neural.mean(axis=0).max() <= 10.0
    # counts are drawn around the rates: E[neural] = rates, Var[neural] = rates
    np.testing.assert_allclose(d.neural.mean(axis=0), d.rates.mean(axis=0), rtol=0.1)
    residual_var = (d.neural - d.rates).var(axis=0)
    np.testing.assert_allclose(residual_var, d.rates.mean(axis=0), rtol=0.15)


@pytest.mark.parametrize("noise_level", [0.1, 0.5, 2.0])
def test_gaussian_noise_level_scales(noise_level):
    d = make_synthetic(n_timepoints=4000, noise_level=noise_level, random_state=2)
    ratio = (d.neural - d.rates).std(axis=0) / d.rates.std(axis=0)
    np.testing.assert_allclose(ratio, noise_level, rtol=0.06)
    np.testing.assert_allclose((d.neural - d.rates).mean(axis=0), 0.0,
                               atol=5 * noise_level * d.rates.std(axis=0).max() / np.sqrt(4000))


def test_zero_gaussian_noise_gives_rates():
    d = make_synthetic(n_timepoints=300, noise_level=0.0, random_state=0)
    np.testing.assert_array_equal(d.neural, d.rates)


# --- ground_truth expansion -------------------------------------------------------------------

@pytest.mark.parametrize("layout", [
    [("behavior", slice(0, 4)), ("time", slice(4, 14))],
    [("time", slice(0, 1)), ("behavior", slice(1, 3))],
    [("behavior", slice(None, 2)), ("time", slice(2, 3)), ("behavior", slice(3, 5))],
    [("time", slice(0, 7))],
])
def test_ground_truth_expansion(small, layout):
    truth = small.ground_truth(layout)
    expected = []
    for name, dims in layout:
        start = 0 if dims.start is None else dims.start
        for _ in range(start, dims.stop):
            expected.append(small.block_truth[small.block_names.index(name)])
    assert truth.dtype == bool
    assert truth.shape == (len(expected), small.n_neurons)
    np.testing.assert_array_equal(truth, np.array(expected))


def test_ground_truth_of_latent_blocks(small):
    truth = small.ground_truth(small.latent_blocks)
    assert truth.shape == small.latent_truth.shape
    # block expansion contains the per-entry map: a latent's neurons are within its block's row
    assert (truth | ~small.latent_truth).all()


@pytest.mark.parametrize("blocks, message", [
    ([("space", slice(0, 3))], "blocks[0] has name 'space'; the name must be one of 'behavior', 'time'"),
    ([("behavior", slice(1, 3))], "blocks[0] ('behavior') must start at 0"),
    ([("behavior", slice(0, 3)), ("time", slice(4, 6))], "blocks[1] ('time') must start at 3"),
    ([("behavior", slice(0, 3)), ("time", slice(2, 6))], "blocks[1] ('time') must start at 3"),
    ([("behavior", slice(0, 0))], "blocks[0] ('behavior') must be non-empty"),
    ([("behavior", slice(0, 4, 2))], "blocks[0] ('behavior') must have a slice with step 1"),
    ([("behavior", (0, 4))], "blocks[0] ('behavior') must have a slice with step 1"),
    ([("behavior", slice(0, None))], "blocks[0] ('behavior') must have integer start and stop"),
    ([("behavior",)], "blocks[0] must be a (name, slice) pair"),
    ([], "blocks must contain at least one"),
    (3, "blocks must be a list of (name, slice) pairs; got 3"),
])
def test_ground_truth_errors(small, blocks, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        small.ground_truth(blocks)


# --- argument validation ----------------------------------------------------------------------

@pytest.mark.parametrize("kwargs, error, message", [
    (dict(noise="laplace"), ValueError, "noise must be one of 'gaussian', 'poisson'; got 'laplace'"),
    (dict(n_timepoints=5), ValueError, "n_timepoints must be >= 10; got 5"),
    (dict(n_neurons=9), ValueError, "n_neurons must be >= 10; got 9"),
    (dict(n_behavior_latents=0), ValueError, "n_behavior_latents must be >= 1; got 0"),
    (dict(n_time_latents=-1), ValueError, "n_time_latents must be >= 1; got -1"),
    (dict(noise_level=-0.1), ValueError, "noise_level must be >= 0.0; got -0.1"),
    (dict(noise_level=float("nan")), ValueError, "noise_level must be finite; got nan"),
    (dict(connection_prob=0.0), ValueError, "connection_prob must be > 0.0; got 0.0"),
    (dict(connection_prob=1.5), ValueError, "connection_prob must be <= 1.0; got 1.5"),
    (dict(random_state=-3), ValueError, "random_state must be >= 0; got -3"),
    (dict(n_neurons=20.0), TypeError, "n_neurons must be an integer; got 20.0 of type float"),
    (dict(n_time_latents=True), TypeError, "n_time_latents must be an integer; got True"),
    (dict(random_state="0"), TypeError, "random_state must be an integer; got '0' of type str"),
])
def test_bad_arguments(kwargs, error, message):
    with pytest.raises(error, match=re.escape(message)):
        make_synthetic(**{"n_timepoints": 50, **kwargs})


def test_numpy_integers_and_none_seed_accepted():
    d = make_synthetic(n_timepoints=np.int64(60), n_neurons=np.int32(10), random_state=None)
    assert d.neural.shape == (60, 10)


# --- recoverability and docs ------------------------------------------------------------------

def test_latents_recoverable_from_rates(default_data):
    """A small MLP trained on the first 80% of time decodes every latent on the last 20%."""
    d = default_data
    split = int(0.8 * len(d.rates))
    mean, std = d.rates[:split].mean(axis=0), d.rates[:split].std(axis=0)
    x = (d.rates - mean) / std
    regressor = MLPRegressor(hidden_layer_sizes=(32,), max_iter=200, random_state=0)
    # one BLAS thread: on a shared machine, threaded BLAS for these small matrices is much slower
    with threadpool_limits(limits=1), warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        regressor.fit(x[:split:4], d.latents[:split:4])
        predicted = regressor.predict(x[split:])
    scores = r2_score(d.latents[split:], predicted, multioutput="raw_values")
    assert (scores > 0.8).all(), scores


def test_docstring_examples():
    result = doctest.testmod(synthetic, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.attempted >= 4
    assert result.failed == 0
