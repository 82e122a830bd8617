"""Tests for xcebra.losses: InfoNCE against explicit loops, temperature scaling, learnable temperature."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from xcebra.losses import Temperature, _infonce_autograd, infonce


def _loop_infonce(ref, pos, neg, similarity, tau):
    """mean_i [ -s(r_i, p_i)/tau + log sum_j exp(s(r_i, n_j)/tau) ], written with explicit loops in float64."""
    def s(a, b):
        if similarity == "cosine":
            return sum(float(x) * float(y) for x, y in zip(a, b))
        return -sum((float(x) - float(y)) ** 2 for x, y in zip(a, b))

    total = 0.0
    for i in range(len(ref)):
        log_terms = [s(ref[i], neg[j]) / tau for j in range(len(neg))]
        top = max(log_terms)
        logsumexp = top + math.log(sum(math.exp(v - top) for v in log_terms))
        total += -s(ref[i], pos[i]) / tau + logsumexp
    return total / len(ref)


def _batch(seed, b=5, m=7, d=3, normalise=True):
    rng = np.random.default_rng(seed)
    arrays = [rng.normal(size=(n, d)) for n in (b, b, m)]
    if normalise:
        arrays = [a / np.linalg.norm(a, axis=1, keepdims=True) for a in arrays]
    return arrays


@pytest.mark.parametrize("similarity", ["cosine", "euclidean"])
@pytest.mark.parametrize("tau", [1.0, 0.1, 3.0])
@pytest.mark.parametrize("seed", [0, 1])
def test_infonce_matches_explicit_loops(similarity, tau, seed):
    ref, pos, neg = _batch(seed, normalise=similarity == "cosine")
    expected = _loop_infonce(ref, pos, neg, similarity, tau)
    got = infonce(*(torch.tensor(a, dtype=torch.float32) for a in (ref, pos, neg)), similarity, tau)
    assert got.shape == ()
    assert got.item() == pytest.approx(expected, rel=1e-5, abs=1e-5)
    got64 = infonce(*(torch.tensor(a) for a in (ref, pos, neg)), similarity, torch.tensor(tau, dtype=torch.float64))
    assert got64.item() == pytest.approx(expected, rel=1e-12, abs=1e-12)


def test_infonce_hand_computed_value():
    """Two references, two negatives, 1-D embeddings: the value by hand."""
    ref = torch.tensor([[1.0], [-1.0]])
    pos = torch.tensor([[1.0], [1.0]])
    neg = torch.tensor([[1.0], [-1.0]])
    # cosine: i=0: -1 + log(e + 1/e); i=1: +1 + log(1/e + e)
    expected = math.log(math.e + 1 / math.e)
    assert infonce(ref, pos, neg, "cosine").item() == pytest.approx(expected, rel=1e-6)
    # euclidean: s(r, p) = 0 and -4; s(r, n) = (0, -4) and (-4, 0)
    expected = (0 + math.log(1 + math.exp(-4)) + 4 + math.log(math.exp(-4) + 1)) / 2
    assert infonce(ref, pos, neg, "euclidean").item() == pytest.approx(expected, rel=1e-6)


@pytest.mark.parametrize("similarity", ["cosine", "euclidean"])
def test_temperature_scales_similarities(similarity):
    """Dividing by tau equals scaling every embedding by 1/sqrt(tau) at tau = 1 (both similarities are quadratic)."""
    ref, pos, neg = (torch.tensor(a) for a in _batch(3, normalise=similarity == "cosine"))
    tau = 0.37
    scaled = [x / math.sqrt(tau) for x in (ref, pos, neg)]
    torch.testing.assert_close(infonce(ref, pos, neg, similarity, tau), infonce(*scaled, similarity, 1.0))
    assert not torch.isclose(infonce(ref, pos, neg, similarity, tau), infonce(ref, pos, neg, similarity, 1.0))


def test_infonce_is_lower_when_positives_match():
    ref, _, neg = (torch.tensor(a) for a in _batch(4))
    aligned = infonce(ref, ref, neg)
    opposed = infonce(ref, -ref, neg)
    # by how much is known exactly: the positive term moves from -1 to +1 per reference
    assert (opposed - aligned).item() == pytest.approx(2.0)


def test_euclidean_loss_is_translation_invariant_in_float32():
    """-||a - b||^2 does not change when every embedding moves by the same vector; float32 must not lose it."""
    ref, pos, neg = (torch.tensor(a, dtype=torch.float32) for a in _batch(5, b=64, m=64, d=8, normalise=False))
    for shift in (10.0, 100.0, 1000.0):
        moved = [x + shift for x in (ref, pos, neg)]
        # the exact loss of these very float32 inputs (their rounding is not the loss's fault)
        exact = infonce(*(x.double() for x in moved), "euclidean").item()
        assert infonce(*moved, "euclidean").item() == pytest.approx(exact, abs=1e-4), f"shift {shift}"


def test_infonce_gradient_matches_float64_finite_differences():
    ref, pos, neg = (torch.tensor(a, requires_grad=True) for a in _batch(6, normalise=False))
    assert torch.autograd.gradcheck(lambda r, p, n: infonce(r, p, n, "euclidean", 0.5), (ref, pos, neg))
    assert torch.autograd.gradcheck(lambda r, p, n: infonce(r, p, n, "cosine", 0.5), (ref, pos, neg))


@pytest.mark.parametrize("similarity", ["cosine", "euclidean"])
@pytest.mark.parametrize("tau", [1.0, 0.3])
@pytest.mark.parametrize("as_tensor", [False, True])
def test_closed_form_backward_matches_autograd(similarity, tau, as_tensor):
    """infonce's hand-written backward against autograd through the plain formulation (float64, B != M)."""
    arrays = _batch(9, b=6, m=11, d=4, normalise=similarity == "cosine")
    temperature = torch.tensor(tau, dtype=torch.float64) if as_tensor else tau
    grads = []
    for loss in (infonce, _infonce_autograd):
        inputs = [torch.tensor(a, requires_grad=True) for a in arrays]
        value = loss(*inputs, similarity, temperature)
        value.backward()
        grads.append((value.detach(), [x.grad for x in inputs]))
    (fused, fused_grads), (plain, plain_grads) = grads
    assert torch.equal(fused, plain)  # the same operations forward
    for got, expected in zip(fused_grads, plain_grads):
        torch.testing.assert_close(got, expected, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("similarity", ["cosine", "euclidean"])
def test_infonce_value_is_bit_identical_to_the_plain_formulation_in_float32(similarity):
    """The training dtype: the closed-form backward must not change the loss a fit logs."""
    rng = np.random.default_rng(10)
    ref, pos, neg = (torch.tensor(rng.normal(size=(512, 6)) * 3 + 1, dtype=torch.float32) for _ in range(3))
    for tau in (1.0, 0.1, torch.tensor(0.7)):
        assert torch.equal(infonce(ref, pos, neg, similarity, tau), _infonce_autograd(ref, pos, neg, similarity, tau))


@pytest.mark.parametrize("similarity", ["cosine", "euclidean"])
def test_infonce_gradients_only_for_inputs_that_ask(similarity):
    ref, pos, neg = (torch.tensor(a) for a in _batch(11, normalise=similarity == "cosine"))
    ref.requires_grad_(True)
    infonce(ref, pos, neg, similarity, 0.5).backward()
    expected_ref = ref.detach().clone().requires_grad_(True)
    _infonce_autograd(expected_ref, pos, neg, similarity, 0.5).backward()
    torch.testing.assert_close(ref.grad, expected_ref.grad, rtol=1e-12, atol=1e-14)
    assert pos.grad is None and neg.grad is None
    assert torch.autograd.gradcheck(lambda n: infonce(ref.detach(), pos, n, similarity, 0.5), (neg.requires_grad_(True),))


# --- Temperature --------------------------------------------------------------------------------

def test_fixed_temperature_is_a_buffer():
    temperature = Temperature(0.5)
    assert list(temperature.parameters()) == []
    assert temperature().item() == pytest.approx(0.5)
    assert "log_value" in temperature.state_dict()


def test_learnable_temperature_is_a_parameter_and_learns():
    temperature = Temperature(2.0, learnable=True, minimum=0.1)
    (parameter,) = list(temperature.parameters())
    assert temperature().item() == pytest.approx(2.0)
    ref, pos, neg = (torch.tensor(a, dtype=torch.float32) for a in _batch(7))
    infonce(ref, pos, neg, "cosine", temperature()).backward()
    assert parameter.grad is not None and parameter.grad.item() != 0.0


@pytest.mark.parametrize("log_value, expected", [(math.log(0.01), 0.1), (math.log(0.5), 0.5), (-50.0, 0.1)])
def test_learnable_temperature_respects_minimum(log_value, expected):
    temperature = Temperature(1.0, learnable=True, minimum=0.1)
    with torch.no_grad():
        temperature.log_value.fill_(log_value)
    assert temperature().item() == pytest.approx(expected, rel=1e-6)
    # optimisation cannot push it under the minimum
    optimizer = torch.optim.SGD(temperature.parameters(), lr=10.0)
    for _ in range(5):
        optimizer.zero_grad()
        temperature().backward()  # gradient descent on tau itself pushes it down
        optimizer.step()
        assert temperature().item() >= 0.1 - 1e-7


def test_temperature_without_minimum_is_exp_of_log_value():
    temperature = Temperature(1.0, learnable=True, minimum=0.0)
    with torch.no_grad():
        temperature.log_value.fill_(-3.0)
    assert temperature().item() == pytest.approx(math.exp(-3.0), rel=1e-6)
