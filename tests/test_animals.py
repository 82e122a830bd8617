"""Tests for xcebra.datasets.animals: several simulated animals, each with its own seed, cells and path."""

from __future__ import annotations

import importlib

import numpy as np
import pytest

pytest.importorskip("ratinabox")
rib = importlib.import_module("xcebra.datasets.ratinabox")  # the module (datasets.ratinabox may be the function)
from xcebra.datasets import ratinabox_animals  # noqa: E402
from xcebra.datasets.animals import DEFAULT_CELL_RANGE  # noqa: E402

FIELDS = ("spikes", "rates", "position", "head_direction", "speed", "time", "cell_types")
SHORT = dict(duration=20.0, cache=False)
#: small populations for the tests that choose their own counts
SMALL_COUNTS = [{"grid": 3, "head_direction": 2, "place": 2, "speed": 2},
                {"grid": 0, "head_direction": 4, "place": 5, "speed": 1}]


@pytest.fixture(scope="module")
def animals():
    """The default four animals, 20 s each."""
    return ratinabox_animals(**SHORT)


def counts(data) -> dict[str, int]:
    return {t: int(np.sum(data.cell_types == t)) for t in rib.CELL_TYPES}


def assert_same(a, b) -> None:
    for name in FIELDS:
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name), err_msg=name)
    assert a.params == b.params


# ----------------------------------------------------------------------------------------------
# Contents


def test_default_animals_have_different_neuron_counts_and_mixes(animals):
    assert len(animals) == 4
    assert all(isinstance(a, rib.RatInABoxData) for a in animals)
    n_neurons = [a.n_neurons for a in animals]
    assert len(set(n_neurons)) == 4, n_neurons
    mixes = [tuple(counts(a).values()) for a in animals]
    assert len(set(mixes)) == 4
    low, high = DEFAULT_CELL_RANGE
    for a in animals:
        assert all(low <= n <= high for n in counts(a).values()), counts(a)
        assert a.spikes.shape == (200, a.n_neurons) and a.position.shape == (200, 2)
        # the counts in params are the cells the animal has
        assert {t: a.params[f"n_{t}"] for t in rib.CELL_TYPES} == counts(a)


def test_each_animal_has_its_own_seed_cells_and_path(animals):
    seeds = [a.params["seed"] for a in animals]
    assert len(set(seeds)) == 4 and all(0 <= s < 2**32 for s in seeds)
    # animal 0 runs the real path, the others their own simulated paths
    assert [a.params.get("trajectory", "simulated") for a in animals] == ["sargolini"] + ["simulated"] * 3
    for i in range(4):
        for j in range(i + 1, 4):
            assert not np.allclose(animals[i].position, animals[j].position), (i, j)


def test_every_animal_is_the_recording_its_params_describe(animals):
    for a in animals:
        assert_same(a, rib.ratinabox(**a.params, cache=False))


def test_same_arguments_give_identical_animals(animals):
    again = ratinabox_animals(**SHORT)
    for a, b in zip(animals, again):
        assert_same(a, b)


def test_animal_i_does_not_depend_on_the_number_of_animals(animals):
    first_two = ratinabox_animals(n_animals=2, **SHORT)
    for a, b in zip(animals[:2], first_two):
        assert_same(a, b)


def test_another_seed_gives_other_animals(animals):
    other = ratinabox_animals(n_animals=2, seed=1, **SHORT)
    assert [a.params["seed"] for a in other] != [a.params["seed"] for a in animals[:2]]
    assert not np.allclose(other[1].position, animals[1].position)


def test_real_trajectory_animal_follows_the_recording():
    duration = 30.0
    data = ratinabox_animals(n_animals=3, duration=duration, cell_counts=SMALL_COUNTS + SMALL_COUNTS[:1],
                             real_trajectories=(1, 2), cache=False)
    reference = rib.ratinabox(trajectory="sargolini", duration=duration, n_grid=1, n_head_direction=0, n_place=0,
                              n_speed=0, grid_modules=1, cache=False)
    for real in data[1:]:
        np.testing.assert_array_equal(real.position, reference.position)
        assert real.params["trajectory"] == "sargolini"
    assert not np.allclose(data[0].position, reference.position)
    # two real-path animals share the path, not the cells
    assert data[1].params["seed"] != data[2].params["seed"]


def test_real_trajectory_duration_is_capped_at_the_recording_length(monkeypatch):
    calls = []

    def fake_ratinabox(**kwargs):  # records the arguments instead of simulating 600 s
        calls.append(kwargs)
        return kwargs

    monkeypatch.setattr("xcebra.datasets.animals.ratinabox", fake_ratinabox)
    ratinabox_animals(n_animals=2, duration=800.0, cell_counts=SMALL_COUNTS, cache=False)
    assert calls[0]["duration"] == rib.SARGOLINI_DURATION_S and calls[0]["trajectory"] == "sargolini"
    assert calls[1]["duration"] == 800.0 and "trajectory" not in calls[1]
    calls.clear()
    ratinabox_animals(n_animals=2, duration=800.0, cell_counts=SMALL_COUNTS, real_trajectories=np.array([1]))
    assert [c.get("trajectory") for c in calls] == [None, "sargolini"]  # indices as a numpy array work too


def test_given_cell_counts_and_no_real_path():
    data = ratinabox_animals(n_animals=2, cell_counts=SMALL_COUNTS, real_trajectories=(), grid_modules=2,
                             duration=5.0, cache=False)
    assert [counts(a) for a in data] == SMALL_COUNTS
    assert [a.n_neurons for a in data] == [9, 10]
    assert all("trajectory" not in a.params for a in data)


def test_missing_cell_types_have_no_cells():
    (data,) = ratinabox_animals(n_animals=1, cell_counts=[{"place": 3}], real_trajectories=(), duration=2.0,
                                cache=False)
    assert counts(data) == {"grid": 0, "head_direction": 0, "place": 3, "speed": 0}


def test_animals_are_cached_one_file_each(tmp_path):
    first = ratinabox_animals(n_animals=2, cell_counts=SMALL_COUNTS, grid_modules=1, duration=3.0, cache=tmp_path)
    assert len(list(tmp_path.glob("ratinabox_*.npz"))) == 2
    for a, b in zip(first, ratinabox_animals(n_animals=2, cell_counts=SMALL_COUNTS, grid_modules=1, duration=3.0,
                                             cache=tmp_path)):
        assert_same(a, b)


# ----------------------------------------------------------------------------------------------
# Arguments


@pytest.mark.parametrize("kwargs, error, match", [
    (dict(n_animals=0), ValueError, "n_animals must be >= 1; got 0"),
    (dict(n_animals=2.0), TypeError, "n_animals must be an integer; got 2.0 of type float"),
    (dict(duration=0.0), ValueError, "duration must be > 0.0; got 0.0"),
    (dict(dt=-0.1), ValueError, r"dt must be > 0.0; got -0.1"),
    (dict(duration=1.0, dt=2.0), ValueError, r"dt must be <= the shortest recording \(1.0 s\).*got dt=2.0"),
    (dict(seed=-1), ValueError, "seed must be >= 0; got -1"),
    (dict(noise=-0.5), ValueError, "noise must be >= 0.0; got -0.5"),
    (dict(grid_modules=0), ValueError, "grid_modules must be >= 1; got 0"),
    (dict(n_animals=2, cell_counts=SMALL_COUNTS[:1]), ValueError,
     "cell_counts has 1 entries but n_animals is 2; give one dict of cell counts per animal"),
    (dict(n_animals=1, cell_counts={"grid": 3}), TypeError, "cell_counts must be None or a sequence of 1 dicts"),
    (dict(n_animals=1, cell_counts=[5]), TypeError, r"cell_counts\[0\] must be a dict of cell counts"),
    (dict(n_animals=2, cell_counts=[SMALL_COUNTS[0], {"grid": 4, "border": 3}]), ValueError,
     r"cell_counts\[1\] has unknown cell type\(s\) 'border'; the known cell types are 'grid', 'head_direction', "
     r"'place', 'speed'"),
    (dict(n_animals=1, cell_counts=[{"grid": -1}]), ValueError, r"cell_counts\[0\]\['grid'\] must be >= 0; got -1"),
    (dict(n_animals=1, cell_counts=[{"place": 2.5}]), TypeError, r"cell_counts\[0\]\['place'\] must be an integer"),
    (dict(n_animals=1, cell_counts=[{"grid": 0, "place": 0}]), ValueError,
     r"cell_counts\[0\] must give animal 0 at least one cell"),
    (dict(n_animals=2, cell_counts=SMALL_COUNTS, grid_modules=4), ValueError,
     r"grid_modules must be <= the number of grid cells of every animal that has some \(animal 0 has 3\); got 4"),
    (dict(n_animals=2, real_trajectories=(2,)), ValueError, r"real_trajectories\[0\] must be <= 1; got 2"),
    (dict(n_animals=2, real_trajectories=(-1,)), ValueError, r"real_trajectories\[0\] must be >= 0; got -1"),
    (dict(n_animals=2, real_trajectories=(1, 1)), ValueError,
     r"real_trajectories must not repeat an animal; got \[1, 1\] \(repeated: \[1\]\)"),
    (dict(real_trajectories=0), TypeError, "real_trajectories must be a sequence of animal indices, e.g. "),
])
def test_bad_arguments_name_the_argument(kwargs, error, match, monkeypatch):
    def no_simulation(**_):
        raise AssertionError("an argument error must be raised before anything is simulated")

    monkeypatch.setattr("xcebra.datasets.animals.ratinabox", no_simulation)
    with pytest.raises(error, match=match):
        ratinabox_animals(**{"duration": 5.0, "cache": False, **kwargs})
