"""xcebra.datasets.io: named arrays from .npz, .npy, .h5 and .nwb files, with one-line errors."""

from __future__ import annotations

import datetime
import os

import numpy as np
import pytest

from xcebra.datasets.io import MissingKeyError, list_keys, load_arrays

h5py = pytest.importorskip("h5py")


@pytest.fixture
def arrays():
    rng = np.random.default_rng(0)
    return {"spikes": rng.poisson(1.0, size=(50, 6)).astype(np.float32),
            "pos": rng.normal(size=(50, 2)), "speed": rng.normal(size=50)}


# ---------------------------------------------------------------------------------------------- npz / npy


def test_npz_reads_the_requested_arrays_by_role(tmp_path, arrays):
    path = tmp_path / "rec.npz"
    np.savez(path, **arrays)
    out = load_arrays(path, {"neural": "spikes", "position": "pos"})
    assert list(out) == ["neural", "position"]
    np.testing.assert_array_equal(out["neural"], arrays["spikes"])
    np.testing.assert_array_equal(out["position"], arrays["pos"])
    assert out["neural"].dtype == np.float32
    assert list_keys(path) == ["pos", "speed", "spikes"]


def test_npz_missing_key_names_file_key_and_available_keys(tmp_path, arrays):
    path = tmp_path / "rec.npz"
    np.savez(path, **arrays)
    with pytest.raises(MissingKeyError, match=r"'.*rec\.npz' has no array 'spike' \(for neural\); "
                                              r"available: 'pos', 'speed', 'spikes'$") as info:
        load_arrays(path, {"neural": "spike"})
    assert isinstance(info.value, KeyError)
    assert "\n" not in str(info.value)


def test_npz_object_arrays_are_refused(tmp_path):
    path = tmp_path / "obj.npz"
    np.savez(path, a=np.array([{"x": 1}], dtype=object))
    with pytest.raises(ValueError, match="array 'a' holds Python objects, which are not read"):
        load_arrays(path, {"neural": "a"})


@pytest.mark.parametrize("name, content, message", [
    ("bad.npz", b"this is not a zip archive", r"cannot read '.*bad\.npz' as a \.npz archive: it is not a zip file"),
    ("bad.npy", b"garbage bytes", r"cannot read '.*bad\.npy' as a \.npy array: it does not start with the \.npy"),
    ("bad.h5", b"garbage bytes", r"cannot read '.*bad\.h5' as an HDF5 file"),
    ("truncated.npz", None, r"cannot read .*truncated\.npz"),
])
def test_corrupt_files_raise_one_line_value_errors(tmp_path, name, content, message):
    path = tmp_path / name
    if content is None:  # a real archive cut in half
        np.savez(path, spikes=np.zeros((200, 20)))
        data = path.read_bytes()
        path.write_bytes(data[: len(data) // 2])
    else:
        path.write_bytes(content)
    with pytest.raises(ValueError, match=message) as info:
        load_arrays(path, {"neural": "spikes"})
    assert "\n" not in str(info.value)


def test_missing_file_directory_and_unknown_suffix(tmp_path):
    with pytest.raises(ValueError, match=r"cannot read '.*nope\.npz': no such file"):
        load_arrays(tmp_path / "nope.npz", {"neural": "x"})
    (tmp_path / "dir.npz").mkdir()
    with pytest.raises(ValueError, match="it is a directory"):
        load_arrays(tmp_path / "dir.npz", {"neural": "x"})
    (tmp_path / "rec.csv").write_text("1,2\n")
    with pytest.raises(ValueError, match=r"unsupported file type '\.csv'; use one of \.npz, \.npy, \.h5"):
        load_arrays(tmp_path / "rec.csv", {"neural": "x"})


def test_keys_must_be_a_mapping_of_strings(tmp_path, arrays):
    path = tmp_path / "rec.npz"
    np.savez(path, **arrays)
    with pytest.raises(TypeError, match="keys must be a mapping"):
        load_arrays(path, ["spikes"])
    with pytest.raises(TypeError, match=r"keys\['neural'\] must be a non-empty string"):
        load_arrays(path, {"neural": ""})


def test_npy_single_array_and_lazy_memory_map(tmp_path, arrays):
    path = tmp_path / "spikes.npy"
    np.save(path, arrays["spikes"])
    eager = load_arrays(path, {"neural": "data"})["neural"]
    lazy = load_arrays(path, {"neural": "spikes"}, lazy=True)["neural"]  # the stem works too
    assert isinstance(lazy, np.memmap)
    np.testing.assert_array_equal(eager, lazy)
    with pytest.raises(MissingKeyError, match="has no array 'x' .*available: 'data'"):
        load_arrays(path, {"neural": "x"})
    assert list_keys(path) == ["data"]


# ---------------------------------------------------------------------------------------------- HDF5


@pytest.fixture
def h5_file(tmp_path, arrays):
    path = tmp_path / "rec.h5"
    with h5py.File(path, "w") as handle:
        handle["neural/spikes"] = arrays["spikes"]
        handle["behavior/pos"] = arrays["pos"]
        handle["types"] = np.array([b"grid"] * 3 + [b"place"] * 3)
    return path


def test_h5_nested_dataset_paths(h5_file, arrays):
    out = load_arrays(h5_file, {"neural": "neural/spikes", "position": "/behavior/pos"})
    assert isinstance(out["neural"], np.ndarray)
    np.testing.assert_array_equal(out["neural"], arrays["spikes"])
    np.testing.assert_array_equal(out["position"], arrays["pos"])
    assert list_keys(h5_file) == ["behavior/pos", "neural/spikes", "types"]


def test_h5_lazy_returns_datasets_that_stay_readable(h5_file, arrays):
    import gc

    out = load_arrays(h5_file, {"neural": "neural/spikes"}, lazy=True)
    gc.collect()  # the File object is gone; the dataset keeps the file open
    assert isinstance(out["neural"], h5py.Dataset)
    np.testing.assert_array_equal(out["neural"][10:20], arrays["spikes"][10:20])


def test_h5_strings_are_decoded(h5_file):
    out = load_arrays(h5_file, {"types": "types"}, lazy=True)
    assert out["types"].tolist() == ["grid"] * 3 + ["place"] * 3


def test_h5_missing_key_and_group_errors(h5_file):
    with pytest.raises(MissingKeyError, match=r"has no dataset 'spikes' \(for neural\); available: "
                                              r"'behavior/pos', 'neural/spikes', 'types'"):
        load_arrays(h5_file, {"neural": "spikes"})
    with pytest.raises(ValueError, match=r"'neural' is a group, not a dataset; datasets in it: 'neural/spikes'"):
        load_arrays(h5_file, {"neural": "neural"})


def test_h5_lazy_dataset_streams_through_transform_and_attribution(h5_file, arrays):
    import xcebra

    neural = arrays["spikes"]
    model = xcebra.XCEBRA([xcebra.Objective("time", dims=(0, 3), distribution="time", time_offset=2)],
                          model="offset5", hidden_units=8, output_dim=3, batch_size=16, max_steps=2,
                          random_state=0, verbose=False).fit(neural)
    lazy = load_arrays(h5_file, {"neural": "neural/spikes"}, lazy=True)["neural"]
    np.testing.assert_allclose(model.transform(lazy, batch_size=7), model.transform(neural), rtol=1e-5, atol=1e-6)
    a = model.attribution_map(lazy, method="jacobian", batch_size=9, verbose=False)
    b = model.attribution_map(neural, method="jacobian", verbose=False)
    np.testing.assert_allclose(a.values, b.values, rtol=1e-4, atol=1e-6)


# ---------------------------------------------------------------------------------------------- NWB


@pytest.fixture
def nwb_file(tmp_path, arrays):
    pynwb = pytest.importorskip("pynwb")
    from pynwb.behavior import Position

    nwbfile = pynwb.NWBFile(session_description="xcebra test", identifier="xcebra-test",
                            session_start_time=datetime.datetime(2024, 1, 1, tzinfo=datetime.timezone.utc))
    nwbfile.add_acquisition(pynwb.TimeSeries(name="spikes", data=arrays["spikes"], unit="count", rate=10.0))
    module = nwbfile.create_processing_module("behavior", "tracked behaviour")
    position = Position(name="Position")
    position.create_spatial_series(name="xy", data=arrays["pos"], reference_frame="box corner", rate=10.0)
    module.add(position)
    module.add(pynwb.TimeSeries(name="speed", data=arrays["speed"], unit="m/s", rate=10.0))
    nwbfile.add_acquisition(pynwb.TimeSeries(name="xy", data=arrays["pos"], unit="m", rate=10.0))
    path = tmp_path / "rec.nwb"
    with pynwb.NWBHDF5IO(str(path), "w") as io:
        io.write(nwbfile)
    return path


def test_nwb_timeseries_by_name_and_path(nwb_file, arrays):
    assert list_keys(nwb_file) == ["acquisition/spikes", "acquisition/xy", "processing/behavior/Position/xy",
                                   "processing/behavior/speed"]
    out = load_arrays(nwb_file, {"neural": "spikes", "position": "Position/xy", "speed": "processing/behavior/speed"})
    np.testing.assert_array_equal(out["neural"], arrays["spikes"])
    np.testing.assert_array_equal(out["position"], arrays["pos"])
    np.testing.assert_array_equal(out["speed"], arrays["speed"])


def test_nwb_lazy_ambiguous_and_missing(nwb_file, arrays):
    lazy = load_arrays(nwb_file, {"neural": "acquisition/spikes"}, lazy=True)["neural"]
    assert isinstance(lazy, h5py.Dataset)
    np.testing.assert_array_equal(lazy[5:9], arrays["spikes"][5:9])
    with pytest.raises(ValueError, match=r"'xy' is ambiguous; it matches 'acquisition/xy', "
                                         r"'processing/behavior/Position/xy'\. Give the full path"):
        load_arrays(nwb_file, {"position": "xy"})
    with pytest.raises(MissingKeyError, match=r"has no TimeSeries 'lfp' \(for neural\); available: "
                                              r"'acquisition/spikes'"):
        load_arrays(nwb_file, {"neural": "lfp"})


def test_nwb_corrupt_file(tmp_path):
    pytest.importorskip("pynwb")
    path = tmp_path / "bad.nwb"
    path.write_bytes(b"not hdf5")
    with pytest.raises(ValueError, match=r"cannot read '.*bad\.nwb' as an NWB file"):
        load_arrays(path, {"neural": "spikes"})


@pytest.mark.skipif(os.geteuid() == 0, reason="root can read files without permission")
def test_unreadable_file(tmp_path, arrays):
    path = tmp_path / "rec.npz"
    np.savez(path, **arrays)
    path.chmod(0)
    with pytest.raises(ValueError, match="permission denied"):
        load_arrays(path, {"neural": "spikes"})
