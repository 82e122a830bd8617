"""Recordings larger than memory: ``transform`` and ``attribution_map`` read memory-mapped arrays and h5py
datasets in batches, never the whole recording, and give the same numbers as on an in-memory array.

A wrapper that records every read (and refuses to be converted as a whole) proves the bound on the
rows read per batch, including for a sparse ``num_samples`` subsample of a long recording, whose sorted
positions span the whole recording but need only their own windows.
"""

from __future__ import annotations

from datetime import timedelta

import h5py
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from xcebra import Objective, XCEBRA
from xcebra.attribution.compute import read_windows

T, N = 5000, 20


class RecordedArray:
    """A (T, N) array-like that logs how many rows each read asks for and refuses to be read whole."""

    def __init__(self, array):
        self.array = array
        self.shape, self.dtype, self.ndim = array.shape, array.dtype, array.ndim
        self.reads: list[int] = []

    def __getitem__(self, key):
        if isinstance(key, slice):
            start, stop, step = key.indices(self.shape[0])
            assert step == 1
            self.reads.append(max(0, stop - start))
        else:
            key = np.asarray(key)
            assert key.ndim == 1 and np.all(np.diff(key) > 0), "fancy reads must be sorted and unique (h5py)"
            self.reads.append(len(key))
        return self.array[key]

    def __array__(self, *args, **kwargs):
        raise AssertionError("the whole recording was converted to an array")

    def __len__(self):
        return self.shape[0]


@pytest.fixture(scope="module")
def recording(tmp_path_factory):
    """The same (5000, 20) recording in memory, as an np.memmap (.npy) and as an h5py dataset."""
    directory = tmp_path_factory.mktemp("large")
    rng = np.random.default_rng(0)
    neural = (np.sin(np.linspace(0, 60, T))[:, None] * rng.normal(size=N) + 0.3 * rng.normal(size=(T, N)))
    neural = neural.astype(np.float32)
    mapped = np.lib.format.open_memmap(directory / "neural.npy", mode="w+", dtype=np.float32, shape=(T, N))
    mapped[:] = neural
    mapped.flush()
    del mapped
    with h5py.File(directory / "neural.h5", "w") as handle:
        handle.create_dataset("neural", data=neural, chunks=(256, N))
    h5 = h5py.File(directory / "neural.h5", "r")
    yield {"memory": neural, "memmap": np.load(directory / "neural.npy", mmap_mode="r"), "h5py": h5["neural"]}
    h5.close()


@pytest.fixture(scope="module")
def model(recording):
    neural = recording["memory"]
    return XCEBRA([Objective("time", dims=(0, 4), distribution="time", time_offset=3)], model="offset5",
                  hidden_units=8, output_dim=4, batch_size=64, max_steps=3, random_state=0,
                  verbose=False).fit(neural[:600])


@pytest.mark.parametrize("source", ["memmap", "h5py"])
def test_transform_reads_batches_and_matches_memory(model, recording, source):
    expected = model.transform(recording["memory"], batch_size=256)
    np.testing.assert_array_equal(model.transform(recording[source], batch_size=256), expected)
    np.testing.assert_allclose(model.transform(recording[source]), expected, rtol=1e-5, atol=1e-6)
    recorded = RecordedArray(recording[source])
    np.testing.assert_array_equal(model.transform(recorded, batch_size=256), expected)
    window = model.encoder_.window
    assert max(recorded.reads) <= 256 + window - 1 and sum(recorded.reads) < T + 20 * window


@pytest.mark.parametrize("source", ["memmap", "h5py"])
@pytest.mark.parametrize("num_samples", [None, 300])
def test_attribution_map_reads_batches_and_matches_memory(model, recording, source, num_samples):
    options = dict(num_samples=num_samples, batch_size=64, random_state=1, verbose=False)
    expected = model.attribution_map(recording["memory"], **options)
    result = model.attribution_map(recording[source], **options)
    np.testing.assert_array_equal(result.values, expected.values)
    np.testing.assert_array_equal(result.stderr, expected.stderr)
    assert result.n_timepoints == (num_samples or T - model.encoder_.window + 1)


def test_sparse_samples_read_only_their_windows(model, recording):
    """300 of 5000 points in batches of 32: each batch's sorted positions span ~all of the recording, but
    only its 32 windows are read (before the fix: up to the whole recording per batch)."""
    window = model.encoder_.window
    recorded = RecordedArray(recording["h5py"])
    sparse = model.attribution_map(recorded, num_samples=300, batch_size=32, random_state=2, verbose=False)
    assert len(recorded.reads) == 10  # one read per batch
    assert max(recorded.reads) <= 32 * window
    assert sum(recorded.reads) <= 300 * window
    # the same map as reading each batch's span whole (all points in one dense batch use a single slice)
    dense_reads = RecordedArray(recording["memory"])
    dense = model.attribution_map(dense_reads, num_samples=300, batch_size=300, random_state=2, verbose=False)
    np.testing.assert_allclose(sparse.values, dense.values, rtol=1e-5, atol=1e-7)


def test_dense_batches_read_one_slice(model, recording):
    window = model.encoder_.window
    recorded = RecordedArray(recording["memmap"])
    model.attribution_map(recorded, batch_size=500, verbose=False)
    assert all(reads <= 500 + window - 1 for reads in recorded.reads)
    assert sum(recorded.reads) <= T + len(recorded.reads) * window


@settings(max_examples=150, deadline=timedelta(seconds=2))
@given(data=st.data())
def test_read_windows_equals_direct_slicing_and_bounds_the_rows_read(data):
    n = data.draw(st.integers(1, 400))
    window = data.draw(st.integers(1, min(n, 12)))
    valid = n - window + 1
    positions = np.array(sorted(data.draw(st.sets(st.integers(0, valid - 1), min_size=1, max_size=40))))
    neural = np.arange(n * 3, dtype=np.float32).reshape(n, 3)
    recorded = RecordedArray(neural)
    windows = read_windows(recorded, positions, window)
    expected = np.stack([neural[p:p + window].T for p in positions])  # (B, N, window), as the encoder takes them
    np.testing.assert_array_equal(windows, expected)
    assert len(recorded.reads) == 1 and recorded.reads[0] <= 2 * len(positions) * window
