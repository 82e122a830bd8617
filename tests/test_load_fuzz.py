"""Model files shared between labs: ``XCEBRA.load`` never runs code from a file, and whatever the bytes,
it either returns exactly the model that was saved or raises a ``ValueError`` that says why; never another
exception, never a crash, never a hang, never a huge allocation.

The fuzzer starts from the bytes of a real small model file. Raw damage (truncation, flipped bytes,
garbage) is caught by the framing checks and the checksum; crafted files with a valid checksum (a buggy
writer, a hand edit, a hostile header) are caught by checking every header value against the tensors.
"""

from __future__ import annotations

import io
import json
import os
import pickle
import resource
import struct
import time
from datetime import timedelta

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, event, example, given, settings
from hypothesis import strategies as st

from xcebra import Objective, XCEBRA
from xcebra._files import read_tensors, write_tensors
from xcebra.estimator import MODEL_FORMAT

FUZZ = settings(max_examples=200, deadline=timedelta(seconds=3), suppress_health_check=list(HealthCheck))


def _fit_small_model() -> XCEBRA:
    rng = np.random.default_rng(0)
    position = np.cumsum(rng.normal(scale=0.1, size=(120, 2)), axis=0).astype(np.float32)
    neural = (np.tanh(position @ rng.normal(size=(2, 5))) + 0.1 * rng.normal(size=(120, 5))).astype(np.float32)
    model = XCEBRA([Objective("behavior", dims=(0, 2), distribution="time_delta", label="position"),
                    Objective("time", dims=(0, 4), distribution="time", time_offset=2)],
                   model="offset5", hidden_units=8, output_dim=4, batch_size=16, max_steps=3,
                   learn_temperature=True, regularizer_ramp=(1, 2), random_state=0, verbose=False)
    return model.fit(neural, position=position)


@pytest.fixture(scope="module")
def original(tmp_path_factory):
    """(bytes of a saved model file, the model loaded from it, a scratch path for fuzzed files)."""
    directory = tmp_path_factory.mktemp("fuzz")
    path = directory / "model.xcebra"
    _fit_small_model().save(path)
    return path.read_bytes(), XCEBRA.load(path), directory / "fuzzed.xcebra"


def _same_model(a: XCEBRA, b: XCEBRA) -> bool:
    sa, sb = a.encoder_.state_dict(), b.encoder_.state_dict()
    return (sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)
            and a.get_params() == b.get_params() and a.blocks_ == b.blocks_
            and a.temperatures_ == b.temperatures_ and a.n_features_in_ == b.n_features_in_
            and a.log_.keys() == b.log_.keys() and all(np.array_equal(a.log_[k], b.log_[k]) for k in a.log_)
            and a.label_names_ == b.label_names_ and a.label_dims_ == b.label_dims_
            and a.random_state_ == b.random_state_)


def _load_or_value_error(path, data: bytes):
    """Write ``data``, load it: returns the model or None (a ValueError); any other outcome fails the test."""
    path.write_bytes(data)
    started = time.perf_counter()
    try:
        model = XCEBRA.load(path)
    except ValueError as error:
        assert str(path) in str(error) or "model format version" in str(error), str(error)
        return None
    finally:
        assert time.perf_counter() - started < 2.0
    return model


# --- raw damage: always a ValueError, or the original model exactly -------------------------------

@FUZZ
@given(data=st.data())
def test_truncated_anywhere(original, data):
    raw, _, path = original
    size = data.draw(st.integers(0, len(raw) - 1))
    assert _load_or_value_error(path, raw[:size]) is None


@FUZZ
@given(data=st.data())
def test_flipped_bytes_anywhere(original, data):
    raw, model, path = original
    damaged = bytearray(raw)
    for _ in range(data.draw(st.integers(1, 3))):
        position = data.draw(st.integers(0, len(raw) - 1))
        damaged[position] ^= data.draw(st.integers(1, 255))
    loaded = _load_or_value_error(path, bytes(damaged))
    # a change can only go through where it means nothing (e.g. JSON whitespace turned into another space)
    assert loaded is None or _same_model(loaded, model)


@FUZZ
@given(header_size=st.integers(0, 2 ** 64 - 1))
def test_garbage_header_length(original, header_size):
    raw, model, path = original
    loaded = _load_or_value_error(path, struct.pack("<Q", header_size) + raw[8:])
    assert loaded is None or (raw[:8] == struct.pack("<Q", header_size) and _same_model(loaded, model))


@FUZZ
@given(data=st.binary(max_size=4096))
def test_random_bytes(original, data):
    assert _load_or_value_error(original[2], data) is None


@FUZZ
@given(prefix=st.integers(8, 200), payload=st.binary(min_size=1, max_size=512))
def test_valid_start_then_garbage(original, prefix, payload):
    raw, _, path = original
    assert _load_or_value_error(path, raw[:prefix] + payload) is None


# --- crafted files with a valid checksum: every header value is checked -------------------------

_JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-2 ** 70, 2 ** 70) | st.sampled_from([10 ** 9, 10 ** 12, 2 ** 63, -1, 0])
    | st.floats(allow_nan=True, allow_infinity=True) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=6)

_PARAM_KEYS = sorted(XCEBRA._get_param_names())
_OBJECTIVE_KEYS = ["name", "dims", "distribution", "label", "time_offset", "time_delta", "delta", "loss",
                   "temperature", "weight"]
_HEADER_KEYS = ["format_version", "xcebra_version", "params", "n_features_in", "random_state", "log_keys",
                "label_names", "label_dims"]


@st.composite
def _header_edit(draw):
    """(path into the header, new value or a deletion marker)."""
    where = draw(st.sampled_from(["header", "params", "objective"]))
    if where == "header":
        path = [draw(st.sampled_from(_HEADER_KEYS))]
    elif where == "params":
        path = ["params", draw(st.sampled_from(_PARAM_KEYS))]
    else:
        path = ["params", "objectives", draw(st.integers(0, 1)), draw(st.sampled_from(_OBJECTIVE_KEYS))]
    value = draw(st.one_of(st.just("<delete>"), _JSON, st.sampled_from(
        [10 ** 9, 10 ** 12, 2 ** 64, 3, 7, 16, 4, 5, "offset10", "offset1", [0, 2], [0, 10 ** 12], "euclidean"])))
    return path, value


def _apply(header: dict, path: list, value) -> dict:
    header = json.loads(json.dumps(header))
    node = header
    for key in path[:-1]:
        try:
            node = node[key]
        except (KeyError, IndexError, TypeError):
            return header  # an earlier edit removed or replaced this part
    if not isinstance(node, dict):
        return header
    if value == "<delete>":
        node.pop(path[-1], None)
    else:
        node[path[-1]] = value
    return header


def _resign(path, tensors, header):
    """Write a crafted file the way xcebra writes files: a valid checksum over the edited contents."""
    try:
        write_tensors(path, tensors, header)
    except ValueError:  # NaN / inf cannot be written as JSON: such a file cannot be crafted by write_tensors
        header = json.loads(json.dumps(header, allow_nan=True).replace("NaN", "null").replace("Infinity", "1e308"))
        write_tensors(path, tensors, header)


@settings(max_examples=200, deadline=timedelta(seconds=3), suppress_health_check=list(HealthCheck))
@given(edits=st.lists(_header_edit(), min_size=1, max_size=3))
@example(edits=[(["params", "min_temperature"], 3.402823466385289e+38)])  # found: float32 overflow in clamp_min
@example(edits=[(["params", "output_dim"], 10 ** 12)])
@example(edits=[(["params", "hidden_units"], 10 ** 9)])
@example(edits=[(["label_names"], 5)])
def test_crafted_header_values(original, edits):
    raw, model, path = original
    tensors, header = read_tensors_of(raw, path)
    for edit_path, value in edits:
        header = _apply(header, edit_path, value)
    _resign(path, tensors, header)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    started = time.perf_counter()
    try:
        loaded = XCEBRA.load(path)
    except ValueError as error:
        assert str(path) in str(error) or "model format version" in str(error), str(error)
        event(str(error).split(": ")[1][:40] if ": " in str(error) else str(error)[:40])  # --hypothesis-show-statistics
        loaded = None
    assert time.perf_counter() - started < 2.0
    # no huge allocation (ru_maxrss is in kB on Linux): a header claiming a huge model builds nothing
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - peak < 200_000
    if loaded is not None:  # a harmless edit (e.g. another learning_rate): the weights are the file's
        state = model.encoder_.state_dict()
        assert all(torch.equal(v, state[k]) for k, v in loaded.encoder_.state_dict().items())


@st.composite
def _tensor_edit(draw):
    kind = draw(st.sampled_from(["drop", "add", "reshape", "retype", "non-finite", "empty"]))
    return kind, draw(st.integers(0, 10 ** 6))


@settings(max_examples=60, deadline=timedelta(seconds=3), suppress_health_check=list(HealthCheck))
@given(edit=_tensor_edit())
def test_crafted_tensors(original, edit):
    raw, _, path = original
    tensors, header = read_tensors_of(raw, path)
    kind, pick = edit
    names = sorted(tensors)
    name = names[pick % len(names)]
    if kind == "drop":
        tensors.pop(name)
    elif kind == "add":
        tensors[f"model.encoder.extra{pick}"] = torch.zeros(2)
    elif kind == "reshape":
        tensors[name] = torch.zeros(tensors[name].numel() + 1 + pick % 7, dtype=tensors[name].dtype)
    elif kind == "retype":
        tensors[name] = tensors[name].to(torch.int32 if tensors[name].is_floating_point() else torch.float16)
    elif kind == "non-finite":
        tensors[name] = torch.full_like(tensors[name], float("nan") if pick % 2 else float("inf"))
        if name.startswith("log."):
            return  # a NaN in the loss log is a legitimate value (and allowed)
    else:
        tensors[name] = tensors[name][:0]
    write_tensors(path, tensors, header)
    with pytest.raises(ValueError, match="is not a consistent xcebra model file"):
        XCEBRA.load(path)


def read_tensors_of(raw: bytes, path):
    path.write_bytes(raw)
    return read_tensors(path, expected_format=MODEL_FORMAT)


@pytest.mark.parametrize("edit, message", [
    ({"hidden_units": 10 ** 9}, "its declared sizes cannot describe a model|weight 'encoder.net.0.weight' has shape"),
    ({"hidden_units": 10 ** 12}, "its declared sizes cannot describe a model"),
    ({"output_dim": 10 ** 12}, r"weight 'encoder.net.3.weight' has shape \(4, 8, 2\) and dtype torch.float32, but "
                               r"n_features_in=5, hidden_units=8, output_dim=1000000000000 need \(1000000000000, 8, 2\)"),
    ({"output_dim": 10 ** 12, "objectives": [{"name": "time", "dims": [0, 10 ** 12], "distribution": "time"}]},
     "its tensors do not match its header|its declared sizes cannot describe a model"),
    ({"model": "offset36"}, "its weights do not match model 'offset36'"),
    ({"objectives": [{"name": "time", "dims": [0, 4], "distribution": "time"}] * 2000},
     "objectives must be a list of 1 to 1024 entries"),
])
def test_a_header_claiming_a_huge_model_allocates_nothing(original, edit, message):
    raw, _, path = original
    tensors, header = read_tensors_of(raw, path)
    header["params"].update(edit)
    write_tensors(path, tensors, header)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    started = time.perf_counter()
    with pytest.raises(ValueError, match=message):
        XCEBRA.load(path)
    assert time.perf_counter() - started < 2.0
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - peak < 200_000


def test_unknown_format_version_and_missing_checksum(original):
    raw, _, path = original
    tensors, header = read_tensors_of(raw, path)
    write_tensors(path, tensors, dict(header, format_version=2))
    with pytest.raises(ValueError, match=r"has model format version 2; this xcebra \(.*\) reads version 1\. "
                                         r"Upgrade xcebra to read it"):
        XCEBRA.load(path)
    from safetensors.torch import save_file
    save_file(tensors, str(path), metadata={"xcebra": json.dumps(header)})  # no checksum: not written by xcebra
    with pytest.raises(ValueError, match="has no xcebra checksum"):
        XCEBRA.load(path)


# --- files that would run code ------------------------------------------------------------------

class _Marker:
    """Unpickling this creates a file: the proof that code from the file ran."""

    def __init__(self, path):
        self.path = str(path)

    def __reduce__(self):
        return (os.mkdir, (self.path,))


@pytest.mark.parametrize("kind", ["pickle-0", "pickle-2", "pickle-5", "torch.save", "torch.save-legacy",
                                  "pickle-after-safetensors-header"])
def test_a_file_whose_pickle_would_run_code_is_refused_and_nothing_runs(original, tmp_path, kind):
    raw = original[0]
    marker = tmp_path / "pwned"
    probe = tmp_path / "probe"
    pickle.loads(pickle.dumps(_Marker(probe)))  # the payload is live
    assert probe.exists()
    path = tmp_path / "shared-by-another-lab.xcebra"
    if kind.startswith("pickle-") and kind[-1].isdigit():
        path.write_bytes(pickle.dumps({"state_dict": _Marker(marker)}, protocol=int(kind[-1])))
    elif kind.startswith("torch.save"):
        buffer = io.BytesIO()
        torch.save({"model": _Marker(marker)}, buffer, _use_new_zipfile_serialization=kind == "torch.save")
        path.write_bytes(buffer.getvalue())
    else:  # a valid-looking start followed by a pickle instead of tensor data
        path.write_bytes(raw[:8 + struct.unpack("<Q", raw[:8])[0]] + pickle.dumps(_Marker(marker)))
    with pytest.raises(ValueError, match=f"'{path}'"):
        XCEBRA.load(path)
    assert not marker.exists()
