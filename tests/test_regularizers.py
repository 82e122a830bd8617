"""Tests for xcebra.regularizers: the Jacobian penalty against independent Jacobians, and the ramp schedule."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from xcebra.models import make_encoder
from xcebra.regularizers import jacobian_penalty, ramp_weight

D = 5


@pytest.fixture
def net():
    torch.manual_seed(0)
    return make_encoder("offset5", 3, 8, D)


@pytest.fixture
def windows():
    return torch.randn(6, 3, 5, generator=torch.Generator().manual_seed(1))


def _exact(net, windows, weights=None, create_graph=False):
    """1/2 mean_b sum_r w_r ||d out_r / d x_b||^2 with torch.autograd.functional.jacobian, one window at a time."""
    weights = torch.ones(D) if weights is None else torch.as_tensor(weights, dtype=torch.float32)
    total = 0.0
    for x in windows:
        jac = torch.autograd.functional.jacobian(lambda w: net(w[None])[0, :, 0], x, create_graph=create_graph)
        assert jac.shape == (D, 3, 5)
        total = total + (weights[:, None, None] * jac ** 2).sum()
    return 0.5 * total / len(windows)


def _forward(net, windows):
    inputs = windows.clone().requires_grad_(True)
    return net(inputs)[:, :, 0], inputs


@pytest.mark.parametrize("weights", [None, [2, 2, 1, 1, 1], [0, 0, 3, 1, 0.5]])
def test_exact_mode_equals_independent_jacobian(net, windows, weights):
    output, inputs = _forward(net, windows)
    got = jacobian_penalty(output, inputs, row_weights=weights, exact=True, create_graph=False)
    expected = _exact(net, windows, weights)
    assert got.item() == pytest.approx(expected.item(), rel=1e-5)


def test_row_weights_weight_each_row(net, windows):
    """sum_r w_r ||J_r||^2 is linear in w: weighting row 2 alone gives that row's share."""
    def penalty(weights):
        output, inputs = _forward(net, windows)  # exact mode frees the graph unless create_graph
        return jacobian_penalty(output, inputs, row_weights=weights, exact=True, create_graph=False).item()

    per_row = [penalty(np.eye(D)[r]) for r in range(D)]
    weights = np.array([2.0, 0.0, 1.0, 3.0, 0.5])
    weighted = penalty(weights)
    assert weighted == pytest.approx(float(np.dot(weights, per_row)), rel=1e-5)
    assert sum(per_row) == pytest.approx(_exact(net, windows).item(), rel=1e-5)


@pytest.mark.parametrize("weights", [None, [2, 2, 1, 1, 1]])
def test_projection_estimate_is_unbiased(net, windows, weights):
    output, inputs = _forward(net, windows)
    exact = _exact(net, windows, weights).item()
    generator = torch.Generator().manual_seed(2)
    draws = np.array([jacobian_penalty(output, inputs, row_weights=weights, generator=generator,
                                       create_graph=False).item() for _ in range(400)])
    stderr = draws.std(ddof=1) / np.sqrt(len(draws))
    assert abs(draws.mean() - exact) < 4 * stderr, (draws.mean(), exact, stderr)
    assert draws.std() > 0  # it is an estimate, not the exact value in disguise
    # averaging projections inside one call reduces the spread accordingly
    many = np.array([jacobian_penalty(output, inputs, row_weights=weights, generator=generator, n_projections=16,
                                      create_graph=False).item() for _ in range(50)])
    assert many.std() < 0.5 * draws.std()
    assert abs(many.mean() - exact) < 4 * many.std(ddof=1) / np.sqrt(len(many))


def test_projections_are_seeded(net, windows):
    output, inputs = _forward(net, windows)
    a = jacobian_penalty(output, inputs, generator=torch.Generator().manual_seed(5), create_graph=False)
    b = jacobian_penalty(output, inputs, generator=torch.Generator().manual_seed(5), create_graph=False)
    c = jacobian_penalty(output, inputs, generator=torch.Generator().manual_seed(6), create_graph=False)
    assert a.item() == b.item() and a.item() != c.item()


@pytest.mark.parametrize("exact", [True, False])
def test_gradient_flows_to_parameters_double_backward(net, windows, exact):
    output, inputs = _forward(net, windows)
    penalty = jacobian_penalty(output, inputs, exact=exact, generator=torch.Generator().manual_seed(0))
    grads = torch.autograd.grad(penalty, list(net.parameters()), allow_unused=True)
    # the penalty depends on every weight (the last layer's bias is the only exception: it does not change J)
    named = dict(zip([n for n, _ in net.named_parameters()], grads))
    for name, grad in named.items():
        if name == "net.3.bias":
            assert grad is None or torch.count_nonzero(grad) == 0
        else:
            assert grad is not None and torch.count_nonzero(grad) > 0, name
    if exact:
        expected = torch.autograd.grad(_exact(net, windows, create_graph=True), list(net.parameters()), allow_unused=True)
        for name, g, e in zip(named, grads, expected):
            if e is None:
                assert g is None or torch.count_nonzero(g) == 0
            else:
                torch.testing.assert_close(g, e, rtol=1e-4, atol=1e-6, msg=name)


def test_penalty_of_a_linear_map_is_half_its_frobenius_norm():
    weight = torch.randn(4, 6, generator=torch.Generator().manual_seed(0))
    inputs = torch.randn(3, 6, requires_grad=True)
    output = inputs @ weight.T
    got = jacobian_penalty(output, inputs, exact=True, create_graph=False)
    assert got.item() == pytest.approx(0.5 * weight.pow(2).sum().item(), rel=1e-6)


# --- ramp_weight --------------------------------------------------------------------------------

@pytest.mark.parametrize("step, ramp, expected", [
    (0, None, 0.5), (999, None, 0.5),
    (0, (10, 20), 0.0), (9, (10, 20), 0.0), (10, (10, 20), 0.0),
    (11, (10, 20), 0.05), (15, (10, 20), 0.25), (19, (10, 20), 0.45),
    (20, (10, 20), 0.5), (21, (10, 20), 0.5), (10_000, (10, 20), 0.5),
    (0, (0, 4), 0.0), (1, (0, 4), 0.125), (4, (0, 4), 0.5),
])
def test_ramp_weight(step, ramp, expected):
    assert ramp_weight(step, 0.5, ramp) == pytest.approx(expected)
    assert isinstance(ramp_weight(step, 0.5, ramp), float)


def test_ramp_weight_is_monotone_and_zero_weight_stays_zero():
    values = [ramp_weight(s, 1.0, (5, 17)) for s in range(30)]
    assert all(b >= a for a, b in zip(values, values[1:]))
    assert all(ramp_weight(s, 0.0, (5, 17)) == 0.0 for s in range(30))
