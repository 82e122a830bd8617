"""Tests for xcebra.attribution.baselines: known answers on linear encoders, exact zeros, seeding, no mutation."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

pytest.importorskip("captum")

from xcebra import Objective, XCEBRA  # noqa: E402
from xcebra.attribution import per_time_attribution  # noqa: E402
from xcebra.attribution.baselines import BASELINE_METHODS, OPTIONS, make_attributor  # noqa: E402
from xcebra.models import make_encoder  # noqa: E402
from xcebra.objectives import Embedder  # noqa: E402

D, N, WINDOW, B = 3, 6, 5, 6  # WINDOW: the receptive field of offset5
IGNORED = 2  # the neuron the test encoders never look at

#: cheap options per method (for the tests that do not check convergence)
CHEAP = {
    "neuron-gradient": {},
    "integrated-gradients": {"n_steps": 4},
    "feature-ablation": {},
    "shapley-sampling": {"n_samples": 3},
    "gradient-shap": {"n_samples": 4},
}


class LinearEncoder(nn.Module):
    """z_d(t) = sum_{n,k} W[d, n, k] x[n, t - left + k]: a Conv1d without bias, the Embedder interface."""

    def __init__(self, weight: torch.Tensor, left: int = 1):
        super().__init__()
        out_dim, n_neurons, window = weight.shape
        self.conv = nn.Conv1d(n_neurons, out_dim, window, bias=False)
        with torch.no_grad():
            self.conv.weight.copy_(weight)
        self.window, self.left = window, left

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, N, L) -> (B, L - window + 1, D)."""
        return self.conv(x).transpose(1, 2)


@pytest.fixture(scope="module")
def weight() -> torch.Tensor:
    w = torch.randn(D, N, WINDOW, generator=torch.Generator().manual_seed(0))
    w[:, IGNORED] = 0.0
    return w


@pytest.fixture(scope="module")
def linear(weight) -> LinearEncoder:
    return LinearEncoder(weight)


@pytest.fixture(scope="module")
def windows() -> torch.Tensor:
    return torch.randn(B, N, WINDOW, generator=torch.Generator().manual_seed(1))


@pytest.fixture(scope="module")
def nonlinear() -> Embedder:
    """A small offset5 convolution with block normalisation that ignores neuron IGNORED."""
    torch.manual_seed(3)
    encoder = make_encoder("offset5", N, 8, D)
    with torch.no_grad():
        encoder.net[0].weight[:, IGNORED] = 0.0
    return Embedder(encoder, [("a", slice(0, 1)), ("b", slice(1, D))], [False, True])


def _contribution(weight, x, baseline=0.0):
    """Exact per-neuron contribution of a linear encoder: sum over lags of W * (x - baseline), (b, D, N)."""
    return torch.einsum("dnk,bnk->bdn", weight, x - baseline)


def _state(module: nn.Module) -> list:
    return [(name, p.detach().clone(), p.dtype, p.device, p.requires_grad, p.grad) for name, p in
            module.named_parameters()] + [module.training]


# --- known answers on a linear encoder ---------------------------------------------------------

def test_neuron_gradient_is_the_weight_summed_over_lags(linear, weight, windows):
    values = make_attributor(linear, "neuron-gradient")(windows)
    torch.testing.assert_close(values, weight.sum(-1).expand(B, D, N), rtol=0, atol=1e-6)


@pytest.mark.parametrize("n_steps", [1, 5, 50])
def test_integrated_gradients_is_input_times_weight(linear, weight, windows, n_steps):
    values = make_attributor(linear, "integrated-gradients", n_steps=n_steps)(windows)
    torch.testing.assert_close(values, _contribution(weight, windows), rtol=1e-5, atol=1e-5)


def test_integrated_gradients_with_a_baseline(linear, weight, windows):
    baseline = np.linspace(-1, 1, N, dtype=np.float32)  # one value per neuron, held over the window
    values = make_attributor(linear, "integrated-gradients", n_steps=3, baseline=baseline)(windows)
    expected = _contribution(weight, windows, torch.from_numpy(baseline)[:, None])
    torch.testing.assert_close(values, expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("baseline", [0.0, 0.5, "per-neuron", "per-frame"])
def test_feature_ablation_is_the_exact_contribution(linear, weight, windows, baseline):
    if baseline == "per-neuron":
        baseline = np.arange(N, dtype=np.float32)
    elif baseline == "per-frame":
        baseline = np.arange(N * WINDOW, dtype=np.float32).reshape(N, WINDOW) / 10
    values = make_attributor(linear, "feature-ablation", baseline=baseline)(windows)
    frames = torch.as_tensor(np.asarray(baseline, dtype=np.float32))
    frames = frames[:, None] if frames.ndim == 1 else frames
    torch.testing.assert_close(values, _contribution(weight, windows, frames), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("n_samples", [1, 7])
def test_shapley_sampling_is_exact_for_a_linear_encoder(linear, weight, windows, n_samples):
    values = make_attributor(linear, "shapley-sampling", n_samples=n_samples, random_state=4)(windows)
    torch.testing.assert_close(values, _contribution(weight, windows), rtol=1e-5, atol=1e-5)


def test_gradient_shap_with_one_baseline_window_is_exact(linear, weight, windows):
    baseline = torch.randn(1, N, WINDOW, generator=torch.Generator().manual_seed(5))
    values = make_attributor(linear, "gradient-shap", baselines=baseline, n_samples=3)(windows)
    torch.testing.assert_close(values, _contribution(weight, windows, baseline), rtol=1e-5, atol=1e-5)


def test_gradient_shap_expectation_is_input_minus_mean_baseline_times_weight(linear, weight, windows):
    generator = torch.Generator().manual_seed(6)
    baselines = 1.0 + 0.5 * torch.randn(32, N, WINDOW, generator=generator)
    n_samples = 4000
    values = make_attributor(linear, "gradient-shap", baselines=baselines.numpy(), n_samples=n_samples)(windows)
    expected = _contribution(weight, windows, baselines.mean(0))
    # the estimate averages n_samples draws of (x - b) * W over 32 baselines: its error is about
    # sd(sum_k W * b) / sqrt(n_samples); allow 5 of those
    spread = _contribution(weight, baselines).std(0).max()
    assert (values - expected).abs().max() < 5 * spread / n_samples ** 0.5


def test_gradient_shap_default_gaussian_baselines_centre_on_zero(linear, weight, windows):
    n_samples = 4000
    values = make_attributor(linear, "gradient-shap", n_samples=n_samples, baseline_std=0.5)(windows)
    spread = 0.5 * weight.pow(2).sum(-1).sqrt().max()  # sd of sum_k W[d, n, k] b[n, k] for b ~ N(0, 0.25)
    assert (values - _contribution(weight, windows)).abs().max() < 5 * spread / n_samples ** 0.5


# --- every method: shape, exact zeros, completeness, agreement with other code ----------------

@pytest.mark.parametrize("method", BASELINE_METHODS)
def test_shape_dtype_and_ignored_neuron_is_exactly_zero(method, nonlinear, linear, windows):
    for model in (linear, nonlinear):
        values = make_attributor(model, method, **CHEAP[method])(windows)
        assert values.shape == (B, D, N) and values.dtype == torch.float32 and not values.requires_grad
        assert torch.all(values[:, :, IGNORED] == 0), method
        assert torch.isfinite(values).all() and values.abs().sum() > 0


@pytest.mark.parametrize("method", BASELINE_METHODS)
def test_offset1_encoder_and_a_single_window(method):
    torch.manual_seed(0)
    embedder = Embedder(make_encoder("offset1", N, 8, D), [("all", slice(0, D))], [True])
    values = make_attributor(embedder, method, **CHEAP[method])(torch.randn(1, N, 1))
    assert values.shape == (1, D, N)


@pytest.mark.parametrize("method, options, model", [
    ("neuron-gradient", {}, "nonlinear"), ("integrated-gradients", {"n_steps": 3}, "nonlinear"),
    # random points on the path: exact (so independent of how the draws are batched) only when linear
    ("gradient-shap", {"n_samples": 2, "baselines": np.ones((1, N, WINDOW), dtype=np.float32)}, "linear"),
    ("feature-ablation", {}, "nonlinear"), ("shapley-sampling", {"n_samples": 2}, "nonlinear"),
])
@pytest.mark.parametrize("internal_batch_size", [1, 5, 13])
def test_internal_batches_do_not_change_the_values(request, windows, method, options, model, internal_batch_size):
    """Small passes split the batch, medium ones group several output dims or perturbations: same numbers."""
    model = request.getfixturevalue(model)
    reference = make_attributor(model, method, **options)(windows)
    values = make_attributor(model, method, internal_batch_size=internal_batch_size, **options)(windows)
    torch.testing.assert_close(values, reference, rtol=1e-5, atol=1e-6)


def test_neuron_gradient_equals_the_jacobian_method(nonlinear, windows):
    ours = make_attributor(nonlinear, "neuron-gradient")(windows)
    torch.testing.assert_close(ours, per_time_attribution(nonlinear, windows, "jacobian", "sum"),
                               rtol=1e-5, atol=1e-6)


def test_feature_ablation_matches_captum_one_target_at_a_time(nonlinear, windows):
    from captum.attr import FeatureAblation
    mask = torch.arange(N)[None, :, None].expand(1, N, WINDOW).contiguous()
    ablation = FeatureAblation(lambda x: nonlinear(x)[:, 0])
    expected = torch.stack([ablation.attribute(windows, target=d, feature_mask=mask)[..., 0] for d in range(D)], 1)
    torch.testing.assert_close(make_attributor(nonlinear, "feature-ablation")(windows), expected)


@pytest.mark.parametrize("method, options, tolerance", [
    ("shapley-sampling", {"n_samples": 2}, 1e-5),          # every sampled ordering is efficient
    ("integrated-gradients", {"n_steps": 64}, 1e-3),     # the path integral, to quadrature accuracy
])
def test_completeness_on_a_nonlinear_encoder(nonlinear, windows, method, options, tolerance):
    """Attributions over all neurons sum to f(x) - f(baseline) (the methods' defining property)."""
    values = make_attributor(nonlinear, method, **options)(windows)
    with torch.no_grad():
        gap = nonlinear(windows)[:, 0] - nonlinear(torch.zeros_like(windows))[:, 0]
    torch.testing.assert_close(values.sum(-1), gap, rtol=0, atol=tolerance)


def test_float64_model_is_not_cast(nonlinear, windows):
    model = Embedder(make_encoder("offset5", N, 8, D), [("all", slice(0, D))], [False]).double()
    values = make_attributor(model, "neuron-gradient")(windows)  # float32 windows, float64 model
    assert values.dtype == torch.float64
    assert all(p.dtype == torch.float64 for p in model.parameters())


# --- randomness ---------------------------------------------------------------------------------

@pytest.mark.parametrize("method", ["shapley-sampling", "gradient-shap"])
def test_same_seed_same_values_other_seed_other_values(method, nonlinear, windows):
    def run(seed):
        attribute = make_attributor(nonlinear, method, random_state=seed, **CHEAP[method])
        return attribute(windows), attribute(windows)

    first, second = run(0), run(0)
    torch.testing.assert_close(first[0], second[0], rtol=0, atol=0)
    torch.testing.assert_close(first[1], second[1], rtol=0, atol=0)
    assert not torch.equal(first[0], first[1]), "each batch must get its own random stream"
    assert not torch.equal(first[0], run(1)[0])


@pytest.mark.parametrize("method", ["shapley-sampling", "gradient-shap"])
def test_the_global_random_state_is_unchanged(method, nonlinear, windows):
    torch.manual_seed(123)
    np.random.seed(456)
    make_attributor(nonlinear, method, **CHEAP[method])(windows)
    after = torch.rand(3), np.random.rand(3)
    torch.manual_seed(123)
    np.random.seed(456)
    torch.testing.assert_close(after[0], torch.rand(3), rtol=0, atol=0)
    np.testing.assert_array_equal(after[1], np.random.rand(3))


# --- no mutation --------------------------------------------------------------------------------

@pytest.mark.parametrize("method", BASELINE_METHODS)
def test_model_and_windows_are_not_mutated(method, windows):
    model = Embedder(make_encoder("offset5", N, 8, D), [("all", slice(0, D))], [True]).train()
    before = _state(model)
    given = windows.clone()
    make_attributor(model, method, **CHEAP[method])(given)
    after = _state(model)
    assert after[-1] == before[-1]
    for (name, value, dtype, device, requires_grad, grad), now in zip(before[:-1], after[:-1]):
        assert torch.equal(value, now[1]) and (dtype, device, requires_grad) == now[2:5], name
        assert now[5] is None and grad is None, f"{name} has a .grad after attribution"
    assert torch.equal(given, windows) and not given.requires_grad and given.grad is None


# --- validation ---------------------------------------------------------------------------------

def test_unknown_method(linear):
    with pytest.raises(ValueError, match=r"method must be one of 'neuron-gradient', .*; got 'saliency'"):
        make_attributor(linear, "saliency")


@pytest.mark.parametrize("method, options, message", [
    ("neuron-gradient", {"n_steps": 5},
     r"Method 'neuron-gradient' takes the options 'internal_batch_size'; got unknown option 'n_steps'"),
    ("feature-ablation", {"n_samples": 5},
     r"Method 'feature-ablation' takes the options 'baseline', 'internal_batch_size'; got unknown option 'n_samples'"),
    ("integrated-gradients", {"n_steps": 0},
     r"The 'n_steps' option of method 'integrated-gradients' must be an int >= 1. Got 0 instead."),
    ("shapley-sampling", {"n_samples": 2.5},
     r"The 'n_samples' option of method 'shapley-sampling' must be an int >= 1. Got 2.5 instead."),
    ("gradient-shap", {"baseline_std": -1.0},
     r"The 'baseline_std' option of method 'gradient-shap' must be a float >= 0. Got -1.0 instead."),
    ("feature-ablation", {"baseline": float("nan")}, r"The 'baseline' option of method 'feature-ablation' must be"),
    ("integrated-gradients", {"internal_batch_size": True}, r"The 'internal_batch_size' option .* an int >= 1"),
])
def test_bad_options_are_named(linear, method, options, message):
    with pytest.raises(ValueError, match=message):
        make_attributor(linear, method, **options)


def test_bad_random_state(linear):
    with pytest.raises(ValueError, match=r"random_state must be None or an int >= 0; got -1"):
        make_attributor(linear, "gradient-shap", random_state=-1)


def test_shapes_checked_when_windows_arrive(linear, windows):
    with pytest.raises(ValueError, match=r"The 'baseline' option must have shape \(6,\), \(6, 1\) or \(6, 5\)"):
        make_attributor(linear, "feature-ablation", baseline=np.zeros(3))(windows)
    with pytest.raises(ValueError, match=r"'baselines' option of method 'gradient-shap' must have shape \(M, 6, 5\)"):
        make_attributor(linear, "gradient-shap", baselines=np.zeros((2, 6, 3)))(windows)
    with pytest.raises(ValueError, match=r"windows must be a tensor of shape \(b, N, 5\)"):
        make_attributor(linear, "neuron-gradient")(windows[..., :4])


def test_every_method_has_documented_options():
    assert set(OPTIONS) == set(BASELINE_METHODS)
    from xcebra.attribution import METHODS
    assert set(BASELINE_METHODS) <= set(METHODS)


# --- end to end through the estimator -----------------------------------------------------------

@pytest.fixture(scope="module", params=["offset1", "offset5"])
def fitted(request):
    rng = np.random.default_rng(0)
    t, n = 300, 6
    position = np.cumsum(rng.normal(size=(t, 2)), axis=0).astype(np.float32) * 0.1
    neural = (np.tanh(position @ rng.normal(size=(2, n))) + 0.1 * rng.normal(size=(t, n))).astype(np.float32)
    model = XCEBRA([Objective("behavior", dims=(0, 2), distribution="time_delta", label="position"),
                    Objective("time", dims=(0, 4), distribution="time", time_offset=2)],
                   model=request.param, hidden_units=8, output_dim=4, batch_size=32, max_steps=3,
                   random_state=0, verbose=False)
    return model.fit(neural, position=position), neural


@pytest.mark.parametrize("method", BASELINE_METHODS)
def test_attribution_map_through_the_estimator(fitted, method):
    model, neural = fitted
    amap = model.attribution_map(neural, method=method, num_samples=40, batch_size=16, verbose=False,
                                 **CHEAP[method])
    assert amap.method == method and amap.values.shape == (4, neural.shape[1]) and amap.n_timepoints == 40
    assert np.all(amap.values >= 0) and np.all(np.isfinite(amap.values)) and amap.values.sum() > 0
    assert amap.block_values.shape == (2, neural.shape[1])


def test_estimator_neuron_gradient_equals_jacobian_map(fitted):
    model, neural = fitted
    gradient = model.attribution_map(neural, method="neuron-gradient", num_samples=30, verbose=False)
    jacobian = model.attribution_map(neural, method="jacobian", num_samples=30, verbose=False)
    np.testing.assert_allclose(gradient.values, jacobian.values, rtol=1e-4, atol=1e-6)
