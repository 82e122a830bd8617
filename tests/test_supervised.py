"""Tests for xcebra.supervised (the regression reference) and xcebra.attribution.compute (shared map code)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.base import clone
from sklearn.exceptions import NotFittedError

from xcebra import Objective, XCEBRA
from xcebra.attribution.compute import compute_attribution_map, read_rows
from xcebra.supervised import SupervisedRegressor

T, N = 600, 6


def _model(**kwargs) -> SupervisedRegressor:
    params = dict(model="offset1", hidden_units=16, batch_size=64, max_steps=5, learning_rate=3e-3,
                  random_state=0, verbose=False)
    params.update(kwargs)
    return SupervisedRegressor(**params)


@pytest.fixture(scope="module")
def data() -> tuple[np.ndarray, np.ndarray]:
    """neural (T, N) Gaussian; target (T, 2) a nonlinear function of neurons 0, 1 and 2 only."""
    rng = np.random.default_rng(0)
    neural = rng.normal(size=(T, N)).astype(np.float32)
    target = np.stack([np.sin(2 * neural[:, 0]), neural[:, 1] * neural[:, 2]], axis=1)
    return neural, target


@pytest.fixture(scope="module")
def trained(data) -> SupervisedRegressor:
    neural, target = data
    return _model(hidden_units=32, batch_size=128, max_steps=300).fit(neural, target)


# --- learning -------------------------------------------------------------------------------------

def test_fits_a_nonlinear_target(trained, data):
    neural, target = data
    assert trained.score(neural, target) > 0.9
    assert trained.log_["loss"].shape == (300,) and trained.log_["loss"][-20:].mean() < 0.1
    prediction = trained.predict(neural)
    assert prediction.shape == target.shape and prediction.dtype == np.float64


def test_attribution_finds_the_neurons_the_target_depends_on(trained, data):
    neural, _ = data
    amap = trained.attribution_map(neural, method="jacobian", verbose=False)
    assert amap.values.shape == (2, N) and amap.blocks == [("supervised", slice(0, 2))]
    # output 0 = sin(2 x0), output 1 = x1 * x2 (standardised): the other neurons matter much less
    assert amap.values[0, 0] > 5 * np.delete(amap.values[0], 0).max()
    assert amap.values[1, [1, 2]].min() > 5 * np.delete(amap.values[1], [1, 2]).max()


def test_same_seed_same_weights_other_seed_other_weights(data):
    neural, target = data
    torch.manual_seed(11)
    state = torch.get_rng_state()
    a, b = _model().fit(neural, target), _model().fit(neural, target)
    assert torch.equal(state, torch.get_rng_state()), "fit must not consume the global torch generator"
    for (name, p), q in zip(a.encoder_.state_dict().items(), b.encoder_.state_dict().values()):
        assert torch.equal(p, q), name
    np.testing.assert_array_equal(a.log_["loss"], b.log_["loss"])
    c = _model(random_state=1).fit(neural, target)
    assert not torch.equal(a.encoder_.encoder.net[0].weight, c.encoder_.encoder.net[0].weight)
    assert a.random_state_ == 0


def _mean_squared_jacobian(model, neural):
    x = torch.from_numpy(neural[:200])
    jac = torch.func.vmap(torch.func.jacrev(lambda row: model.encoder_(row[None, :, None])[0, 0]))(x)
    return float((jac.detach() ** 2).sum(dim=(1, 2)).mean())


def test_regularizer_logs_its_penalty_and_shrinks_the_jacobian(data):
    neural, target = data
    plain = _model(hidden_units=32, batch_size=128, max_steps=150).fit(neural, target)
    assert set(plain.log_) == {"loss"}
    regularized = _model(hidden_units=32, batch_size=128, max_steps=150, regularizer_weight=1.0).fit(neural, target)
    log = regularized.log_
    assert set(log) == {"loss", "regularizer", "total"} and all(v.shape == (150,) for v in log.values())
    np.testing.assert_allclose(log["total"], log["loss"] + 1.0 * log["regularizer"], rtol=1e-5)
    # the first step's penalty estimates half the mean squared Frobenius norm of the initial encoder
    initial = _model(hidden_units=32, batch_size=128, max_steps=0).fit(neural, target)
    assert log["regularizer"][0] == pytest.approx(0.5 * _mean_squared_jacobian(initial, neural), rel=0.5)
    assert _mean_squared_jacobian(regularized, neural) < 0.7 * _mean_squared_jacobian(plain, neural)
    assert log["loss"][-20:].mean() > plain.log_["loss"][-20:].mean()  # the price: a worse fit


def test_standardisation_and_one_dimensional_target(data):
    neural, target = data
    y = 100.0 + 50.0 * target[:, 0]
    model = _model(max_steps=2).fit(neural, y)
    np.testing.assert_allclose(model.target_mean_, [y.mean()], rtol=1e-5)
    np.testing.assert_allclose(model.target_scale_, [y.std()], rtol=1e-5)
    assert model.predict(neural).shape == (T,) and model.transform(neural).shape == (T, 1)
    assert abs(model.predict(neural).mean() - 100) < 50  # back in the target's units


# --- embedding, readout, blocks ----------------------------------------------------------------

def test_output_dim_adds_a_linear_readout(data):
    neural, target = data
    model = _model(output_dim=4).fit(neural, target)
    assert isinstance(model.readout_, torch.nn.Linear) and model.readout_.weight.shape == (2, 4)
    assert model.transform(neural).shape == (T, 4) and model.predict(neural).shape == (T, 2)
    assert model.blocks_ == [("supervised", slice(0, 4))] and model.output_dim_ == 4
    assert isinstance(_model().fit(neural, target).readout_, torch.nn.Identity)


def test_user_blocks_name_the_map_rows(data):
    neural, target = data
    model = _model(model="offset5", output_dim=4, blocks=[("x", (0, 1)), ("rest", slice(1, 4))]).fit(neural, target)
    amap = model.attribution_map(neural, method="ing", num_samples=50, verbose=False)
    assert model.blocks_ == [("x", slice(0, 1)), ("rest", slice(1, 4))]
    assert amap.values.shape == (4, N) and amap.block_values.shape == (2, N) and amap.block_names == ["x", "rest"]


@pytest.mark.parametrize("method, options", [
    ("ing", {}), ("ing-lstsq", {}), ("ing-block", {}), ("ing-block", {"block_ranks": {"supervised": 1}}), ("jacobian", {}),
    ("neuron-gradient", {}),
    ("integrated-gradients", {"n_steps": 4}), ("feature-ablation", {}), ("shapley-sampling", {"n_samples": 2}),
    ("gradient-shap", {"n_samples": 3}),
])
def test_attribution_map_every_method(data, method, options):
    if method in ("neuron-gradient", "integrated-gradients", "feature-ablation", "shapley-sampling",
                  "gradient-shap"):
        pytest.importorskip("captum")
    neural, target = data
    model = _model(model="offset5", max_steps=3).fit(neural, target)
    amap = model.attribution_map(neural, method=method, num_samples=30, batch_size=16, verbose=False, **options)
    assert amap.values.shape == (2, N) and amap.n_timepoints == 30 and amap.method == method
    assert np.all(np.isfinite(amap.values)) and np.all(amap.values >= 0)


def test_transform_reads_any_array_like_in_batches(trained, data):
    neural, _ = data
    np.testing.assert_allclose(trained.transform(neural, batch_size=37), trained.transform(neural), atol=1e-6)


# --- the scikit-learn contract and validation --------------------------------------------------

def test_init_only_stores_parameters():
    model = _model(hidden_units=-1, blocks="nonsense")
    assert model.hidden_units == -1 and model.blocks == "nonsense"
    assert clone(_model(output_dim=3)).get_params()["output_dim"] == 3
    assert "encoder_" not in model.__dict__


@pytest.mark.parametrize("method", ["transform", "predict", "attribution_map"])
def test_not_fitted(method, data):
    with pytest.raises(NotFittedError, match=r"This SupervisedRegressor instance is not fitted yet. Call 'fit'"):
        getattr(_model(), method)(data[0])


@pytest.mark.parametrize("params, message", [
    ({"hidden_units": 0}, r"The 'hidden_units' parameter of SupervisedRegressor must be an int >= 1. Got 0 instead."),
    ({"model": "mlp"}, r"The 'model' parameter of SupervisedRegressor must be one of 'offset1', .* Got 'mlp' instead."),
    ({"output_dim": 0}, r"The 'output_dim' parameter of SupervisedRegressor must be None or an int >= 1. Got 0"),
    ({"learning_rate": 0.0}, r"The 'learning_rate' parameter of SupervisedRegressor must be a float > 0. Got 0.0"),
    ({"max_steps": -1}, r"The 'max_steps' parameter of SupervisedRegressor must be an int >= 0. Got -1 instead."),
    ({"regularizer_weight": -0.1}, r"The 'regularizer_weight' parameter of SupervisedRegressor must be a float >= 0"),
    ({"verbose": 1}, r"The 'verbose' parameter of SupervisedRegressor must be a bool. Got 1 instead."),
    ({"device": "gpu0"}, r"The 'device' parameter of SupervisedRegressor must be 'auto', 'cpu', 'cuda'"),
    ({"blocks": [("a", (0, 1))]}, r"The 'blocks' parameter .* covering 0..2 contiguously.* \(it ends at 1\)"),
    ({"blocks": [("a", (0, 1)), ("b", (2, 2))]}, r"The 'blocks' parameter of SupervisedRegressor must be None or"),
])
def test_bad_parameters_are_named(data, params, message):
    with pytest.raises(ValueError, match=message):
        _model(**params).fit(*data)


def test_bad_data_is_described(data):
    neural, target = data
    with pytest.raises(ValueError, match=r"target has 599 rows but neural has 600; they must match in time"):
        _model().fit(neural, target[:-1])
    with pytest.raises(ValueError, match=r"target must be a 1-D or 2-D array; got shape \(600, 2, 1\)"):
        _model().fit(neural, target[..., None])
    with pytest.raises(ValueError, match=r"neural must be a 2-D array; got shape \(600,\)"):
        _model().fit(neural[:, 0], target)
    bad = target.copy()
    bad[7, 1] = np.nan
    with pytest.raises(ValueError, match=r"target contains 1 non-finite value\(s\); the first \(NaN\) is at row 7"):
        _model().fit(neural, bad)
    with pytest.raises(ValueError, match=r"neural has 3 time points but model 'offset5' needs windows of 5"):
        _model(model="offset5").fit(neural[:3], target[:3])


def test_bad_data_after_fit(trained, data):
    neural, _ = data
    with pytest.raises(ValueError, match=r"neural has 5 neurons but the model was fit on 6; they must match"):
        trained.transform(neural[:, :5])
    with pytest.raises(ValueError, match=r"method must be one of 'ing', .*; got 'saliency'"):
        trained.attribution_map(neural, method="saliency")
    with pytest.raises(ValueError, match=r"method 'ing' takes no options; got 'n_steps'"):
        trained.attribution_map(neural, method="ing", n_steps=3)


# --- the shared attribution code ---------------------------------------------------------------

def test_read_rows_replicates_the_edges():
    neural = np.arange(12, dtype=np.float64).reshape(6, 2)
    rows = read_rows(neural, -2, 8)
    assert rows.dtype == np.float32 and rows.shape == (10, 2)
    np.testing.assert_array_equal(rows[:3], [[0, 1]] * 3)
    np.testing.assert_array_equal(rows[-3:], [[10, 11]] * 3)
    np.testing.assert_array_equal(read_rows(neural, 1, 3), neural[1:3])


@pytest.mark.parametrize("method", ["ing", "jacobian"])
def test_compute_attribution_map_reproduces_xcebra(method):
    rng = np.random.default_rng(2)
    position = np.cumsum(rng.normal(size=(300, 2)), axis=0).astype(np.float32) * 0.1
    neural = (np.tanh(position @ rng.normal(size=(2, 5))) + 0.1 * rng.normal(size=(300, 5))).astype(np.float32)
    model = XCEBRA([Objective("behavior", dims=(0, 2), distribution="time_delta", label="position"),
                    Objective("time", dims=(0, 4), distribution="time", time_offset=2)],
                   model="offset5", hidden_units=8, output_dim=4, batch_size=32, max_steps=3, random_state=0,
                   verbose=False).fit(neural, position=position)
    expected = model.attribution_map(neural, method=method, num_samples=60, batch_size=25, random_state=4)
    amap = compute_attribution_map(model.encoder_, neural, method, model.blocks_, num_samples=60, batch_size=25,
                                   random_state=4)
    np.testing.assert_array_equal(amap.values, expected.values)
    np.testing.assert_array_equal(amap.stderr, expected.stderr)
    assert amap.blocks == expected.blocks and amap.options == expected.options
