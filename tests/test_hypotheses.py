"""Tests for xcebra.hypotheses: ground truth from cell-type hypotheses and scoring attribution maps."""

from __future__ import annotations

import itertools
import json
import logging
import math
import types

import numpy as np
import pytest

from xcebra.hypotheses import HypothesisMap, HypothesisResult, hypothesis_map, test_hypothesis

CELL_TYPES = ["grid", "grid", "place", "head_direction", "speed", "speed"]
BLOCKS = [("behavior", slice(0, 2)), ("time", slice(2, 5)), ("extra", slice(5, 6))]
HYPOTHESIS = {"behavior": ["grid", "place"], "time": ["head_direction", "speed"]}
BEHAVIOR_TRUTH = np.array([True, True, True, False, False, False])


def make_amap(values: np.ndarray, blocks=BLOCKS) -> types.SimpleNamespace:
    """A stand-in attribution map: values, blocks and the RMS over each block's rows."""
    values = np.asarray(values, dtype=float)
    block_values = np.stack([np.sqrt((values[s] ** 2).mean(axis=0)) for _, s in blocks])
    return types.SimpleNamespace(values=values, blocks=list(blocks), block_values=block_values)


def perfect_values(rng: np.random.Generator | None = None) -> np.ndarray:
    """Connected neurons in [0.6, 1.0], unconnected ones in [0.0, 0.4]; the extra block is random."""
    rng = rng or np.random.default_rng(0)
    truth = hypothesis_map(CELL_TYPES, HYPOTHESIS, BLOCKS).ground_truth
    values = np.where(truth, rng.uniform(0.6, 1.0, truth.shape), rng.uniform(0.0, 0.4, truth.shape))
    values[5] = rng.uniform(0.0, 1.0, 6)
    return values


def pairwise_auc(scores: np.ndarray, truth: np.ndarray) -> float:
    """Independent AUC: the fraction of (positive, negative) pairs ordered correctly, ties count 1/2."""
    scores, truth = np.ravel(scores), np.ravel(truth)
    wins = [1.0 if p > n else 0.5 if p == n else 0.0
            for p, n in itertools.product(scores[truth], scores[~truth])]
    return float(np.mean(wins))


# ----------------------------------------------------------------------------------------------
# hypothesis_map


def test_hypothesis_map_builds_block_and_entry_truth():
    hmap = hypothesis_map(CELL_TYPES, HYPOTHESIS, BLOCKS)
    assert isinstance(hmap, HypothesisMap)
    expected_blocks = np.array([
        [True, True, True, False, False, False],
        [False, False, False, True, True, True],
        [False, False, False, False, False, False],  # 'extra' is not in the hypothesis
    ])
    np.testing.assert_array_equal(hmap.block_truth, expected_blocks)
    assert hmap.block_truth.dtype == bool and hmap.ground_truth.dtype == bool
    np.testing.assert_array_equal(hmap.ground_truth, expected_blocks[[0, 0, 1, 1, 1, 2]])
    assert hmap.scored_blocks == ("behavior", "time")
    np.testing.assert_array_equal(hmap.scored, [True, True, False])
    np.testing.assert_array_equal(hmap.scored_rows, [True, True, True, True, True, False])
    assert hmap.output_dim == 6
    assert hmap.hypothesis == {"behavior": ("grid", "place"), "time": ("head_direction", "speed")}
    np.testing.assert_array_equal(hmap.cell_types, CELL_TYPES)
    assert "behavior" in repr(hmap)


def test_hypothesis_map_accepts_numpy_cell_types_iterables_and_duplicates():
    hmap = hypothesis_map(np.array(CELL_TYPES), {"time": ("speed", "speed", "head_direction")}, BLOCKS)
    assert hmap.hypothesis == {"time": ("speed", "head_direction")}
    np.testing.assert_array_equal(hmap.block_truth[1], [False, False, False, True, True, True])
    assert hmap.scored_blocks == ("time",)


def test_hypothesis_map_replaces_the_seed_notebook_map():
    """The seed built 360 labels for 90 neurons by hand; here the map follows the data's cell types."""
    cell_types = np.repeat(["grid", "head_direction", "place", "speed"], [30, 20, 20, 20])
    hmap = hypothesis_map(cell_types, {"behavior": ["grid", "place"], "time": ["head_direction", "speed"]},
                          [("behavior", slice(0, 4)), ("time", slice(4, 14))])
    assert hmap.ground_truth.shape == (14, 90)
    assert hmap.ground_truth[:4].sum(axis=1).tolist() == [50] * 4
    assert hmap.ground_truth[4:].sum(axis=1).tolist() == [40] * 10
    assert not (hmap.ground_truth[0] & hmap.ground_truth[4]).any()


MAP_ERRORS = [
    (dict(cell_types=[]), ValueError, "cell_types must name the type of every neuron; got an empty sequence"),
    (dict(cell_types=["grid", "place", 1.0]), TypeError, "entry 2 is 1.0 of type float"),
    (dict(cell_types=["grid", None]), TypeError, "entry 1 is None"),
    (dict(cell_types="grid"), TypeError, "got the single string 'grid'"),
    (dict(cell_types=3), TypeError, "cell_types must be a sequence of strings"),
    (dict(hypothesis={"behaviour": ["grid"]}), ValueError,
     r"hypothesis names block\(s\) 'behaviour' that are not in the embedding layout; the blocks are "
     r"'behavior', 'time', 'extra'"),
    (dict(hypothesis={"behavior": ["grid", "hd"]}), ValueError,
     r"hypothesis\['behavior'\] lists cell type\(s\) 'hd' that no neuron has; cell_types holds 'grid', 'place', "
     r"'head_direction', 'speed'"),
    (dict(hypothesis={"behavior": []}), ValueError, r"hypothesis\['behavior'\] is empty"),
    (dict(hypothesis={"behavior": "grid"}), TypeError, r"got the string 'grid' \(write \['grid'\]\)"),
    (dict(hypothesis={"behavior": ["grid", 3]}), TypeError, r"must hold cell type names \(str\); got 3"),
    (dict(hypothesis={"behavior": 3}), TypeError, r"hypothesis\['behavior'\] must be a list of cell types"),
    (dict(hypothesis=[("behavior", ["grid"])]), TypeError, "hypothesis must be a mapping"),
    (dict(hypothesis={}), ValueError, "hypothesis must name at least one block to score"),
    (dict(blocks=[("behavior", slice(0, 2)), ("time", slice(3, 5))]), ValueError,
     r"contiguous.*block 'time' should continue where block 'behavior' stops \(2\)"),
    (dict(blocks=[("behavior", slice(0, 3)), ("time", slice(2, 5))]), ValueError, "contiguous"),
    (dict(blocks=[("behavior", slice(1, 3)), ("time", slice(3, 5))]), ValueError,
     "block 'behavior' should start at 0"),
    (dict(blocks=[("behavior", slice(0, 0)), ("time", slice(0, 5))]), ValueError, "non-empty"),
    (dict(blocks=[("behavior", slice(0, 2)), ("behavior", slice(2, 5))]), ValueError,
     "unique names; 'behavior' appears twice"),
    (dict(blocks=[("behavior", slice(0, 4, 2))]), ValueError, "step 1"),
    (dict(blocks=[("behavior", (0, 2))]), TypeError, r"\(name, slice\) pairs.*entry 0 is \('behavior', \(0, 2\)\)"),
    (dict(blocks=[]), ValueError, "got an empty layout"),
    (dict(blocks="behavior"), TypeError, "blocks must be a list of"),
]


@pytest.mark.parametrize(("change", "error", "match"), MAP_ERRORS)
def test_hypothesis_map_validation(change, error, match):
    arguments = dict(cell_types=CELL_TYPES, hypothesis=HYPOTHESIS, blocks=BLOCKS) | change
    with pytest.raises(error, match=match):
        hypothesis_map(**arguments)


# ----------------------------------------------------------------------------------------------
# test_hypothesis


def test_is_not_collected_by_pytest():
    assert test_hypothesis.__test__ is False


def test_perfect_attribution_scores_one():
    result = test_hypothesis(make_amap(perfect_values()), CELL_TYPES, HYPOTHESIS)
    assert isinstance(result, HypothesisResult)
    assert result.per_block_auc == {"behavior": 1.0, "time": 1.0}
    assert result.block_auc == 1.0
    assert result.entry_auc == 1.0
    assert all(g > 0 for g in result.gap.values())
    assert result.notes == {}


def test_reversed_attribution_scores_zero():
    result = test_hypothesis(make_amap(1.0 - perfect_values()), CELL_TYPES, HYPOTHESIS)
    assert result.per_block_auc == {"behavior": 0.0, "time": 0.0}
    assert result.block_auc == 0.0
    assert result.entry_auc == 0.0
    assert all(g < 0 for g in result.gap.values())


def test_known_intermediate_auc_gap_and_per_type_means():
    values = perfect_values()
    values[0:2] = [0.9, 0.2, 0.5, 0.4, 0.1, 0.3]  # behavior block: both rows equal, so RMS = the row
    result = test_hypothesis(make_amap(values), CELL_TYPES, HYPOTHESIS)
    # positives {0.9, 0.2, 0.5} vs negatives {0.4, 0.1, 0.3}: 3 + 1 + 3 of 9 pairs are ordered correctly
    assert result.per_block_auc["behavior"] == pytest.approx(7 / 9)
    assert result.block_auc == pytest.approx((7 / 9 + 1.0) / 2)
    assert result.gap["behavior"] == pytest.approx((0.9 + 0.2 + 0.5) / 3 - (0.4 + 0.1 + 0.3) / 3)
    assert result.per_type["behavior"] == pytest.approx(
        {"grid": 0.55, "place": 0.5, "head_direction": 0.4, "speed": 0.2})
    hmap = result.map
    rows = hmap.scored_rows
    assert result.entry_auc == pytest.approx(pairwise_auc(values[rows], hmap.ground_truth[rows]))


@pytest.mark.parametrize("seed", range(5))
def test_scores_match_an_independent_pairwise_computation(seed):
    rng = np.random.default_rng(seed)
    values = rng.uniform(0.0, 1.0, size=(6, 6)).round(1)  # rounding creates ties
    amap = make_amap(values)
    result = test_hypothesis(amap, CELL_TYPES, HYPOTHESIS)
    truth = result.map.block_truth
    for b, name in enumerate(["behavior", "time"]):
        assert result.per_block_auc[name] == pytest.approx(pairwise_auc(amap.block_values[b], truth[b]))
        expected_gap = amap.block_values[b, truth[b]].mean() - amap.block_values[b, ~truth[b]].mean()
        assert result.gap[name] == pytest.approx(expected_gap)
    rows = result.map.scored_rows
    assert result.entry_auc == pytest.approx(pairwise_auc(values[rows], result.map.ground_truth[rows]))
    for b, (name, _) in enumerate(BLOCKS):
        for cell_type in set(CELL_TYPES):
            mask = np.array(CELL_TYPES) == cell_type
            assert result.per_type[name][cell_type] == pytest.approx(amap.block_values[b, mask].mean())


def test_blocks_absent_from_the_hypothesis_are_not_scored():
    values = perfect_values()
    first = test_hypothesis(make_amap(values), CELL_TYPES, HYPOTHESIS)
    values[5] = [9.0, 0.0, 0.0, 0.0, 0.0, 9.0]  # anything at all in the unscored block
    second = test_hypothesis(make_amap(values), CELL_TYPES, HYPOTHESIS)
    assert "extra" not in second.per_block_auc and "extra" not in second.gap
    assert (second.block_auc, second.entry_auc, second.per_block_auc) == (
        first.block_auc, first.entry_auc, first.per_block_auc)
    assert second.per_type["extra"]["grid"] == pytest.approx(4.5)  # described, not scored

    only_time = test_hypothesis(make_amap(values), CELL_TYPES, {"time": ["head_direction", "speed"]})
    assert list(only_time.per_block_auc) == ["time"]
    assert only_time.block_auc == 1.0
    np.testing.assert_array_equal(only_time.map.scored_rows, [False, False, True, True, True, False])


def test_single_class_block_gives_nan_with_an_explanation(caplog):
    hypothesis = {"behavior": ["grid", "place", "head_direction", "speed"], "time": ["head_direction", "speed"]}
    with caplog.at_level(logging.WARNING, logger="xcebra"):
        result = test_hypothesis(make_amap(perfect_values()), CELL_TYPES, hypothesis)
    assert math.isnan(result.per_block_auc["behavior"]) and math.isnan(result.gap["behavior"])
    assert "connects every neuron to block 'behavior'" in result.notes["behavior"]
    assert result.block_auc == result.per_block_auc["time"] == 1.0  # mean over blocks with both classes
    assert "every neuron" in caplog.text
    assert result.to_dict()["per_block_auc"]["behavior"] is None


def test_summary_and_to_dict():
    result = test_hypothesis(make_amap(perfect_values()), CELL_TYPES, HYPOTHESIS)
    text = result.summary()
    assert text.splitlines()[0] == "Hypothesis test: block AUC 1.000 (decide on this), entry AUC 1.000"
    assert "behavior" in text and "grid, place" in text and "(not scored)" in text and "5:6" in text
    payload = result.to_dict()
    assert json.loads(json.dumps(payload)) == payload
    assert payload["per_block_auc"] == {"behavior": 1.0, "time": 1.0}
    assert payload["hypothesis"] == {"behavior": ["grid", "place"], "time": ["head_direction", "speed"]}
    assert payload["blocks"] == [["behavior", 0, 2], ["time", 2, 5], ["extra", 5, 6]]
    assert "block_auc=1.000" in repr(result)


def test_neuron_count_mismatch_is_reported_like_the_seed_mistake():
    blocks = [("behavior", slice(0, 4)), ("time", slice(4, 14))]
    amap = make_amap(np.ones((14, 90)), blocks)
    seed_labels = ["position"] * 100 + ["hd"] * 100 + ["position"] * 100 + ["grid"] * 60
    with pytest.raises(ValueError, match="^cell_types has 360 entries but the attribution map has 90 neurons; "
                                         "they must match$"):
        test_hypothesis(amap, seed_labels, {"behavior": ["position", "grid"]})


AMAP_ERRORS = [
    (lambda a: types.SimpleNamespace(values=a.values, blocks=a.blocks), TypeError, "lacks block_values"),
    (lambda a: types.SimpleNamespace(values=a.values[0], blocks=a.blocks, block_values=a.block_values),
     ValueError, r"amap.values must have shape \(output_dim, n_neurons\); got shape \(6,\)"),
    (lambda a: types.SimpleNamespace(values=a.values, blocks=a.blocks, block_values=a.block_values[:2]),
     ValueError, r"amap.block_values must have shape \(n_blocks, n_neurons\) = \(3, 6\); got shape \(2, 6\)"),
    (lambda a: types.SimpleNamespace(values=a.values[:5], blocks=a.blocks, block_values=a.block_values),
     ValueError, "amap.blocks cover 6 embedding dimensions but amap.values has 5 rows"),
    (lambda a: types.SimpleNamespace(values=np.where(np.eye(6, dtype=bool), np.nan, a.values), blocks=a.blocks,
                                     block_values=a.block_values), ValueError, "amap.values contains 6 non-finite"),
]


@pytest.mark.parametrize(("corrupt", "error", "match"), AMAP_ERRORS)
def test_attribution_map_validation(corrupt, error, match):
    with pytest.raises(error, match=match):
        test_hypothesis(corrupt(make_amap(perfect_values())), CELL_TYPES, HYPOTHESIS)


def test_hypothesis_errors_surface_through_test_hypothesis():
    with pytest.raises(ValueError, match=r"lists cell type\(s\) 'hd' that no neuron has"):
        test_hypothesis(make_amap(perfect_values()), CELL_TYPES, {"time": ["hd"]})


def test_inputs_are_not_modified():
    amap = make_amap(perfect_values())
    before = (amap.values.copy(), amap.block_values.copy())
    cell_types = list(CELL_TYPES)
    test_hypothesis(amap, cell_types, HYPOTHESIS)
    np.testing.assert_array_equal(amap.values, before[0])
    np.testing.assert_array_equal(amap.block_values, before[1])
    assert cell_types == CELL_TYPES
