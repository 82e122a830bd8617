"""Tests for xcebra.models: output shapes, receptive field, sequence vs window equivalence, registry."""

from __future__ import annotations

import pytest
import torch

from xcebra.data import sliding_windows
from xcebra.models import MODELS, Offset1, make_encoder

EXPECTED = {"offset1": (1, 0), "offset5": (5, 2), "offset10": (10, 5), "offset36": (36, 18)}


def _encoder(name, n=3, hidden=8, dim=4, seed=0):
    torch.manual_seed(seed)
    return make_encoder(name, n, hidden, dim).eval()


def test_registry_is_exactly_the_documented_models():
    assert set(MODELS) == set(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
@pytest.mark.parametrize("batch, extra", [(1, 0), (3, 7)])
def test_output_shape_and_offsets(name, batch, extra):
    window, left = EXPECTED[name]
    encoder = _encoder(name)
    assert encoder.window == window and encoder.left == left
    assert encoder.right == window - left and encoder.offset == (left, window - left)
    length = window + extra
    out = encoder(torch.randn(batch, 3, length))
    assert out.shape == (batch, 4, length - window + 1)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_receptive_field_is_exactly_the_window(name):
    """Perturbing frame k changes output j exactly when j <= k <= j + window - 1."""
    window = EXPECTED[name][0]
    # float64 and an exact comparison: in the deep offset36 the edge frames act through a product of 17
    # convolution taps (~1e-14 at initialisation), invisible at a float32 tolerance but not zero
    encoder = _encoder(name).double()
    length = window + 12
    x = torch.randn(1, 3, length, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    base = encoder(x)[0]
    n_out = length - window + 1
    for k in (0, 1, window - 1, window, window + 3, length - 1):
        perturbed = x.clone()
        perturbed[0, :, k] += 1.0
        changed = (encoder(perturbed)[0] - base).abs().amax(0) > 0
        expected = torch.tensor([j <= k <= j + window - 1 for j in range(n_out)])
        assert torch.equal(changed, expected), f"frame {k}: outputs changed at {changed.nonzero().flatten().tolist()}"


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_sequence_equals_windows(name):
    window = EXPECTED[name][0]
    encoder = _encoder(name)
    neural = torch.randn(window + 15, 3, generator=torch.Generator().manual_seed(2))
    whole = encoder(neural.T[None])[0].T                       # (T - window + 1, D)
    separate = encoder(sliding_windows(neural, window))[:, :, 0]  # each window on its own
    torch.testing.assert_close(whole, separate, rtol=1e-5, atol=1e-6)


def test_offset1_is_framewise():
    encoder = _encoder("offset1")
    x = torch.randn(2, 3, 6)
    out = encoder(x)
    for t in range(6):
        torch.testing.assert_close(out[:, :, t], encoder.net(x[:, :, t]))
    assert isinstance(encoder, Offset1)


def test_same_seed_same_weights():
    a, b, c = _encoder("offset10", seed=3), _encoder("offset10", seed=3), _encoder("offset10", seed=4)
    for (ka, va), (kb, vb), (_, vc) in zip(a.state_dict().items(), b.state_dict().items(), c.state_dict().items()):
        assert ka == kb and torch.equal(va, vb)
    assert not all(torch.equal(va, vc) for va, vc in zip(a.state_dict().values(), c.state_dict().values()))


@pytest.mark.parametrize("args, error, match", [
    (("offset11", 3, 8, 4), ValueError, "model must be one of 'offset1', 'offset5', 'offset10', 'offset36'; got 'offset11'"),
    (("offset10", 0, 8, 4), ValueError, "n_neurons must be >= 1; got 0"),
    (("offset1", 3, 8.0, 4), TypeError, "hidden_units must be an integer"),
    (("offset5", 3, 8, 0), ValueError, "output_dim must be >= 1; got 0"),
])
def test_make_encoder_errors(args, error, match):
    with pytest.raises(error, match=match):
        make_encoder(*args)


@pytest.mark.parametrize("name", sorted(MODELS))
@pytest.mark.parametrize("extra", [0, 7])
def test_shift_equals_adding_it_to_every_frame(name, extra):
    """forward(x, shift) pushes the shift through the first layer: same as forward(x + shift), windows or sequences."""
    torch.manual_seed(0)
    encoder = make_encoder(name, 5, 16, 3)
    x = torch.randn(4, 5, encoder.window + extra)
    shift = torch.randn(4, 5)
    torch.testing.assert_close(encoder(x, shift), encoder(x + shift[:, :, None]), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(encoder(x, torch.zeros(4, 5)), encoder(x))
    encoder.net = torch.nn.Identity() if name == "offset1" else encoder.net[:1]  # not a linear-first Sequential
    torch.testing.assert_close(encoder(x, shift), encoder(x + shift[:, :, None]))


CONV_MODELS = sorted(set(MODELS) - {"offset1"})


@pytest.mark.parametrize("name", CONV_MODELS)
@pytest.mark.parametrize("batch", [1, 3])
def test_matmul_path_equals_conv1d_with_gradients(name, batch):
    """forward_matmuls (taps as matrix products, fused backward) gives Conv1d's output and weight gradients."""
    torch.manual_seed(0)
    encoder = make_encoder(name, 5, 12, 3).double()
    x = torch.randn(batch, 5, encoder.window + 9, dtype=torch.float64)
    shift = torch.randn(batch, 5, dtype=torch.float64)
    cotangent = torch.randn(batch, 3, 10, dtype=torch.float64)
    reference = encoder.net(x + shift[:, :, None])
    matmuls = encoder.forward_matmuls(x, shift)
    torch.testing.assert_close(matmuls, reference, rtol=1e-10, atol=1e-12)
    expected = torch.autograd.grad(reference, list(encoder.parameters()), cotangent)
    got = torch.autograd.grad(matmuls, list(encoder.parameters()), cotangent)
    for name_, a, b in zip([n for n, _ in encoder.named_parameters()], got, expected):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12, msg=name_)


def test_time_major_conv_is_twice_differentiable():
    from xcebra.models import _TimeMajorConv

    generator = torch.Generator().manual_seed(4)
    frames = torch.randn(2, 7, 3, dtype=torch.float64, generator=generator, requires_grad=True)
    weight = torch.randn(4, 3, 3, dtype=torch.float64, generator=generator, requires_grad=True)
    bias = torch.randn(4, dtype=torch.float64, generator=generator, requires_grad=True)
    assert torch.autograd.gradcheck(_TimeMajorConv.apply, (frames, weight, bias))
    assert torch.autograd.gradgradcheck(_TimeMajorConv.apply, (frames, weight, bias))
    assert torch.autograd.gradcheck(_TimeMajorConv.apply, (frames, weight, None))


@pytest.mark.parametrize("name", CONV_MODELS)
def test_matmul_path_is_taken_where_documented(monkeypatch, name):
    """Whole data sequences and CPU autocast take forward_matmuls; batches of windows, inputs that are
    differentiated and swapped layers keep Conv1d; every path gives the same embedding."""
    encoder = _encoder(name)
    calls = []
    original = type(encoder).forward_matmuls
    monkeypatch.setattr(type(encoder), "forward_matmuls", lambda self, *a: calls.append(1) or original(self, *a))
    sequence = torch.randn(1, 3, encoder.window + 20)
    windows = sliding_windows(sequence[0].T.contiguous(), encoder.window)
    expected = encoder.net(sequence)
    torch.testing.assert_close(encoder(sequence), expected, rtol=1e-5, atol=1e-6)
    assert len(calls) == 1
    torch.testing.assert_close(encoder(windows)[:, :, 0], expected[0].T, rtol=1e-5, atol=1e-6)
    encoder(sequence.clone().requires_grad_(True))
    assert len(calls) == 1
    with torch.autocast("cpu", dtype=torch.bfloat16):
        low = encoder(windows)
    assert len(calls) == 2 and low.dtype == torch.bfloat16
    torch.testing.assert_close(low.float()[:, :, 0], expected[0].T, rtol=5e-2, atol=5e-2)
    encoder.net = torch.nn.Sequential(*encoder.net[:-1], torch.nn.Conv1d(8, 4, encoder.net[-1].kernel_size[0], padding=0,
                                                                       dilation=1, bias=False))
    encoder(sequence)
    encoder.net[-1].dilation = (2,)  # no longer the layout forward_matmuls computes
    with torch.autocast("cpu", dtype=torch.bfloat16):
        encoder(sequence[..., :encoder.window + 22])
    assert len(calls) == 3


# ---------------------------------------------------------------------------- Lipschitz bound

def _converged(encoder, n, length, steps=200):
    """Run training-mode forwards until spectral normalisation's power iterations have converged, then eval."""
    encoder.train()
    with torch.no_grad():
        for _ in range(steps):
            encoder(torch.randn(2, n, length))
    return encoder.eval()


@pytest.mark.parametrize("name", sorted(MODELS))
def test_bound_lipschitz_normalises_every_weight_and_scales_the_output(name):
    from torch.nn.utils import parametrize

    torch.manual_seed(0)
    plain = make_encoder(name, 5, 12, 3)
    torch.manual_seed(0)
    bounded = _converged(make_encoder(name, 5, 12, 3, lipschitz=2.5), 5, plain.window + 4)
    layers = [m for m in bounded.modules() if isinstance(m, (torch.nn.Linear, torch.nn.Conv1d))]
    assert layers and all(parametrize.is_parametrized(m, "weight") for m in layers)
    for module in layers:
        matrix = module.weight.reshape(module.weight.shape[0], -1)
        assert torch.linalg.matrix_norm(matrix, ord=2).item() == pytest.approx(1.0, rel=1e-3)
    # the same network as the plain one with each weight divided by its spectral norm, times the gain
    with torch.no_grad():
        for (key, p_plain), module in zip([(k, v) for k, v in plain.named_parameters() if k.endswith("weight")], layers):
            original = module.parametrizations.weight.original
            assert torch.equal(original, p_plain), key
            p_plain.copy_(module.weight)
    x = torch.randn(3, 5, plain.window + 6)
    torch.testing.assert_close(bounded(x), 2.5 * plain.eval()(x), rtol=1e-5, atol=1e-6)


def test_offset1_with_lipschitz_bound_respects_it_on_random_pairs():
    """|f(x) - f(y)| <= gain * 1.13**3 * |x - y|: three GELUs of slope at most 1.13 between four normalised layers."""
    torch.manual_seed(1)
    encoder = _converged(make_encoder("offset1", 20, 64, 6, lipschitz=3.0), 20, 1)
    # pull the weights far from initialisation first: the bound must hold whatever the weights are
    with torch.no_grad():
        for p in encoder.parameters():
            p.mul_(50.0)
    encoder = _converged(encoder, 20, 1)
    x, y = torch.randn(4000, 20, 1), torch.randn(4000, 20, 1)
    y = x + 1e-2 * y
    with torch.no_grad():
        ratio = (encoder(x) - encoder(y)).flatten(1).norm(dim=1) / (x - y).flatten(1).norm(dim=1)
    assert ratio.max().item() <= 3.0 * 1.13 ** 3
    # an unconstrained encoder with the same weights is far steeper: the bound is what limits it
    plain = make_encoder("offset1", 20, 64, 6)
    with torch.no_grad():
        for p_plain, module in zip([p for k, p in plain.named_parameters() if k.endswith("weight")],
                                   [m for m in encoder.modules() if isinstance(m, torch.nn.Linear)]):
            p_plain.copy_(module.parametrizations.weight.original)
        for p_plain, (key, p) in zip([p for k, p in plain.named_parameters() if k.endswith("bias")],
                                     [(k, p) for k, p in encoder.named_parameters() if k.endswith("bias")]):
            p_plain.copy_(p)
        steep = (plain(x) - plain(y)).flatten(1).norm(dim=1) / (x - y).flatten(1).norm(dim=1)
    assert steep.max().item() > 100 * 3.0 * 1.13 ** 3


@pytest.mark.parametrize("name", CONV_MODELS)
def test_lipschitz_conv_encoder_paths_agree(name):
    """The matmul path, Conv1d and the shift shortcut give one embedding when weights are normalised."""
    torch.manual_seed(0)
    encoder = _converged(make_encoder(name, 5, 12, 3, lipschitz=4.0), 5, EXPECTED[name][0] + 4).double()
    x = torch.randn(1, 5, encoder.window + 9, dtype=torch.float64)
    shift = torch.randn(1, 5, dtype=torch.float64)
    reference = 4.0 * encoder.net(x + shift[:, :, None])
    torch.testing.assert_close(encoder(x + shift[:, :, None]), reference, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(encoder(x, shift), reference, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(4.0 * encoder.forward_matmuls(x, shift), reference, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("gain", [0, -1.0, float("inf"), float("nan"), "2", True])
def test_make_encoder_rejects_bad_lipschitz(gain):
    with pytest.raises(ValueError, match="lipschitz gain must be a finite float > 0; got"):
        make_encoder("offset1", 3, 8, 4, lipschitz=gain)
