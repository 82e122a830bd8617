"""Tests for xcebra.sampling: valid indices only, exact offsets, label-change statistics, discrete classes, seeding."""

from __future__ import annotations

import time
import tracemalloc

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scipy import stats

from xcebra.sampling import (
    BatchSampler, DeltaNormal, Discrete, Domain, TimeDelta, TimeOffset, label_autocorrelation_time, make_distribution,
)


def _draw(distribution, domain: Domain, n_draws: int, seed: int = 0, batch_size: int = 1000):
    """References (uniform over the distribution's reference domain) and their positives, as numpy arrays."""
    sampler = BatchSampler([distribution], domain, batch_size, torch.Generator().manual_seed(seed))
    refs, poss = [], []
    for _ in range(n_draws // batch_size):
        batch = sampler.sample()
        refs.append(batch.reference.numpy())
        poss.append(batch.positives[0].numpy())
    return np.concatenate(refs), np.concatenate(poss)


# --- validity of every index, for any recording, window, offset and batch size ------------------

@st.composite
def _scenario(draw):
    T = draw(st.integers(1, 60))
    left = draw(st.integers(0, 6))
    right = draw(st.integers(1, 6))
    batch = draw(st.integers(1, 40))
    kinds = draw(st.lists(st.sampled_from(["time", "time_delta", "delta_normal", "discrete"]), min_size=1, max_size=3))
    specs = []
    for kind in kinds:
        if kind == "time":
            specs.append((kind, {"time_offset": draw(st.integers(1, 25))}, None))
        elif kind == "time_delta":
            d = draw(st.integers(1, 3))
            label = np.asarray(draw(st.lists(st.floats(-5, 5, allow_nan=False), min_size=T * d, max_size=T * d)))
            specs.append((kind, {"time_delta": draw(st.integers(1, 8))}, label.reshape(T, d)))
        elif kind == "delta_normal":
            label = np.asarray(draw(st.lists(st.floats(-5, 5, allow_nan=False), min_size=T, max_size=T)))
            specs.append((kind, {"delta": draw(st.floats(0.01, 3.0))}, label))
        else:
            n_classes = draw(st.integers(1, 4))
            label = np.asarray(draw(st.lists(st.integers(0, n_classes - 1), min_size=T, max_size=T)), dtype=np.int64)
            specs.append((kind, {}, label))
    return T, left, right, batch, specs, draw(st.integers(0, 2 ** 31 - 1))


def _expected_setup_error(kind, options, label, domain: Domain, T: int) -> str | None:
    """What ``setup`` must refuse, computed independently of the implementation."""
    if kind in ("time_delta", "delta_normal"):
        if domain.size < 2:
            return "needs at least 2 valid time points"
        if kind == "time_delta" and T <= options["time_delta"]:
            return f"time_delta={options['time_delta']} needs more than"
    if kind == "discrete" and domain.size > 0:
        _, counts = np.unique(label[domain.start:domain.stop], return_counts=True)
        if (counts == 1).any():
            return "occur at only one valid time point"
    return None


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_scenario())
def test_every_index_lies_in_the_valid_range(scenario):
    T, left, right, batch, specs, seed = scenario
    domain = Domain.for_window(T, left, right)
    # valid time points t: the window t - left .. t + right - 1 lies inside 0 .. T - 1
    valid_lo, valid_hi = left, T - right
    assert domain.start == valid_lo and domain.stop == valid_hi + 1
    distributions = []
    for kind, options, label in specs:
        distribution = make_distribution(kind, **options)
        expected = _expected_setup_error(kind, options, label, domain, T)
        if expected is not None:
            with pytest.raises(ValueError, match=expected):
                distribution.setup(domain, label)
            return
        distribution.setup(domain, label)
        distributions.append(distribution)
    max_offset = max([o["time_offset"] for k, o, _ in specs if k == "time"], default=0)
    ref_hi = valid_hi - max_offset  # latest reference whose time positive stays valid
    if ref_hi < valid_lo:
        with pytest.raises(ValueError, match="no time point can be a reference"):
            BatchSampler(distributions, domain, batch, torch.Generator().manual_seed(seed))
        return
    sampler = BatchSampler(distributions, domain, batch, torch.Generator().manual_seed(seed))
    for _ in range(3):
        index = sampler.sample()
        ref = index.reference.numpy()
        assert ref.shape == (batch,) and index.negative.shape == (batch,)
        assert index.reference.dtype == torch.int64
        assert ref.min() >= valid_lo and ref.max() <= ref_hi
        neg = index.negative.numpy()
        assert neg.min() >= valid_lo and neg.max() <= valid_hi
        assert len(index.positives) == len(specs)
        for (kind, options, label), positive in zip(specs, index.positives):
            pos = positive.numpy()
            assert pos.shape == (batch,)
            assert pos.min() >= valid_lo and pos.max() <= valid_hi
            if kind == "time":
                np.testing.assert_array_equal(pos - ref, options["time_offset"])
            else:
                assert (pos != ref).all(), "a positive must never be its own reference"
            if kind == "discrete":
                np.testing.assert_array_equal(label[pos], label[ref])


@pytest.mark.parametrize("T, left, right, offset", [(50, 0, 1, 1), (50, 5, 5, 10), (40, 18, 18, 3), (30, 2, 3, 24)])
def test_time_positive_is_reference_plus_offset_even_at_the_end(T, left, right, offset):
    domain = Domain.for_window(T, left, right)
    distribution = TimeOffset(offset)
    distribution.setup(domain, None)
    ref, pos = _draw(distribution, domain, 4000)
    np.testing.assert_array_equal(pos - ref, offset)
    # the latest possible reference is drawn (no clamping, no collapse onto the reference)
    assert ref.max() == T - right - offset and pos.max() == T - right
    assert ref.min() == left


def test_references_and_negatives_are_uniform_no_edge_oversampling():
    T, left, right = 40, 5, 5
    domain = Domain.for_window(T, left, right)
    distribution = TimeOffset(4)
    distribution.setup(domain, None)
    sampler = BatchSampler([distribution], domain, 2000, torch.Generator().manual_seed(3))
    refs, negs = [], []
    for _ in range(5):
        batch = sampler.sample()
        refs.append(batch.reference.numpy())
        negs.append(batch.negative.numpy())
    ref_counts = np.bincount(np.concatenate(refs), minlength=T)
    neg_counts = np.bincount(np.concatenate(negs), minlength=T)
    ref_support = np.arange(left, T - right - 4 + 1)
    neg_support = np.arange(left, T - right + 1)
    assert ref_counts.sum() == ref_counts[ref_support].sum()
    assert neg_counts.sum() == neg_counts[neg_support].sum()
    assert stats.chisquare(ref_counts[ref_support]).pvalue > 1e-3
    assert stats.chisquare(neg_counts[neg_support]).pvalue > 1e-3


# --- time_delta ---------------------------------------------------------------------------------

def _reflected_walk(rng, T, steps, probs, low, high):
    y = np.empty(T, dtype=np.int64)
    y[0] = (low + high) // 2
    for t in range(1, T):
        nxt = y[t - 1] + rng.choice(steps, p=probs)
        y[t] = nxt if low <= nxt <= high else y[t - 1] - (nxt - y[t - 1])
    return y


def test_time_delta_changes_follow_the_empirical_distribution_exactly():
    """Integer label: every target value exists, so y[pos] - y[ref] is exactly the drawn change."""
    rng = np.random.default_rng(0)
    delta = 2
    y = _reflected_walk(rng, 20000, np.array([-2, -1, 0, 1, 2]), [0.1, 0.2, 0.3, 0.25, 0.15], 0, 40)
    domain = Domain.for_window(len(y), 0, 1)
    distribution = TimeDelta(delta)
    distribution.setup(domain, y.astype(np.float64))
    ref, pos = _draw(distribution, domain, 30000, seed=1)
    inner = (y[ref] >= 4) & (y[ref] <= 36)  # the change lies in -4..4, so every target value exists
    observed = y[pos[inner]] - y[ref[inner]]
    changes = y[delta:] - y[:-delta]
    values = np.arange(-4, 5)
    expected = np.array([(changes == v).mean() for v in values])
    counts = np.array([(observed == v).sum() for v in values])
    assert counts.sum() == len(observed), "a positive's label change must be one of the empirical changes"
    assert stats.chisquare(counts, expected * counts.sum()).pvalue > 1e-3


def test_time_delta_continuous_label_matches_changes_by_ks_test():
    rng = np.random.default_rng(2)
    steps = rng.normal(scale=1.0, size=20000)
    y = np.abs(np.cumsum(steps)) % 200.0                  # dense continuous label, folded into [0, 200)
    y = np.minimum(y, 200.0 - y)                          # reflected: [0, 100]
    domain = Domain.for_window(len(y), 5, 5)
    distribution = TimeDelta(1)
    distribution.setup(domain, y)
    ref, pos = _draw(distribution, domain, 8000, seed=4)
    inner = (y[ref] > 6) & (y[ref] < 94)
    observed = y[pos[inner]] - y[ref[inner]]
    changes = y[1:] - y[:-1]
    assert stats.ks_2samp(observed, changes).pvalue > 1e-3
    # and it is not merely "some distribution": the same test rejects the changes at twice the lag
    assert stats.ks_2samp(observed, y[2:] - y[:-2]).pvalue < 1e-3


def test_time_delta_never_draws_the_zero_change_of_the_first_rows():
    """y = 3t changes by exactly 3*delta everywhere; a zero change would pick a neighbour at t +- 1."""
    T, delta = 40, 5
    y = 3.0 * np.arange(T)
    domain = Domain.for_window(T, 0, 1)
    distribution = TimeDelta(delta)
    distribution.setup(domain, y)
    ref, pos = _draw(distribution, domain, 20000, seed=0)
    inside = ref + delta <= T - 1  # the target y[t] + 3*delta is a label of the recording
    np.testing.assert_array_equal(pos[inside] - ref[inside], delta)
    # beyond the end the nearest other point is the last one (or the one before it for the last reference)
    np.testing.assert_array_equal(pos[~inside], np.where(ref[~inside] == T - 1, T - 2, T - 1))
    assert (pos != ref).all()


def test_nearest_neighbour_never_returns_the_reference_with_duplicate_labels():
    y = np.repeat([0.0, 1.0, 2.0], 4)  # ties at distance 0
    domain = Domain.for_window(len(y), 0, 1)
    for distribution in (TimeDelta(1), DeltaNormal(1e-6)):
        distribution.setup(domain, y)
        ref, pos = _draw(distribution, domain, 3000)
        assert (pos != ref).all()


@pytest.mark.parametrize("min_separation", [1, 3, 10, 60])  # 10 and 60: beyond the first query's neighbours
@pytest.mark.parametrize("kind", ["time_delta", "delta_normal"])
def test_min_separation_gives_the_nearest_label_among_far_enough_time_points(kind, min_separation):
    # a slow 2-d random walk: the nearest labels of a target are mostly its temporal neighbours
    rng = np.random.default_rng(3)
    y = np.cumsum(rng.normal(size=(600, 2)), axis=0)
    domain = Domain.for_window(len(y), 4, 5)
    options = {"time_delta": 1} if kind == "time_delta" else {"delta": 0.5}
    distribution = make_distribution(kind, min_separation=min_separation, **options)
    distribution.setup(domain, y)
    reference = torch.arange(domain.start, domain.stop)
    generator = torch.Generator().manual_seed(5)
    targets = distribution._targets(reference.numpy(), generator.clone_state())
    positive = distribution.positive(reference, generator).numpy()
    valid = np.arange(domain.start, domain.stop)
    stride = max(1, -(-(2 * min_separation - 1) // 15))
    n_thinned = 0
    for t, target, chosen in zip(reference.numpy(), targets, positive):
        assert abs(chosen - t) >= min_separation
        assert domain.start <= chosen < domain.stop
        nearest = valid[np.argsort(np.linalg.norm(y[valid] - target, axis=1), kind="stable")[:16]]
        if (np.abs(nearest - t) >= min_separation).any() or 2 * min_separation <= 16:
            candidates = valid  # exact: the nearest allowed label among all valid time points
        else:  # every one of its 16 nearest is in its zone: the nearest allowed in its batch's thinned copy
            n_thinned += 1
            candidates = valid[(valid - domain.start) % stride == (chosen - domain.start) % stride]
        allowed = candidates[np.abs(candidates - t) >= min_separation]
        distances = np.linalg.norm(y[allowed] - target, axis=1)
        # the nearest allowed label (ties: any of the nearest)
        assert np.linalg.norm(y[chosen] - target) == pytest.approx(distances.min(), abs=1e-12)
    if min_separation >= 10:
        assert n_thinned > 0  # the test reaches the thinned search


def test_min_separation_changes_pairs_that_share_frames_only():
    rng = np.random.default_rng(0)
    y = np.cumsum(rng.normal(size=(2000, 2)), axis=0)
    domain = Domain.for_window(len(y), 0, 1)
    near, far = TimeDelta(1, min_separation=1), TimeDelta(1, min_separation=10)
    near.setup(domain, y), far.setup(domain, y)
    generator = torch.Generator().manual_seed(2)
    reference = torch.randint(domain.start, domain.stop, (4000,), generator=generator)
    # the same generator state: the same targets (drawn first; the wide zone then draws a phase)
    pos_near = near.positive(reference, generator.clone_state()).numpy()
    pos_far = far.positive(reference, generator.clone_state()).numpy()
    ref = reference.numpy()
    gap_near, gap_far = np.abs(pos_near - ref), np.abs(pos_far - ref)
    assert (gap_far >= 10).all()
    assert (gap_near < 10).mean() > 0.2  # a random walk's nearest label is often a few steps away
    np.testing.assert_array_equal(pos_far[gap_near >= 10], pos_near[gap_near >= 10])


@pytest.mark.parametrize("size, ok", [(19, False), (20, True)])
def test_min_separation_needs_twice_as_many_valid_time_points(size, ok):
    distribution = TimeDelta(1, min_separation=10)
    domain = Domain(0, size)
    y = np.linspace(0.0, 1.0, size)
    if ok:
        distribution.setup(domain, y)
        ref, pos = _draw(distribution, domain, 1000, batch_size=100)
        assert (np.abs(pos - ref) >= 10).all()
    else:
        with pytest.raises(ValueError, match="TimeDelta with min_separation=10 needs at least 20 valid time points; got 19"):
            distribution.setup(domain, y)


# --- delta_normal -------------------------------------------------------------------------------

def test_delta_normal_distances_scale_with_delta():
    y = np.linspace(0.0, 100.0, 20001)  # grid spacing 0.005, far below delta
    domain = Domain.for_window(len(y), 0, 1)
    spreads = {}
    for delta in (0.5, 2.0):
        distribution = DeltaNormal(delta)
        distribution.setup(domain, y)
        ref, pos = _draw(distribution, domain, 6000, seed=7)
        inner = (y[ref] > 15) & (y[ref] < 85)
        diff = y[pos[inner]] - y[ref[inner]]
        assert stats.kstest(diff / delta, "norm").pvalue > 1e-3
        spreads[delta] = diff.std()
    assert spreads[2.0] / spreads[0.5] == pytest.approx(4.0, rel=0.08)


def test_delta_normal_two_dimensional_label_distance():
    rng = np.random.default_rng(0)
    grid = np.stack(np.meshgrid(np.linspace(0, 10, 121), np.linspace(0, 10, 121)), -1).reshape(-1, 2)
    y = grid[rng.permutation(len(grid))]
    domain = Domain.for_window(len(y), 0, 1)
    distribution = DeltaNormal(0.6)
    distribution.setup(domain, y)
    ref, pos = _draw(distribution, domain, 4000, seed=1)
    inner = ((y[ref] > 3) & (y[ref] < 7)).all(1)
    squared = ((y[pos[inner]] - y[ref[inner]]) ** 2).sum(1)
    # ||N(0, delta^2 I_2)||^2 / delta^2 is chi-square with 2 degrees of freedom (grid step 0.083 << 0.6)
    assert np.mean(squared) / 0.36 == pytest.approx(2.0, rel=0.1)


def test_delta_normal_rejects_non_positive_delta():
    with pytest.raises(ValueError, match="delta must be > 0.0; got 0.0"):
        DeltaNormal(0.0)


# --- discrete -----------------------------------------------------------------------------------

def test_discrete_positive_shares_label_and_is_uniform_within_the_class():
    label = np.array([0, 1, 2] * 20)
    domain = Domain.for_window(len(label), 2, 3)
    distribution = Discrete()
    distribution.setup(domain, label)
    reference = torch.full((6000,), 10, dtype=torch.int64)  # label 1
    positive = distribution.positive(reference, torch.Generator().manual_seed(0)).numpy()
    members = np.flatnonzero((label == 1) & (np.arange(len(label)) >= 2) & (np.arange(len(label)) <= 57))
    others = members[members != 10]
    assert set(positive) == set(others)
    counts = np.array([(positive == m).sum() for m in others])
    assert stats.chisquare(counts).pvalue > 1e-3
    ref, pos = _draw(distribution, domain, 4000)
    np.testing.assert_array_equal(label[pos], label[ref])
    assert (pos != ref).all()


def test_discrete_two_member_class_always_gives_the_other():
    label = np.array([5, 7, 5, 7, 7])
    domain = Domain.for_window(5, 0, 1)
    distribution = Discrete()
    distribution.setup(domain, label)
    out = distribution.positive(torch.tensor([0, 2, 0, 2]), torch.Generator().manual_seed(0))
    np.testing.assert_array_equal(out.numpy(), [2, 0, 2, 0])


@pytest.mark.parametrize("label, domain, match", [
    (np.array([0, 0, 1, 2, 2]), Domain(0, 5), r"discrete label value\(s\) \[1\] occur at only one valid time point"),
    # the class has two members, but only one inside the valid range
    (np.array([1, 0, 0, 1, 0, 0]), Domain(2, 6), r"value\(s\) \[1\]"),
    (np.array([0.0, 0.0, 1.0, 1.0]), Domain(0, 4), "discrete sampling needs a 1-D integer label; got dtype float64"),
    (np.zeros((4, 2), dtype=int), Domain(0, 4), r"needs a 1-D integer label; got dtype int64 and shape \(4, 2\)"),
])
def test_discrete_errors(label, domain, match):
    with pytest.raises(ValueError, match=match):
        Discrete().setup(domain, label)


def test_discrete_accepts_a_column_label():
    label = np.array([[0], [0], [1], [1]])
    distribution = Discrete()
    distribution.setup(Domain(0, 4), label)
    out = distribution.positive(torch.tensor([0, 1, 2, 3]), torch.Generator().manual_seed(0))
    np.testing.assert_array_equal(out.numpy(), [1, 0, 3, 2])


# --- seeding, errors ----------------------------------------------------------------------------

def _sampler(seed):
    rng = np.random.default_rng(0)
    T = 300
    domain = Domain.for_window(T, 5, 5)
    specs = [("time", {"time_offset": 4}, None), ("time_delta", {"time_delta": 2}, rng.normal(size=(T, 2))),
             ("delta_normal", {"delta": 0.3}, rng.normal(size=T)), ("discrete", {}, rng.integers(0, 3, T))]
    distributions = []
    for kind, options, label in specs:
        distribution = make_distribution(kind, **options)
        distribution.setup(domain, label)
        distributions.append(distribution)
    return BatchSampler(distributions, domain, 64, torch.Generator().manual_seed(seed))


def test_same_seed_same_indices_different_seed_different():
    def run(seed):
        sampler = _sampler(seed)
        return [torch.cat([b.reference, b.negative, *b.positives]) for b in (sampler.sample() for _ in range(3))]

    a, b, c = run(11), run(11), run(12)
    for x, y in zip(a, b):
        assert torch.equal(x, y)
    assert not all(torch.equal(x, z) for x, z in zip(a, c))
    # successive batches of one run differ too
    assert not torch.equal(a[0], a[1])


def test_sampling_does_not_touch_the_global_rng():
    sampler = _sampler(0)
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    sampler.sample()
    assert torch.equal(torch.rand(3), expected)


def test_batch_sampler_error_when_offsets_leave_no_reference():
    domain = Domain.for_window(30, 5, 5)  # 21 valid points
    distribution = TimeOffset(21)
    distribution.setup(domain, None)
    with pytest.raises(ValueError, match="no time point can be a reference: the recording has 21 valid time points"):
        BatchSampler([distribution], domain, 8, torch.Generator())


def test_batch_sampler_error_when_window_is_longer_than_recording():
    domain = Domain.for_window(8, 5, 5)
    assert domain.size == 0
    distribution = TimeOffset(1)
    distribution.setup(domain, None)
    with pytest.raises(ValueError, match="the recording has 0 valid time points"):
        BatchSampler([distribution], domain, 8, torch.Generator())


@pytest.mark.parametrize("name, options, error, match", [
    ("gaussian", {}, ValueError, "distribution must be one of 'time', 'time_delta', 'delta_normal', 'discrete'; got 'gaussian'"),
    ("time", {"time_offset": 0}, ValueError, "time_offset must be >= 1; got 0"),
    ("time_delta", {"time_delta": 1.5}, TypeError, "time_delta must be an integer"),
    ("time_delta", {"min_separation": 0}, ValueError, "min_separation must be >= 1; got 0"),
    ("delta_normal", {"min_separation": 2.0}, TypeError, "min_separation must be an integer"),
])
def test_make_distribution_errors(name, options, error, match):
    with pytest.raises(error, match=match):
        make_distribution(name, **options)


def test_nearest_neighbour_distributions_need_a_label():
    with pytest.raises(ValueError, match="TimeDelta needs a label"):
        TimeDelta(1).setup(Domain(0, 10), None)


# --- cost per step ------------------------------------------------------------------------------

@pytest.mark.parametrize("kind, options", [("time_delta", {"time_delta": 1}), ("delta_normal", {"delta": 0.1}),
                                           ("discrete", {}), ("time", {"time_offset": 10})])
def test_sampling_cost_does_not_scale_with_T_times_batch(kind, options):
    """T = 200k, batch 512: a dense (T x batch) distance matrix would be 400-800 MB and ~0.3 s per step."""
    rng = np.random.default_rng(0)
    T = 200_000
    label = None
    if kind in ("time_delta", "delta_normal"):
        label = np.cumsum(rng.normal(size=(T, 2)), axis=0)
    elif kind == "discrete":
        label = rng.integers(0, 10, size=T)
    domain = Domain.for_window(T, 5, 5)
    distribution = make_distribution(kind, **options)
    distribution.setup(domain, label)
    sampler = BatchSampler([distribution], domain, 512, torch.Generator().manual_seed(0))
    sampler.sample()
    tracemalloc.start()
    start = time.perf_counter()
    for _ in range(10):
        sampler.sample()
    elapsed = time.perf_counter() - start
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert peak < 8 * 2 ** 20, f"sampling allocated {peak / 2 ** 20:.1f} MB at its peak"
    assert elapsed < 2.0, f"10 steps took {elapsed:.2f} s"


def test_discrete_with_window_longer_than_recording_reads_no_label_rows():
    """Regression: stop < start once made ``label[start:stop]`` a negative-index slice (a bogus singleton error)."""
    domain = Domain.for_window(3, 0, 6)
    distribution = Discrete()
    distribution.setup(domain, np.array([0, 0, 0]))
    with pytest.raises(ValueError, match="the recording has 0 valid time points"):
        BatchSampler([distribution], domain, 4, torch.Generator())


def _direct_autocorrelation_time(label: np.ndarray) -> int:
    """First lag whose autocorrelation, averaged over columns, is below 1/e, by direct sums per lag."""
    label = (label - label.mean(axis=0)) / label.std(axis=0)
    n_timepoints = len(label)
    for lag in range(n_timepoints):
        value = np.mean(np.sum(label[lag:] * label[:n_timepoints - lag], axis=0) / n_timepoints)
        if value < np.exp(-1):
            return lag
    return n_timepoints


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("n_columns", [1, 3])
def test_label_autocorrelation_time_matches_direct_sums(seed, n_columns):
    rng = np.random.default_rng(seed)
    kernel = np.exp(-np.arange(60) / rng.uniform(5, 20))
    label = np.stack([np.convolve(rng.normal(size=1500), kernel)[:1500] for _ in range(n_columns)], axis=1)
    expected = _direct_autocorrelation_time(label)
    assert 3 < expected < 100
    assert label_autocorrelation_time(label) == expected
    if n_columns == 1:
        assert label_autocorrelation_time(label[:, 0]) == expected


def test_label_autocorrelation_time_of_constant_and_ramp_labels_is_the_recording():
    assert label_autocorrelation_time(np.ones((50, 2))) == 50
    assert label_autocorrelation_time(np.ones(1)) == 1
    # a constant column carries no time scale: the other column decides
    rng = np.random.default_rng(0)
    mixed = np.stack([np.ones(400), rng.normal(size=400)], axis=1)
    assert label_autocorrelation_time(mixed) == 1


def test_wide_separation_on_a_slow_label_draws_no_temporal_neighbours():
    # the failure the label-time default fixes: on a slow 3-d walk the nearest label is the next sample
    rng = np.random.default_rng(0)
    kernel = np.exp(-0.5 * (np.arange(-150, 151) / 50.0) ** 2)
    y = np.stack([np.convolve(rng.normal(size=6000), kernel, mode="same") for _ in range(3)], axis=1)
    domain = Domain(0, len(y))
    separation = label_autocorrelation_time(y)
    assert separation > 50
    near, far = TimeDelta(1, min_separation=1), TimeDelta(1, min_separation=separation)
    near.setup(domain, y), far.setup(domain, y)
    ref_near, pos_near = _draw(near, domain, 2000, seed=1)
    ref_far, pos_far = _draw(far, domain, 2000, seed=1)
    assert np.mean(np.abs(pos_near - ref_near) <= 2) > 0.9
    assert (np.abs(pos_far - ref_far) >= separation).all()
