"""Multi-session fitting: cross-session sampling, the shared-trunk and separate-encoder models, fit / transform /
attribution_map per session, adapt, save and load (xcebra.session_sampling, xcebra.session_models, xcebra.training.sessions,
xcebra.estimators.sessions)."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch
from sklearn.neighbors import KNeighborsRegressor
from sklearn.metrics import r2_score

from xcebra import Objective, XCEBRA
from xcebra.sampling import BatchSampler, DeltaNormal, Discrete, Domain, TimeOffset
from xcebra.session_models import make_session_embedders, new_session_embedder
from xcebra.session_sampling import LabelAnchors, SessionSampler


def _random_walk(rng: np.random.Generator, n: int, step: float = 0.05) -> np.ndarray:
    """A 2-D walk reflected into the unit box: a position label."""
    position = np.empty((n, 2))
    position[0] = rng.uniform(0, 1, 2)
    for t in range(1, n):
        position[t] = position[t - 1] + rng.normal(0, step, 2)
        position[t] = np.abs(position[t])
        position[t] = 1 - np.abs(1 - position[t])
    return position


def _sessions(neuron_counts=(20, 28, 24), n_timepoints=1200, seed=0):
    """Sessions whose neurons are different random tuning curves of one shared position, plus noise."""
    rng = np.random.default_rng(seed)
    neural, position = [], []
    for n in neuron_counts:
        pos = _random_walk(rng, n_timepoints)
        centres = rng.uniform(0, 1, (n, 2))
        rates = np.exp(-((pos[:, None, :] - centres[None]) ** 2).sum(-1) / (2 * 0.15 ** 2))
        neural.append((rates + 0.05 * rng.normal(size=rates.shape)).astype(np.float32))
        position.append(pos)
    return neural, position


def _model(**overrides) -> XCEBRA:
    params = dict(objectives=[Objective("behavior", dims=(0, 4), distribution="time_delta", label="position"),
                              Objective("time", dims=(0, 6), distribution="time", time_offset=5)],
                  model="offset1", hidden_units=32, output_dim=6, batch_size=128, max_steps=30,
                  learning_rate=3e-3, verbose=False, random_state=0, num_threads=1)
    params.update(overrides)
    return XCEBRA(**params)


@pytest.fixture(scope="module")
def sessions():
    return _sessions()


@pytest.fixture(scope="module")
def fitted(sessions):
    neural, position = sessions
    return _model().fit(neural, position=position)


# ---------------------------------------------------------------------------------------------- sampling
def _session_samplers(labels, distribution_factory, batch_size=64, seed=0):
    generator = torch.Generator().manual_seed(seed)
    samplers = []
    for label in labels:
        domain = Domain.for_window(len(label), 0, 1)
        distribution = distribution_factory()
        distribution.setup(domain, label)
        samplers.append(BatchSampler([distribution, _time_offset(domain)], domain, batch_size, generator))
    return SessionSampler(samplers, generator), generator


def _time_offset(domain):
    distribution = TimeOffset(3)
    distribution.setup(domain, None)
    return distribution


@pytest.mark.parametrize("min_separation", [1, 7, 40])
def test_cross_session_positives_are_the_nearest_label_by_brute_force(min_separation):
    rng = np.random.default_rng(1)
    labels = [_random_walk(rng, n) for n in (300, 420, 350)]
    # delta ~ 0: the target is the reference's own label, so the positive is checkable by brute force
    sampler, _ = _session_samplers(labels, lambda: DeltaNormal(delta=1e-12, min_separation=min_separation))
    crossed = 0
    for _ in range(5):
        batch = sampler.sample()
        where, times = batch.positive_session[0].numpy(), batch.positive[0].numpy()
        for row, (session, time) in enumerate(zip(where, times)):
            own = row // sampler.batch_size
            ref = int(batch.reference[own][row % sampler.batch_size])
            target = labels[own][ref]
            distance = np.linalg.norm(labels[session] - target, axis=1)
            if session == own:
                assert abs(time - ref) >= min_separation
                distance[np.abs(np.arange(len(distance)) - ref) < min_separation] = np.inf
                if 2 * min_separation > 16:  # the own session's thinned second search is approximate by design
                    continue
            else:
                crossed += 1
            assert distance[time] == pytest.approx(distance.min(), abs=1e-12)
    # each positive's session is uniform over the 3 sessions: 2/3 cross over
    assert crossed / (5 * 3 * sampler.batch_size) == pytest.approx(2 / 3, abs=0.06)


def test_time_positives_stay_in_their_session():
    rng = np.random.default_rng(2)
    labels = [_random_walk(rng, n) for n in (200, 260)]
    sampler, _ = _session_samplers(labels, lambda: DeltaNormal(delta=0.05))
    batch = sampler.sample()
    size = sampler.batch_size
    np.testing.assert_array_equal(batch.positive_session[1].numpy(), np.repeat([0, 1], size))
    np.testing.assert_array_equal(batch.positive[1].numpy(), torch.cat(batch.reference).numpy() + 3)


def test_discrete_positives_match_the_class_across_sessions_and_fall_back_where_it_is_absent():
    rng = np.random.default_rng(3)
    labels = [rng.integers(0, 4, 300), rng.integers(0, 3, 300)]  # class 3 only exists in session 0
    sampler, _ = _session_samplers(labels, Discrete)
    for _ in range(3):
        batch = sampler.sample()
        where, times = batch.positive_session[0].numpy(), batch.positive[0].numpy()
        for row, (session, time) in enumerate(zip(where, times)):
            own = row // sampler.batch_size
            ref = int(batch.reference[own][row % sampler.batch_size])
            assert labels[session][time] == labels[own][ref]
            if labels[own][ref] == 3:
                assert session == 0


def test_label_anchors_nearest_and_classes():
    generator = torch.Generator().manual_seed(0)
    points = np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
    index, found = LabelAnchors(points, discrete=False).nearest(np.array([[0.9, 0.1], [0.1, 0.8]]), generator)
    np.testing.assert_array_equal(index, [1, 2])
    assert found.all()
    anchors = LabelAnchors(np.array([2, 0, 2, 1]), discrete=True)
    index, found = anchors.nearest(np.array([2, 1, 5]), generator)
    assert anchors.labels[index[0]] == 2 and index[1] == 3 and list(found) == [True, True, False]


# ---------------------------------------------------------------------------------------------- model
def test_sessions_share_every_layer_but_the_first():
    blocks = [("a", slice(0, 3)), ("b", slice(3, 6))]
    networks = make_session_embedders("offset10", [7, 11], 16, 6, blocks, [True, True], lipschitz=4.0, seed=0,
                                      share_trunk=True)
    first, second = networks[0].encoder.net, networks[1].encoder.net
    assert first[0] is not second[0] and first[0].in_channels == 7 and second[0].in_channels == 11
    assert all(a is b for a, b in zip(first[1:], second[1:]))
    names = list(networks.state_dict())
    assert len(names) == len(set(names)) and any(n.startswith("inputs.1.") for n in names)
    n_params = sum(p.numel() for p in networks.parameters())
    assert n_params == sum(p.numel() for p in first.parameters()) + sum(p.numel() for p in second[0].parameters())
    again = make_session_embedders("offset10", [7, 11], 16, 6, blocks, [True, True], lipschitz=4.0, seed=0,
                                   share_trunk=True)
    for (name, a), b in zip(networks.state_dict().items(), again.state_dict().values()):
        assert torch.equal(a, b), name


def test_separate_encoders_share_no_layer_and_register_each_weight_once():
    blocks = [("a", slice(0, 3)), ("b", slice(3, 6))]
    networks = make_session_embedders("offset10", [7, 11], 16, 6, blocks, [True, True], lipschitz=4.0, seed=0,
                                      share_trunk=False)
    first, second = networks[0].encoder.net, networks[1].encoder.net
    assert not networks.share_trunk and len(networks.trunk) == 0
    assert first[0].in_channels == 7 and second[0].in_channels == 11
    assert all(a is not b for a, b in zip(first, second))
    n_params = sum(p.numel() for p in networks.parameters())
    assert n_params == sum(p.numel() for p in first.parameters()) + sum(p.numel() for p in second.parameters())
    # the second session's trunk is initialised afresh, not copied from the first's
    state = networks.state_dict()
    trunk_keys = [k[len("inputs.0."):] for k in state if k.startswith("inputs.0.") and not k.startswith("inputs.0.0.")
                  and k.endswith("original")]
    assert trunk_keys and not any(torch.equal(state[f"inputs.0.{k}"], state[f"inputs.1.{k}"]) for k in trunk_keys)
    again = make_session_embedders("offset10", [7, 11], 16, 6, blocks, [True, True], lipschitz=4.0, seed=0,
                                   share_trunk=False)
    for (name, a), b in zip(networks.state_dict().items(), again.state_dict().values()):
        assert torch.equal(a, b), name
    shared = make_session_embedders("offset10", [7, 11], 16, 6, blocks, [True, True], seed=0, share_trunk=True)
    with pytest.raises(ValueError, match="shares a layer with another session"):
        type(networks)([shared[0], shared[1]], share_trunk=False)
    with pytest.raises(ValueError, match="does not share the trunk"):
        type(networks)([networks[0], networks[1]], share_trunk=True)


# ---------------------------------------------------------------------------------------------- estimator
def test_fit_transform_and_maps_per_session(fitted, sessions):
    neural, position = sessions
    assert fitted.n_sessions_ == 3 and fitted.n_features_in_ == (20, 28, 24)
    assert set(fitted.min_separation_) == {"behavior"} and len(fitted.min_separation_["behavior"]) == 3
    for s, x in enumerate(neural):
        assert fitted.transform(x, session=s).shape == (len(x), 6)
        amap = fitted.attribution_map(x, method="ing-block", session=s, num_samples=100, verbose=False)
        assert amap.values.shape == (6, x.shape[1])
        assert np.isfinite(amap.values).all()
    assert fitted.anchors_["embedding"].shape == (sum(len(x) for x in neural), 6)
    assert fitted.score(neural[1], position=position[1], session=1) > 0


@pytest.mark.parametrize("method", ["ing", "jacobian", "neuron-gradient"])
def test_every_method_maps_a_session_with_its_own_encoder(fitted, sessions, method):
    neural, _ = sessions
    amap = fitted.attribution_map(neural[2], method=method, session=2, num_samples=40, verbose=False)
    assert amap.values.shape == (6, 24) and np.isfinite(amap.values).all()


def test_session_errors(fitted, sessions):
    neural, position = sessions
    with pytest.raises(ValueError, match="fitted on 3 sessions; pass session=0..2"):
        fitted.transform(neural[0])
    with pytest.raises(ValueError, match=r"session must be an int in 0..2 .* got 3"):
        fitted.transform(neural[0], session=3)
    with pytest.raises(ValueError, match=r"neural \(session 1\) has 20 neurons but the model was fit on 28"):
        fitted.attribution_map(neural[0], session=1)
    model = _model(max_steps=2)
    with pytest.raises(ValueError, match="session 1: .*position.* 1199 .* 1200"):
        model.fit(neural, position=[position[0], position[1][:-1], position[2]])
    with pytest.raises(ValueError, match="label 'position' must be a list of 3 arrays, one per session"):
        model.fit(neural, position=position[0])
    with pytest.raises(ValueError, match="same columns"):
        model.fit(neural, position=[position[0], position[1][:, :1], position[2]])
    single = _model(max_steps=2).fit(neural[0], position=position[0])
    with pytest.raises(ValueError, match="fitted on one recording"):
        single.transform(neural[0], session=1)
    with pytest.raises(ValueError, match="adapt needs a multi-session model"):
        single.adapt(neural[1], position=position[1])


def test_batch_size_must_fit_every_session(sessions):
    neural, position = sessions
    with pytest.raises(ValueError, match="session 1 has"):
        _model(batch_size=150).fit([neural[0], neural[1][:140]], position=[position[0], position[1][:140]])


@pytest.mark.parametrize("rows, expected", [(16, 16), (None, 128), (1000, 128)])
def test_each_session_is_regularized_on_the_rows_its_own_fit_would_use(sessions, monkeypatch, rows, expected):
    """regularizer_batch_size counts rows per session (at most batch_size), not rows split among sessions."""
    import xcebra.training.sessions as session_training

    seen = []
    penalty = session_training._penalty

    def recording(embedder, windows, reference, *args, **kwargs):
        seen.append(len(reference))
        return penalty(embedder, windows, reference, *args, **kwargs)

    monkeypatch.setattr(session_training, "_penalty", recording)
    neural, position = sessions
    _model(max_steps=2, regularizer_ramp=None, regularizer_batch_size=rows).fit(neural, position=position)
    assert seen == [expected] * (2 * len(neural))


@pytest.mark.parametrize("share_trunk", [True, False])
def test_save_load_round_trip_keeps_every_session_and_the_anchors(fitted, sessions, tmp_path, share_trunk):
    neural, position = sessions
    assert fitted.share_trunk is False  # the default layout: separate encoders
    if share_trunk:
        fitted = _model(max_steps=5, share_trunk=True).fit(neural, position=position)
    path = tmp_path / "sessions.xcebra"
    fitted.save(path)
    loaded = XCEBRA.load(path)
    assert loaded.share_trunk == share_trunk and loaded.sessions_.share_trunk == share_trunk
    assert loaded.n_features_in_ == fitted.n_features_in_ and loaded.n_sessions_ == 3
    assert loaded.min_separation_ == fitted.min_separation_
    for s, x in enumerate(neural):
        np.testing.assert_array_equal(loaded.transform(x, session=s), fitted.transform(x, session=s))
    np.testing.assert_array_equal(loaded.anchors_["embedding"], fitted.anchors_["embedding"])
    np.testing.assert_array_equal(loaded.anchors_["labels"]["position"], fitted.anchors_["labels"]["position"])
    restored = pickle.loads(pickle.dumps(fitted))
    np.testing.assert_array_equal(restored.transform(neural[2], session=2), fitted.transform(neural[2], session=2))


def test_load_refuses_a_file_whose_session_counts_disagree_with_its_weights(fitted, tmp_path):
    from xcebra._files import read_tensors, write_tensors

    path = tmp_path / "sessions.xcebra"
    fitted.save(path)
    tensors, header = read_tensors(path, expected_format="xcebra-model")
    header["n_features_in"] = [20, 99, 24]
    write_tensors(tmp_path / "bad.xcebra", tensors, header)
    with pytest.raises(ValueError, match="not a consistent xcebra model file"):
        XCEBRA.load(tmp_path / "bad.xcebra")


def test_a_file_written_before_share_trunk_existed_loads_as_a_shared_trunk(sessions, tmp_path):
    """Files without the parameter were all shared-trunk models; the default changed to separate encoders, so
    such a file must not be read with the new default (its weights would not even fit that layout)."""
    from xcebra._files import read_tensors, write_tensors

    neural, position = sessions
    shared = _model(max_steps=3, share_trunk=True).fit(neural, position=position)
    shared.save(tmp_path / "new.xcebra")
    tensors, header = read_tensors(tmp_path / "new.xcebra", expected_format="xcebra-model")
    del header["params"]["share_trunk"]
    write_tensors(tmp_path / "old.xcebra", tensors, header)
    loaded = XCEBRA.load(tmp_path / "old.xcebra")
    assert loaded.share_trunk is True and loaded.sessions_.share_trunk and len(loaded.sessions_.trunk) > 0
    for s, x in enumerate(neural):
        np.testing.assert_array_equal(loaded.transform(x, session=s), shared.transform(x, session=s))


@pytest.mark.parametrize("loss, share_trunk", [("cosine", True), ("euclidean", True), ("euclidean", False)])
def test_adapt_trains_a_new_input_layer_and_leaves_the_shared_model_bit_identical(sessions, loss, share_trunk):
    neural, position = sessions
    model = _model(loss=loss, max_steps=20, share_trunk=share_trunk).fit(neural[:2], position=position[:2])
    if loss == "euclidean":
        assert model.lipschitz_ is not None  # the bounded default: its power-iteration buffers must not move
    before = {k: v.clone() for k, v in model.sessions_.state_dict().items()}
    embeddings = [model.transform(x, session=s) for s, x in enumerate(neural[:2])]
    index = model.adapt(neural[2], position=position[2], max_steps=15, random_state=3)
    assert index == 2 and model.n_features_in_ == (20, 28, 24) and model.n_sessions_ == 3
    after = model.sessions_.state_dict()
    for key, value in before.items():
        assert torch.equal(after[key], value), key
    assert any(k.startswith("inputs.2.") for k in after)
    assert all(p.requires_grad for p in model.sessions_.parameters())
    new = model.sessions_[2].encoder.net
    with torch.random.fork_rng(devices=[]):  # the new session's initial weights, as adapt draws them
        torch.manual_seed(3)
        initial = new_session_embedder(model.sessions_[0], "offset1", 24, 32, 6, model.lipschitz_, model.output_clip_,
                                       share_trunk=share_trunk).encoder.net
    trained = [n for n, _ in new.named_parameters()]
    moved = [n for n, a in zip(trained, initial.parameters()) if not torch.equal(dict(new.named_parameters())[n], a)]
    if share_trunk:  # only the input layer is new and trained; the trunk is session 0's
        assert all(a is b for a, b in zip(new[1:], model.sessions_[0].encoder.net[1:]))
        assert moved and all(n.startswith("0.") for n in moved)
    else:  # a whole encoder of its own, trained in every layer
        assert all(a is not b for a, b in zip(new, model.sessions_[0].encoder.net))
        assert {n.split(".")[0] for n in moved} == {n.split(".")[0] for n in trained}
    for s, x in enumerate(neural[:2]):
        np.testing.assert_array_equal(model.transform(x, session=s), embeddings[s])
    assert model.transform(neural[2], session=2).shape == (len(neural[2]), 6)
    assert len(model.adapt_logs_[2]["loss"]) == 15 and len(model.min_separation_["behavior"]) == 3


def test_fit_with_a_checkpoint_resumes_to_the_same_weights(sessions, tmp_path):
    neural, position = sessions
    first = _model(max_steps=12).fit(neural, position=position, checkpoint_dir=tmp_path, checkpoint_every=6)
    again = _model(max_steps=12).fit(neural, position=position, checkpoint_dir=tmp_path, checkpoint_every=6)
    for (name, a), b in zip(first.sessions_.state_dict().items(), again.sessions_.state_dict().values()):
        assert torch.equal(a, b), name


def test_a_refit_on_one_recording_replaces_the_sessions(fitted, sessions):
    neural, position = sessions
    model = pickle.loads(pickle.dumps(fitted))
    model.set_params(max_steps=2).fit(neural[0], position=position[0])
    assert not hasattr(model, "sessions_") and model.n_features_in_ == 20
    assert model.transform(neural[0]).shape == (len(neural[0]), 6)


def test_shared_behaviour_block_decodes_position_across_sessions():
    """The point of multi-session training: a decoder trained on two sessions' behaviour blocks reads the
    position of a third, whose neurons it never saw."""
    neural, position = _sessions(n_timepoints=1500, seed=4)
    model = _model(max_steps=400, batch_size=256).fit(neural, position=position)
    blocks = [model.transform(x, session=s)[:, :4] for s, x in enumerate(neural)]
    decoder = KNeighborsRegressor(n_neighbors=10).fit(np.concatenate(blocks[:2]), np.concatenate(position[:2]))
    assert r2_score(position[2], decoder.predict(blocks[2])) > 0.6


def test_a_discrete_label_and_delta_normal_fit_across_sessions(sessions):
    neural, position = sessions
    trial = [(p[:, 0] > 0.5).astype(int) for p in position]
    model = _model(objectives=[Objective("trial", dims=(0, 2), distribution="discrete", label="trial"),
                               Objective("behavior", dims=(2, 4), distribution="delta_normal", label="position"),
                               Objective("time", dims=(0, 6), distribution="time", time_offset=5)], max_steps=5)
    model.fit(neural, trial=trial, position=position)
    assert set(model.anchors_["labels"]) == {"trial", "position"}
    assert model.anchors_["labels"]["trial"].dtype.kind == "i"
    index = model.adapt(neural[0][:, :10], trial=trial[0], position=position[0], max_steps=3, random_state=0)
    assert model.transform(neural[0][:, :10], session=index).shape == (len(neural[0]), 6)


def test_significance_refuses_a_list_of_sessions(sessions):
    from xcebra.significance import significance

    neural, position = sessions
    with pytest.raises(ValueError, match="significance analyses one recording"):
        significance(_model(), neural, position=position)
