"""Tests for xcebra.plotting and xcebra.viz: figure structure, labels, colour bars, cell-type grouping, input checks."""

from __future__ import annotations

import types

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
from matplotlib.collections import PathCollection  # noqa: E402
from matplotlib.container import BarContainer  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from xcebra import plotting  # noqa: E402
from xcebra.viz import plot_consistency_matrix  # noqa: E402
from xcebra.viz._axes import _cell_type_groups  # noqa: E402

BLOCKS = [("behavior", slice(0, 2)), ("time", slice(2, 5))]
#: interleaved types: grouping must move columns, in order of first appearance, stable inside a type
CELL_TYPES = np.array(["place", "grid", "place", "speed", "grid", "grid", "speed", "place"])
N = len(CELL_TYPES)
ORDER = np.array([0, 2, 7, 1, 4, 5, 3, 6])  # place (0, 2, 7), grid (1, 4, 5), speed (3, 6)


def make_amap(rng=None, blocks=BLOCKS, n_neurons=N, method="ing") -> types.SimpleNamespace:
    rng = rng or np.random.default_rng(0)
    values = rng.uniform(0.0, 2.0, size=(blocks[-1][1].stop, n_neurons))
    block_values = np.stack([np.sqrt((values[s] ** 2).mean(axis=0)) for _, s in blocks])
    return types.SimpleNamespace(values=values, blocks=list(blocks), block_values=block_values, method=method)


def main_axes(fig: Figure) -> list:
    """Axes that are not colour bars."""
    return [ax for ax in fig.axes if not hasattr(ax, "_colorbar")]


def colorbar_axes(fig: Figure) -> list:
    return [ax for ax in fig.axes if hasattr(ax, "_colorbar")]


def assert_labelled(ax) -> None:
    assert ax.get_xlabel().strip(), "x axis has no label"
    assert ax.get_ylabel().strip(), "y axis has no label"


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    import matplotlib.pyplot as plt
    plt.close("all")


# ----------------------------------------------------------------------------------------------
# Grouping


def test_cell_type_groups_order_and_bands():
    order, groups = _cell_type_groups(CELL_TYPES, N, "test")
    np.testing.assert_array_equal(order, ORDER)
    assert groups == [("place", 0, 3), ("grid", 3, 6), ("speed", 6, 8)]


def test_cell_type_groups_keep_order_of_grouped_input():
    types_sorted = ["grid"] * 3 + ["head_direction"] * 2
    order, groups = _cell_type_groups(types_sorted, 5, "test")
    np.testing.assert_array_equal(order, np.arange(5))
    assert [g[0] for g in groups] == ["grid", "head_direction"]


# ----------------------------------------------------------------------------------------------
# Data


def test_plot_raster_grouped_reorders_rows():
    rng = np.random.default_rng(1)
    neural = rng.poisson(1.0, size=(50, N)).astype(float)
    fig = plotting.plot_raster(neural, cell_types=CELL_TYPES, time=np.arange(50) * 0.1, max_timepoints=30)
    assert isinstance(fig, Figure)
    assert len(main_axes(fig)) == 1 and len(colorbar_axes(fig)) == 1
    ax = main_axes(fig)[0]
    assert_labelled(ax)
    assert ax.get_xlabel() == "time (s)"
    assert ax.get_title()
    image = ax.images[0]
    assert image.colorbar is not None and image.colorbar.ax.get_ylabel()
    np.testing.assert_array_equal(np.asarray(image.get_array()), neural[:30, ORDER].T)
    assert [t.get_text() for t in ax.get_yticklabels()] == ["place (n=3)", "grid (n=3)", "speed (n=2)"]


def test_plot_raster_into_given_axes_without_grouping():
    fig = Figure()
    ax = fig.add_subplot()
    neural = np.arange(12.0).reshape(4, 3)
    assert plotting.plot_raster(neural, ax=ax) is fig
    np.testing.assert_array_equal(np.asarray(ax.images[0].get_array()), neural.T)
    assert ax.get_xlabel() == "time (sample)" and ax.get_ylabel() == "neuron (index)"
    assert len(fig.axes) == 2


def test_plot_trajectory():
    position = np.random.default_rng(2).uniform(size=(40, 2))
    fig = plotting.plot_trajectory(position, max_timepoints=25)
    assert len(main_axes(fig)) == 1 and len(colorbar_axes(fig)) == 1
    ax = main_axes(fig)[0]
    assert_labelled(ax)
    assert "(m)" in ax.get_xlabel()
    scatter = ax.collections[0]
    assert scatter.colorbar is not None and scatter.colorbar.ax.get_ylabel() == "time (sample)"
    assert len(scatter.get_offsets()) == 25


def test_plot_training_log_one_panel_per_key():
    log = {"loss": np.linspace(3, 1, 150), "loss/behavior": np.linspace(2, 1, 150), "loss/time": [1.0, 0.9],
           "regularizer": np.zeros(150), "regularizer_weight": np.linspace(0, 0.1, 150)}
    fig = plotting.plot_training_log(log)
    assert len(fig.axes) == 5
    assert [ax.get_title() for ax in fig.axes] == list(log)
    for ax in fig.axes:
        assert ax.get_xlabel() == "step"
        assert ax.get_ylabel()


def test_plot_embedding_one_subplot_per_block_and_colorbar():
    rng = np.random.default_rng(3)
    embedding = rng.normal(size=(300, 7))
    blocks = [("behavior", slice(0, 4)), ("time", slice(4, 6)), ("extra", slice(6, 7))]
    color = np.linspace(0, 1, 300)
    fig = plotting.plot_embedding(embedding, blocks, color, max_points=100, color_label="position x (m)")
    axes = main_axes(fig)
    assert len(axes) == 3 and len(colorbar_axes(fig)) == 1
    assert axes[0].name == "3d" and axes[1].name == "rectilinear"
    assert axes[0].get_zlabel() == "dim 2"
    for ax in axes:
        assert_labelled(ax)
        assert len(ax.collections[0].get_offsets()) == 100
    assert axes[-1].collections[0].colorbar is not None  # one colour bar shared by all blocks
    assert colorbar_axes(fig)[0].get_ylabel() == "position x (m)"
    # explicit dims inside the block
    fig = plotting.plot_embedding(embedding, blocks[:1], color, dims=(1, 3))
    ax = main_axes(fig)[0]
    assert ax.get_xlabel() == "dim 1" and ax.get_ylabel() == "dim 3"
    np.testing.assert_allclose(ax.collections[0].get_offsets(), embedding[:, [1, 3]])


# ----------------------------------------------------------------------------------------------
# Attribution maps


def test_plot_attribution_map_grouped():
    amap = make_amap()
    fig = plotting.plot_attribution_map(amap, cell_types=CELL_TYPES)
    assert len(main_axes(fig)) == 1 and len(colorbar_axes(fig)) == 1
    ax = main_axes(fig)[0]
    assert_labelled(ax)
    assert "ing" in ax.get_title()
    image = ax.images[0]
    np.testing.assert_array_equal(np.asarray(image.get_array()), amap.values[:, ORDER])
    assert image.colorbar is not None and image.colorbar.ax.get_ylabel()
    assert [t.get_text().split("\n")[0] for t in ax.get_yticklabels()] == ["behavior", "time"]
    assert [t.get_text().split("\n")[0] for t in ax.get_xticklabels()] == ["place", "grid", "speed"]
    # one horizontal line between the two blocks at the boundary (row 2)
    horizontal = [line for line in ax.lines if np.allclose(line.get_ydata(), 1.5)]
    assert len(horizontal) == 1


def test_plot_attribution_map_ungrouped_into_axes_and_title():
    amap = make_amap()
    fig = Figure()
    ax = fig.add_subplot()
    assert plotting.plot_attribution_map(amap, ax=ax, title="my map") is fig
    assert ax.get_title() == "my map"
    np.testing.assert_array_equal(np.asarray(ax.images[0].get_array()), amap.values)
    assert ax.get_xlabel() == "neuron (index)"


def test_plot_block_map_rows_scaled_within_block():
    amap = make_amap()
    fig = plotting.plot_block_map(amap, cell_types=CELL_TYPES)
    ax = main_axes(fig)[0]
    assert len(colorbar_axes(fig)) == 1
    assert_labelled(ax)
    assert "within a block" in ax.get_title()
    expected = amap.block_values[:, ORDER] / amap.block_values.max(axis=1, keepdims=True)
    np.testing.assert_allclose(np.asarray(ax.images[0].get_array()), expected)
    assert "block max" in colorbar_axes(fig)[0].get_ylabel()


def test_plot_ground_truth_dimension_and_block_rows():
    truth = np.zeros((5, N), bool)
    truth[:2, CELL_TYPES == "grid"] = True
    fig = plotting.plot_ground_truth(truth, blocks=BLOCKS, cell_types=CELL_TYPES)
    ax = main_axes(fig)[0]
    assert len(colorbar_axes(fig)) == 1
    assert_labelled(ax)
    np.testing.assert_array_equal(np.asarray(ax.images[0].get_array()), truth[:, ORDER].astype(float))
    assert [t.get_text() for t in colorbar_axes(fig)[0].get_yticklabels()] == ["no", "yes"]
    block_truth = np.array([CELL_TYPES == "grid", CELL_TYPES == "speed"])
    fig = plotting.plot_ground_truth(block_truth.astype(int), blocks=BLOCKS)
    ax = main_axes(fig)[0]
    assert ax.get_ylabel() == "block"
    assert [t.get_text() for t in ax.get_yticklabels()] == ["behavior", "time"]


def test_plot_cell_type_means_values_and_errors():
    amap = make_amap()
    fig = plotting.plot_cell_type_means(amap, CELL_TYPES)
    axes = fig.axes
    assert len(axes) == len(BLOCKS)
    for b, ax in enumerate(axes):
        assert_labelled(ax)
        heights = [patch.get_height() for patch in ax.patches]
        expected = [amap.block_values[b, CELL_TYPES == t].mean() for t in ("place", "grid", "speed")]
        np.testing.assert_allclose(heights, expected)
        errorbar = next(c for c in ax.containers if isinstance(c, BarContainer)).errorbar
        segments = errorbar.lines[2][0].get_segments()
        half_widths = [abs(seg[1][1] - seg[0][1]) / 2 for seg in segments]
        expected_se = [amap.block_values[b, CELL_TYPES == t].std(ddof=1) / np.sqrt((CELL_TYPES == t).sum())
                       for t in ("place", "grid", "speed")]
        np.testing.assert_allclose(half_widths, expected_se)
        assert [t.get_text() for t in ax.get_xticklabels()] == ["place", "grid", "speed"]


def test_plot_method_comparison_means_and_seed_points():
    table = [{"method": "ing", "auc": a, "seed": s} for s, a in enumerate([0.9, 0.95, 1.0])]
    table += [{"method": "jacobian", "auc": 0.7, "seed": 0}]
    fig = plotting.plot_method_comparison(table)
    assert len(fig.axes) == 1
    ax = fig.axes[0]
    assert_labelled(ax)
    np.testing.assert_allclose([p.get_height() for p in ax.patches], [0.95, 0.7])
    points = [c for c in ax.collections if isinstance(c, PathCollection)]
    assert len(points) == 1 and len(points[0].get_offsets()) == 3  # one dot per seed for "ing"
    assert [t.get_text() for t in ax.get_xticklabels()] == ["ing", "jacobian"]
    assert [t.get_text() for t in ax.texts] == ["0.950", "0.700"]  # the means, to three decimals
    grouped = plotting.plot_method_comparison(
        [{"method": "ing", "auc": 0.9, "level": "entry"}, {"method": "ing", "auc": 0.95, "level": "block"}])
    assert len(grouped.axes[0].patches) == 2


# ----------------------------------------------------------------------------------------------
# Input checks


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda: plotting.plot_raster(np.zeros((10, N)), cell_types=CELL_TYPES[:-1]),
         r"cell_types has 7 entries; expected 8 \(one per neuron"),
        (lambda: plotting.plot_raster(np.zeros(10)), r"neural must be a 2-D array; got shape \(10,\)"),
        (lambda: plotting.plot_raster(np.zeros((10, 3)), time=np.arange(9)),
         r"time has 9 entries; expected 10"),
        (lambda: plotting.plot_trajectory(np.zeros((10, 3))),
         r"position must have shape \(n_timepoints, 2\); got shape \(10, 3\)"),
        (lambda: plotting.plot_training_log({"loss": np.zeros((3, 2))}),
         r"log\['loss'\] must be a 1-D array; got shape \(3, 2\)"),
        (lambda: plotting.plot_training_log({}), r"log must hold at least one"),
        (lambda: plotting.plot_embedding(np.zeros((10, 5)), BLOCKS, np.zeros(9)),
         r"color has 9 entries; expected 10"),
        (lambda: plotting.plot_embedding(np.zeros((10, 4)), BLOCKS, np.zeros(10)),
         r"blocks: block 'time' is slice\(2, 5, None\).*4 rows"),
        (lambda: plotting.plot_embedding(np.zeros((10, 5)), BLOCKS, np.zeros(10), dims=(0, 5)),
         r"dims for block 'behavior' must be 2 or 3 distinct offsets in \[0, 2\)"),
        (lambda: plotting.plot_attribution_map(make_amap(), cell_types=["grid"] * (N + 1)),
         r"cell_types has 9 entries; expected 8 .*amap.values"),
        (lambda: plotting.plot_attribution_map(types.SimpleNamespace(values=np.zeros(4), blocks=BLOCKS)),
         r"amap.values must be a 2-D array; got shape \(4,\)"),
        (lambda: plotting.plot_block_map(types.SimpleNamespace(values=np.zeros((5, 3)), blocks=BLOCKS,
                                                               block_values=np.zeros((3, 3)))),
         r"amap.block_values has shape \(3, 3\); expected \(2, 3\)"),
        (lambda: plotting.plot_cell_type_means(make_amap(), CELL_TYPES[:3]), r"cell_types has 3 entries; expected 8"),
        (lambda: plotting.plot_cell_type_means(make_amap(), [CELL_TYPES]), r"cell_types must be a 1-D sequence"),
        (lambda: plotting.plot_ground_truth(np.full((5, 3), 0.5)), r"truth must be boolean"),
        (lambda: plotting.plot_ground_truth(np.zeros((4, 3), bool), blocks=BLOCKS),
         r"blocks: block 'time' is slice\(2, 5, None\)"),
        (lambda: plotting.plot_method_comparison([{"method": "ing"}]), r"table\[0\] is missing the key 'auc'"),
        (lambda: plotting.plot_method_comparison([{"method": "ing", "auc": 1.5}]),
         r"table\[0\]\['auc'\] must be a number in \[0, 1\]"),
        (lambda: plotting.plot_method_comparison([]), r"table must hold at least one row"),
    ],
)
def test_invalid_inputs_raise_value_error(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_invalid_types_raise_type_error():
    with pytest.raises(TypeError, match="amap must have a 'values' attribute"):
        plotting.plot_attribution_map(np.zeros((3, 3)))
    with pytest.raises(TypeError, match="max_timepoints must be an integer"):
        plotting.plot_raster(np.zeros((3, 3)), max_timepoints=2.5)
    with pytest.raises(TypeError, match="table must be a list of dicts"):
        plotting.plot_method_comparison({"method": "ing", "auc": 0.9})


def test_plotting_does_not_touch_pyplot_state():
    import matplotlib.pyplot as plt
    before = plt.get_fignums()
    plotting.plot_attribution_map(make_amap())
    plotting.plot_trajectory(np.zeros((5, 2)))
    assert plt.get_fignums() == before


def test_attribution_map_plot_is_deprecated_and_still_draws_the_map():
    """The result type does not draw itself (attribution sits below viz); its old plot() forwards with a warning."""
    from xcebra.attribution.maps import AttributionMap

    raw = make_amap()
    amap = AttributionMap(values=raw.values, method="ing", blocks=raw.blocks, stderr=np.zeros_like(raw.values),
                          n_timepoints=10)
    with pytest.warns(DeprecationWarning, match=r"AttributionMap.plot\(\) is deprecated .* xcebra.viz.plot_attribution_map"):
        fig = amap.plot(cell_types=CELL_TYPES)
    expected = plotting.plot_attribution_map(amap, cell_types=CELL_TYPES)
    assert isinstance(fig, Figure) and len(fig.axes) == len(expected.axes) == 2
    assert fig.axes[0].get_title() == expected.axes[0].get_title()


# ----------------------------------------------------------------------------------------------
# Sessions


CONSISTENCY = np.array([[1.0, 0.934, np.nan], [0.876, 1.0, 0.5049], [-0.1234, 0.25, 1.0]])


def test_plot_consistency_matrix_writes_every_value():
    fig = plot_consistency_matrix(CONSISTENCY, session_names=["rat A", "rat B", "rat C"])
    assert isinstance(fig, Figure)
    assert len(main_axes(fig)) == 1 and len(colorbar_axes(fig)) == 1
    ax = main_axes(fig)[0]
    assert ax.get_xlabel() == "to session" and ax.get_ylabel() == "from session"
    assert colorbar_axes(fig)[0].get_ylabel() == "R2"
    image = ax.images[0]
    np.testing.assert_array_equal(np.ma.filled(image.get_array(), np.nan), CONSISTENCY)
    assert image.norm.vmin == 0.0 and image.norm.vmax == 1.0
    # one text per cell, row by row: the value to two decimals, NaN as "n/a"
    texts = [t.get_text() for t in ax.texts]
    expected = ["n/a" if np.isnan(v) else f"{round(v, 2):.2f}" for v in CONSISTENCY.ravel()]
    assert texts == expected == ["1.00", "0.93", "n/a", "0.88", "1.00", "0.50", "-0.12", "0.25", "1.00"]
    assert [t.get_position() for t in ax.texts[:3]] == [(0, 0), (1, 0), (2, 0)]  # (column, row)
    assert [t.get_text() for t in ax.get_xticklabels()] == ["rat A", "rat B", "rat C"]
    assert [t.get_text() for t in ax.get_yticklabels()] == ["rat A", "rat B", "rat C"]
    # the mean of the five finite off-diagonal entries
    assert ax.get_title() == "Consistency across sessions (mean off-diagonal R2 0.49)"
    assert image.colorbar.extend == "min"  # -0.12 lies below vmin


def test_plot_consistency_matrix_text_stays_readable():
    fig = plot_consistency_matrix(np.array([[0.0, 1.0], [1.0, 0.0]]))
    colors = [t.get_color() for t in main_axes(fig)[0].texts]
    assert colors == ["white", "black", "black", "white"]  # on viridis' dark purple and light yellow


def test_plot_consistency_matrix_into_given_axes_with_title_and_range():
    fig = Figure()
    ax = fig.add_subplot()
    assert plot_consistency_matrix(CONSISTENCY[:2, :2], ax=ax, title="days", vmin=-1.0, vmax=2.0) is fig
    assert ax.get_title() == "days"
    assert ax.images[0].norm.vmin == -1.0 and ax.images[0].norm.vmax == 2.0
    assert [t.get_text() for t in ax.get_xticklabels()] == ["0", "1"]
    assert len(fig.axes) == 2


@pytest.mark.parametrize("matrix, kwargs, match", [
    (np.zeros(3), {}, r"matrix must be a 2-D array; got shape \(3,\)"),
    (np.zeros((2, 3)), {}, r"matrix must be a non-empty square \(S, S\) array, one row and one column per session; "
                           r"got shape \(2, 3\)"),
    (np.zeros((0, 0)), {}, r"matrix must be a non-empty square \(S, S\) array"),
    (np.full((2, 2), np.inf), {}, r"matrix must hold finite values or NaN; got an infinite entry at \(0, 0\)"),
    (np.zeros((2, 2)), {"session_names": ["a"]}, r"session_names has 1 entries; expected 2"),
    (np.zeros((2, 2)), {"vmin": 1.0, "vmax": 1.0}, r"vmin must be < vmax \(1.0\); got vmin=1.0"),
])
def test_plot_consistency_matrix_rejects_bad_input(matrix, kwargs, match):
    with pytest.raises(ValueError, match=match):
        plot_consistency_matrix(matrix, **kwargs)
