"""Significance of attribution maps (xcebra/significance.py): p-values, BH, intervals, shadows, and small fits.

The statistics are checked against direct computations (loops, scipy) on small constructed maps; the
fits are tiny (offset1, 32 hidden units, 400 steps, three seeds on a two-worker local cluster) and check
what the null promises and what it does not: an independent label selects (almost) nothing, and a neuron
correlated with drivers is selected although it carries no behaviour of its own.
"""

from __future__ import annotations

import itertools
import json
import logging

import numpy as np
import pytest
import torch
from scipy import stats

import xcebra
from xcebra import parallel
from xcebra import significance as sig

distributed = pytest.importorskip("distributed")
pd = pytest.importorskip("pandas")

torch.set_num_threads(1)

BLOCKS = ("behavior", "time")


def _estimator(**params) -> xcebra.XCEBRA:
    """Nested objectives as in the README; cosine with temperature 0.1 (block AUC ~0.98 at 800 steps)."""
    objectives = [xcebra.Objective("behavior", dims=(0, 4), distribution="time_delta", label="position"),
                  xcebra.Objective("time", dims=(0, 8), distribution="time", time_offset=1)]
    defaults = dict(model="offset1", hidden_units=32, output_dim=8, temperature=0.1, batch_size=128, max_steps=400,
                    learning_rate=1e-3, regularizer_weight=0.01, regularizer_ramp=None, random_state=0,
                    verbose=False, num_threads=1)
    return xcebra.XCEBRA(objectives, **{**defaults, **params})


@pytest.fixture(scope="module")
def client():
    with parallel.local_client(n_workers=2) as c:
        yield c


# ---------------------------------------------------------------------------------------------- p-values
def _brute_force_p(values: np.ndarray, null: np.ndarray) -> np.ndarray:
    out = np.empty(values.shape)
    for index in np.ndindex(values.shape):
        row = null[index[:-1]]
        count = sum(1 for z in row if z >= values[index])
        out[index] = (1 + count) / (1 + len(row))
    return out


@pytest.mark.parametrize("shape, n_null", [((7,), 5), ((2, 9), 12), ((3, 2, 4), 1)])
def test_empirical_p_values_match_a_direct_count(shape, n_null):
    rng = np.random.default_rng(len(shape))
    # integers: many ties between values and null, which must count against the value
    values = rng.integers(0, 6, size=shape).astype(float)
    null = rng.integers(0, 6, size=shape[:-1] + (n_null,)).astype(float)
    np.testing.assert_allclose(sig.empirical_p_values(values, null), _brute_force_p(values, null), rtol=0, atol=0)


def test_empirical_p_values_bounds():
    p = sig.empirical_p_values([[100.0, -100.0]], [[0.0, 1.0, 2.0]])
    np.testing.assert_array_equal(p, [[0.25, 1.0]])


@pytest.mark.parametrize("values, null, match", [
    (np.ones((2, 3)), np.ones((3, 4)),
     r"values and null must have the same leading shape .* got \(2, 3\) and \(3, 4\)"),
    (np.ones(3), np.ones(0), r"null must hold at least one value per row; got shape \(0,\)"),
    (np.array([1.0, np.nan]), np.ones(2), r"values contains 1 non-finite value"),
])
def test_empirical_p_values_errors(values, null, match):
    with pytest.raises(ValueError, match=match):
        sig.empirical_p_values(values, null)


# ---------------------------------------------------------------------------------------------- BH
def test_benjamini_hochberg_by_hand():
    # sorted: 0.001 0.008 0.039 0.041 0.042 0.06 0.074 0.205 (n = 8, q = 0.05: thresholds 0.00625 k)
    # k=5: 0.042 > 0.03125; k=4: 0.041 > 0.025; k=3: 0.039 > 0.01875; k=2: 0.008 <= 0.0125 -> reject the two smallest
    p = np.array([0.041, 0.001, 0.205, 0.039, 0.008, 0.06, 0.042, 0.074])
    expected = np.array([False, True, False, False, True, False, False, False])
    np.testing.assert_array_equal(sig.benjamini_hochberg(p, 0.05), expected)
    # at q = 0.35 (thresholds 0.04375 k) every p up to the 8th's 0.205 <= 0.35 passes: all are rejected (step-up)
    assert sig.benjamini_hochberg(p, 0.35).all()
    assert not sig.benjamini_hochberg(p, 0.005).any()


def _direct_bh(p: np.ndarray, q: float) -> np.ndarray:
    """Step-up by definition: the largest k with p_(k) <= q k / n; reject every p <= p_(k)."""
    n = len(p)
    ordered = np.sort(p)
    passing = [k for k in range(1, n + 1) if ordered[k - 1] <= q * k / n]
    if not passing:
        return np.zeros(n, dtype=bool)
    return p <= ordered[max(passing) - 1]


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("q", [0.05, 0.2])
def test_benjamini_hochberg_matches_scipy_and_a_direct_implementation(seed, q):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 40))
    # a mixture of small and uniform p-values, rounded so that ties occur
    p = np.round(np.where(rng.random(n) < 0.3, rng.random(n) * 0.01, rng.random(n)), 3)
    decisions = sig.benjamini_hochberg(p, q)
    np.testing.assert_array_equal(decisions, _direct_bh(p, q))
    np.testing.assert_array_equal(decisions, stats.false_discovery_control(p, method="bh") <= q)


def test_benjamini_hochberg_is_per_row():
    p = np.array([[0.001, 0.9, 0.9], [0.9, 0.9, 0.001]])
    np.testing.assert_array_equal(sig.benjamini_hochberg(p, 0.05), [[True, False, False], [False, False, True]])


@pytest.mark.parametrize("p, q, error, match", [
    ([0.1], 0.0, ValueError, r"fdr must be > 0.0; got 0.0"),
    ([0.1], 1.5, ValueError, r"fdr must be <= 1.0; got 1.5"),
    ([0.1], "0.05", TypeError, r"fdr must be a real number; got '0.05'"),
    ([1.2], 0.05, ValueError, r"p_values must be finite numbers in \[0, 1\]"),
    ([], 0.05, ValueError, r"p_values must have shape \(..., n\) with n >= 1; got \(0,\)"),
])
def test_benjamini_hochberg_errors(p, q, error, match):
    with pytest.raises(error, match=match):
        sig.benjamini_hochberg(p, q)


# ---------------------------------------------------------------------------------------------- intervals, consistency
def test_seed_intervals_match_scipy_t_interval():
    rng = np.random.default_rng(3)
    values = rng.normal(2.0, 0.5, size=(5, 2, 4))
    mean, low, high = sig.seed_intervals(values, 0.9)
    for index in np.ndindex(mean.shape):
        column = values[(slice(None),) + index]
        expected = stats.t.interval(0.9, df=4, loc=column.mean(), scale=stats.sem(column))
        assert mean[index] == pytest.approx(column.mean())
        assert (low[index], high[index]) == pytest.approx(expected)


def test_seed_intervals_need_two_seeds():
    with pytest.raises(ValueError, match=r"values must have at least two seeds along axis 0; got shape \(1, 3\)"):
        sig.seed_intervals(np.ones((1, 3)))


def test_consistency_matches_pairwise_spearmanr():
    rng = np.random.default_rng(4)
    base = rng.random((2, 12))
    values = base + rng.normal(size=(4, 2, 12)) * np.array([0.05, 0.5])[:, None]  # block 1 much noisier
    values[1, 0, :3] = values[1, 0, 3]  # ties
    expected = [np.mean([stats.spearmanr(values[a, b], values[c, b])[0]
                         for a, c in itertools.combinations(range(4), 2)]) for b in range(2)]
    scores = sig.consistency_scores(values)
    np.testing.assert_allclose(scores, expected, rtol=1e-12)
    assert scores[0] > scores[1]


def test_consistency_is_nan_for_a_constant_map():
    values = np.ones((3, 1, 5))
    values[0, 0] = np.arange(5)
    assert np.isnan(sig.consistency_scores(values)[0])


def test_normalise_by_null_divides_by_the_median_shadow():
    real = np.arange(1, 13, dtype=float).reshape(2, 2, 3)
    null = np.array([[[1.0, 2.0, 10.0], [0.0, 0.0, 3.0]], [[0.0, 0.0, 0.0], [4.0, 4.0, 4.0]]])
    values, normalised_null, scale = sig.normalise_by_null(real, null)
    # medians 2 and 4; a row whose median shadow is 0 takes the mean (1); an all-zero row keeps its scale
    np.testing.assert_array_equal(scale, [[2.0, 1.0], [1.0, 4.0]])
    np.testing.assert_allclose(values, real / scale[..., None])
    np.testing.assert_allclose(normalised_null, null / scale[..., None])


# ---------------------------------------------------------------------------------------------- shadows
def test_add_shadows_are_circular_shifts_of_their_sources():
    neural = np.arange(40, dtype=np.float32).reshape(10, 4)
    sources, shifts = np.array([2, 0, 2]), np.array([3, 5, 9])
    out = sig.add_shadows(neural, sources, shifts)
    assert out.shape == (10, 7) and out.dtype == np.float32
    np.testing.assert_array_equal(out[:, :4], neural)
    for k, (source, shift) in enumerate(zip(sources, shifts)):
        np.testing.assert_array_equal(out[:, 4 + k], np.roll(neural[:, source], shift))


def test_shadow_sources_and_shifts():
    np.testing.assert_array_equal(sig.shadow_sources(5, 10, 0), np.tile(np.arange(5), 2))
    partial = sig.shadow_sources(5, 7, 0)
    assert list(partial[:5]) == list(range(5)) and len(set(partial[5:])) == 2
    first = sig.shadow_shifts(1000, 50, 100, random_state=0, seed_index=0)
    assert first.min() >= 100 and first.max() <= 900
    np.testing.assert_array_equal(first, sig.shadow_shifts(1000, 50, 100, random_state=0, seed_index=0))
    assert not np.array_equal(first, sig.shadow_shifts(1000, 50, 100, random_state=0, seed_index=1))
    with pytest.raises(ValueError, match=r"min_shift must be in \[1, n_timepoints / 2\] = \[1, 500\]; got 600"):
        sig.shadow_shifts(1000, 5, 600, 0, 0)


def test_minimum_shift_follows_the_slowest_series(caplog):
    from xcebra.sampling import label_autocorrelation_time

    smooth = np.convolve(np.random.default_rng(0).normal(size=3000), np.ones(40) / 40, mode="same")
    tau = label_autocorrelation_time(smooth)
    assert sig.minimum_shift(3000, 1) == 300  # a tenth of the recording
    assert sig.minimum_shift(3000, 1, [smooth]) == max(300, 3 * tau)
    assert sig.minimum_shift(3000, 400) == 400  # the encoder's window
    with caplog.at_level(logging.WARNING, logger="xcebra"):
        assert sig.minimum_shift(100, 1, [np.arange(100.0)]) == 50
    assert "shadows are shifted by up to 50" in caplog.text


# ---------------------------------------------------------------------------------------------- the result
def _constructed(n_seeds=3, n_neurons=6, n_shadows=30, fdr=0.2):
    rng = np.random.default_rng(5)
    real = rng.gamma(2.0, 1.0, size=(n_seeds, 2, n_neurons))
    real[:, 0, :2] *= 6.0  # two strong drivers of block 0
    null = rng.gamma(2.0, 1.0, size=(n_seeds, 2, n_shadows))
    summary = sig.analysis._summarise(real, null, BLOCKS, fdr=fdr, confidence=0.95)
    result = sig.SignificanceResult(**summary, fdr=fdr, confidence=0.95, method="ing-block",
                                    sources=np.arange(n_shadows) % n_neurons,
                                    shifts=np.zeros((n_seeds, n_shadows), dtype=int), random_states=(0, 1, 2))
    return result, real, null


def test_p_values_of_constructed_maps_match_a_direct_computation():
    result, real, null = _constructed()
    n_seeds, n_blocks, n_neurons = real.shape
    for b in range(n_blocks):
        # by hand: each seed divided by its median shadow, means over seeds, then count shadows at or above
        scale = [np.median(null[m, b]) for m in range(n_seeds)]
        value = [np.mean([real[m, b, j] / scale[m] for m in range(n_seeds)]) for j in range(n_neurons)]
        shadow = [np.mean([null[m, b, k] / scale[m] for m in range(n_seeds)]) for k in range(null.shape[2])]
        p = [(1 + sum(s >= v for s in shadow)) / (1 + len(shadow)) for v in value]
        np.testing.assert_allclose(result.values[b], value)
        np.testing.assert_allclose(result.null_values[b], shadow)
        np.testing.assert_allclose(result.p_values[b], p)
        np.testing.assert_array_equal(result.selected_mask[b], _direct_bh(np.array(p), result.fdr))
    assert set(result.selected()["behavior"]) >= {0, 1}
    np.testing.assert_allclose(result.seed_values * result.scales[..., None], real)


def test_result_shapes_frame_and_selected():
    result, real, _ = _constructed(n_shadows=8)
    assert result.values.shape == result.p_values.shape == result.selected_mask.shape == (2, 6)
    assert result.null_values.shape == (2, 8) and result.seed_values.shape == (3, 2, 6)
    assert (result.n_blocks, result.n_neurons, result.n_seeds, result.n_shadows) == (2, 6, 3, 8)
    assert np.all(result.ci_low <= result.values) and np.all(result.values <= result.ci_high)
    frame = result.to_frame()
    assert list(frame.columns) == list(sig.CSV_COLUMNS)
    assert len(frame) == 12
    assert list(frame["block"][:6]) == ["behavior"] * 6 and list(frame["neuron"][:6]) == list(range(6))
    np.testing.assert_allclose(frame["p_value"].to_numpy(), result.p_values.ravel())
    typed = result.to_frame(cell_types=list("aabbcc"))
    assert list(typed.columns) == [*sig.CSV_COLUMNS, "cell_type"] and list(typed["cell_type"][:6]) == list("aabbcc")
    selected = result.selected()
    assert list(selected) == list(BLOCKS)
    for b, name in enumerate(BLOCKS):
        np.testing.assert_array_equal(selected[name], np.flatnonzero(result.selected_mask[b]))
    assert set(result.consistency) == set(BLOCKS)
    # the smallest p-value is 1/9 at n_shadows = 8: BH at 0.2 needs 6 / (0.2 * 9) -> 4 neurons there
    assert result.min_selectable == 4
    assert "selected={behavior:" in repr(result)
    with pytest.raises(ValueError, match=r"cell_types must have one entry per neuron \(6\); got 2"):
        result.to_frame(cell_types=["a", "b"])


def test_save_writes_the_csv_and_the_json(tmp_path):
    result, _, _ = _constructed()
    written = result.save(tmp_path / "out", figures=True)
    assert set(written) == {"significance.csv", "consistency.json", "significance_map.png",
                            "significance_intervals.png"}
    table = pd.read_csv(written["significance.csv"])
    assert list(table.columns) == list(sig.CSV_COLUMNS)
    assert table["selected"].dtype == bool
    np.testing.assert_allclose(table["value"].to_numpy(), result.values.ravel(), rtol=1e-15)
    np.testing.assert_array_equal(table["selected"].to_numpy(), result.selected_mask.ravel())
    summary = json.loads(written["consistency.json"].read_text())
    assert summary["consistency"] == pytest.approx(result.consistency)
    assert summary["selected"] == {k: v.tolist() for k, v in result.selected().items()}
    assert summary["n_shadows"] == 30 and summary["fdr"] == 0.2 and summary["min_selectable"] == 1


def test_plots_return_figures_and_check_their_arguments():
    from matplotlib.figure import Figure

    result, _, _ = _constructed()
    types = ["grid", "place", "grid", "hd", "place", "hd"]
    assert isinstance(result.plot_map(cell_types=types), Figure)
    figure = result.plot_intervals(cell_types=types)
    assert isinstance(figure, Figure) and len(figure.axes) == 2
    target = Figure().add_subplot()
    assert result.plot_intervals(block="time", ax=target) is target.figure
    with pytest.raises(ValueError, match=r"block must be one of 'behavior', 'time'; got 'space'"):
        result.plot_intervals(block="space")
    with pytest.raises(ValueError, match=r"ax draws one block; pass block= one of 'behavior', 'time'"):
        result.plot_intervals(ax=target)


# ---------------------------------------------------------------------------------------------- the front door
@pytest.fixture(scope="module")
def recording():
    data = xcebra.datasets.make_synthetic(n_timepoints=3000, n_neurons=30, random_state=0)
    return data


@pytest.mark.parametrize("kwargs, error, match", [
    (dict(n_seeds=1), ValueError, r"n_seeds must be >= 2; got 1"),
    (dict(n_shadows=0), ValueError, r"n_shadows must be >= 1; got 0"),
    (dict(fdr=1.0), ValueError, r"fdr must be < 1; got 1.0"),
    (dict(fdr=0), ValueError, r"fdr must be > 0.0; got 0"),
    (dict(confidence=1.5), ValueError, r"confidence must be <= 1.0; got 1.5"),
    (dict(method="saliency"), ValueError, r"method must be one of 'ing', .*; got 'saliency'"),
    (dict(random_state=-1), ValueError, r"random_state must be >= 0; got -1"),
    (dict(num_samples=0), ValueError, r"num_samples must be >= 1; got 0"),
    (dict(verbose="yes"), TypeError, r"verbose must be None or a bool; got 'yes'"),
])
def test_significance_checks_its_arguments_before_fitting(recording, kwargs, error, match):
    with pytest.raises(error, match=match):
        sig.significance(_estimator(), recording.neural, position=recording.behavior, client=object(), **kwargs)


def test_significance_checks_estimator_and_data(recording):
    with pytest.raises(TypeError, match=r"estimator must be an xcebra.XCEBRA; got str"):
        sig.significance("model", recording.neural, position=recording.behavior)
    with pytest.raises(ValueError, match=r"Objective 'behavior' needs label 'position', which was not passed to fit"):
        sig.significance(_estimator(), recording.neural, speed=recording.behavior)
    with pytest.raises(ValueError, match=r"label 'position' has 2999 rows but neural has 3000"):
        sig.significance(_estimator(), recording.neural, position=recording.behavior[1:])
    with pytest.raises(ValueError, match=r"neural must be a 2-D array; got shape \(3000,\)"):
        sig.significance(_estimator(), recording.neural[:, 0], position=recording.behavior)
    with pytest.raises(ValueError, match=r"neural must have at least 2 neurons to rank them; got shape \(3000, 1\)"):
        sig.significance(_estimator(), recording.neural[:, :1], position=recording.behavior)


def test_an_independent_label_selects_almost_nothing_and_a_rerun_reuses_the_fits(recording, client, tmp_path):
    """The null-only recording: the behaviour label is another recording's trajectory."""
    other = xcebra.datasets.make_synthetic(n_timepoints=3000, n_neurons=30, random_state=1).behavior
    estimator = _estimator(max_steps=200)  # there is nothing to learn for the behaviour block however long it trains
    before = estimator.get_params()
    result = sig.significance(estimator, recording.neural, position=other, n_seeds=3, client=client,
                              out_dir=tmp_path, verbose=False)
    assert result.values.shape == (2, 30) and result.n_shadows == 120
    assert result.random_states == (0, 1, 2)
    # BH at q = 0.05 with every hypothesis null selects nothing with probability >= 0.95
    share = result.selected_mask[0].mean()
    assert share <= result.fdr, f"{share:.2f} of the neurons selected for an independent label"
    assert estimator.get_params() == before and not hasattr(estimator, "encoder_")
    assert len(list(tmp_path.glob("fit-*.xcebra"))) == 3
    again = sig.significance(estimator, recording.neural, position=other, n_seeds=3, client=client,
                             out_dir=tmp_path, verbose=False)
    assert len(list(tmp_path.glob("fit-*.xcebra"))) == 3  # read, not fitted again
    np.testing.assert_allclose(again.values, result.values, rtol=1e-5)
    np.testing.assert_array_equal(again.shifts, result.shifts)


def test_a_neuron_correlated_with_drivers_is_selected_too(recording, client):
    """The honest limit: the null is that of an isolated neuron, not of one that shares a driver's activity.

    Two non-behaviour neurons are replaced: one by a noisy copy of a behaviour driver (its rate plus fresh
    noise), one by a noise source shared with the other behaviour drivers and nothing else, a neuron
    independent of the behaviour. The encoder uses the first as a second look at the driver and the second
    to cancel the drivers' shared noise, so both drive the behaviour block and both are selected.
    """
    rng = np.random.default_rng(0)
    neural = recording.neural.copy()
    pure = np.flatnonzero(recording.block_truth[0] & ~recording.block_truth[1])
    others = np.flatnonzero(~recording.block_truth[0])
    driver, copy, shared = pure[0], others[0], others[1]
    noise = recording.neural[:, driver] - recording.rates[:, driver]
    neural[:, copy] = recording.rates[:, driver] + rng.permutation(noise)
    common = rng.normal(size=len(neural)).astype(np.float32)
    for k in pure[1:]:
        neural[:, k] += common * recording.rates[:, k].std()
    neural[:, shared] = common + 0.1 * rng.normal(size=len(neural))
    assert abs(np.corrcoef(neural[:, shared], recording.behavior[:, 0])[0, 1]) < 0.05

    result = sig.significance(_estimator(), neural, position=recording.behavior, n_seeds=3, client=client,
                              verbose=False)
    chosen = set(result.selected()["behavior"].tolist())
    assert driver in chosen
    assert copy in chosen and shared in chosen
    truth = recording.block_truth[0]
    assert np.mean(truth[sorted(chosen - {copy, shared})]) == 1.0  # otherwise only true drivers
    assert len(chosen) >= 8
    assert result.consistency["behavior"] > 0.5
