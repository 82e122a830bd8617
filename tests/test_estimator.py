"""The XCEBRA front door: the scikit-learn contract, fit/transform/attribution_map, save/load."""

import logging
import re
import warnings

import numpy as np
import pytest
import torch
from sklearn.base import clone
from sklearn.exceptions import NotFittedError

import xcebra
from xcebra import Objective, XCEBRA


def _objectives(behavior_dims=(0, 2), total=4, offset=2):
    return [Objective("behavior", dims=behavior_dims, distribution="time_delta", label="position"),
            Objective("time", dims=(0, total), distribution="time", time_offset=offset)]


def _model(**kwargs):
    params = dict(objectives=_objectives(), model="offset5", hidden_units=16, output_dim=4, batch_size=64,
                  max_steps=6, regularizer_weight=0.1, regularizer_ramp=(1, 3), random_state=0, verbose=False)
    params.update(kwargs)
    return XCEBRA(**params)


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    t, n = 400, 7
    position = np.cumsum(rng.normal(size=(t, 2)), axis=0).astype(np.float32) * 0.1
    neural = (np.tanh(position @ rng.normal(size=(2, n))) + 0.1 * rng.normal(size=(t, n))).astype(np.float32)
    return neural, position


@pytest.fixture(scope="module")
def fitted(data):
    neural, position = data
    return _model().fit(neural, position=position)


def test_fit_learns_state_with_trailing_underscore(fitted, data):
    neural, _ = data
    assert fitted.blocks_ == [("behavior", slice(0, 2)), ("time", slice(2, 4))]
    assert fitted.n_features_in_ == neural.shape[1]
    assert set(fitted.log_) == {"loss", "loss/behavior", "loss/time", "regularizer", "regularizer_weight", "seconds"}
    assert all(len(v) == 6 for v in fitted.log_.values())
    np.testing.assert_allclose(fitted.log_["regularizer_weight"], [0, 0, 0.05, 0.1, 0.1, 0.1])
    assert fitted.log_["regularizer"][0] == 0 and fitted.log_["regularizer"][3] > 0
    assert "encoder_" not in _model().__dict__


def test_init_only_stores_parameters():
    model = _model(hidden_units=-5)  # invalid, but __init__ must not validate (scikit-learn contract)
    assert model.hidden_units == -5
    params = model.get_params()
    assert params["hidden_units"] == -5 and params["objectives"] == _objectives()
    assert clone(_model()).get_params()["objectives"] == _objectives()
    model.set_params(max_steps=3)
    assert model.max_steps == 3


@pytest.mark.parametrize("method", ["transform", "attribution_map", "save"])
def test_not_fitted_error(method, data, tmp_path):
    with pytest.raises(NotFittedError, match="not fitted yet. Call 'fit'"):
        arg = tmp_path / "m.xcebra" if method == "save" else data[0]
        getattr(_model(), method)(arg)


def test_transform_shape_and_block_norms(fitted, data):
    neural, _ = data
    z = fitted.transform(neural)
    assert z.shape == (len(neural), 4) and z.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(z[:, 0:2], axis=1), 1, atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(z[:, 2:4], axis=1), 1, atol=1e-5)


def test_transform_in_batches_equals_one_pass(fitted, data):
    neural, _ = data
    np.testing.assert_allclose(fitted.transform(neural, batch_size=37), fitted.transform(neural), atol=1e-6)


def test_transform_pads_edges_by_repeating_frames(fitted, data):
    neural, _ = data
    left, window = fitted.encoder_.left, fitted.encoder_.window
    padded = np.concatenate([np.repeat(neural[:1], left, 0), neural[:window]], axis=0)
    with torch.no_grad():
        expected = fitted.encoder_(torch.from_numpy(padded[:window]).T[None])[0, 0].numpy()
    np.testing.assert_allclose(fitted.transform(neural)[0], expected, atol=1e-6)
    # an interior time point t uses frames t - left .. t + right - 1, no padding
    t = 50
    with torch.no_grad():
        inner = fitted.encoder_(torch.from_numpy(neural[t - left:t - left + window]).T[None])[0, 0].numpy()
    np.testing.assert_allclose(fitted.transform(neural)[t], inner, atol=1e-6)


def test_transform_reads_memory_mapped_arrays(fitted, data, tmp_path):
    neural, _ = data
    path = tmp_path / "neural.npy"
    np.save(path, neural)
    mapped = np.load(path, mmap_mode="r")
    np.testing.assert_allclose(fitted.transform(mapped, batch_size=100), fitted.transform(neural), atol=1e-6)


def test_same_random_state_gives_identical_weights(data):
    neural, position = data
    a = _model().fit(neural, position=position)
    b = _model().fit(neural, position=position)
    for (name, pa), pb in zip(a.encoder_.state_dict().items(), b.encoder_.state_dict().values()):
        assert torch.equal(pa, pb), name
    c = _model(random_state=1).fit(neural, position=position)
    assert not np.allclose(a.transform(neural), c.transform(neural))


def test_save_load_round_trip(fitted, data, tmp_path):
    neural, _ = data
    path = tmp_path / "model.xcebra"
    fitted.save(path)
    loaded = XCEBRA.load(path)
    np.testing.assert_array_equal(loaded.transform(neural), fitted.transform(neural))
    assert loaded.blocks_ == fitted.blocks_ and loaded.get_params()["objectives"] == fitted.objectives
    np.testing.assert_array_equal(loaded.log_["loss"], fitted.log_["loss"])
    a = loaded.attribution_map(neural, num_samples=50, verbose=False)
    b = fitted.attribution_map(neural, num_samples=50, verbose=False)
    np.testing.assert_allclose(a.values, b.values, rtol=1e-6)
    assert not list(tmp_path.glob("*.tmp"))


def test_attribution_map_shapes_and_methods(fitted, data):
    neural, _ = data
    for method in ["ing", "ing-lstsq", "ing-block", "jacobian"]:
        amap = fitted.attribution_map(neural, method=method, verbose=False)
        assert amap.values.shape == (4, neural.shape[1]) and amap.method == method
        assert amap.block_values.shape == (2, neural.shape[1])
        assert amap.n_timepoints == len(neural) - fitted.encoder_.window + 1
        assert np.all(amap.values >= 0) and np.all(amap.stderr >= 0)


def test_ing_map_equals_direct_per_time_point_computation(fitted, data):
    neural, _ = data
    left, window = fitted.encoder_.left, fitted.encoder_.window
    amap = fitted.attribution_map(neural, method="ing", num_samples=20, random_state=3, verbose=False)
    positions = xcebra.attribution.select_time_points(len(neural) - window + 1, 20, 3)
    total = np.zeros((4, neural.shape[1]))
    for p in positions:
        x = torch.from_numpy(neural[p:p + window].T.copy()).double()
        f = lambda w: fitted.encoder_.double()(w[None])[0, 0]  # noqa: E731
        jac = torch.autograd.functional.jacobian(f, x).sum(-1).numpy()  # (D, N), lags summed
        fitted.encoder_.float()
        total += np.abs(np.linalg.pinv(jac).T)
    np.testing.assert_allclose(amap.values, total / len(positions), rtol=1e-3, atol=1e-6)


def test_identified_ranks_follow_the_label_dimension(data):
    neural, position = data
    # a 3-dimensional cosine block (2 directions) on a 2-d label: nothing to cut; on a 1-d label: rank 1
    wide = _model(objectives=_objectives((0, 3), 5), output_dim=5, max_steps=2).fit(neural, position=position)
    assert wide.label_dims_ == {"position": 2}
    assert wide.identified_ranks() == {"behavior": None, "time": None}
    narrow = _model(objectives=_objectives((0, 3), 5), output_dim=5, max_steps=2).fit(neural, position=position[:, 0])
    assert narrow.label_dims_ == {"position": 1}
    assert narrow.identified_ranks() == {"behavior": 1, "time": None}
    assert narrow.identified_ranks(["time"]) == {"time": None}
    # a euclidean block spans all its directions: width 3 on a 2-d label keeps 2
    euclid = _model(objectives=_objectives((0, 3), 5), output_dim=5, max_steps=2, loss="euclidean").fit(
        neural, position=position)
    assert euclid.identified_ranks() == {"behavior": 2, "time": None}
    with pytest.raises(ValueError, match="blocks names 'speed', which this model does not have"):
        euclid.identified_ranks(["speed"])


def test_ing_block_map_is_the_per_block_truncated_pseudo_inverse(data):
    neural, position = data
    model = _model(objectives=_objectives((0, 3), 5), output_dim=5, max_steps=2, loss="euclidean").fit(
        neural, position=position)
    amap = model.attribution_map(neural, method="ing-block", num_samples=30, random_state=1, verbose=False)
    assert amap.options["block_ranks"] == (2, None)
    positions = xcebra.attribution.select_time_points(len(neural) - model.encoder_.window + 1, 30, 1)
    windows = torch.from_numpy(np.stack([neural[p:p + model.encoder_.window].T for p in positions]))
    jac = xcebra.attribution.per_time_attribution(model.encoder_, windows, "jacobian").double().numpy()
    expected = np.zeros((5, neural.shape[1]))
    for j in jac:
        u, s, vh = np.linalg.svd(j[:3], full_matrices=False)
        expected[:3] += np.abs(vh[:2].T @ np.diag(1 / s[:2]) @ u[:, :2].T).T  # the two largest singular values
        expected[3:] += np.abs(np.linalg.pinv(j[3:]).T)
    np.testing.assert_allclose(amap.values, expected / len(jac), rtol=1e-3, atol=1e-6)
    # explicit ranks by block name; blocks left out keep their identified rank
    full = model.attribution_map(neural, method="ing-block", num_samples=30, random_state=1, verbose=False,
                                 block_ranks={"behavior": None})
    assert full.options["block_ranks"] == (None, None)
    assert not np.allclose(full.values[:3], amap.values[:3])
    np.testing.assert_allclose(full.values[3:], amap.values[3:])


@pytest.mark.parametrize("block_ranks, match", [
    ({"speed": 1}, "block_ranks names block 'speed', which this model does not have"),
    ({"behavior": 3}, "gives block 'behavior' rank 3, but it has only 2 dimensions"),
    ({"behavior": 0}, "block_ranks must be None, a dict"),
    ((1,), "block_ranks has 1 entries but the embedding has 2 blocks"),
    ("2", "block_ranks must be None, a dict"),
])
def test_ing_block_rank_errors(fitted, data, block_ranks, match):
    neural, _ = data
    with pytest.raises(ValueError, match=match):
        fitted.attribution_map(neural, method="ing-block", block_ranks=block_ranks, num_samples=5, verbose=False)


def test_ing_block_options_only_for_ing_block(fitted, data):
    neural, _ = data
    with pytest.raises(ValueError, match="method 'ing' takes no options; got 'block_ranks'"):
        fitted.attribution_map(neural, method="ing", block_ranks={"behavior": 1}, num_samples=5, verbose=False)
    with pytest.raises(ValueError, match="method 'ing-block' takes only the option 'block_ranks'; got 'n_steps'"):
        fitted.attribution_map(neural, method="ing-block", n_steps=3, num_samples=5, verbose=False)


def test_label_dims_survive_save_and_old_files_ask_for_ranks(fitted, data, tmp_path):
    neural, _ = data
    path = tmp_path / "model.xcebra"
    fitted.save(path)
    assert XCEBRA.load(path).label_dims_ == {"position": 2}
    # a file written before label dimensions were recorded: ing-block needs explicit ranks for label blocks
    from xcebra._files import read_tensors, write_tensors
    tensors, header = read_tensors(path, expected_format="xcebra-model")
    del header["label_dims"]
    old = tmp_path / "old.xcebra"
    write_tensors(old, tensors, header)
    loaded = XCEBRA.load(old)
    assert loaded.label_dims_ == {}
    with pytest.raises(ValueError, match=r"pass block_ranks=\{'behavior': d\}"):
        loaded.attribution_map(neural, method="ing-block", num_samples=5, verbose=False)
    amap = loaded.attribution_map(neural, method="ing-block", block_ranks={"behavior": 1}, num_samples=5, verbose=False)
    assert amap.options["block_ranks"] == (1, None)


def test_attribution_does_not_touch_the_model(fitted, data):
    neural, _ = data
    before = {k: v.clone() for k, v in fitted.encoder_.state_dict().items()}
    flags = [p.requires_grad for p in fitted.encoder_.parameters()]
    fitted.attribution_map(neural, method="ing", num_samples=30, verbose=False)
    for k, v in fitted.encoder_.state_dict().items():
        assert torch.equal(v, before[k]) and v.dtype == torch.float32
    assert [p.requires_grad for p in fitted.encoder_.parameters()] == flags
    assert all(p.grad is None for p in fitted.encoder_.parameters())


def test_attribution_num_samples_close_to_exact(fitted, data):
    neural, _ = data
    exact = fitted.attribution_map(neural, verbose=False)
    sampled = fitted.attribution_map(neural, num_samples=200, verbose=False)
    assert sampled.n_timepoints == 200
    # within a few standard errors almost everywhere
    z = np.abs(sampled.values - exact.values) / np.maximum(sampled.stderr, 1e-12)
    assert np.mean(z < 4) > 0.95


@pytest.mark.parametrize("param, value, message", [
    ("model", "offset7", r"The 'model' parameter of XCEBRA must be one of 'offset1', .* Got 'offset7' instead."),
    ("hidden_units", 0, r"The 'hidden_units' parameter of XCEBRA must be an int >= 1. Got 0 instead."),
    ("loss", "cos", r"The 'loss' parameter of XCEBRA must be one of 'cosine', 'euclidean'. Got 'cos' instead."),
    ("temperature", 0.0, r"The 'temperature' parameter of XCEBRA must be a float > 0. Got 0.0 instead."),
    ("learning_rate", float("nan"), r"The 'learning_rate' parameter of XCEBRA must be a float > 0. Got nan"),
    ("regularizer_ramp", (5, 2), r"The 'regularizer_ramp' parameter of XCEBRA must be None, 'auto' or a pair"),
    ("random_state", -1, r"The 'random_state' parameter of XCEBRA must be None or an int >= 0. Got -1"),
    ("batch_size", 10_000, r"The 'batch_size' parameter of XCEBRA must be at most the number of usable reference time points"),
    ("output_dim", 3, r"Objective 'time' has dims \(0, 4\) but output_dim is 3"),
])
def test_parameter_errors(param, value, message, data):
    neural, position = data
    with pytest.raises(ValueError, match=message):
        _model(**{param: value}).fit(neural, position=position)


def test_data_errors(fitted, data):
    neural, position = data
    with pytest.raises(ValueError, match="label 'position' has 399 rows but neural has 400; they must match in time"):
        _model().fit(neural, position=position[:-1])
    with pytest.raises(ValueError, match=r"Objective 'behavior' needs label 'position', which was not passed to fit"):
        _model().fit(neural, speed=position[:, 0])
    with pytest.raises(ValueError, match="neural has 5 neurons but the model was fit on 7; they must match"):
        fitted.transform(neural[:, :5])
    bad = neural.copy()
    bad[10, 3] = np.nan
    with pytest.raises(ValueError, match=r"neural contains 1 non-finite value\(s\); the first \(NaN\) is at row 10, column 3"):
        _model().fit(bad, position=position)
    with pytest.raises(ValueError, match="method must be one of 'ing'"):
        fitted.attribution_map(neural, method="saliency")
    with pytest.raises(ValueError, match="needs windows of 5 and at least one more time point"):
        _model(batch_size=2).fit(neural[:5], position=position[:5])


def test_checkpoint_resume_matches_uninterrupted_run(data, tmp_path, monkeypatch):
    neural, position = data
    import xcebra.training.contrastive as training  # where the step calls the regularizer's schedule

    full = _model(max_steps=6).fit(neural, position=position)
    real = training.ramp_weight

    def interrupt(step, *args):
        if step == 5:
            raise KeyboardInterrupt  # the run dies after step 4 and its checkpoint at step 4
        return real(step, *args)

    monkeypatch.setattr(training, "ramp_weight", interrupt)
    with pytest.raises(KeyboardInterrupt):
        _model(max_steps=6).fit(neural, position=position, checkpoint_dir=tmp_path, checkpoint_every=2)
    monkeypatch.setattr(training, "ramp_weight", real)
    resumed = _model(max_steps=6).fit(neural, position=position, checkpoint_dir=tmp_path, checkpoint_every=2)
    for k, v in full.encoder_.state_dict().items():
        assert torch.equal(v, resumed.encoder_.state_dict()[k]), k
    np.testing.assert_array_equal(full.log_["loss"], resumed.log_["loss"])
    with pytest.raises(ValueError, match="holds a checkpoint of a different run"):
        _model(max_steps=7).fit(neural, position=position, checkpoint_dir=tmp_path)


def test_bf16_training_matches_fp32_closely(data):
    neural, position = data
    fp32 = _model(max_steps=1).fit(neural, position=position)
    bf16 = _model(max_steps=1, precision="bf16").fit(neural, position=position)
    # same seed, same batch: the first loss differs only by bfloat16 rounding of the encoder's arithmetic
    assert bf16.log_["loss"][0] == pytest.approx(fp32.log_["loss"][0], rel=2e-2)
    assert bf16.log_["loss"][0] != fp32.log_["loss"][0]
    # the regularizer runs in bf16 too: same projections (same seed), its value within bfloat16 rounding
    fp32_reg = _model(max_steps=1, regularizer_ramp=None).fit(neural, position=position).log_["regularizer"][0]
    bf16_reg = _model(max_steps=1, regularizer_ramp=None, precision="bf16").fit(neural, position=position)
    assert bf16_reg.log_["regularizer"][0] == pytest.approx(fp32_reg, rel=3e-2)
    assert bf16_reg.log_["regularizer"][0] != fp32_reg and fp32_reg > 0
    longer = _model(precision="bf16").fit(neural, position=position)
    assert np.isfinite(longer.log_["loss"]).all()
    assert next(longer.encoder_.parameters()).dtype == torch.float32  # weights stay float32
    with pytest.raises(ValueError, match=r"The 'precision' parameter of XCEBRA must be one of 'fp32', 'bf16'. Got 'fp16' instead."):
        _model(precision="fp16").fit(neural, position=position)


def test_objective_losses_on_held_out_data(data):
    """Held-out InfoNCE per objective: seeded, capped batch, and lower after training than at chance."""
    neural, position = data
    train, test = slice(0, 300), slice(300, 400)
    # positives only need to differ from their reference: with the default (the window, 5 time points) the
    # 96 usable held-out points leave few labels near a target, and the held-out loss falls less (3.94, not 3.79)
    objectives = [Objective("behavior", dims=(0, 2), distribution="time_delta", label="position", min_separation=1),
                  Objective("time", dims=(0, 4), distribution="time", time_offset=2)]
    untrained = _model(objectives=objectives, max_steps=1, learning_rate=1e-6).fit(
        neural[train], position=position[train])
    trained = _model(objectives=objectives, max_steps=150, learning_rate=3e-3, regularizer_weight=0,
                     temperature=0.1).fit(neural[train], position=position[train])
    losses = trained.objective_losses(neural[test], position=position[test], n_batches=5)
    assert set(losses) == {"behavior", "time"}
    assert losses == trained.objective_losses(neural[test], position=position[test], n_batches=5)
    assert losses != trained.objective_losses(neural[test], position=position[test], n_batches=5, random_state=1)
    chance = untrained.objective_losses(neural[test], position=position[test], n_batches=5)
    # 64 references, capped to the 100 - 4 - 2 usable ones: no cap needed; an untrained net sits near log(64)
    assert all(abs(v - np.log(64)) < 0.3 for v in chance.values())
    assert losses["behavior"] < chance["behavior"] - 0.3 and losses["time"] < chance["time"] - 0.3
    # on the training data it is the loss the fit ended with (the last steps' mean)
    in_sample = trained.objective_losses(neural[train], position=position[train], n_batches=10)
    for name in ("behavior", "time"):
        assert abs(in_sample[name] - trained.log_[f"loss/{name}"][-10:].mean()) < 0.1
    small = trained.objective_losses(neural[test][:40], position=position[test][:40], n_batches=2)
    assert all(v < np.log(64) for v in small.values())  # batch capped to the 34 usable references


def test_objective_losses_checks_its_input(fitted, data):
    neural, position = data
    with pytest.raises(ValueError, match="n_batches must be an int >= 1; got 0"):
        fitted.objective_losses(neural, position=position, n_batches=0)
    with pytest.raises(ValueError, match="needs label 'position'"):
        fitted.objective_losses(neural)
    with pytest.raises(ValueError, match="neural has 6 neurons but the model was fit on 7"):
        fitted.objective_losses(neural[:, :6], position=position)
    with pytest.raises(NotFittedError):
        _model().objective_losses(neural, position=position)


# --- training health: the euclidean InfoNCE is unbounded below ---------------------------------------

def _euclidean_fit(time_offset, min_separation=None, **kwargs):
    data = xcebra.datasets.make_synthetic(n_timepoints=1000, random_state=0)
    model = XCEBRA([Objective("behavior", dims=(0, 3), distribution="time_delta", label="behavior",
                              min_separation=min_separation),
                    Objective("time", dims=(0, 6), distribution="time", time_offset=time_offset)],
                   model="offset1", hidden_units=32, output_dim=6, loss="euclidean", batch_size=128,
                   learning_rate=3e-3, max_steps=200, regularizer_weight=0, random_state=0, verbose=False, **kwargs)
    return model, data


def _embedding_std_bound(data, gain):
    """|f(x) - f(y)| <= L |x - y| bounds the embedding's total variance by L**2 times the neural data's
    (L = gain * 1.13**3: three GELUs), so its per-dimension std (of 6) by L * sqrt(total variance / 6)."""
    return gain * 1.13 ** 3 * np.sqrt(data.neural.var(axis=0).sum() / 6)


def test_an_unbounded_euclidean_fit_inflates_and_warns():
    # offset-1 positives on slow latents are closer than every negative: scaling up lowers the loss without bound;
    # behaviour positives next to their reference (the reference package's separation) do the same
    model, data = _euclidean_fit(time_offset=1, min_separation=1, lipschitz=None)
    with pytest.warns(xcebra.diagnostics.EmbeddingGrowthWarning,
                      match=r"unbounded euclidean embedding grew.*squared distances are ~.* times the temperature"):
        model.fit(data.neural, behavior=data.behavior)
    std = model.log_["embedding_std"]
    assert std.shape == (200,) and std[-1] > 100 * std[0]
    assert std[-1] > _embedding_std_bound(data, 4.0)  # beyond what the default bound allows


@pytest.mark.parametrize("bound", [{}, {"lipschitz": 4.0}, {"lipschitz": None, "output_clip": 5.0}])
def test_a_bounded_euclidean_fit_cannot_inflate_and_stays_quiet(bound):
    # the same fit with the default bound ("auto" = lipschitz 4.0), the explicit one, and the reference's clip
    model, data = _euclidean_fit(time_offset=1, **bound)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        model.fit(data.neural, behavior=data.behavior)
    std = model.log_["embedding_std"]
    if model.output_clip_ is None:
        assert model.lipschitz_ == 4.0
        assert std.max() <= 1.1 * _embedding_std_bound(data, 4.0)  # 1.1: embedding_std is a batch estimate
    else:
        assert np.abs(model.transform(data.neural)).max() <= 5.0 and std.max() <= 5.0


@pytest.mark.parametrize("loss, expected", [("euclidean", 4.0), ("cosine", None)])
def test_lipschitz_auto_bounds_euclidean_fits_only(loss, expected, data):
    neural, position = data
    model = _model(loss=loss, max_steps=2).fit(neural, position=position)
    assert model.lipschitz == "auto" and model.lipschitz_ == expected and model.output_clip_ is None
    spectral = any(torch.nn.utils.parametrize.is_parametrized(m, "weight") for m in model.encoder_.modules())
    assert spectral == (expected is not None)
    # one euclidean objective in a cosine estimator is enough to bound the encoder
    objectives = [Objective("behavior", dims=(0, 2), distribution="time_delta", label="position", loss="euclidean"),
                  Objective("time", dims=(2, 4), distribution="time", time_offset=2)]
    mixed = _model(objectives=objectives, loss="cosine", max_steps=2).fit(neural, position=position)
    assert mixed.lipschitz_ == 4.0


@pytest.mark.parametrize("model_name", ["offset1", "offset5"])
def test_cosine_fits_are_unchanged_by_the_euclidean_default(model_name, data):
    # the demo and every cosine fit train exactly as before the bound became the euclidean default
    neural, position = data
    auto = _model(model=model_name, max_steps=5).fit(neural, position=position)
    unbounded = _model(model=model_name, max_steps=5, lipschitz=None).fit(neural, position=position)
    assert auto.lipschitz_ is None
    for (name, a), (_, b) in zip(auto.encoder_.state_dict().items(), unbounded.encoder_.state_dict().items()):
        torch.testing.assert_close(a, b, rtol=0, atol=0, msg=name)


def test_lipschitz_bound_holds_for_the_inputs_gradient():
    model, data = _euclidean_fit(time_offset=1, lipschitz=4.0)
    model.fit(data.neural, behavior=data.behavior)
    # a direction in neuron space moves the embedding by at most gain * 1.13**3 (three GELUs) per unit
    jacobians = model.attribution_map(data.neural, method="jacobian", verbose=False)
    neural = torch.as_tensor(data.neural[:200])
    embedded = model.encoder_.encoder(neural.T[None])[0].T.detach()
    moved = model.encoder_.encoder((neural + 0.01).T[None])[0].T.detach()
    ratio = (moved - embedded).norm(dim=1) / (0.01 * np.sqrt(data.neural.shape[1]))
    assert ratio.max().item() <= 4.0 * 1.13 ** 3 and jacobians.values.max() <= 4.0 * 1.13 ** 3


@pytest.mark.parametrize("architecture, precision", [("offset1", "fp32"), ("offset5", "bf16")])
def test_lipschitz_model_saves_and_loads(tmp_path, architecture, precision):
    model, data = _euclidean_fit(time_offset=10, lipschitz=2.0)
    model.set_params(max_steps=20, model=architecture, precision=precision)
    model.fit(data.neural, behavior=data.behavior)
    for module in model.encoder_.encoder.modules():  # trained weights stay normalised, in either precision
        if isinstance(module, (torch.nn.Linear, torch.nn.Conv1d)):
            matrix = module.weight.reshape(module.weight.shape[0], -1)
            assert torch.linalg.matrix_norm(matrix, ord=2).item() == pytest.approx(1.0, abs=0.05)
    assert any(k.endswith("_u") for k in model.encoder_.state_dict())  # the power iteration's state is kept
    model.save(tmp_path / "m.xcebra")
    loaded = XCEBRA.load(tmp_path / "m.xcebra")
    assert loaded.lipschitz == 2.0 and loaded.lipschitz_ == 2.0
    np.testing.assert_array_equal(loaded.transform(data.neural), model.transform(data.neural))


def test_clipped_model_saves_and_loads(tmp_path):
    model, data = _euclidean_fit(time_offset=1, lipschitz=None, output_clip=0.5)
    model.fit(data.neural, behavior=data.behavior)
    embedding = model.transform(data.neural)
    assert np.abs(embedding).max() == pytest.approx(0.5)  # the unbounded fit above inflates far past it
    model.save(tmp_path / "m.xcebra")
    loaded = XCEBRA.load(tmp_path / "m.xcebra")
    assert (loaded.lipschitz_, loaded.output_clip_) == (None, 0.5)
    np.testing.assert_array_equal(loaded.transform(data.neural), embedding)


@pytest.mark.parametrize("value", [0, -2.0, float("inf"), "4", True])
def test_lipschitz_must_be_a_positive_float(value, data):
    neural, position = data
    with pytest.raises(ValueError,
                       match=r"The 'lipschitz' parameter of XCEBRA must be 'auto', None or a float > 0. Got"):
        _model(lipschitz=value).fit(neural, position=position)


@pytest.mark.parametrize("value", [0, -1.0, float("nan"), "5", "auto"])
def test_output_clip_must_be_a_positive_float(value, data):
    neural, position = data
    with pytest.raises(ValueError, match=r"The 'output_clip' parameter of XCEBRA must be None or a float > 0. Got"):
        _model(output_clip=value).fit(neural, position=position)


def test_fit_warns_when_training_collapses_to_a_constant_embedding():
    # a step far too large kills every unit in the first step: all time points embed to one vector, every
    # InfoNCE score is equal and each loss sits at log(batch_size) for the rest of the fit
    model, data = _euclidean_fit(time_offset=1, lipschitz=None)
    model.set_params(learning_rate=0.3, max_steps=120)
    with pytest.warns(xcebra.diagnostics.EmbeddingCollapseWarning,
                      match=r"objective 'behavior' ended at 4.852, 'time' ended at 4.852 = log\(batch_size\)"):
        model.fit(data.neural, behavior=data.behavior)
    embedding = model.transform(data.neural)
    assert np.ptp(embedding, axis=0).max() < 1e-3 * max(1.0, np.abs(embedding).max())
    assert not model.attribution_map(data.neural, method="jacobian", verbose=False).values.any()


@pytest.mark.parametrize("loss", ["euclidean", "cosine"])
def test_fit_does_not_warn_when_the_scale_holds(loss):
    model, data = _euclidean_fit(time_offset=10, lipschitz=None)
    model.set_params(loss=loss)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        model.fit(data.neural, behavior=data.behavior)
    assert ("embedding_std" in model.log_) == (loss == "euclidean")
    if loss == "euclidean":
        assert xcebra.diagnostics.euclidean_spread(model.log_, 6, 1.0) < xcebra.diagnostics.SPREAD_LIMIT / 10


@pytest.mark.parametrize("model_name, given", [("offset5", None), ("offset5", 2), ("offset1", None), ("offset1", 3)])
def test_label_positives_keep_the_window_and_the_label_time_from_their_reference(monkeypatch, tmp_path, data,
                                                                                  model_name, given):
    built = []
    import xcebra.estimators._build as build  # where fit sets up the objectives' distributions
    make = build.make_distribution

    def recording(name, **options):
        built.append(make(name, **options))
        return built[-1]

    monkeypatch.setattr(build, "make_distribution", recording)
    objectives = [Objective("behavior", dims=(0, 2), distribution="time_delta", label="position", min_separation=given),
                  Objective("time", dims=(0, 4), distribution="time", time_offset=2)]
    neural, position = data
    model = _model(objectives=objectives, model=model_name, max_steps=2).fit(neural, position=position)
    window, left = model.encoder_.window, model.encoder_.left
    n_valid = len(position) - window + 1
    label_time = xcebra.sampling.label_autocorrelation_time(position[left:left + n_valid])
    assert window < label_time  # so the default is the label's time, not the window
    expected = given if given is not None else min(label_time, n_valid // 8)
    assert built[0].min_separation == expected
    assert model.min_separation_ == {"behavior": expected}
    model.save(tmp_path / "model.xcebra")
    assert xcebra.XCEBRA.load(tmp_path / "model.xcebra").min_separation_ == {"behavior": expected}
    assert not hasattr(built[1], "min_separation")
