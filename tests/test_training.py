"""Tests for xcebra.training: forward paths, determinism, logs, regularizer gating, divergence, checkpoints."""

from __future__ import annotations

import copy
import os

import numpy as np
import pytest
import torch

import xcebra._files
from xcebra import training
from xcebra.losses import infonce
from xcebra.objectives import Objective
from xcebra.sampling import BatchSampler
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


def test_regularizer_not_computed_while_its_weight_is_zero(training_setup_factory, small_recording, monkeypatch):
    calls = []
    original = training.contrastive.jacobian_penalty

    def counting(*args, **kwargs):
        calls.append(1)
        return original(*args, **kwargs)

    monkeypatch.setattr(training.contrastive, "jacobian_penalty", counting)
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
        original = training.contrastive.infonce
        per_step = len(setup["heads"])

        def patched(*args, **kwargs):
            calls["n"] += 1
            value = original(*args, **kwargs)
            if (calls["n"] - 1) // per_step == fail_step:
                snapshot.setdefault("state", _state(embedder))
                return value * float("nan")
            return value

        monkeypatch.setattr(training.contrastive, "infonce", patched)
    elif where == "gradient":
        # finite loss, non-finite gradient of one weight: caught by the gradient norm
        original = training.contrastive.infonce
        per_step = len(setup["heads"])
        weight = next(embedder.parameters())

        def patched(*args, **kwargs):
            calls["n"] += 1
            if (calls["n"] - 1) // per_step == fail_step and "state" not in snapshot:
                snapshot["state"] = _state(embedder)
                weight.register_hook(lambda grad: grad * float("nan"))
            return original(*args, **kwargs)

        monkeypatch.setattr(training.contrastive, "infonce", patched)
    else:
        original = training.contrastive.jacobian_penalty

        def patched(*args, **kwargs):
            calls["n"] += 1
            value = original(*args, **kwargs)
            if calls["n"] - 1 == fail_step:
                snapshot.setdefault("state", _state(embedder))
                return value * float("inf")  # finite loss terms, infinite total and gradients
            return value

        monkeypatch.setattr(training.contrastive, "jacobian_penalty", patched)
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



@pytest.mark.parametrize("name", ["LossIncreaseWarning", "EmbeddingOutlierWarning"])
def test_retired_warnings_still_resolve_with_a_deprecation_warning(name):
    with pytest.warns(DeprecationWarning, match=f"xcebra.training.{name} is no longer raised"):
        first = getattr(training, name)
    with pytest.warns(DeprecationWarning):
        assert getattr(training, name) is first and issubclass(first, UserWarning)
    with pytest.raises(AttributeError, match="has no attribute 'loss_increase'"):
        training.loss_increase
