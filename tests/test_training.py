"""Tests for xcebra.training: forward paths, determinism, logs, regularizer gating, divergence, checkpoints."""

from __future__ import annotations

import copy
import os
import re

import numpy as np
import pytest
import torch

import xcebra._files
from xcebra import training
from xcebra.losses import infonce
from xcebra.objectives import Objective
from xcebra.sampling import BatchSampler, Domain
from xcebra.training import CHECKPOINT_NAME, DivergenceError, embed_indices


def _fit(setup, **kwargs):
    return training.fit(setup["embedder"], setup["heads"], setup["sampler"], setup["neural"], setup["plan"],
                        coverage=setup["coverage"], generator=setup["generator"], verbose=False, **kwargs)


def _state(module):
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def _assert_same_state(a, b):
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key


def _first_batch(setup):
    """The batch the loop will draw first, drawn from a copy of the run's generator."""
    generator = torch.Generator().manual_seed(0)
    generator.set_state(setup["generator"].get_state())
    sampler = setup["sampler"]
    return BatchSampler(sampler.distributions, sampler.domain, sampler.batch_size, generator).sample()


# --- forward paths ------------------------------------------------------------------------------

@pytest.mark.parametrize("model", ["offset1", "offset5", "offset10"])
def test_sequence_and_windows_paths_give_same_embeddings_and_gradients(model, embedder_factory, small_recording):
    neural = torch.from_numpy(small_recording[0][:60])
    embedder = embedder_factory(model, n_neurons=6)
    left, right = embedder.left, embedder.window - embedder.left
    index = torch.randint(left, 60 - right + 1, (40,), generator=torch.Generator().manual_seed(0))
    index[5] = index[17] = index[3]  # repeated time points
    index[0], index[1] = left, 60 - right  # both ends of the valid range
    weights = torch.randn(40, 4, generator=torch.Generator().manual_seed(1))
    results = {}
    for mode in ("sequence", "windows", "auto"):
        embedder.zero_grad(set_to_none=True)
        z = embed_indices(embedder, neural, index, mode)
        (z * weights).sum().backward()
        results[mode] = (z.detach(), [p.grad.clone() for p in embedder.parameters()])
    # independent: each time point's own window, one at a time
    direct = torch.stack([embedder(neural[t - left:t + right].T[None])[0, 0] for t in index.tolist()])
    for mode, (z, grads) in results.items():
        torch.testing.assert_close(z, direct.detach(), rtol=1e-5, atol=1e-6, msg=mode)
        for g, g_ref in zip(grads, results["windows"][1]):
            torch.testing.assert_close(g, g_ref, rtol=1e-4, atol=1e-6, msg=mode)
    sequence = neural.T.contiguous()[None]
    torch.testing.assert_close(embed_indices(embedder, neural, index, "sequence", sequence), direct, rtol=1e-5,
                               atol=1e-6)


# --- determinism, logs --------------------------------------------------------------------------

def test_same_seed_same_weights_different_seed_different(training_setup_factory, small_recording):
    states = []
    for seed in (0, 0, 1):
        setup = training_setup_factory(*small_recording, seed=seed, init_seed=0, max_steps=3,
                                       regularizer_weight=0.1)
        _fit(setup)
        states.append(_state(setup["embedder"]))
    _assert_same_state(states[0], states[1])
    assert not all(torch.equal(states[0][k], states[2][k]) for k in states[0])


@pytest.mark.parametrize("learnable", [False, True])
def test_log_keys_lengths_and_consistency(training_setup_factory, small_recording, learnable):
    setup = training_setup_factory(*small_recording, max_steps=5, regularizer_weight=0.3, regularizer_ramp=(1, 3),
                                   learnable_temperature=learnable)
    log = _fit(setup)
    expected = {"loss", "regularizer", "regularizer_weight", "seconds", "loss/behavior", "loss/time"}
    if learnable:
        expected |= {"temperature/behavior", "temperature/time"}
    assert set(log) == expected
    for key, values in log.items():
        assert isinstance(values, np.ndarray) and values.shape == (5,) and values.dtype == np.float64, key
    np.testing.assert_allclose(log["regularizer_weight"], [0.0, 0.0, 0.15, 0.3, 0.3])
    np.testing.assert_allclose(log["loss"], log["loss/behavior"] + log["loss/time"]
                               + log["regularizer_weight"] * log["regularizer"], rtol=1e-5)
    if learnable:
        assert (log["temperature/time"] != 1.0).any()  # it learns
    assert not setup["embedder"].training  # left in eval mode


def test_first_logged_losses_are_infonce_of_the_first_batch(training_setup_factory, small_recording):
    """Recompute step 0 independently: same batch, initial weights, each objective on its own slice."""
    setup = training_setup_factory(*small_recording, max_steps=1, regularizer_weight=0.2, regularizer_exact=True,
                                   regularizer_batch_size=5)
    initial = copy.deepcopy(setup["embedder"])
    batch = _first_batch(setup)
    neural = setup["neural"]
    left, window = initial.left, initial.window

    def embed(index):
        return torch.stack([initial(neural[t - left:t - left + window].T[None])[0, 0] for t in index.tolist()])

    z_ref, z_neg = embed(batch.reference), embed(batch.negative)
    expected = {}
    for head, positive in zip(setup["heads"], batch.positives):
        s = head.dims
        expected[head.name] = infonce(z_ref[:, s], embed(positive)[:, s], z_neg[:, s], "cosine", 1.0).item()
    # regularizer: exact, on the first 5 references, dims weighted by how many objectives see them
    weights = torch.tensor(setup["coverage"], dtype=torch.float32)
    total = 0.0
    for t in batch.reference[:5].tolist():
        x = neural[t - left:t - left + window].T.contiguous()
        jac = torch.autograd.functional.jacobian(lambda w: initial(w[None])[0, 0], x)
        total += (weights[:, None, None] * jac ** 2).sum().item()
    expected_reg = 0.5 * total / 5
    log = _fit(setup)
    assert log["loss/behavior"][0] == pytest.approx(expected["behavior"], rel=1e-5)
    assert log["loss/time"][0] == pytest.approx(expected["time"], rel=1e-5)
    assert log["regularizer"][0] == pytest.approx(expected_reg, rel=1e-4)


def test_embedding_std_logged_for_euclidean_dims_only(training_setup_factory, small_recording):
    """Step 0's logged spread equals the centred std of the first references' embedding on the euclidean dims."""
    objectives = [Objective("behavior", dims=(0, 2), distribution="time_delta", label="position", loss="cosine"),
                  Objective("time", dims=(2, 5), distribution="time", time_offset=3, loss="euclidean")]
    setup = training_setup_factory(*small_recording, max_steps=3, output_dim=5, objectives=objectives)
    initial = copy.deepcopy(setup["embedder"])
    batch = _first_batch(setup)
    neural, left, window = setup["neural"], initial.left, initial.window
    with torch.no_grad():
        z = torch.stack([initial(neural[t - left:t - left + window].T[None])[0, 0] for t in batch.reference.tolist()])
    euclidean = z[:, 2:5].double()
    expected = float(torch.sqrt(((euclidean - euclidean.mean(0)) ** 2).mean()))
    cosine_too = z.double()
    assert expected != pytest.approx(float(torch.sqrt(((cosine_too - cosine_too.mean(0)) ** 2).mean())), rel=1e-3)
    log = _fit(setup)
    assert log["embedding_std"].shape == (3,)
    assert log["embedding_std"][0] == pytest.approx(expected, rel=1e-5)


def test_cosine_fit_logs_no_embedding_std(training_setup_factory, small_recording):
    assert "embedding_std" not in _fit(training_setup_factory(*small_recording, max_steps=2))


@pytest.mark.parametrize("std, n_dims, temperature, expected", [
    (np.full(100, 2.0), 6, 1.0, 2 * 6 * 4.0),
    (np.r_[np.full(95, 1.0), np.full(5, 10.0)], 3, 0.5, 2 * 3 * 100 / 0.5),  # the last 5% of steps decide
    (np.r_[np.full(50, 1.0), np.full(50, 3.0)], 2, 2.0, 2 * 2 * 9 / 2.0),
    (np.array([4.0]), 1, 1.0, 32.0),
])
def test_euclidean_spread(std, n_dims, temperature, expected):
    assert training.euclidean_spread({"embedding_std": std}, n_dims, temperature) == pytest.approx(expected)


def test_euclidean_spread_needs_the_log():
    assert training.euclidean_spread({"loss": np.zeros(10)}, 4, 1.0) is None
    assert training.euclidean_spread({"embedding_std": np.zeros(0)}, 4, 1.0) is None


# --- outlying embedded points -------------------------------------------------------------------

def test_distance_ratios_match_a_direct_computation():
    rng = np.random.default_rng(0)
    z = rng.normal(size=(101, 3)) * [1.0, 2.0, 0.5] + [5.0, -1.0, 0.0]
    centre = np.array([np.median(z[:, k]) for k in range(3)])
    distance = np.sqrt(((z - centre) ** 2).sum(axis=1))
    expected = distance / sorted(distance)[50]
    np.testing.assert_allclose(training.distance_ratios(z), expected, rtol=1e-12)
    np.testing.assert_allclose(training.distance_ratios(torch.as_tensor(z, dtype=torch.float32)), expected, rtol=1e-5)


@pytest.mark.parametrize("n_dims", [1, 3, 6, 16])
def test_a_gaussian_cloud_has_no_outliers_and_planted_ones_are_found(n_dims):
    rng = np.random.default_rng(n_dims)
    z = rng.normal(size=(8192, n_dims)) * rng.uniform(0.5, 2.0, size=n_dims)
    assert training.distance_ratios(z).max() < training.OUTLIER_FACTOR / 3
    planted = [10, 11, 12, 4000, 8191]
    z[planted] += 10 * np.abs(z).max()  # far beyond the rim, in every dimension
    outlying = np.flatnonzero(training.distance_ratios(z) > training.OUTLIER_FACTOR)
    np.testing.assert_array_equal(outlying, planted)


def test_distance_ratios_of_a_mostly_collapsed_embedding():
    z = np.zeros((10, 2))
    z[7] = [0.0, 1e-3]
    ratios = training.distance_ratios(z)
    assert ratios[7] == np.inf and np.all(np.delete(ratios, 7) == 0)


@pytest.mark.parametrize("shape", [(0, 3), (5,), (2, 3, 4)])
def test_distance_ratios_need_a_non_empty_matrix(shape):
    with pytest.raises(ValueError, match=re.escape(f"embedding must be a non-empty (K, D) array; got shape {shape}")):
        training.distance_ratios(np.zeros(shape))


@pytest.mark.parametrize("model, n_points", [("offset1", 50), ("offset5", 1000), ("offset10", 7)])
def test_embed_evenly_spans_the_domain(model, n_points, embedder_factory, small_recording):
    neural = torch.from_numpy(small_recording[0])
    embedder = embedder_factory(model, n_neurons=6)
    domain = Domain.for_window(len(neural), embedder.left, embedder.window - embedder.left)
    embedder.train()
    index, z = training.embed_evenly(embedder, neural, domain, n_points)
    assert embedder.training  # restored
    assert len(index) == min(n_points, domain.size) and z.shape == (len(index), 4) and not z.requires_grad
    assert index[0] == domain.start and index[-1] == domain.stop - 1 and torch.all(index.diff() > 0)
    if n_points < domain.size:  # evenly spaced: gaps differ by at most one time point
        assert index.diff().max() - index.diff().min() <= 1
    embedder.eval()
    torch.testing.assert_close(z, embed_indices(embedder, neural, index).detach(), rtol=1e-5, atol=1e-6)


def _falling(start, end, steps=200):
    return np.linspace(start, end, steps)


@pytest.mark.parametrize("log, chance, expected", [
    # healthy: every objective falls (the regularizer and the total are not objectives)
    ({"loss": _falling(6, 1), "loss/time": _falling(3, -1e6), "loss/behavior": _falling(3, 2),
      "regularizer": _falling(0, 50)}, 6.24, {}),
    # the collapsed Poisson fit of the benchmark: time loss ~2.8 at the start, 14.8 at the end
    ({"loss/time": _falling(2.8, 14.8), "loss/behavior": _falling(3, 2)}, None, {"time": (2.8, 14.8)}),
    # a rise within the tolerance (0.1 * max(1, |start|)) is step noise, one beyond it is not
    ({"loss/a": _falling(0.5, 0.59), "loss/b": _falling(0.5, 0.61)}, None, {"b": (0.5, 0.61)}),
    ({"loss/a": _falling(-20, -18.1), "loss/b": _falling(-20, -17.9)}, None, {"b": (-20, -17.9)}),
    # flat at log(M): an embedding that maps everything to one vector, reported only when chance is given
    ({"loss/time": np.full(120, np.log(128))}, np.log(128), {"time": (np.log(128), np.log(128))}),
    ({"loss/time": np.full(120, np.log(128))}, None, {}),
    ({"loss/time": _falling(np.log(128), np.log(128) - 0.05)}, np.log(128), {}),
])
def test_loss_increase(log, chance, expected):
    # start and end are medians over the first and last 5% of steps, so take the expected values from there
    found = training.loss_increase(log, chance=chance)
    assert set(found) == set(expected)
    for name, (start, end) in found.items():
        values = log[f"loss/{name}"]
        k = max(1, len(values) // 20)
        assert start == pytest.approx(np.median(values[:k])) and end == pytest.approx(np.median(values[-k:]))
        assert (end > start) == (expected[name][1] > expected[name][0])


def test_loss_increase_uses_medians_not_single_steps():
    values = np.full(200, 3.0)
    values[-1] = 100.0  # one bad last step among the last 10 does not move their median
    assert training.loss_increase({"loss/time": values}) == {}
    values[-10:] = 100.0
    assert training.loss_increase({"loss/time": values}) == {"time": (3.0, 100.0)}


def test_loss_increase_does_not_judge_short_fits():
    rising = {"loss/time": _falling(2.8, 14.8, steps=99)}
    assert training.loss_increase(rising) == {}
    assert set(training.loss_increase(rising, min_steps=99)) == {"time"}


def test_loss_increase_rejects_a_bad_fraction():
    with pytest.raises(ValueError, match="fraction must be in"):
        training.loss_increase({"loss/time": np.zeros(10)}, fraction=0)


def test_regularizer_not_computed_while_its_weight_is_zero(training_setup_factory, small_recording, monkeypatch):
    calls = []
    original = training.jacobian_penalty

    def counting(*args, **kwargs):
        calls.append(1)
        return original(*args, **kwargs)

    monkeypatch.setattr(training, "jacobian_penalty", counting)
    setup = training_setup_factory(*small_recording, max_steps=6, regularizer_weight=0.5, regularizer_ramp=(2, 4))
    log = _fit(setup)
    assert len(calls) == 3  # steps 3, 4, 5 (the weight is 0 at steps 0, 1 and 2 = on)
    np.testing.assert_array_equal(log["regularizer"][:3], 0.0)
    assert (log["regularizer"][3:] > 0).all()
    calls.clear()
    _fit(training_setup_factory(*small_recording, max_steps=3, regularizer_weight=0.0))
    assert calls == []


# --- divergence ---------------------------------------------------------------------------------

@pytest.mark.parametrize("where", ["loss", "regularizer", "gradient"])
def test_divergence_raises_with_step_and_keeps_previous_weights(training_setup_factory, small_recording,
                                                                monkeypatch, where):
    setup = training_setup_factory(*small_recording, max_steps=6, regularizer_weight=0.1)
    embedder = setup["embedder"]
    snapshot = {}
    calls = {"n": 0}
    fail_step = 3
    if where == "loss":
        original = training.infonce
        per_step = len(setup["heads"])

        def patched(*args, **kwargs):
            calls["n"] += 1
            value = original(*args, **kwargs)
            if (calls["n"] - 1) // per_step == fail_step:
                snapshot.setdefault("state", _state(embedder))
                return value * float("nan")
            return value

        monkeypatch.setattr(training, "infonce", patched)
    elif where == "gradient":
        # finite loss, non-finite gradient of one weight: caught by the gradient norm
        original = training.infonce
        per_step = len(setup["heads"])
        weight = next(embedder.parameters())

        def patched(*args, **kwargs):
            calls["n"] += 1
            if (calls["n"] - 1) // per_step == fail_step and "state" not in snapshot:
                snapshot["state"] = _state(embedder)
                weight.register_hook(lambda grad: grad * float("nan"))
            return original(*args, **kwargs)

        monkeypatch.setattr(training, "infonce", patched)
    else:
        original = training.jacobian_penalty

        def patched(*args, **kwargs):
            calls["n"] += 1
            value = original(*args, **kwargs)
            if calls["n"] - 1 == fail_step:
                snapshot.setdefault("state", _state(embedder))
                return value * float("inf")  # finite loss terms, infinite total and gradients
            return value

        monkeypatch.setattr(training, "jacobian_penalty", patched)
    loss = r"\d[\d.e+-]*" if where == "gradient" else "(nan|inf)"
    with pytest.raises(DivergenceError, match=f"training diverged at step {fail_step}: loss={loss}, gradient norm=nan"):
        _fit(setup)
    assert issubclass(DivergenceError, FloatingPointError)
    _assert_same_state(snapshot["state"], _state(embedder))
    assert not embedder.training
    # and those are the weights of an undisturbed run stopped after fail_step steps
    reference = training_setup_factory(*small_recording, max_steps=fail_step, regularizer_weight=0.1)
    monkeypatch.undo()
    _fit(reference)
    _assert_same_state(_state(reference["embedder"]), snapshot["state"])


def test_huge_learning_rate_diverges_cleanly(training_setup_factory, small_recording):
    setup = training_setup_factory(*small_recording, model="offset1", max_steps=50, learning_rate=1e30,
                                   regularizer_weight=1.0)
    setup["neural"] = setup["neural"] * 1e20
    with pytest.raises(DivergenceError, match=r"training diverged at step \d+"):
        _fit(setup)
    assert all(torch.isfinite(p).all() for p in setup["embedder"].parameters())


# --- checkpoints --------------------------------------------------------------------------------

def test_resume_from_checkpoint_equals_uninterrupted_run(training_setup_factory, small_recording, tmp_path):
    options = dict(regularizer_weight=0.2, regularizer_ramp=(1, 4), learnable_temperature=True, checkpoint_every=3)
    full = training_setup_factory(*small_recording, max_steps=6, **options)
    full_log = _fit(full)

    first = training_setup_factory(*small_recording, max_steps=3, **options)
    _fit(first, checkpoint_dir=tmp_path, fingerprint="run-a")
    assert sorted(os.listdir(tmp_path)) == [CHECKPOINT_NAME]  # written atomically: no temporary files left
    # the resumed run starts from a differently initialised network and a fresh generator: all state comes from disk
    second = training_setup_factory(*small_recording, max_steps=6, init_seed=99, **options)
    second["generator"].manual_seed(12345)
    log = _fit(second, checkpoint_dir=tmp_path, fingerprint="run-a")
    _assert_same_state(_state(full["embedder"]), _state(second["embedder"]))
    for a, b in zip(full["heads"], second["heads"]):
        assert torch.equal(a.temperature.log_value, b.temperature.log_value)
    assert set(log) == set(full_log)
    for key in set(full_log) - {"seconds"}:  # wall times differ, everything else is identical
        np.testing.assert_array_equal(log[key], full_log[key], err_msg=key)
    assert len(log["seconds"]) == len(full_log["seconds"]) and (log["seconds"] > 0).all()
    assert sorted(os.listdir(tmp_path)) == [CHECKPOINT_NAME]


def test_finished_checkpoint_is_returned_without_training(training_setup_factory, small_recording, tmp_path):
    first = training_setup_factory(*small_recording, max_steps=3, checkpoint_every=3)
    first_log = _fit(first, checkpoint_dir=tmp_path, fingerprint="x")
    again = training_setup_factory(*small_recording, max_steps=3, checkpoint_every=3, init_seed=5)
    log = _fit(again, checkpoint_dir=tmp_path, fingerprint="x")
    _assert_same_state(_state(first["embedder"]), _state(again["embedder"]))
    np.testing.assert_array_equal(log["loss"], first_log["loss"])


def test_checkpoint_of_another_run_is_refused(training_setup_factory, small_recording, tmp_path):
    _fit(training_setup_factory(*small_recording, max_steps=2, checkpoint_every=2), checkpoint_dir=tmp_path,
         fingerprint="config-1")
    other = training_setup_factory(*small_recording, max_steps=4, checkpoint_every=2)
    before = _state(other["embedder"])
    with pytest.raises(ValueError, match=f"checkpoint_dir '{tmp_path}' holds a checkpoint of a different run"):
        _fit(other, checkpoint_dir=tmp_path, fingerprint="config-2")
    _assert_same_state(before, _state(other["embedder"]))


def test_crash_while_writing_keeps_the_previous_checkpoint(training_setup_factory, small_recording, tmp_path,
                                                           monkeypatch):
    setup = training_setup_factory(*small_recording, max_steps=4, checkpoint_every=2)
    real_replace = os.replace
    count = {"n": 0}

    def failing_replace(src, dst):
        count["n"] += 1
        if count["n"] == 2:
            raise OSError("disk full")
        return real_replace(src, dst)

    monkeypatch.setattr(xcebra._files.os, "replace", failing_replace)
    with pytest.raises(OSError, match="disk full"):
        _fit(setup, checkpoint_dir=tmp_path, fingerprint="f")
    assert sorted(os.listdir(tmp_path)) == [CHECKPOINT_NAME]
    _, header = xcebra._files.read_tensors(tmp_path / CHECKPOINT_NAME, expected_format=training.CHECKPOINT_FORMAT)
    assert header["step"] == 2

