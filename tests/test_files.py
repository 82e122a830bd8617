"""Tests for xcebra._files: round trip, refusal of pickles and zips without running them, corrupt files, atomicity."""

from __future__ import annotations

import io
import json
import os
import pickle
import struct

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import xcebra._files as files
from xcebra._files import MAX_HEADER_BYTES, atomic_write_bytes, read_tensors, write_tensors

FORMAT = "xcebra-test"


def _tensors():
    generator = torch.Generator().manual_seed(0)
    return {
        "weight": torch.randn(3, 4, generator=generator),
        "double": torch.randn(5, dtype=torch.float64, generator=generator),
        "count": torch.arange(6, dtype=torch.int64).reshape(2, 3),
        "mask": torch.tensor([True, False, True]),
        "scalar": torch.tensor(2.5),
        "state": torch.randint(0, 255, (16,), dtype=torch.uint8, generator=generator),
    }


@pytest.fixture
def valid_file(tmp_path):
    path = tmp_path / "model.xcebra"
    write_tensors(path, _tensors(), {"format": FORMAT, "step": 3})
    return path


def test_round_trip(tmp_path):
    header = {"format": FORMAT, "params": {"objectives": [{"name": "time", "dims": [0, 4]}], "ramp": None},
              "value": 0.1, "unicode": "µ-s"}
    tensors = _tensors()
    tensors["strided"] = torch.arange(12.0).reshape(3, 4).T  # non-contiguous input
    write_tensors(tmp_path / "sub" / "f.safetensors", tensors, header)
    loaded, loaded_header = read_tensors(tmp_path / "sub" / "f.safetensors", expected_format=FORMAT)
    assert loaded_header == header
    assert loaded.keys() == tensors.keys()
    for key, value in tensors.items():
        assert loaded[key].dtype == value.dtype and torch.equal(loaded[key], value), key


def test_write_does_not_change_the_callers_tensors(tmp_path):
    tensor = torch.randn(3, requires_grad=True)
    before = tensor.detach().clone()
    write_tensors(tmp_path / "f", {"t": tensor}, {"format": FORMAT})
    assert tensor.requires_grad and torch.equal(tensor.detach(), before)


# --- foreign formats: refused, never executed ---------------------------------------------------

class _Marker:
    """Unpickling this object creates a directory: evidence that the file's code ran."""

    def __init__(self, path):
        self.path = str(path)

    def __reduce__(self):
        return (os.mkdir, (self.path,))


@pytest.mark.parametrize("protocol", [2, 3, 4, 5])
def test_pickle_is_refused_by_name(tmp_path, protocol):
    path = tmp_path / "model.pkl"
    path.write_bytes(pickle.dumps({"weight": np.zeros(3)}, protocol=protocol))
    with pytest.raises(ValueError, match="is a Python pickle, which can run code when loaded; xcebra only loads its own"):
        read_tensors(path, expected_format=FORMAT)


@pytest.mark.parametrize("legacy", [False, True])
def test_torch_save_is_refused_by_name(tmp_path, legacy):
    path = tmp_path / "model.pt"
    torch.save({"weight": torch.zeros(3)}, path, _use_new_zipfile_serialization=not legacy)
    kind = "a Python pickle" if legacy else r"a zip archive \(the format of torch.save\)"
    with pytest.raises(ValueError, match=kind):
        read_tensors(path, expected_format=FORMAT)


@pytest.mark.parametrize("protocol", [0, 1, 2, 3, 4, 5, "torch.save"])
def test_crafted_pickle_does_not_run(tmp_path, protocol):
    marker = tmp_path / "pwned"
    # the payload is live: plain unpickling does create the marker
    probe = tmp_path / "probe"
    pickle.loads(pickle.dumps(_Marker(probe), protocol=2))
    assert probe.exists()
    path = tmp_path / "evil.xcebra"
    if protocol == "torch.save":
        buffer = io.BytesIO()
        torch.save(_Marker(marker), buffer)
        path.write_bytes(buffer.getvalue())
    else:
        path.write_bytes(pickle.dumps(_Marker(marker), protocol=protocol))
    with pytest.raises(ValueError):
        read_tensors(path, expected_format=FORMAT)
    assert not marker.exists()


# --- malformed files ----------------------------------------------------------------------------

def test_missing_file(tmp_path):
    with pytest.raises(ValueError, match="cannot read .*nothing.xcebra"):
        read_tensors(tmp_path / "nothing.xcebra", expected_format=FORMAT)


@pytest.mark.parametrize("size", [0, 3, 7])
def test_shorter_than_the_header_size_field(tmp_path, size):
    path = tmp_path / "short"
    path.write_bytes(b"\x01" * size)
    with pytest.raises(ValueError, match=f"is truncated: {size} bytes, not a safetensors file"):
        read_tensors(path, expected_format=FORMAT)


@pytest.mark.parametrize("keep", [0.3, 0.6, 0.95])
def test_truncated_file(valid_file, keep):
    data = valid_file.read_bytes()
    valid_file.write_bytes(data[:int(len(data) * keep)])
    with pytest.raises(ValueError, match="(header claims|corrupted|not a valid xcebra file)"):
        read_tensors(valid_file, expected_format=FORMAT)


def test_truncated_in_the_tensor_data(valid_file):
    data = valid_file.read_bytes()
    valid_file.write_bytes(data[:-4])  # the header is intact, the last tensor is short
    with pytest.raises(ValueError, match="is corrupted"):
        read_tensors(valid_file, expected_format=FORMAT)


def test_flipped_header_size_bytes(valid_file):
    data = valid_file.read_bytes()
    valid_file.write_bytes(data[:8][::-1] + data[8:])  # little- read as big-endian: an absurd size
    with pytest.raises(ValueError, match="its header claims .* bytes but the file has"):
        read_tensors(valid_file, expected_format=FORMAT)


@pytest.mark.parametrize("delta", [-1, -5, 3])
def test_header_size_off_by_a_few(valid_file, delta):
    data = valid_file.read_bytes()
    (size,) = struct.unpack("<Q", data[:8])
    valid_file.write_bytes(struct.pack("<Q", size + delta) + data[8:])
    with pytest.raises(ValueError, match="not a valid xcebra file|corrupted"):
        read_tensors(valid_file, expected_format=FORMAT)


def test_header_larger_than_the_file(tmp_path):
    path = tmp_path / "big"
    path.write_bytes(struct.pack("<Q", 1000) + b"{}")
    with pytest.raises(ValueError, match="its header claims 1000 bytes but the file has 10"):
        read_tensors(path, expected_format=FORMAT)


def test_header_above_the_limit_is_refused_without_reading_it(tmp_path):
    path = tmp_path / "huge"
    path.write_bytes(struct.pack("<Q", MAX_HEADER_BYTES + 1) + b" " * 64)
    with pytest.raises(ValueError, match=f"its header claims {MAX_HEADER_BYTES + 1} bytes"):
        read_tensors(path, expected_format=FORMAT)


def _raw_file(path, header_bytes: bytes, payload: bytes = b""):
    path.write_bytes(struct.pack("<Q", len(header_bytes)) + header_bytes + payload)
    return path


@pytest.mark.parametrize("header, match", [
    (b"not json at all", "not a valid xcebra file"),
    (b"\xff\xfe\xfd", "not a valid xcebra file"),
    (b"[1, 2]", "header is not a JSON object"),
    (b"{}", "no xcebra header"),
    (json.dumps({"__metadata__": {"other": "1"}}).encode(), "no xcebra header"),
    (json.dumps({"__metadata__": ["xcebra"]}).encode(), "no xcebra header"),
    (json.dumps({"__metadata__": {"xcebra": "[1]"}}).encode(), "no xcebra header"),
    (json.dumps({"__metadata__": {"xcebra": "{bad"}}).encode(), "not a valid xcebra file"),
    (json.dumps({"__metadata__": {"xcebra": 5}}).encode(), "not a valid xcebra file"),
    (b"[" * 100_000, "not a valid xcebra file"),  # nesting deep enough to exhaust the JSON parser's recursion
])
def test_malformed_headers(tmp_path, header, match):
    with pytest.raises(ValueError, match=match):
        read_tensors(_raw_file(tmp_path / "f", header), expected_format=FORMAT)


def test_wrong_format_string(valid_file):
    with pytest.raises(ValueError, match="holds format 'xcebra-test', expected 'xcebra-model'"):
        read_tensors(valid_file, expected_format="xcebra-model")


def test_missing_format_entry(tmp_path):
    path = tmp_path / "f"
    write_tensors(path, {"a": torch.zeros(1)}, {"step": 1})
    with pytest.raises(ValueError, match="holds format None, expected 'xcebra-test'"):
        read_tensors(path, expected_format=FORMAT)


def test_tensor_entries_pointing_outside_the_data(tmp_path):
    header = {"__metadata__": {"xcebra": json.dumps({"format": FORMAT})},
              "w": {"dtype": "F32", "shape": [1000, 1000], "data_offsets": [0, 4_000_000]}}
    path = _raw_file(tmp_path / "f", json.dumps(header).encode(), b"\x00" * 16)
    with pytest.raises(ValueError, match="is corrupted"):
        read_tensors(path, expected_format=FORMAT)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(position=st.integers(0, 10_000), value=st.integers(0, 255))
def test_any_single_byte_change_loads_or_raises_value_error(valid_file, position, value):
    data = bytearray(valid_file.read_bytes())
    data[position % len(data)] = value
    corrupt = valid_file.with_name("corrupt")
    corrupt.write_bytes(bytes(data))
    try:
        tensors, header = read_tensors(corrupt, expected_format=FORMAT)
    except ValueError:
        return  # the only exception a malformed file may raise
    # a change that still parses hit tensor bytes or a header byte that keeps it valid
    assert header["format"] == FORMAT and all(isinstance(t, torch.Tensor) for t in tensors.values())


# --- atomic writes ------------------------------------------------------------------------------

def test_atomic_write_replaces_whole_file_and_leaves_no_temporaries(tmp_path):
    path = tmp_path / "out.bin"
    atomic_write_bytes(path, b"first")
    atomic_write_bytes(path, b"second")
    assert path.read_bytes() == b"second"
    assert os.listdir(tmp_path) == ["out.bin"]


@pytest.mark.parametrize("failing", ["fsync", "replace"])
def test_failed_write_keeps_the_old_file_and_cleans_up(tmp_path, monkeypatch, failing):
    path = tmp_path / "out.bin"
    atomic_write_bytes(path, b"old contents")

    def boom(*args, **kwargs):
        raise OSError("simulated crash")

    monkeypatch.setattr(files.os, failing, boom)
    with pytest.raises(OSError, match="simulated crash"):
        write_tensors(path, {"a": torch.zeros(100)}, {"format": FORMAT})
    monkeypatch.undo()
    assert path.read_bytes() == b"old contents"
    assert os.listdir(tmp_path) == ["out.bin"]
