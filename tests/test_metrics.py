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
