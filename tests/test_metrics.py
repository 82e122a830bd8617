"""Tests for xcebra.metrics: AUCs against pair counting, block scores, gap, decoding scores."""

from __future__ import annotations

import re

import numpy as np
import pytest

from xcebra import metrics
from xcebra.attribution.maps import AttributionMap

BLOCKS = [("behavior", slice(0, 2)), ("time", slice(2, 5))]


def _pair_auc(scores, truth):
    """P(score of a random positive > score of a random negative), ties count 1/2: the AUC by pair counting."""
    pos, neg = scores[truth], scores[~truth]
    wins = (pos[:, None] > neg[None, :]).sum() + 0.5 * (pos[:, None] == neg[None, :]).sum()
    return wins / (len(pos) * len(neg))


def _amap(values, blocks=BLOCKS):
    values = np.asarray(values, dtype=float)
    return AttributionMap(values=values, method="test", blocks=list(blocks), stderr=np.zeros_like(values),
                          n_timepoints=1)


# --- attribution_auc ----------------------------------------------------------------------------

def test_attribution_auc_known_case():
    values = np.array([[0.9, 0.1, 0.4], [0.35, 0.8, 0.2]])
    truth = np.array([[True, False, False], [True, True, False]])
    # positives 0.9, 0.35, 0.8 against negatives 0.1, 0.4, 0.2: 0.35 loses to 0.4 only -> 8/9
    assert metrics.attribution_auc(values, truth) == pytest.approx(8 / 9)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_attribution_auc_equals_pair_counting_with_ties(seed):
    rng = np.random.default_rng(seed)
    values = rng.integers(0, 4, size=(5, 7)).astype(float)  # many ties
    truth = rng.random((5, 7)) < 0.4
    assert metrics.attribution_auc(values, truth) == pytest.approx(_pair_auc(values.ravel(), truth.ravel()))
    # an AttributionMap is accepted in place of its values
    assert metrics.attribution_auc(_amap(values, [("a", slice(0, 5))]), truth) == pytest.approx(
        _pair_auc(values.ravel(), truth.ravel()))


def test_perfect_and_reversed_maps():
    truth = np.array([[True, False, False, True], [False, True, False, False]])
    perfect = truth.astype(float) + 0.01 * np.arange(8).reshape(2, 4)
    assert metrics.attribution_auc(perfect, truth) == 1.0
    assert metrics.attribution_auc(-perfect, truth) == 0.0
    assert metrics.attribution_auc(np.ones((2, 4)), truth) == 0.5


@pytest.mark.parametrize("values, truth, error, match", [
    (np.zeros((2, 3)), np.zeros((2, 3)), TypeError, "ground_truth must be a boolean array .* got dtype float64"),
    (np.zeros((2, 3)), np.zeros((3, 2), dtype=bool), ValueError,
     r"ground_truth has shape \(3, 2\) but the attribution map has shape \(2, 3\); they must match"),
    (np.zeros((2, 3)), np.ones((2, 3), dtype=bool), ValueError, "must contain both True and False"),
    (np.zeros((2, 3)), np.zeros((2, 3), dtype=bool), ValueError, "must contain both True and False"),
    (np.array([[np.nan, 1, 2], [0, 1, 2]]), np.eye(2, 3, dtype=bool), ValueError, "values contain NaN or infinite"),
])
def test_attribution_auc_errors(values, truth, error, match):
    with pytest.raises(error, match=match):
        metrics.attribution_auc(values, truth)


# --- block_rms, block_auc, expand_block_truth ----------------------------------------------------

def test_block_rms():
    rng = np.random.default_rng(0)
    values = rng.normal(size=(5, 4))
    expected = np.stack([np.sqrt((values[0:2] ** 2).sum(0) / 2), np.sqrt((values[2:5] ** 2).sum(0) / 3)])
    np.testing.assert_allclose(metrics.block_rms(values, BLOCKS), expected)
    np.testing.assert_allclose(_amap(values).block_values, expected)


def test_block_auc_per_block_and_mean():
    rng = np.random.default_rng(1)
    block_values = rng.random((2, 8))
    truth = rng.random((2, 8)) < 0.5
    truth[:, 0], truth[:, 1] = True, False
    mean, per_block = metrics.block_auc(block_values, truth, per_block=True)
    expected = [_pair_auc(block_values[i], truth[i]) for i in range(2)]
    assert per_block == pytest.approx({"block0": expected[0], "block1": expected[1]})
    assert mean == pytest.approx(np.mean(expected))
    assert metrics.block_auc(block_values, truth) == pytest.approx(np.mean(expected))


def test_block_auc_scores_within_blocks_not_across():
    """Block 1 lives on a much larger scale; pooling would mix scales, per-block AUC does not."""
    block_values = np.array([[0.2, 0.1, 0.3, 0.0], [20.0, 10.0, 30.0, 0.0]])
    truth = np.array([[True, False, True, False], [True, False, True, False]])
    assert metrics.block_auc(block_values, truth) == 1.0


def test_block_auc_ignores_single_class_blocks():
    block_values = np.array([[0.9, 0.1, 0.5], [0.3, 0.2, 0.1], [0.1, 0.2, 0.3]])
    truth = np.array([[True, False, False], [True, True, True], [False, False, False]])
    mean, per_block = metrics.block_auc(block_values, truth, per_block=True)
    assert mean == 1.0
    assert per_block["block0"] == 1.0 and np.isnan(per_block["block1"]) and np.isnan(per_block["block2"])
    assert np.isnan(metrics.block_auc(block_values[1:], truth[1:]))


def test_block_auc_with_an_attribution_map_uses_block_names():
    values = np.array([[1.0, 0.0, 0.1], [1.0, 0.1, 0.0], [0.0, 2.0, 0.1], [0.1, 2.0, 0.0], [0.0, 2.0, 0.1]])
    truth = np.array([[True, False, False], [False, True, False]])
    mean, per_block = metrics.block_auc(_amap(values), truth, per_block=True)
    assert set(per_block) == {"behavior", "time"} and mean == 1.0
    assert metrics.block_auc(_amap(values), ~truth) == 0.0


@pytest.mark.parametrize("values, truth, error, match", [
    (np.zeros(3), np.zeros(3, dtype=bool), ValueError, r"block values must be a 2-D array \(n_blocks, N\); got shape \(3,\)"),
    (np.zeros((2, 3)), np.zeros((2, 4), dtype=bool), ValueError, r"block_truth has shape \(2, 4\) but the attribution map"),
    (np.zeros((2, 3)), np.zeros((2, 3), dtype=int), TypeError, "block_truth must be a boolean array"),
])
def test_block_auc_errors(values, truth, error, match):
    with pytest.raises(error, match=match):
        metrics.block_auc(values, truth)


def test_expand_block_truth():
    block_truth = np.array([[True, False, True], [False, True, False]])
    expanded = metrics.expand_block_truth(block_truth, BLOCKS)
    expected = np.array([[True, False, True]] * 2 + [[False, True, False]] * 3)
    np.testing.assert_array_equal(expanded, expected)
    with pytest.raises(ValueError, match=r"block_truth must have shape \(n_blocks=2, N\); got \(3, 3\)"):
        metrics.expand_block_truth(np.zeros((3, 3), dtype=bool), BLOCKS)


# --- gap ----------------------------------------------------------------------------------------

def test_gap():
    values = np.array([[4.0, 1.0], [2.0, 3.0]])
    truth = np.array([[True, False], [False, True]])
    assert metrics.gap(values, truth) == pytest.approx({"connected": 3.5, "unconnected": 1.5, "gap": 2.0})
    result = metrics.gap(values, np.ones((2, 2), dtype=bool))
    assert result["connected"] == 2.5 and np.isnan(result["unconnected"]) and np.isnan(result["gap"])


# --- decoding_scores ----------------------------------------------------------------------------

def test_decoding_scores_find_the_block_that_carries_the_label():
    rng = np.random.default_rng(0)
    T = 600
    embedding = rng.normal(size=(T, 5))
    label = embedding[:, :2] @ np.array([1.5, -2.0]) + 0.3
    blocks = [("carrier", slice(0, 2)), ("independent", slice(2, 5))]
    scores = metrics.decoding_scores(embedding, label, blocks)
    assert set(scores) == {"carrier", "independent"}
    assert set(scores["carrier"]) == {"linear_r2", "knn_r2", "linear_r2_train"}
    assert scores["carrier"]["linear_r2"] == pytest.approx(1.0, abs=1e-9)
    assert scores["carrier"]["linear_r2_train"] == pytest.approx(1.0, abs=1e-9)
    assert scores["carrier"]["knn_r2"] > 0.85
    assert abs(scores["independent"]["linear_r2"]) < 0.05
    assert scores["independent"]["knn_r2"] < 0.1
    assert scores["independent"]["linear_r2_train"] < 0.02


def test_decoding_scores_default_block_and_2d_label():
    rng = np.random.default_rng(1)
    embedding = rng.normal(size=(200, 3))
    label = np.stack([embedding[:, 0], 2 * embedding[:, 1]], axis=1)
    scores = metrics.decoding_scores(embedding, label, n_splits=3)
    assert list(scores) == ["all"] and scores["all"]["linear_r2"] == pytest.approx(1.0)
    # the multi-output R2 is the uniform average: label dim 1 explained, dim 0 not -> about 0.5
    half = metrics.decoding_scores(embedding[:, 1:], label, n_splits=3)["all"]["linear_r2"]
    assert half == pytest.approx(0.5, abs=0.05)


def test_decoding_scores_uses_time_ordered_splits():
    """A label that drifts in time cannot be decoded from a time-only embedding of the future: splits are causal."""
    T = 300
    t = np.arange(T, dtype=float)
    embedding = np.stack([np.sin(t / 5), np.cos(t / 5)], axis=1)  # periodic: says nothing about the drift
    label = t
    scores = metrics.decoding_scores(embedding, label, n_splits=4)["all"]
    assert scores["knn_r2"] < 0  # a shuffled split would let neighbours from the same period leak the answer


@pytest.mark.parametrize("embedding, labels, kwargs, match", [
    (np.zeros((20, 2)), np.zeros(19), {}, "labels have 19 rows but embedding has 20; they must match in time"),
    (np.zeros((10, 2)), np.zeros(10), {}, "need at least 12 time points for 5 splits; got 10"),
    (np.zeros(20), np.zeros(20), {}, r"embedding must be \(T, D\) and labels \(T,\) or \(T, d\)"),
])
def test_decoding_scores_errors(embedding, labels, kwargs, match):
    with pytest.raises(ValueError, match=match):
        metrics.decoding_scores(embedding, labels, **kwargs)


# --- latent_fit_scores --------------------------------------------------------------------------

def _smooth_latents(T, d, rng):
    """Oscillating latents: every time-ordered test segment covers their whole range."""
    t = np.arange(T)[:, None]
    return np.sin(t * rng.uniform(0.05, 0.2, size=d) + rng.uniform(0, 2 * np.pi, size=d))


def test_latent_fit_scores_separate_noise_leakage_and_clean_blocks():
    rng = np.random.default_rng(3)
    T = 2000
    latents = _smooth_latents(T, 4, rng)
    clean = latents[:, :2] @ rng.normal(size=(2, 2))          # a linear map of its own latents
    leaky = latents[:, 2:] @ rng.normal(size=(2, 2))
    leaky[:, 0] += 2.0 * latents[:, 0]                        # depends on the other block's latent too
    noisy = latents[:, :2] @ rng.normal(size=(2, 2))
    noisy += rng.normal(size=noisy.shape) * noisy.std(axis=0)  # half of its variance is noise
    embedding = np.concatenate([clean, leaky, noisy], axis=1)
    blocks = [("a", slice(0, 2)), ("b", slice(2, 4)), ("c", slice(4, 6))]
    latent_blocks = [("a", slice(0, 2)), ("b", slice(2, 4)), ("c", slice(0, 2))]
    scores = metrics.latent_fit_scores(embedding, latents, blocks, latent_blocks)
    assert scores["a"]["own_linear_r2"] == pytest.approx(1.0, abs=1e-9)
    assert scores["b"]["own_linear_r2"] < 0.9 and scores["b"]["all_linear_r2"] == pytest.approx(1.0, abs=1e-9)
    assert scores["c"]["own_linear_r2"] == pytest.approx(0.5, abs=0.05)
    assert scores["c"]["own_knn_r2"] < 0.55  # noise: no function of the latents explains it


def test_latent_fit_scores_matches_decoding_in_reverse():
    rng = np.random.default_rng(4)
    latents = _smooth_latents(500, 3, rng)
    embedding = np.tanh(latents @ rng.normal(size=(3, 3))) + 0.1 * rng.normal(size=(500, 3))
    scores = metrics.latent_fit_scores(embedding, latents, [("x", slice(0, 3))], [("x", slice(0, 2))], n_splits=3)
    reverse = metrics.decoding_scores(latents[:, :2], embedding, n_splits=3)["all"]
    assert scores["x"]["own_linear_r2"] == reverse["linear_r2"] and scores["x"]["own_knn_r2"] == reverse["knn_r2"]


@pytest.mark.parametrize("embedding, latents, blocks, latent_blocks, match", [
    (np.zeros((20, 2)), np.zeros((19, 2)), [("a", slice(0, 2))], [("a", slice(0, 2))],
     "latents have 19 rows but embedding has 20; they must match in time"),
    (np.zeros((20, 2)), np.zeros((20, 2)), [("a", slice(0, 2))], [("b", slice(0, 2))],
     "block 'a' has no entry in latent_blocks"),
    (np.zeros(20), np.zeros((20, 2)), [("a", slice(0, 2))], [("a", slice(0, 2))], r"embedding must be \(T, D\)"),
])
def test_latent_fit_scores_errors(embedding, latents, blocks, latent_blocks, match):
    with pytest.raises(ValueError, match=match):
        metrics.latent_fit_scores(embedding, latents, blocks, latent_blocks)


# --- distance_ratios ---------------------------------------------------------------------------------

def test_distance_ratios_match_a_direct_computation():
    import torch

    rng = np.random.default_rng(0)
    z = rng.normal(size=(101, 3)) * [1.0, 2.0, 0.5] + [5.0, -1.0, 0.0]
    centre = np.array([np.median(z[:, k]) for k in range(3)])
    distance = np.sqrt(((z - centre) ** 2).sum(axis=1))
    expected = distance / sorted(distance)[50]
    np.testing.assert_allclose(metrics.distance_ratios(z), expected, rtol=1e-12)
    np.testing.assert_allclose(metrics.distance_ratios(torch.as_tensor(z, dtype=torch.float32)), expected, rtol=1e-5)


@pytest.mark.parametrize("n_dims", [1, 3, 6, 16])
def test_a_gaussian_cloud_has_no_far_points_and_planted_ones_are_found(n_dims):
    rng = np.random.default_rng(n_dims)
    z = rng.normal(size=(8192, n_dims)) * rng.uniform(0.5, 2.0, size=n_dims)
    assert metrics.distance_ratios(z).max() < 7
    planted = [10, 11, 12, 4000, 8191]
    z[planted] += 10 * np.abs(z).max()  # far beyond the rim, in every dimension
    np.testing.assert_array_equal(np.flatnonzero(metrics.distance_ratios(z) > 20), planted)


def test_distance_ratios_of_a_mostly_collapsed_embedding():
    z = np.zeros((10, 2))
    z[7] = [0.0, 1e-3]
    ratios = metrics.distance_ratios(z)
    assert ratios[7] == np.inf and np.all(np.delete(ratios, 7) == 0)


@pytest.mark.parametrize("shape", [(0, 3), (5,), (2, 3, 4)])
def test_distance_ratios_need_a_non_empty_matrix(shape):
    with pytest.raises(ValueError, match=re.escape(f"embedding must be a non-empty (K, D) array; got shape {shape}")):
        metrics.distance_ratios(np.zeros(shape))


# --- session_consistency, consistency_summary ------------------------------------------------------

def _sessions(n_timepoints=(1500, 2000, 1800), seed=0):
    """Positions uniform in the unit box, one (T_s, 2) array per session, and a random generator."""
    rng = np.random.default_rng(seed)
    return [rng.uniform(0.0, 1.0, size=(t, 2)) for t in n_timepoints], rng


@pytest.mark.parametrize("readout", ["linear", "nonlinear"])
def test_sessions_that_embed_the_shared_label_alike_are_consistent(readout):
    labels, rng = _sessions()
    mixing = rng.normal(size=(2, 3))
    embed = (lambda p: p @ mixing) if readout == "linear" else (lambda p: np.tanh(2 * p @ mixing))
    embeddings = [embed(p) + 0.05 * rng.normal(size=(len(p), 3)) for p in labels]
    copies = [z.copy() for z in embeddings], [y.copy() for y in labels]
    matrix = metrics.session_consistency(embeddings, labels)
    assert matrix.shape == (3, 3) and matrix.dtype == np.float64
    assert matrix[~np.eye(3, dtype=bool)].min() > 0.98
    np.testing.assert_allclose(np.diag(matrix), 1.0, atol=1e-9)
    for original, copy in zip(embeddings + labels, copies[0] + copies[1]):
        np.testing.assert_array_equal(original, copy)  # the caller's arrays are left alone


def test_an_embedding_unrelated_to_the_label_is_not_consistent():
    labels, rng = _sessions(n_timepoints=(2000, 2000))
    mixing = rng.normal(size=(2, 3))
    related = labels[0] @ mixing + 0.05 * rng.normal(size=(2000, 3))
    unrelated = rng.normal(size=(2000, 3))  # independent of the label
    matrix = metrics.session_consistency([related, unrelated], labels)
    # in-sample R2 of a 3-D map over ~100 bins: chance level is about 3 / 99, not 0
    assert matrix[0, 1] < 0.15 and matrix[1, 0] < 0.15


def test_consistency_is_up_to_an_invertible_linear_map():
    labels, rng = _sessions(n_timepoints=(1500, 2000))
    mixing = rng.normal(size=(2, 3))
    transform = np.array([[2.0, 0.5, 0.0], [-1.0, 1.0, 0.3], [0.0, 0.2, -3.0]])  # det != 0
    first = np.tanh(labels[0] @ mixing) + 0.02 * rng.normal(size=(1500, 3))
    second = (np.tanh(labels[1] @ mixing) + 0.02 * rng.normal(size=(2000, 3))) @ transform + [5.0, -2.0, 1.0]
    matrix = metrics.session_consistency([first, second], labels)
    assert matrix[0, 1] > 0.98 and matrix[1, 0] > 0.98


def test_session_consistency_matches_a_hand_computation():
    # pooled label range [0, 2] (session 1 holds the maximum), 4 bins: [0, .5), [.5, 1), [1, 1.5), [1.5, 2]
    labels = [np.array([0.0, 0.2, 0.6, 0.7, 1.1, 1.6, 1.9]),  # bins 0 0 1 1 2 3 3
              np.array([0.3, 0.9, 1.2, 1.3, 2.0]),            # bins 0 1 2 2 3
              np.array([0.4, 1.4, 1.7, 0.1])]                 # bins 0 2 3 0 (bin 1 empty)
    embeddings = [np.array([1.0, 3.0, 2.0, 6.0, 5.0, 7.0, 9.0])[:, None],
                  np.array([0.5, 1.0, 4.0, 2.0, 3.0])[:, None],
                  np.array([2.0, 4.0, 8.0, 0.0])[:, None]]
    means = {0: {0: 2.0, 1: 4.0, 2: 5.0, 3: 8.0}, 1: {0: 0.5, 1: 1.0, 2: 3.0, 3: 3.0}, 2: {0: 1.0, 2: 4.0, 3: 8.0}}
    expected = np.empty((3, 3))
    for i in range(3):
        for j in range(3):
            shared = sorted(set(means[i]) & set(means[j]))
            x, y = [means[i][b] for b in shared], [means[j][b] for b in shared]
            # a 1-D least-squares line with intercept explains r**2 of the variance
            expected[i, j] = np.corrcoef(x, y)[0, 1] ** 2
    matrix = metrics.session_consistency(embeddings, labels, n_bins=4)
    np.testing.assert_allclose(matrix, expected, rtol=1e-12)
    # and the fit itself, by lstsq, for one pair: session 0 -> session 1 over bins 0..3
    design = np.column_stack([[2.0, 4.0, 5.0, 8.0], np.ones(4)])
    target = np.array([0.5, 1.0, 3.0, 3.0])
    fitted = design @ np.linalg.lstsq(design, target, rcond=None)[0]
    r2 = 1 - np.sum((target - fitted) ** 2) / np.sum((target - target.mean()) ** 2)
    assert matrix[0, 1] == pytest.approx(r2, rel=1e-12)


def test_too_few_shared_bins_give_nan_and_a_warning_naming_the_pair():
    rng = np.random.default_rng(5)
    left = rng.uniform([0.0, 0.0], [0.45, 1.0], size=(500, 2))
    right = rng.uniform([0.55, 0.0], [1.0, 1.0], size=(500, 2))
    both = rng.uniform(0.0, 1.0, size=(500, 2))
    embeddings = [p @ np.eye(2) for p in (left, right, both)]
    with pytest.warns(UserWarning, match=re.escape(
            "sessions 0 and 1 share 0 label bins with at least 1 time point(s); a linear map with intercept from a "
            "2-D embedding needs at least 4, so entries [0, 1] and [1, 0] are NaN")):
        matrix = metrics.session_consistency(embeddings, [left, right, both])
    assert np.isnan(matrix[0, 1]) and np.isnan(matrix[1, 0])
    assert np.isfinite(np.delete(matrix.ravel(), [1, 3])).all()
    assert metrics.consistency_summary(matrix) == pytest.approx(np.mean(matrix[[0, 1, 2, 2], [2, 2, 0, 1]]))


def test_min_count_leaves_sparse_bins_out():
    # bins of width 0.4 from 0.1: session 0 has 2 time points in each, session 1 has 1, 2, 2, 1
    labels = [np.array([0.1, 0.2, 0.6, 0.7, 1.1, 1.2, 1.6, 1.7]), np.array([0.1, 0.6, 0.7, 1.1, 1.2, 1.7])]
    embeddings = [np.arange(8.0)[:, None], np.arange(6.0)[:, None] ** 2]
    with pytest.warns(UserWarning) as caught:
        matrix = metrics.session_consistency(embeddings, labels, n_bins=4, min_count=2)
    assert sorted(str(w.message).split(";")[0] for w in caught) == [
        "session 1 has 2 label bins with at least 2 time point(s)",
        "sessions 0 and 1 share 2 label bins with at least 2 time point(s)"]
    assert np.isnan(matrix[0, 1]) and np.isnan(matrix[1, 0]) and np.isnan(matrix[1, 1])
    assert matrix[0, 0] == pytest.approx(1.0)
    assert np.isfinite(metrics.session_consistency(embeddings, labels, n_bins=4, min_count=1)).all()


def test_a_collapsed_session_predicts_nothing_and_cannot_be_predicted():
    labels, rng = _sessions(n_timepoints=(800, 800))
    varied = labels[0] @ rng.normal(size=(2, 2))
    collapsed = np.ones((800, 2))
    with pytest.warns(UserWarning) as caught:
        matrix = metrics.session_consistency([varied, collapsed], labels)
    assert sorted(str(w.message) for w in caught) == [
        f"the cell means of session 1 do not vary (a collapsed embedding?), so no share of their variance can be "
        f"explained; entry [{i}, 1] is NaN" for i in (0, 1)]
    assert np.isnan(matrix[0, 1]) and np.isnan(matrix[1, 1]) and matrix[1, 0] == pytest.approx(0.0, abs=1e-12)


def test_consistency_summary_averages_the_off_diagonal():
    matrix = np.array([[1.0, 0.8, np.nan], [0.6, 1.0, 0.7], [0.9, 0.5, 1.0]])
    assert metrics.consistency_summary(matrix) == pytest.approx((0.8 + 0.6 + 0.7 + 0.9 + 0.5) / 5)
    assert np.isnan(metrics.consistency_summary([[1.0, np.nan], [np.nan, 1.0]]))
    with pytest.raises(ValueError, match=re.escape("matrix must be a square (S, S) array with S >= 2 sessions; "
                                                   "got shape (2, 3)")):
        metrics.consistency_summary(np.zeros((2, 3)))


@pytest.mark.parametrize("embeddings, labels, kwargs, error, match", [
    ([np.zeros((5, 2))], [np.zeros(5)], {}, ValueError, "embeddings must hold at least 2 sessions to compare; got 1"),
    ([np.zeros((5, 2))] * 3, [np.zeros(5)] * 2, {}, ValueError,
     "labels has 2 sessions but embeddings has 3; give one label array per session"),
    ([np.zeros((5, 2)), np.zeros((6, 2))], [np.zeros(5), np.zeros(5)], {}, ValueError,
     r"labels\[1\] has 5 rows but embeddings\[1\] has 6; they must match in time"),
    ([np.zeros((5, 2)), np.zeros((5, 3))], [np.zeros(5)] * 2, {}, ValueError,
     r"embeddings\[1\] has 3 dimensions but embeddings\[0\] has 2; every session's embedding must have the same"),
    ([np.zeros((5, 2))] * 2, [np.zeros(5), np.zeros((5, 2))], {}, ValueError,
     r"labels\[1\] has 2 columns but labels\[0\] has 1; every session's label must have the same width"),
    ([np.zeros((5, 2)), np.zeros(5)], [np.zeros(5)] * 2, {}, ValueError,
     r"embeddings\[1\] must be a 2-D array of shape \(T_s, D\); got shape \(5,\)"),
    ([np.zeros((5, 2)), np.zeros((0, 2))], [np.zeros(5), np.zeros(0)], {}, ValueError,
     r"embeddings\[1\] must have at least one time point and one dimension; got shape \(0, 2\)"),
    ([np.zeros((5, 2)), np.where(np.eye(5, 2) > 0, np.nan, 0.0)], [np.zeros(5)] * 2, {}, ValueError,
     r"embeddings\[1\] contains 2 non-finite value\(s\); the first \(NaN\) is at row 0, column 0"),
    ([np.zeros((5, 2))] * 2, [np.zeros(5), np.array([0, 1, np.inf, 2, 3])], {}, ValueError,
     r"labels\[1\] contains 1 non-finite value\(s\); the first \(infinite\) is at row 2"),
    ([np.zeros((5, 2))] * 2, [np.zeros(5)] * 2, {"n_bins": 0}, ValueError, "n_bins must be >= 1; got 0"),
    ([np.zeros((5, 2))] * 2, [np.zeros(5)] * 2, {"min_count": 1.5}, TypeError, "min_count must be an integer"),
    (np.zeros((5, 2)), [np.zeros(5)] * 5, {}, ValueError, r"embeddings\[0\] must be a 2-D array"),
    ({"a": np.zeros((5, 2))}, [np.zeros(5)], {}, TypeError, "embeddings must be a sequence with one array per session"),
])
def test_session_consistency_errors(embeddings, labels, kwargs, error, match):
    with pytest.raises(error, match=match):
        metrics.session_consistency(embeddings, labels, **kwargs)
