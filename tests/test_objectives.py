"""Tests for xcebra.objectives: Objective validation, the block layout of nested slices, the Embedder."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from xcebra.models import make_encoder
from xcebra.objectives import Embedder, Objective, block_layout


def _time(name="time", dims=(0, 14), **kw):
    return Objective(name, dims=dims, distribution="time", **kw)


def _behavior(name="behavior", dims=(0, 4), **kw):
    return Objective(name, dims=dims, distribution="time_delta", label="position", **kw)


# --- Objective ----------------------------------------------------------------------------------

@pytest.mark.parametrize("kwargs, error, match", [
    (dict(name="b", dims=(0, 4), distribution="time_delta"), ValueError,
     "Objective 'b': distribution 'time_delta' needs label=<name of a label passed to fit>"),
    (dict(name="d", dims=(0, 4), distribution="discrete"), ValueError, "distribution 'discrete' needs label="),
    (dict(name="t", dims=(0, 4), distribution="time", label="position"), ValueError,
     "Objective 't': distribution 'time' uses no label; got label='position'"),
    (dict(name="b", dims=(0, 4), distribution="time_delta", label="p", time_offset=3), ValueError,
     r"Objective 'b': time_offset does not apply to distribution 'time_delta' \(it takes time_delta, min_separation\)"),
    (dict(name="t", dims=(0, 4), distribution="time", min_separation=10), ValueError,
     r"min_separation does not apply to distribution 'time' \(it takes time_offset\)"),
    (dict(name="b", dims=(0, 4), distribution="time_delta", label="p", min_separation=0), ValueError,
     "Objective 'b' min_separation must be >= 1; got 0"),
    (dict(name="t", dims=(0, 4), distribution="time", delta=0.1), ValueError,
     r"delta does not apply to distribution 'time' \(it takes time_offset\)"),
    (dict(name="d", dims=(0, 4), distribution="discrete", label="trial", time_delta=2), ValueError,
     r"time_delta does not apply to distribution 'discrete' \(it takes no options\)"),
    (dict(name="x", dims=(0, 4), distribution="gauss"), ValueError,
     "Objective 'x' distribution must be one of 'time', 'time_delta', 'delta_normal', 'discrete'; got 'gauss'"),
    (dict(name="", dims=(0, 4), distribution="time"), ValueError, "Objective name must be a non-empty string; got ''"),
    (dict(name="t", dims=4, distribution="time"), ValueError, r"Objective 't': dims must be a pair \(start, stop\); got 4"),
    (dict(name="t", dims=(0, 1, 2), distribution="time"), ValueError, "dims must be a pair"),
    (dict(name="t", dims=(4, 4), distribution="time"), ValueError, "Objective 't' dims stop must be >= 5; got 4"),
    (dict(name="t", dims=(-1, 4), distribution="time"), ValueError, "Objective 't' dims start must be >= 0; got -1"),
    (dict(name="t", dims=(0.0, 4), distribution="time"), TypeError, "Objective 't' dims start must be an integer"),
    (dict(name="t", dims=(0, 4), distribution="time", loss="l1"), ValueError,
     "Objective 't' loss must be one of 'cosine', 'euclidean'; got 'l1'"),
    (dict(name="t", dims=(0, 4), distribution="time", temperature=0.0), ValueError,
     "Objective 't' temperature must be > 0.0; got 0.0"),
    (dict(name="t", dims=(0, 4), distribution="time", weight=-1.0), ValueError,
     "Objective 't' weight must be >= 0.0; got -1.0"),
])
def test_objective_validation(kwargs, error, match):
    with pytest.raises(error, match=match):
        Objective(**kwargs)


@pytest.mark.parametrize("objective, expected", [
    (_time(), {"time_offset": 10}),
    (_time(time_offset=3), {"time_offset": 3}),
    (_behavior(), {"time_delta": 1, "min_separation": None}),
    (_behavior(time_delta=4, min_separation=3), {"time_delta": 4, "min_separation": 3}),
    (Objective("n", dims=(0, 2), distribution="delta_normal", label="p", delta=0.5),
     {"delta": 0.5, "min_separation": None}),
    (Objective("c", dims=(0, 2), distribution="discrete", label="trial"), {}),
])
def test_distribution_options_fill_defaults(objective, expected):
    assert objective.distribution_options() == expected


@pytest.mark.parametrize("objective, window, expected", [
    (_behavior(), 10, {"time_delta": 1, "min_separation": 10}),
    (_behavior(min_separation=3), 10, {"time_delta": 1, "min_separation": 3}),
    (Objective("n", dims=(0, 2), distribution="delta_normal", label="p"), 1, {"delta": 0.1, "min_separation": 1}),
    (_time(), 10, {"time_offset": 10}),
])
def test_min_separation_defaults_to_the_encoder_window(objective, window, expected):
    assert objective.distribution_options(window) == expected


def _ar1(coefficient: float, n_timepoints: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    noise = rng.normal(size=n_timepoints)
    out = np.empty(n_timepoints)
    out[0] = noise[0]
    for t in range(1, n_timepoints):
        out[t] = coefficient * out[t - 1] + noise[t]
    return out


@pytest.mark.parametrize("window, coefficient, n_valid, expected", [
    # AR(1) with coefficient 0.98: autocorrelation 0.98^k falls below 1/e at k = 50
    (1, 0.98, None, 50),
    (10, 0.98, None, 50),
    (80, 0.98, None, 80),      # the window when it is longer
    (1, 0.98, 240, 30),        # at most an eighth of the valid time points
    (1, 0.0, None, 1),         # white noise: the window
])
def test_min_separation_defaults_to_the_label_autocorrelation_time(window, coefficient, n_valid, expected):
    label = _ar1(coefficient, 200_000)
    options = _behavior().distribution_options(window, label, n_valid)
    assert options["min_separation"] == pytest.approx(expected, abs=2 if expected == 50 else 0)
    assert _behavior(min_separation=3).distribution_options(window, label, n_valid)["min_separation"] == 3


def test_objective_normalises_dims_and_slice():
    objective = _time(dims=[2, 6])
    assert objective.dims == (2, 6) and objective.slice == slice(2, 6)


# --- block layout -------------------------------------------------------------------------------

def test_seed_layout():
    layout = block_layout([_behavior(), _time()], 14)
    assert layout.blocks == [("behavior", slice(0, 4)), ("time", slice(4, 14))]
    assert layout.coverage == (2, 2, 2, 2) + (1,) * 10
    assert layout.normalized == [True, True]
    assert layout.output_dim == 14 and layout.block_names == ["behavior", "time"]


@pytest.mark.parametrize("objectives, output_dim, blocks, coverage", [
    # nested at the end of the outer slice
    ([_time(dims=(0, 6)), _behavior(dims=(3, 6))], 6, [("time", slice(0, 3)), ("behavior", slice(3, 6))],
     (1, 1, 1, 2, 2, 2)),
    # disjoint
    ([_behavior(dims=(0, 2)), _time(dims=(2, 5))], 5, [("behavior", slice(0, 2)), ("time", slice(2, 5))],
     (1,) * 5),
    # three levels of nesting
    ([_time(dims=(0, 8)), _behavior(dims=(0, 5)), Objective("c", dims=(0, 2), distribution="discrete", label="k")], 8,
     [("c", slice(0, 2)), ("behavior", slice(2, 5)), ("time", slice(5, 8))], (3, 3, 2, 2, 2, 1, 1, 1)),
    # two disjoint objectives inside one outer slice
    ([_time(dims=(0, 7)), _behavior(dims=(0, 2)), Objective("c", dims=(2, 4), distribution="discrete", label="k")], 7,
     [("behavior", slice(0, 2)), ("c", slice(2, 4)), ("time", slice(4, 7))], (2, 2, 2, 2, 1, 1, 1)),
    # a single objective
    ([_time(dims=(0, 3))], 3, [("time", slice(0, 3))], (1, 1, 1)),
])
def test_layouts(objectives, output_dim, blocks, coverage):
    layout = block_layout(objectives, output_dim)
    assert layout.blocks == blocks
    assert layout.coverage == coverage
    # blocks are disjoint and cover 0..output_dim contiguously
    stops = [s.start for _, s in layout.blocks[1:]]
    assert [s.stop for _, s in layout.blocks[:-1]] == stops
    assert layout.blocks[0][1].start == 0 and layout.blocks[-1][1].stop == output_dim
    # coverage counts, independently, the objectives whose slice holds each dimension
    assert layout.coverage == tuple(sum(o.dims[0] <= d < o.dims[1] for o in objectives) for d in range(output_dim))


def test_normalised_blocks_follow_each_owner_loss():
    layout = block_layout([_behavior(dims=(0, 2), loss="euclidean"), _time(dims=(2, 5))], 5, "cosine")
    assert layout.normalized == [False, True]
    layout = block_layout([_behavior(dims=(0, 2)), _time(dims=(2, 5))], 5, "euclidean")
    assert layout.normalized == [False, False]


@pytest.mark.parametrize("objectives, output_dim, error, match", [
    ([_behavior(dims=(0, 4)), _time(dims=(6, 10))], 10, ValueError,
     r"embedding dims 4\.\.5 are not covered by any objective \(output_dim=10\)"),
    ([_time(dims=(0, 4))], 6, ValueError, r"embedding dims 4\.\.5 are not covered"),
    ([_time(dims=(0, 16))], 14, ValueError,
     r"Objective 'time' has dims \(0, 16\) but output_dim is 14; dims must lie within 0\.\.14"),
    ([_time(dims=(0, 4)), _behavior(dims=(0, 4))], 4, ValueError,
     r"Objectives 'time' and 'behavior' have the same dims \(0, 4\); give each its own slice"),
    ([_time(dims=(0, 6)), _behavior(dims=(4, 10))], 10, ValueError,
     r"Objectives 'time' \(0, 6\) and 'behavior' \(4, 10\) overlap partially; slices must be disjoint or nested"),
    ([_time(dims=(0, 10)), _behavior(dims=(3, 6))], 10, ValueError,
     "Objective 'time' would own two separate blocks of the embedding"),
    ([_time(dims=(0, 10), loss="euclidean"), _behavior(dims=(0, 4))], 10, ValueError,
     r"Objectives 'time' and 'behavior' are nested but use different losses \('euclidean' vs 'cosine'\)"),
    ([_time(dims=(0, 4)), _time(dims=(4, 8))], 8, ValueError, r"objective names must be unique; got \['time', 'time'\]"),
    ([], 4, ValueError, "objectives must contain at least one Objective; got none"),
    ([("time", (0, 4))], 4, TypeError, "objectives must be xcebra.Objective instances; got tuple"),
    ([_time(dims=(0, 4))], 0, ValueError, "output_dim must be >= 1; got 0"),
])
def test_layout_errors(objectives, output_dim, error, match):
    with pytest.raises(error, match=match):
        block_layout(objectives, output_dim)


def test_nested_objectives_with_same_explicit_and_default_loss_are_fine():
    layout = block_layout([_time(dims=(0, 6), loss="cosine"), _behavior(dims=(0, 2))], 6, "cosine")
    assert layout.block_names == ["behavior", "time"]


# --- Embedder -----------------------------------------------------------------------------------

class _Fixed(nn.Module):
    """An 'encoder' that returns a learnable fixed output (B, D, L) for any input."""

    window, left = 1, 0

    def __init__(self, values):
        super().__init__()
        self.values = nn.Parameter(torch.as_tensor(values, dtype=torch.float32))

    def forward(self, x):
        return self.values[None, :, None].expand(x.shape[0], -1, x.shape[-1]) + 0 * x[:, :1]


def test_embedder_normalises_each_cosine_block_separately():
    layout = block_layout([_behavior(dims=(0, 2)), _time(dims=(0, 5))], 5)
    torch.manual_seed(0)
    encoder = make_encoder("offset5", 3, 8, 5)
    embedder = Embedder(encoder, layout.blocks, layout.normalized)
    x = torch.randn(4, 3, 9)
    z = embedder(x)
    raw = encoder(x).transpose(1, 2)
    assert z.shape == (4, 5, 5)
    torch.testing.assert_close(z[..., :2], raw[..., :2] / raw[..., :2].norm(dim=-1, keepdim=True))
    torch.testing.assert_close(z[..., 2:], raw[..., 2:] / raw[..., 2:].norm(dim=-1, keepdim=True))
    torch.testing.assert_close(z[..., :2].norm(dim=-1), torch.ones(4, 5))
    torch.testing.assert_close(z[..., 2:].norm(dim=-1), torch.ones(4, 5))
    assert embedder.window == 5 and embedder.left == 2


def test_embedder_leaves_euclidean_blocks_alone():
    values = [3.0, 4.0, 1.0, 2.0, 2.0]
    layout = block_layout([_behavior(dims=(0, 2)), _time(dims=(2, 5), loss="euclidean")], 5)
    z = Embedder(_Fixed(values), layout.blocks, layout.normalized)(torch.zeros(1, 1, 1))[0, 0]
    torch.testing.assert_close(z, torch.tensor([0.6, 0.8, 1.0, 2.0, 2.0]))
    layout = block_layout([_time(dims=(0, 5))], 5, "euclidean")
    z = Embedder(_Fixed(values), layout.blocks, layout.normalized)(torch.zeros(1, 1, 1))[0, 0]
    torch.testing.assert_close(z, torch.tensor(values))


def test_single_cosine_block_is_normalised_as_a_whole():
    layout = block_layout([_time(dims=(0, 2))], 2)
    z = Embedder(_Fixed([3.0, 4.0]), layout.blocks, layout.normalized)(torch.zeros(2, 1, 3))
    torch.testing.assert_close(z, torch.tensor([0.6, 0.8]).expand(2, 3, 2))


@pytest.mark.parametrize("objectives", [
    [_time(dims=(0, 4))],                                   # one block: the fast path
    [_behavior(dims=(0, 2)), _time(dims=(0, 4))],           # two blocks
])
def test_all_zero_output_gives_zeros_and_finite_gradients(objectives):
    layout = block_layout(objectives, 4)
    encoder = _Fixed([0.0, 0.0, 0.0, 0.0])
    embedder = Embedder(encoder, layout.blocks, layout.normalized)
    x = torch.randn(3, 1, 2, requires_grad=True)
    z = embedder(x)
    assert torch.equal(z, torch.zeros(3, 2, 4))
    (z * torch.randn_like(z)).sum().backward()
    assert torch.isfinite(encoder.values.grad).all() and torch.isfinite(x.grad).all()
