"""Tests for xcebra.datasets.ratinabox: the simulated rat-in-a-box data set and its disk cache."""

from __future__ import annotations

import importlib
import logging
import math
import sys

import numpy as np
import pytest
from sklearn.linear_model import LinearRegression

pytest.importorskip("ratinabox")
rib = importlib.import_module("xcebra.datasets.ratinabox")  # the module (datasets.ratinabox may be the function)
ratinabox, RatInABoxData = rib.ratinabox, rib.RatInABoxData

FIELDS = ("spikes", "rates", "position", "head_direction", "speed", "time", "cell_types")
SMALL = dict(duration=20.0, n_grid=6, n_head_direction=4, n_place=4, n_speed=4, grid_modules=2)


@pytest.fixture(scope="module")
def clean():
    """60 s of the default population without rate noise (tuning checks)."""
    return ratinabox(duration=60.0, noise=0.0, cache=False)


@pytest.fixture(scope="module")
def noisy():
    """60 s of the default population with the default noise."""
    return ratinabox(duration=60.0, cache=False)


def assert_same(a: RatInABoxData, b: RatInABoxData) -> None:
    for name in FIELDS:
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name), err_msg=name)
    assert a.params == b.params


def r2(features: np.ndarray, target: np.ndarray) -> float:
    return LinearRegression().fit(features, target).score(features, target)


def explained_by_bins(rates: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Per column, the fraction of variance explained by the mean within each label (eta squared)."""
    means = np.stack([rates[labels == label].mean(axis=0) for label in np.unique(labels)])
    fitted = means[np.searchsorted(np.unique(labels), labels)]
    return 1.0 - ((rates - fitted) ** 2).mean(axis=0) / rates.var(axis=0)


# ----------------------------------------------------------------------------------------------
# Contents


def test_shapes_dtypes_and_cell_types(noisy):
    assert isinstance(noisy, RatInABoxData)
    T, N = 600, 90
    assert noisy.n_timepoints == T and noisy.n_neurons == N
    for name, shape in {"spikes": (T, N), "rates": (T, N), "position": (T, 2), "head_direction": (T,),
                        "speed": (T,), "time": (T,)}.items():
        array = getattr(noisy, name)
        assert array.shape == shape, name
        assert array.dtype == np.float32, name
        assert np.isfinite(array).all(), name
    assert noisy.cell_types.shape == (N,) and noisy.cell_types.dtype.kind == "U"
    expected = np.repeat(["grid", "head_direction", "place", "speed"], [30, 20, 20, 20])
    np.testing.assert_array_equal(noisy.cell_types, expected)  # grouped by type, in this order
    assert noisy.params == {"duration": 60.0, "dt": 0.1, "seed": 231209234, "n_grid": 30, "n_head_direction": 20,
                            "n_place": 20, "n_speed": 20, "noise": 0.25, "grid_modules": 3}
    assert "n_neurons=90" in repr(noisy)


def test_custom_population_sizes():
    data = ratinabox(**SMALL, cache=False)
    assert data.spikes.shape == (200, 18)
    assert [int(np.sum(data.cell_types == t)) for t in ("grid", "head_direction", "place", "speed")] == [6, 4, 4, 4]
    only_speed = ratinabox(duration=5.0, n_grid=0, n_head_direction=0, n_place=0, n_speed=3, cache=False)
    assert only_speed.spikes.shape == (50, 3) and set(only_speed.cell_types) == {"speed"}


def test_time_position_head_direction_and_speed_ranges(noisy):
    np.testing.assert_allclose(noisy.time, np.arange(1, 601) * 0.1, rtol=1e-6)
    assert noisy.position.min() >= 0.0 and noisy.position.max() <= 1.0  # stays in the 1 m box
    assert noisy.position.std(axis=0).min() > 0.05  # and moves around in it
    assert noisy.head_direction.min() >= 0.0 and noisy.head_direction.max() < 2 * np.pi
    assert noisy.speed.min() >= 0.0
    # the speed is the length of the step taken per unit time (Agent dt = dt / 2 for dt = 0.1 s)
    steps = np.linalg.norm(np.diff(noisy.position, axis=0), axis=1) / 0.1
    assert 0.5 < np.median(steps) / np.median(noisy.speed) < 1.5
    assert 0.05 < noisy.speed.mean() < 0.2  # ratinabox's foraging speed, about 0.1 m/s


def test_spikes_are_poisson_counts_of_the_rates(noisy):
    assert np.array_equal(noisy.spikes, np.round(noisy.spikes)) and noisy.spikes.min() >= 0
    assert noisy.rates.min() >= 0.0  # noisy rates are clipped at 0
    expected = noisy.rates.astype(np.float64).sum() * 0.1
    assert abs(noisy.spikes.sum() - expected) < 5 * math.sqrt(expected)
    per_neuron = np.corrcoef(noisy.spikes.sum(axis=0), noisy.rates.sum(axis=0))[0, 1]
    assert per_neuron > 0.9


def test_noise_is_additive_ornstein_uhlenbeck_relative_to_the_maximal_rate(clean, noisy):
    # same seed: same trajectory and cells, the noise stream is separate
    np.testing.assert_array_equal(clean.position, noisy.position)
    assert clean.rates.min() >= 0.0 and clean.rates.max() <= rib._MAX_RATE_HZ + 1e-4
    residual = (noisy.rates - clean.rates).astype(np.float64)
    unclipped = clean.rates > 8.0  # far from the clipping at 0
    assert residual[unclipped].std() == pytest.approx(0.25 * rib._MAX_RATE_HZ, rel=0.2)
    lag1 = np.mean([np.corrcoef(residual[:-1, i], residual[1:, i])[0, 1] for i in range(residual.shape[1])])
    assert lag1 == pytest.approx(math.exp(-0.1 / rib._NOISE_COHERENCE_TIME_S), abs=0.1)


def test_place_cells_follow_position_not_head_direction(clean):
    place = clean.rates[:, clean.cell_types == "place"]
    cell = np.clip((clean.position * 4).astype(int), 0, 3)
    position_bins = cell[:, 0] * 4 + cell[:, 1]
    direction_bins = (clean.head_direction / (2 * np.pi) * 8).astype(int)
    by_position = explained_by_bins(place, position_bins).mean()
    by_direction = explained_by_bins(place, direction_bins).mean()
    assert by_position > 0.6
    assert by_position > 3 * by_direction


def test_head_direction_cells_follow_head_direction(clean, noisy):
    angle = np.c_[np.cos(clean.head_direction), np.sin(clean.head_direction)]
    for data, threshold in ((clean, 0.7), (noisy, 0.4)):
        hd = data.rates[:, data.cell_types == "head_direction"]
        by_direction = [r2(angle, hd[:, i]) for i in range(hd.shape[1])]
        by_position = [r2(data.position, hd[:, i]) for i in range(hd.shape[1])]
        assert np.mean(by_direction) > threshold
        assert np.mean(by_position) < 0.15


def test_head_direction_rates_match_ratinabox_get_state():
    """The vectorised formula equals HeadDirectionCells.get_state evaluated one direction at a time."""
    import ratinabox as rb

    np.random.seed(0)
    agent = rb.Agent(rb.Environment(), params={"save_history": False})
    cells = rb.HeadDirectionCells(agent, params={"n": 7, "max_fr": 10.0, "min_fr": 0.0, "save_history": False})
    angles = np.linspace(0.05, 2 * np.pi - 0.05, 13)
    vectorised = rib._head_direction_rates(rb, cells, angles)
    one_by_one = np.stack([cells.get_state(evaluate_at=None, head_direction=np.array([np.cos(a), np.sin(a)]))[:, 0]
                           for a in angles])
    np.testing.assert_allclose(vectorised, one_by_one, rtol=1e-4, atol=1e-6)


def test_speed_cells_follow_speed(clean, noisy):
    for data, threshold in ((clean, 0.8), (noisy, 0.4)):
        speed_cells = data.rates[:, data.cell_types == "speed"]
        correlations = [np.corrcoef(speed_cells[:, i], data.speed)[0, 1] for i in range(speed_cells.shape[1])]
        assert min(correlations) > threshold


def test_grid_cells_are_spatial_with_module_scales(clean):
    grid = clean.rates[:, clean.cell_types == "grid"]
    cell = np.clip((clean.position * 8).astype(int), 0, 7)
    assert explained_by_bins(grid, cell[:, 0] * 8 + cell[:, 1]).mean() > 0.6
    np.testing.assert_allclose(rib._grid_scales(3), [0.3, 0.3 ** (1 / 2) * 0.8 ** (1 / 2), 0.8])
    assert rib._grid_scales(1).tolist() == [0.5]


# ----------------------------------------------------------------------------------------------
# Randomness


def test_deterministic_for_a_seed_and_different_across_seeds():
    first = ratinabox(**SMALL, seed=3, cache=False)
    second = ratinabox(**SMALL, seed=3, cache=False)
    assert_same(first, second)
    other = ratinabox(**SMALL, seed=4, cache=False)
    assert not np.array_equal(first.position, other.position)
    assert not np.array_equal(first.spikes, other.spikes)


def test_global_numpy_random_state_is_left_alone():
    np.random.seed(123)
    state = np.random.get_state()
    ratinabox(duration=2.0, cache=False)
    after = np.random.get_state()
    assert all(np.array_equal(a, b) for a, b in zip(state, after))


def test_shorter_run_is_the_start_of_a_longer_one(clean):
    short = ratinabox(duration=20.0, noise=0.0, cache=False)
    np.testing.assert_array_equal(short.position, clean.position[:200])
    np.testing.assert_array_equal(short.head_direction, clean.head_direction[:200])


# ----------------------------------------------------------------------------------------------
# Cache


def cache_files(directory):
    return sorted(p for p in directory.iterdir() if p.suffix == ".npz")


def test_second_call_reads_the_cache(tmp_path, monkeypatch, caplog):
    first = ratinabox(**SMALL, cache=tmp_path)
    assert len(cache_files(tmp_path)) == 1
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]  # no temporary files left behind

    def no_simulation(**kwargs):
        raise AssertionError("the cached call simulated again")

    monkeypatch.setattr(rib, "_simulate", no_simulation)
    with caplog.at_level(logging.INFO, logger="xcebra"):
        second = ratinabox(**SMALL, cache=str(tmp_path))  # str or Path
    assert_same(first, second)
    assert "Loaded the ratinabox data set from the cache" in caplog.text
    # float and int spellings of the same arguments share the entry
    assert_same(first, ratinabox(**(SMALL | {"duration": 20}), cache=tmp_path))
    # cache=False never reads it
    with pytest.raises(AssertionError, match="simulated again"):
        ratinabox(**SMALL, cache=False)


@pytest.mark.parametrize("change", [
    {"duration": 21.0}, {"dt": 0.05}, {"seed": 1}, {"n_grid": 7}, {"n_head_direction": 5}, {"n_place": 5},
    {"n_speed": 5}, {"noise": 0.5}, {"grid_modules": 3},
])
def test_every_argument_changes_the_cache_key(change):
    base = rib._validate(**(SMALL | {"dt": 0.1, "seed": 0, "noise": 0.25}))
    changed = rib._validate(**(SMALL | {"dt": 0.1, "seed": 0, "noise": 0.25} | change))
    assert rib._cache_key(base, "1.15.3") != rib._cache_key(changed, "1.15.3")
    assert rib._cache_key(base, "1.15.3") != rib._cache_key(base, "1.16.0")  # ratinabox version
    assert rib._cache_key(base, "1.15.3") == rib._cache_key(dict(base), "1.15.3")


def test_different_arguments_use_different_files(tmp_path):
    a = ratinabox(duration=5.0, seed=1, cache=tmp_path)
    b = ratinabox(duration=5.0, seed=2, cache=tmp_path)
    assert len(cache_files(tmp_path)) == 2
    assert not np.array_equal(a.position, b.position)
    assert_same(b, ratinabox(duration=5.0, seed=2, cache=tmp_path))


def test_cache_location_from_environment_and_home(tmp_path, monkeypatch):
    monkeypatch.setenv("XCEBRA_CACHE", str(tmp_path / "env"))
    ratinabox(duration=2.0, cache=True)
    assert len(cache_files(tmp_path / "env")) == 1
    monkeypatch.delenv("XCEBRA_CACHE")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    ratinabox(duration=2.0)
    assert len(cache_files(tmp_path / "home" / ".cache" / "xcebra")) == 1


def _garbage(path, other):
    path.write_bytes(b"certainly not an npz file")


def _truncated(path, other):
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def _empty(path, other):
    path.write_bytes(b"")


def _other_arguments(path, other):
    path.write_bytes(other.read_bytes())  # a valid file, but for a different seed


def _wrong_shape(path, other):
    with np.load(path) as archive:
        arrays = dict(archive)
    arrays["spikes"] = arrays["spikes"][:-1]
    with open(path, "wb") as handle:
        np.savez(handle, **arrays)


def _pickled_object(path, other):
    with np.load(path) as archive:
        arrays = dict(archive)
    arrays["cell_types"] = np.array([object()] * len(arrays["cell_types"]), dtype=object)
    with open(path, "wb") as handle:
        np.savez(handle, **arrays)  # loading it would need allow_pickle=True


@pytest.mark.parametrize("corrupt", [_garbage, _truncated, _empty, _other_arguments, _wrong_shape, _pickled_object])
def test_corrupt_cache_file_is_ignored_and_regenerated(tmp_path, caplog, corrupt):
    other = ratinabox(duration=3.0, seed=9, cache=tmp_path / "other")
    expected = ratinabox(duration=3.0, cache=tmp_path)
    (path,) = cache_files(tmp_path)
    corrupt(path, cache_files(tmp_path / "other")[0])
    with caplog.at_level(logging.WARNING, logger="xcebra"):
        again = ratinabox(duration=3.0, cache=tmp_path)
    assert_same(again, expected)
    assert "Ignoring the unreadable ratinabox cache file" in caplog.text
    assert not np.array_equal(other.position, again.position)
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="xcebra"):
        assert_same(ratinabox(duration=3.0, cache=tmp_path), expected)  # the file was rewritten
    assert caplog.text == ""


def test_unwritable_cache_directory_only_warns(tmp_path, caplog):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a directory")
    with caplog.at_level(logging.WARNING, logger="xcebra"):
        data = ratinabox(duration=2.0, cache=blocker / "cache")
    assert data.spikes.shape == (20, 90)
    assert "Could not write the ratinabox cache file" in caplog.text


# ----------------------------------------------------------------------------------------------
# Arguments


@pytest.mark.parametrize(("change", "error", "match"), [
    ({"duration": -1.0}, ValueError, r"duration must be > 0.*got -1\.0"),
    ({"duration": 0}, ValueError, r"duration must be > 0.*got 0"),
    ({"duration": float("nan")}, ValueError, "duration must be finite; got nan"),
    ({"duration": "long"}, TypeError, "duration must be a real number; got 'long'"),
    ({"dt": 0.0}, ValueError, r"dt must be > 0.*got 0\.0"),
    ({"dt": 30.0, "duration": 20.0}, ValueError, r"dt must be <= duration \(20\.0 s\).*got dt=30\.0"),
    ({"seed": -1}, ValueError, "seed must be >= 0; got -1"),
    ({"seed": 2**32}, ValueError, f"seed must be <= {2**32 - 1}; got {2**32}"),
    ({"seed": 1.5}, TypeError, "seed must be an integer; got 1.5"),
    ({"n_grid": -1}, ValueError, "n_grid must be >= 0; got -1"),
    ({"n_place": 2.0}, TypeError, "n_place must be an integer; got 2.0"),
    ({"n_speed": True}, TypeError, "n_speed must be an integer; got True"),
    ({"n_grid": 0, "n_head_direction": 0, "n_place": 0, "n_speed": 0}, ValueError,
     r"n_grid \+ n_head_direction \+ n_place \+ n_speed must be >= 1 \(at least one neuron\); got 0"),
    ({"noise": -0.1}, ValueError, r"noise must be >= 0.*got -0\.1"),
    ({"grid_modules": 0}, ValueError, "grid_modules must be >= 1; got 0"),
    ({"grid_modules": 4, "n_grid": 3}, ValueError, r"grid_modules must be <= n_grid \(3\).*got 4"),
    ({"cache": 3}, TypeError, "cache must be True, False or a directory path; got 3"),
])
def test_argument_validation(change, error, match, monkeypatch):
    monkeypatch.setattr(rib, "_simulate", lambda **kwargs: pytest.fail("simulated despite a bad argument"))
    with pytest.raises(error, match=match):
        ratinabox(**({"duration": 20.0} | change))


def test_missing_ratinabox_asks_for_the_demo_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "ratinabox", None)  # makes `import ratinabox` fail
    with pytest.raises(ImportError, match=r'pip install "xcebra\[demo\]"'):
        ratinabox(duration=2.0, cache=False)


def test_verbose_shows_a_progress_bar(capsys):
    ratinabox(duration=2.0, cache=False, verbose=True)
    assert "ratinabox" in capsys.readouterr().err


def test_rates_do_not_depend_on_the_evaluation_chunk_size(monkeypatch):
    whole = ratinabox(**SMALL, cache=False)
    monkeypatch.setattr(rib, "_CHUNK", 37)
    assert_same(ratinabox(**SMALL, cache=False), whole)


# ----------------------------------------------------------------------------------------------
# The real rat's path (Sargolini et al. 2006, shipped in the ratinabox wheel)


def _sargolini_file() -> dict[str, np.ndarray]:
    from importlib import resources

    with resources.as_file(resources.files("ratinabox") / "data" / "sargolini.npz") as path, np.load(path) as raw:
        return {"t": raw["t"].copy(), "pos": raw["pos"].copy()}


def test_sargolini_path_is_the_recording_read_at_each_bin_end():
    data = ratinabox(trajectory="sargolini", **{**SMALL, "duration": 120.0}, cache=False)
    raw = _sargolini_file()
    ends = raw["t"][0] + np.arange(1, data.n_timepoints + 1) * 0.1
    # every 5th sample of the 50 Hz recording falls on a 0.1 s bin end: the values are the recording's own
    on_sample = np.searchsorted(raw["t"], ends - 1e-9)
    close = np.abs(raw["t"][np.minimum(on_sample, len(raw["t"]) - 1)] - ends) < 1e-6
    assert close.mean() > 0.9
    np.testing.assert_allclose(data.position[close], raw["pos"][on_sample[close]], atol=1e-6)
    # speed and head direction follow the path's finite differences
    step = np.diff(data.position.astype(np.float64), axis=0) / 0.1
    assert np.corrcoef(np.linalg.norm(step, axis=1), data.speed[1:])[0, 1] > 0.8
    heading = np.angle(np.exp(1j * (data.head_direction[1:] - np.arctan2(step[:, 1], step[:, 0]))))
    assert np.median(np.abs(heading)) < 0.5  # radians
    assert data.params["trajectory"] == "sargolini"


def test_sargolini_path_is_the_same_for_every_seed_and_the_cells_are_not():
    first = ratinabox(trajectory="sargolini", seed=1, **SMALL, cache=False)
    second = ratinabox(trajectory="sargolini", seed=2, **SMALL, cache=False)
    np.testing.assert_array_equal(first.position, second.position)
    assert not np.array_equal(first.rates, second.rates)
    simulated = ratinabox(seed=1, **SMALL, cache=False)
    assert not np.allclose(simulated.position, first.position)
    assert "trajectory" not in simulated.params  # earlier cache files of the simulated path stay valid


@pytest.mark.parametrize("kwargs, match", [
    (dict(trajectory="sargolini", duration=700.0), r"duration must be <= 599.6 s with trajectory='sargolini'.*got 700"),
    (dict(trajectory="real"), "trajectory must be one of 'simulated', 'sargolini'; got 'real'"),
])
def test_trajectory_errors(kwargs, match):
    with pytest.raises(ValueError, match=match):
        ratinabox(**{**SMALL, **kwargs}, cache=False)
