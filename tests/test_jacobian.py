"""Tests for xcebra.attribution.jacobian and xcebra.attribution.maps."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from xcebra.attribution import METHODS, per_time_attribution
from xcebra.attribution.jacobian import (block_pseudo_inverse, lag_summed_jacobian, pseudo_inverse, reduce_lags,
                                         window_jacobian)
from xcebra.attribution.maps import AttributionMap, accumulate_map, select_time_points
from xcebra.models import Offset1
from xcebra.objectives import Embedder, Objective


@pytest.fixture(params=["offset1", "offset5"])
def embedder(request, embedder_factory):
    return embedder_factory(request.param, n_neurons=4, output_dim=3, objectives=_objectives(3)).eval()


def _objectives(dim):
    return [Objective("behavior", dims=(0, 1), distribution="time_delta", label="p"),
            Objective("time", dims=(0, dim), distribution="time")]


def _windows(embedder, batch=5, seed=0, dtype=torch.float32):
    return torch.randn(batch, 4, embedder.window, generator=torch.Generator().manual_seed(seed), dtype=dtype)


# --- window_jacobian ----------------------------------------------------------------------------

def test_window_jacobian_matches_autograd_functional(embedder):
    windows = _windows(embedder)
    jac = window_jacobian(embedder, windows)
    assert jac.shape == (5, 3, 4, embedder.window) and jac.dtype == torch.float32
    for b in range(5):
        expected = torch.autograd.functional.jacobian(lambda x: embedder(x[None])[0, 0], windows[b])
        torch.testing.assert_close(jac[b], expected, rtol=1e-5, atol=1e-6)


def test_window_jacobian_matches_float64_finite_differences(embedder):
    model64 = copy.deepcopy(embedder).double()
    windows = _windows(embedder, batch=3, dtype=torch.float64)
    eps = 1e-6
    fd = torch.zeros(3, 3, 4, embedder.window, dtype=torch.float64)
    with torch.no_grad():
        for n in range(4):
            for k in range(embedder.window):
                step = torch.zeros_like(windows)
                step[:, n, k] = eps
                fd[:, :, n, k] = (model64(windows + step)[:, 0] - model64(windows - step)[:, 0]) / (2 * eps)
    torch.testing.assert_close(window_jacobian(model64, windows), fd, rtol=1e-6, atol=1e-8)
    # the float32 model agrees with the float64 reference to float32 precision
    torch.testing.assert_close(window_jacobian(embedder, windows.float()).double(), fd, rtol=2e-3, atol=2e-4)


@pytest.mark.parametrize("name", ["offset1", "offset5", "offset10", "offset36"])
def test_lag_summed_jacobian_equals_the_window_jacobian_summed_over_lags(name, embedder_factory):
    model = embedder_factory(name, n_neurons=4, output_dim=3, objectives=_objectives(3)).eval()
    windows = _windows(model, batch=6, seed=1)
    expected = window_jacobian(model, windows).sum(-1)
    got = lag_summed_jacobian(model, windows)
    assert got.shape == (6, 3, 4) and not got.requires_grad
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-6)
    # a module that does not take ``shift`` gets it added to its input: same result
    class Plain(torch.nn.Module):
        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def forward(self, x):
            return self.inner(x)
    torch.testing.assert_close(lag_summed_jacobian(Plain(model), windows), expected, rtol=1e-4, atol=1e-6)
    before = [p.detach().clone() for p in model.parameters()]
    assert all(p.grad is None for p in model.parameters())
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters()))


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_embedder_applies_the_shift_in_every_precision(embedder, precision):
    windows = _windows(embedder, batch=4, seed=2)
    shift = torch.randn(4, 4, generator=torch.Generator().manual_seed(3))
    tolerance = 1e-5 if precision == "fp32" else 5e-2
    torch.testing.assert_close(embedder(windows, precision, shift), embedder(windows + shift[:, :, None], precision),
                               rtol=tolerance, atol=tolerance)
    assert not torch.allclose(embedder(windows, precision, shift), embedder(windows, precision), atol=1e-3)


def test_window_jacobian_works_under_no_grad(embedder):
    windows = _windows(embedder)
    expected = window_jacobian(embedder, windows)
    with torch.no_grad():
        torch.testing.assert_close(window_jacobian(embedder, windows), expected)


def test_jacobian_of_a_linear_encoder_is_its_weight():
    torch.manual_seed(0)
    encoder = Offset1(4, 6, 3)
    layer = torch.nn.Linear(4, 3)
    encoder.net = layer
    embedder = Embedder(encoder, [("time", slice(0, 3))], [False])
    jac = window_jacobian(embedder, torch.randn(7, 4, 1))
    torch.testing.assert_close(jac[..., 0], layer.weight.detach().expand(7, 3, 4))


# --- reduce_lags, pseudo_inverse ----------------------------------------------------------------

def test_reduce_lags():
    jac = torch.randn(2, 3, 4, 5, generator=torch.Generator().manual_seed(0))
    np.testing.assert_allclose(reduce_lags(jac, "sum").numpy(), jac.numpy().sum(-1), rtol=1e-6)
    np.testing.assert_allclose(reduce_lags(jac, "abs").numpy(), np.abs(jac.numpy()).sum(-1), rtol=1e-6)
    with pytest.raises(ValueError, match="lags must be one of 'sum', 'abs'; got 'max'"):
        reduce_lags(jac, "max")


@pytest.mark.parametrize("solver", ["svd", "lstsq"])
@pytest.mark.parametrize("dims", [(3, 6), (4, 4), (6, 3)])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_pseudo_inverse_matches_numpy_pinv_per_time_point(solver, dims, dtype):
    rng = np.random.default_rng(0)
    jac = rng.normal(size=(8, *dims))
    got = pseudo_inverse(torch.tensor(jac, dtype=dtype), solver)
    assert got.shape == (8, *dims) and got.dtype == dtype
    tolerance = 1e-10 if dtype == torch.float64 else 1e-4
    for t in range(8):
        np.testing.assert_allclose(got[t].numpy(), np.linalg.pinv(jac[t]).T, rtol=tolerance, atol=tolerance)


def test_pseudo_inverse_rank_deficient_svd():
    rng = np.random.default_rng(1)
    jac = np.stack([rng.normal(size=(5, 2)) @ rng.normal(size=(2, 4)) for _ in range(3)])  # rank 2
    got = pseudo_inverse(torch.tensor(jac), "svd").numpy()
    for t in range(3):
        np.testing.assert_allclose(got[t], np.linalg.pinv(jac[t]).T, atol=1e-8)


@pytest.mark.parametrize("solver", ["svd", "lstsq"])
def test_pseudo_inverse_cuts_float32_round_off(solver):
    """A float32 Jacobian of rank 2 whose third singular value is round-off (1e-8 relative) is inverted as rank 2."""
    rng = np.random.default_rng(2)
    u, _ = np.linalg.qr(rng.normal(size=(3, 3)))
    v, _ = np.linalg.qr(rng.normal(size=(5, 5)))
    jac = np.stack([u @ np.diag([2.0, 0.5, 2e-8]) @ v[:3]] * 2).astype(np.float32)
    got = pseudo_inverse(torch.from_numpy(jac), solver).numpy()
    exact_rank2 = (v[:2].T @ np.diag([1 / 2.0, 1 / 0.5]) @ u[:, :2].T).T
    np.testing.assert_allclose(got[0], exact_rank2, atol=1e-5)
    assert np.abs(got).max() < 10  # inverting the round-off would give ~1e8
    # float64 Jacobians keep float64's cutoff: the same small singular value is then a real one
    got64 = pseudo_inverse(torch.from_numpy(jac.astype(np.float64)), solver).numpy()
    np.testing.assert_allclose(got64[0], np.linalg.pinv(jac[0].astype(np.float64)).T, rtol=1e-6)


def test_lstsq_cuts_the_round_off_that_scipy_lstsq_inverts():
    """The docstring's claim: scipy.linalg.lstsq (the reference's ``jf-inv-lsq``: a float32 Jacobian against a
    float64 identity) keeps a round-off singular value and inverts it; ``pseudo_inverse(..., "lstsq")`` does not."""
    import scipy.linalg

    rng = np.random.default_rng(0)
    jac = rng.standard_normal((14, 90))
    u = rng.standard_normal(14)
    u /= np.linalg.norm(u)
    jac = (jac - np.outer(u, u @ jac)).astype(np.float32)  # rank 13 up to float32 round-off
    assert np.linalg.svd(jac.astype(np.float64), compute_uv=False)[-1] < 1e-5
    reference = scipy.linalg.lstsq(jac, np.eye(14))[0]
    ours = pseudo_inverse(torch.from_numpy(jac[None]), "lstsq")[0].numpy()
    assert np.abs(reference).max() > 1e4
    assert np.abs(ours).max() < 1.0
    np.testing.assert_allclose(ours.T, np.linalg.pinv(jac.astype(np.float64), rtol=90 * np.finfo(np.float32).eps),
                               atol=1e-5)


@pytest.mark.parametrize("name", ["offset1", "offset10"])
def test_reference_scale_conversion(name, embedder_factory):
    """The attribution docs' conversion: the reference averages the per-lag Jacobian, so its ``jf`` is ours over
    the window and its ING is ours times the window."""
    model = embedder_factory(name, n_neurons=4, output_dim=3, objectives=_objectives(3)).eval()
    windows = _windows(model, batch=4, seed=3)
    lag_mean = window_jacobian(model, windows).mean(-1)  # the reference's convention
    ours = lag_summed_jacobian(model, windows)
    torch.testing.assert_close(ours, model.window * lag_mean, rtol=1e-4, atol=1e-6)
    torch.testing.assert_close(pseudo_inverse(ours) * model.window, pseudo_inverse(lag_mean), rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("dims, rank", [((14, 90), 14), ((14, 90), 12), ((9, 4), 4), ((6, 6), 5)])
def test_pseudo_inverse_of_float32_jacobians_equals_lapack_svd_to_float64_precision(dims, rank):
    """The Gram-matrix route for float32 Jacobians gives numpy's SVD pinv (same cutoff) to ~1e-12, full rank or not."""
    rng = np.random.default_rng(3)
    d, n = dims
    jac = np.stack([rng.normal(size=(d, rank)) @ rng.normal(size=(rank, n)) * 10.0 ** rng.uniform(-3, 3)
                    for _ in range(16)]).astype(np.float32)
    got = pseudo_inverse(torch.from_numpy(jac), "svd").to(torch.float64)
    cutoff = max(d, n) * np.finfo(np.float32).eps
    for t in range(16):
        expected = np.linalg.pinv(jac[t].astype(np.float64), rcond=cutoff).T
        scale = np.abs(expected).max()
        np.testing.assert_allclose(got[t].numpy(), expected, atol=1e-6 * scale)  # float32 output
    exact64 = torch.from_numpy(jac.astype(np.float64))
    # in float64 end to end (the helper on its own) the agreement is at round-off level
    from xcebra.attribution.pinv import _gram_pinv
    ours = _gram_pinv(exact64, cutoff).numpy()
    for t in range(16):
        expected = np.linalg.pinv(jac[t].astype(np.float64), rcond=cutoff)
        np.testing.assert_allclose(ours[t], expected, atol=1e-10 * np.abs(expected).max())


def _truncated_pinv_t(matrix: np.ndarray, rank: int | None, rcond: float) -> np.ndarray:
    """Reference: transposed pseudo-inverse keeping the ``rank`` largest singular values above ``rcond * s_max``."""
    u, s, vh = np.linalg.svd(matrix, full_matrices=False)
    keep = s > rcond * s[0]
    if rank is not None:
        keep[rank:] = False
    return (vh[keep].T @ np.diag(1 / s[keep]) @ u[:, keep].T).T


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("dims, rank", [((4, 9), 2), ((4, 9), 1), ((4, 9), 4), ((4, 9), 7), ((9, 4), 3)])
def test_truncated_pseudo_inverse_keeps_the_largest_singular_values(dims, rank, dtype):
    rng = np.random.default_rng(4)
    jac = rng.normal(size=(6, *dims)) * np.array([1.0, 0.3, 0.1, 0.05, 0.02, 0.01, 0.01, 0.01, 0.01])[:dims[0], None]
    got = pseudo_inverse(torch.tensor(jac, dtype=dtype), "svd", rank=rank).to(torch.float64).numpy()
    rcond = max(dims) * np.finfo(np.float32 if dtype == torch.float32 else np.float64).eps
    for t in range(6):
        expected = _truncated_pinv_t(jac[t], rank, rcond)
        np.testing.assert_allclose(got[t], expected, atol=1e-5 * np.abs(expected).max())
    if rank < min(dims):  # truncation changes the result: the test would notice a rank that is ignored
        full = pseudo_inverse(torch.tensor(jac, dtype=dtype), "svd").to(torch.float64).numpy()
        assert np.abs(full - got).max() > 1e-2 * np.abs(full).max()


@pytest.mark.parametrize("rank, solver, match", [(0, "svd", "rank must be None or an int >= 1; got 0"),
                                                 (1.5, "svd", "rank must be None or an int >= 1; got 1.5"),
                                                 (2, "lstsq", "rank needs solver='svd'")])
def test_truncated_pseudo_inverse_errors(rank, solver, match):
    with pytest.raises(ValueError, match=match):
        pseudo_inverse(torch.zeros(1, 2, 3), solver, rank=rank)


def test_block_pseudo_inverse_inverts_each_block_on_its_own():
    rng = np.random.default_rng(5)
    jac = rng.normal(size=(5, 7, 11))
    slices, ranks = [(0, 3), (3, 7)], [2, None]
    got = block_pseudo_inverse(torch.tensor(jac), slices, ranks).numpy()
    assert got.shape == jac.shape
    eps = np.finfo(np.float64).eps * 11
    for t in range(5):
        np.testing.assert_allclose(got[t, 0:3], _truncated_pinv_t(jac[t, 0:3], 2, eps), atol=1e-10)
        np.testing.assert_allclose(got[t, 3:7], np.linalg.pinv(jac[t, 3:7]).T, atol=1e-10)
    # a single block at full rank is the ordinary ING
    np.testing.assert_allclose(block_pseudo_inverse(torch.tensor(jac), [(0, 7)]).numpy(),
                               pseudo_inverse(torch.tensor(jac)).numpy(), atol=1e-12)


def _identified_encoder_jacobians(disjoint: bool, time_block_holds_behavior: bool, seed: int = 3):
    """Per-time-point mixing Jacobians ``J_g`` (T, N, d) and an identified encoder's ``J_f = L pinv(J_g)``.

    2 behaviour latents and 3 time latents drive 40 neurons; with ``disjoint`` the first 15 neurons depend
    on the behaviour latents only and the rest on the time latents only (a cell-type hypothesis). ``L`` is
    the linear map the encoder is identified up to: block lower-triangular when the time block also holds
    the behaviour latents (as time-contrastive learning does with position), block-diagonal otherwise.
    """
    rng = np.random.default_rng(seed)
    n_behavior, n_time, db, dt, steps = 15, 25, 2, 3, 6
    mixing = np.zeros((steps, n_behavior + n_time, db + dt))
    mixing[:, :n_behavior, :db] = rng.normal(size=(steps, n_behavior, db))
    mixing[:, n_behavior:, db:] = rng.normal(size=(steps, n_time, dt))
    if not disjoint:
        mixing += 0.3 * rng.normal(size=mixing.shape)
    lmap = np.eye(db + dt) + 0.3 * rng.normal(size=(db + dt, db + dt))
    lmap[:db, db:] = 0.0
    lmap[db:, :db] = rng.normal(size=(dt, db)) if time_block_holds_behavior else 0.0
    encoder = lmap @ np.linalg.pinv(mixing)  # (T, d, N): the minimum-norm inverse the regularizer favours
    truth = mixing[:, :, :db] @ np.linalg.inv(lmap[:db, :db])  # (T, N, db): behaviour columns, up to L_bb
    return encoder, truth, n_behavior, db


def test_block_inverse_recovers_behavior_mixing_when_the_time_block_also_encodes_it():
    # The demo's setting: cell types split into populations, and the time block also carries position.
    # Then the behaviour block's own inverse is exactly J_g's behaviour columns (up to L_bb), while the
    # whole-Jacobian inverse (the paper's ING) puts weight on time-latent neurons: L^-1 has a non-zero
    # lower-left block that mixes the time columns into the behaviour columns.
    encoder, truth, n_behavior, db = _identified_encoder_jacobians(disjoint=True, time_block_holds_behavior=True)
    jac = torch.tensor(encoder)
    block = block_pseudo_inverse(jac, [(0, db), (db, jac.shape[1])]).numpy()[:, :db]
    whole = pseudo_inverse(jac).numpy()[:, :db]
    np.testing.assert_allclose(block, truth.transpose(0, 2, 1), atol=1e-9)
    assert np.abs(block[:, :, n_behavior:]).max() < 1e-9
    assert np.abs(whole[:, :, n_behavior:]).max() > 0.1 * np.abs(truth).max()


@pytest.mark.parametrize("disjoint", [True, False])
def test_whole_inverse_recovers_behavior_mixing_when_blocks_are_separate(disjoint):
    # With a block-diagonal L both inverses are exact for disjoint populations; when neurons mix latents,
    # only the whole inverse is (this is why "ing" stays the default outside the cell-type setting).
    encoder, truth, n_behavior, db = _identified_encoder_jacobians(disjoint, time_block_holds_behavior=False)
    jac = torch.tensor(encoder)
    whole = pseudo_inverse(jac).numpy()[:, :db]
    block = block_pseudo_inverse(jac, [(0, db), (db, jac.shape[1])]).numpy()[:, :db]
    np.testing.assert_allclose(whole, truth.transpose(0, 2, 1), atol=1e-9)
    block_error = np.abs(block - truth.transpose(0, 2, 1)).max()
    assert (block_error < 1e-9) if disjoint else (block_error > 1e-2)


@pytest.mark.parametrize("slices, ranks, match", [
    ([(0, 3), (3, 7)], [2], "ranks has 1 entries but there are 2 blocks"),
    ([(0, 3), (4, 7)], None, "must cover 0..7 in order without gaps"),
    ([(0, 3), (3, 6)], None, "must cover 0..7 in order without gaps"),
])
def test_block_pseudo_inverse_errors(slices, ranks, match):
    with pytest.raises(ValueError, match=match):
        block_pseudo_inverse(torch.zeros(1, 7, 4), slices, ranks)


def test_per_time_attribution_ing_block_uses_the_embedder_blocks(embedder):
    windows = _windows(embedder, batch=4)
    jac = per_time_attribution(embedder, windows, "jacobian").to(torch.float64).numpy()
    got = per_time_attribution(embedder, windows, "ing-block", block_ranks=(None, 1)).numpy()
    cutoff = 4 * np.finfo(np.float32).eps
    for t in range(4):
        for (a, b), rank in zip(embedder.block_slices, (None, 1)):
            np.testing.assert_allclose(got[t, a:b], _truncated_pinv_t(jac[t, a:b], rank, cutoff), rtol=1e-3, atol=1e-4)


def test_pseudo_inverse_unknown_solver():
    with pytest.raises(ValueError, match="solver must be one of 'svd', 'lstsq'; got 'qr'"):
        pseudo_inverse(torch.zeros(1, 2, 2), "qr")


# --- per_time_attribution -----------------------------------------------------------------------

@pytest.mark.parametrize("lags", ["sum", "abs"])
def test_per_time_attribution_methods(embedder, lags):
    windows = _windows(embedder, batch=4)
    jac = np.stack([torch.autograd.functional.jacobian(lambda x: embedder(x[None])[0, 0], w).numpy() for w in windows])
    reduced = jac.sum(-1) if lags == "sum" else np.abs(jac).sum(-1)
    np.testing.assert_allclose(per_time_attribution(embedder, windows, "jacobian", lags).numpy(), reduced,
                               rtol=1e-4, atol=1e-6)
    # cosine blocks have no radial derivative: singular values at float32 round-off are cut as documented
    cutoff = max(reduced.shape[1:]) * np.finfo(np.float32).eps
    expected_ing = np.stack([np.linalg.pinv(r.astype(np.float64), rcond=cutoff).T for r in reduced])
    for method in ("ing", "ing-lstsq"):
        got = per_time_attribution(embedder, windows, method, lags)
        assert got.shape == (4, 3, 4) and got.dtype == torch.float32
        np.testing.assert_allclose(got.numpy(), expected_ing, rtol=1e-3, atol=1e-4)


def test_per_time_attribution_unknown_method(embedder):
    with pytest.raises(ValueError, match="method must be one of 'jacobian', 'ing', 'ing-lstsq', 'ing-block'; got 'ig'"):
        per_time_attribution(embedder, _windows(embedder), "ig")


def test_method_names():
    assert METHODS == ("ing", "ing-lstsq", "ing-block", "jacobian", "neuron-gradient", "integrated-gradients",
                       "feature-ablation", "shapley-sampling", "gradient-shap")


@pytest.mark.parametrize("method", ["jacobian", "ing", "ing-lstsq", "ing-block"])
def test_attribution_does_not_mutate_the_model(embedder, method):
    params = list(embedder.parameters())
    params[0].requires_grad_(False)                 # a frozen parameter stays frozen
    params[1].grad = torch.full_like(params[1], 7.0)  # an existing gradient stays as it was
    before = {
        "values": [p.detach().clone() for p in params],
        "requires_grad": [p.requires_grad for p in params],
        "device": [p.device for p in params],
        "dtype": [p.dtype for p in params],
        "training": [m.training for m in embedder.modules()],
    }
    per_time_attribution(embedder, _windows(embedder), method)
    for p, value in zip(params, before["values"]):
        assert torch.equal(p.detach(), value)
    assert [p.requires_grad for p in params] == before["requires_grad"]
    assert [p.device for p in params] == before["device"] and [p.dtype for p in params] == before["dtype"]
    assert [m.training for m in embedder.modules()] == before["training"]
    assert params[0].grad is None
    assert all(p.grad is None for i, p in enumerate(params) if i != 1)
    assert torch.equal(params[1].grad, torch.full_like(params[1], 7.0))


# --- select_time_points -------------------------------------------------------------------------

def test_select_time_points():
    np.testing.assert_array_equal(select_time_points(10, None, 0), np.arange(10))
    np.testing.assert_array_equal(select_time_points(10, 10, 0), np.arange(10))
    np.testing.assert_array_equal(select_time_points(10, 50, 0), np.arange(10))
    a, b, c = select_time_points(1000, 50, 3), select_time_points(1000, 50, 3), select_time_points(1000, 50, 4)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    for points in (a, c):
        assert len(points) == 50 and len(np.unique(points)) == 50
        assert (np.diff(points) > 0).all() and points.min() >= 0 and points.max() < 1000


def test_select_time_points_covers_the_range_uniformly():
    counts = np.zeros(20)
    for seed in range(400):
        counts[select_time_points(20, 5, seed)] += 1
    # each point is chosen with probability 5/20 per draw
    assert counts.min() > 60 and counts.max() < 140


# --- accumulate_map, AttributionMap -------------------------------------------------------------

@pytest.mark.parametrize("batch_size", [1, 7, 64, 1000])
def test_accumulate_map_mean_and_stderr(batch_size):
    rng = np.random.default_rng(0)
    per_point = rng.normal(size=(64, 3, 5))
    positions = np.sort(rng.choice(200, size=64, replace=False))
    lookup = {int(p): per_point[i] for i, p in enumerate(positions)}
    seen = []

    def per_batch(chunk):
        seen.append(len(chunk))
        return torch.tensor(np.stack([lookup[int(p)] for p in chunk]), dtype=torch.float32)

    blocks = [("a", slice(0, 1)), ("b", slice(1, 3))]
    amap = accumulate_map(per_batch, positions, batch_size, method="ing", blocks=blocks, options={"lags": "sum"})
    absolute = np.abs(per_point.astype(np.float32).astype(np.float64))
    np.testing.assert_allclose(amap.values, absolute.mean(0), rtol=1e-10)
    np.testing.assert_allclose(amap.stderr, absolute.std(0, ddof=1) / np.sqrt(64), rtol=1e-8)
    assert amap.values.shape == (3, 5) and amap.n_timepoints == 64 and amap.method == "ing"
    assert amap.blocks == blocks and amap.options == {"lags": "sum"} and amap.shape == (3, 5)
    assert sum(seen) == 64 and max(seen) <= batch_size


def test_accumulate_map_many_batches_single_point_and_errors():
    calls = []

    def per_batch(chunk):
        calls.append(chunk)
        return torch.ones(len(chunk), 2, 2)

    amap = accumulate_map(per_batch, np.arange(3000), 2, method="jacobian", blocks=[("x", slice(0, 2))])
    assert len(calls) == 1500
    np.testing.assert_array_equal(amap.values, np.ones((2, 2)))
    np.testing.assert_array_equal(amap.stderr, np.zeros((2, 2)))
    single = accumulate_map(per_batch, np.array([4]), 8, method="jacobian", blocks=[("x", slice(0, 2))])
    assert single.n_timepoints == 1 and np.isfinite(single.stderr).all()
    with pytest.raises(ValueError, match="no time points to attribute"):
        accumulate_map(per_batch, np.array([], dtype=int), 8, method="jacobian", blocks=[])


def _map(values, blocks):
    values = np.asarray(values, dtype=float)
    return AttributionMap(values=values, method="ing", blocks=blocks, stderr=np.zeros_like(values), n_timepoints=3)


def test_attribution_map_block_values_and_names():
    values = np.array([[3.0, 0.0], [4.0, 1.0], [2.0, 2.0]])
    amap = _map(values, [("behavior", slice(0, 2)), ("time", slice(2, 3))])
    np.testing.assert_allclose(amap.block_values, [[np.sqrt(12.5), np.sqrt(0.5)], [2.0, 2.0]])
    assert amap.block_names == ["behavior", "time"]


def test_score_levels():
    # width-1 blocks: the block truth and the entry truth have the same shape, and the scores differ
    values = np.array([[1.0, 2.0], [10.0, 20.0]])
    truth = np.array([[False, True], [False, True]])
    amap = _map(values, [("a", slice(0, 1)), ("b", slice(1, 2))])
    assert amap.score(truth) == pytest.approx(0.75)                  # auto -> per entry (pooled)
    assert amap.score(truth, level="entry") == pytest.approx(0.75)
    assert amap.score(truth, level="block") == pytest.approx(1.0)    # within each block
    wide = _map(np.array([[1.0, 2.0, 0.0], [1.0, 2.0, 0.0], [5.0, 0.0, 1.0]]), [("a", slice(0, 2)), ("b", slice(2, 3))])
    block_truth = np.array([[True, True, False], [True, False, False]])
    assert wide.score(block_truth) == pytest.approx(1.0)             # auto -> per block


@pytest.mark.parametrize("truth, level, match", [
    (np.zeros((3, 2), dtype=bool), "auto",
     r"ground_truth has shape \(3, 2\); expected \(2, 2\) \(per entry\) or \(2, 2\) \(per block\)"),
    (np.zeros((2, 2), dtype=bool), "neuron", "level must be one of 'auto', 'entry', 'block'; got 'neuron'"),
])
def test_score_errors(truth, level, match):
    amap = _map(np.ones((2, 2)), [("a", slice(0, 1)), ("b", slice(1, 2))])
    with pytest.raises(ValueError, match=match):
        amap.score(truth, level=level)


@pytest.mark.parametrize("method", ["jacobian", "ing", "ing-lstsq", "ing-block"])
def test_attributions_hold_no_graph_to_the_parameters(embedder, method):
    """Regression: the Jacobian used to keep a double-backward graph to every weight alive as long as it lived."""
    out = per_time_attribution(embedder, _windows(embedder), method)
    assert not out.requires_grad and out.grad_fn is None
    assert not window_jacobian(embedder, _windows(embedder)).requires_grad
