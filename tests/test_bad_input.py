"""Bad input at the front door: every mistake ends in one clear error that names the argument, the value
and what was expected (the command line shows these messages as they are).

Each case matches the whole meaningful text of the message, so that a regression in wording is caught.
"""

from __future__ import annotations

import re

import numpy as np
import pytest

import xcebra
from xcebra import Objective, XCEBRA

T, N = 120, 5


def _objectives(offset=2):
    return [Objective("behavior", dims=(0, 2), distribution="time_delta", label="position"),
            Objective("time", dims=(0, 4), distribution="time", time_offset=offset)]


def _discrete():
    return [Objective("trial", dims=(0, 2), distribution="discrete", label="trial"),
            Objective("time", dims=(0, 4), distribution="time", time_offset=2)]


def _model(objectives=None, **kwargs):
    params = dict(objectives=_objectives() if objectives is None else objectives, model="offset5", hidden_units=8, output_dim=4,
                  batch_size=16, max_steps=2, regularizer_weight=0.0, random_state=0, verbose=False)
    params.update(kwargs)
    return XCEBRA(**params)


@pytest.fixture(scope="module")
def recording():
    rng = np.random.default_rng(0)
    neural = rng.normal(size=(T, N)).astype(np.float32)
    position = np.cumsum(rng.normal(size=(T, 2)), axis=0).astype(np.float32)
    trial = np.repeat(np.arange(4), T // 4)
    return neural, position, trial


@pytest.fixture(scope="module")
def fitted(recording):
    neural, position, _ = recording
    return _model().fit(neural, position=position)


def _exact(text: str) -> str:
    return "^" + re.escape(text) + "$"


def _with(array, row, column, value):
    array = np.array(array, copy=True)
    array[row, column] = value
    return array


# --- neural and labels at fit --------------------------------------------------------------------

@pytest.mark.parametrize("case, error, message", [
    ("nan in neural", ValueError,
     "neural contains 1 non-finite value(s); the first (NaN) is at row 7, column 3. "
     "Remove or interpolate them before fitting"),
    ("inf in neural", ValueError,
     "neural contains 2 non-finite value(s); the first (infinite) is at row 9, column 0. "
     "Remove or interpolate them before fitting"),
    ("nan in label", ValueError,
     "label 'position' contains 1 non-finite value(s); the first (NaN) is at row 11, column 1. "
     "Remove or interpolate them before fitting"),
    ("short label", ValueError, "label 'position' has 119 rows but neural has 120; they must match in time"),
    ("long integer label", ValueError, "label 'position' has 121 rows but neural has 120; they must match in time"),
    ("3-D neural", ValueError, "neural must be a 2-D array; got shape (1, 120, 5) (expected (time points, neurons))"),
    ("1-D neural", ValueError, "neural must be a 2-D array; got shape (120,) (expected (time points, neurons))"),
    ("empty neural", ValueError, "neural must have at least one time point and one neuron; got shape (0, 5)"),
    ("no neurons", ValueError, "neural must have at least one time point and one neuron; got shape (120, 0)"),
    ("empty list", ValueError, "neural must be a 2-D array; got shape (0,) (expected (time points, neurons))"),
    ("string neural", TypeError, "neural must hold numbers; got an array of dtype <U1"),
    ("string label", TypeError, "label 'position' must hold numbers; got an array of dtype <U4"),
    ("object label", TypeError, "label 'position' must hold numbers; got an array of dtype object"),
    ("scalar label", ValueError,
     "label 'position' must be a 1-D or 2-D array; got shape () (expected (time points,) or (time points, dimensions))"),
    ("3-D label", ValueError,
     "label 'position' must be a 1-D or 2-D array; got shape (120, 2, 1) "
     "(expected (time points,) or (time points, dimensions))"),
    ("label without columns", ValueError, "label 'position' has shape (120, 0): no dimensions; it needs at least one column"),
])
def test_data_errors_at_fit(recording, case, error, message):
    neural, position, _ = recording
    inputs = {
        "nan in neural": (_with(neural, 7, 3, np.nan), position),
        "inf in neural": (_with(_with(neural, 9, 0, np.inf), 30, 1, -np.inf), position),
        "nan in label": (neural, _with(position, 11, 1, np.nan)),
        "short label": (neural, position[:-1]),
        "long integer label": (neural, np.arange(T + 1)),
        "3-D neural": (neural[None], position),
        "1-D neural": (neural[:, 0], position),
        "empty neural": (neural[:0], position[:0]),
        "no neurons": (neural[:, :0], position),
        "empty list": ([], position),
        "string neural": (np.full((T, N), "a"), position),
        "string label": (neural, np.array(["left", "rite"] * (T // 2))),
        "object label": (neural, np.array([None] * T)),
        "scalar label": (neural, 3.0),
        "3-D label": (neural, position[:, :, None]),
        "label without columns": (neural, position[:, :0]),
    }[case]
    with pytest.raises(error, match=_exact(message)):
        _model().fit(inputs[0], position=inputs[1])


def test_recording_shorter_than_the_window(recording):
    neural, position, _ = recording
    with pytest.raises(ValueError, match=_exact(
            "neural has 5 time points but model 'offset5' needs windows of 5 and at least one more time point; "
            "got T=5")):
        _model().fit(neural[:5], position=position[:5])


def test_recording_shorter_than_the_window_plus_the_time_offset(recording):
    neural, position, _ = recording
    with pytest.raises(ValueError, match=_exact(
            "neural has 20 time points but model 'offset5' needs windows of 5 and Objective 'time' pairs time "
            "point t with t + 16 (time_offset=16), so T must be at least 21; got T=20")):
        _model(_objectives(offset=16), batch_size=2).fit(neural[:20], position=position[:20])
    # one more time point is enough (one reference)
    _model(_objectives(offset=16), batch_size=1 + 1, max_steps=1).fit(neural[:22], position=position[:22])


def test_time_delta_longer_than_the_label(recording):
    neural, position, _ = recording
    objectives = [Objective("behavior", dims=(0, 2), distribution="time_delta", label="position", time_delta=30),
                  Objective("time", dims=(0, 4), distribution="time", time_offset=2)]
    with pytest.raises(ValueError, match=_exact(
            "Objective 'behavior' (label 'position'): time_delta=30 needs more than 30 time points; the label has 25")):
        _model(objectives, batch_size=4).fit(neural[:25], position=position[:25])


def test_temperatures_beyond_float32(recording):
    neural, position, _ = recording
    with pytest.raises(ValueError, match=_exact(
            "The 'min_temperature' parameter of XCEBRA must be at most 3.403e+38 (the largest float32). "
            "Got 1e+39 instead.")):
        _model(min_temperature=1e39).fit(neural, position=position)


def test_batch_size_larger_than_the_usable_time_points(recording):
    neural, position, _ = recording
    with pytest.raises(ValueError, match=_exact(
            "The 'batch_size' parameter of XCEBRA must be at most the number of usable reference time points "
            "(114 of T=120, after the encoder's window of 5 and the objectives' offsets). Got 115 instead.")):
        _model(batch_size=115).fit(neural, position=position)


# --- objectives and their labels -----------------------------------------------------------------

@pytest.mark.parametrize("objectives, output_dim, error, message", [
    ([Objective("a", dims=(0, 2), distribution="time"), Objective("b", dims=(3, 4), distribution="time")], 4,
     ValueError, "embedding dims 2..2 are not covered by any objective (output_dim=4); objective slices must cover "
                 "0..output_dim without gaps"),
    ([Objective("a", dims=(0, 3), distribution="time"), Objective("b", dims=(2, 4), distribution="time")], 4,
     ValueError, "Objectives 'a' (0, 3) and 'b' (2, 4) overlap partially; slices must be disjoint or nested "
                 "(one inside the other)"),
    ([Objective("outer", dims=(0, 6), distribution="time"), Objective("inner", dims=(2, 4), distribution="time")], 6,
     ValueError, "Objective 'outer' would own two separate blocks of the embedding; place nested objectives at the "
                 "start or end of the slice that contains them"),
    ([Objective("a", dims=(0, 4), distribution="time"), Objective("b", dims=(0, 4), distribution="time")], 4,
     ValueError, "Objectives 'a' and 'b' have the same dims (0, 4); give each its own slice"),
    (_objectives(), 3, ValueError, "Objective 'time' has dims (0, 4) but output_dim is 3; dims must lie within 0..3"),
    # a typo in output_dim fails at once (no loop over a trillion dimensions)
    (_objectives(), 10 ** 12, ValueError,
     "embedding dims 4..999999999999 are not covered by any objective (output_dim=1000000000000); objective slices "
     "must cover 0..output_dim without gaps"),
    ("time", 4, ValueError, "The 'objectives' parameter of XCEBRA must be a list of xcebra.Objective. "
                            "Got 'time' instead."),
    ([], 4, ValueError, "objectives must contain at least one Objective; got none"),
])
def test_objective_layout_errors(recording, objectives, output_dim, error, message):
    neural, position, _ = recording
    with pytest.raises(error, match=_exact(message)):
        _model(objectives, output_dim=output_dim).fit(neural, position=position)


def test_objective_label_missing_from_fit(recording):
    neural, position, _ = recording
    with pytest.raises(ValueError, match=_exact(
            "Objective 'behavior' needs label 'position', which was not passed to fit (labels given: 'pos'); "
            "call fit(neural, position=...)")):
        _model().fit(neural, pos=position)
    with pytest.raises(ValueError, match=re.escape("(labels given: none)")):
        _model().fit(neural)


@pytest.mark.parametrize("label, message", [
    (lambda trial: trial.astype(np.float64),
     "Objective 'trial' uses distribution 'discrete', which needs integer class labels, but label 'trial' has dtype "
     "float64; its values are whole numbers, so pass trial=trial.astype(int)"),
    (lambda trial: trial + 0.5,
     "Objective 'trial' uses distribution 'discrete', which needs integer class labels, but label 'trial' has dtype "
     "float64; discretise it first (e.g. np.digitize), or use distribution 'time_delta' or 'delta_normal' for a "
     "continuous label"),
    (lambda trial: list(trial.astype(np.float32)),
     "Objective 'trial' uses distribution 'discrete', which needs integer class labels, but label 'trial' has dtype "
     "float32; its values are whole numbers, so pass trial=trial.astype(int)"),
    (lambda trial: np.stack([trial, trial], axis=1),
     "Objective 'trial' uses distribution 'discrete', which needs one integer class per time point (shape (T,)), "
     "but label 'trial' has shape (120, 2)"),
    (lambda trial: np.where(np.arange(T) == 60, 9, trial),
     "Objective 'trial' (label 'trial'): discrete label value(s) [9] occur at only one valid time point, so they "
     "have no positive; merge or drop them"),
])
def test_discrete_label_that_is_not_integer_classes(recording, label, message):
    neural, _, trial = recording
    with pytest.raises(ValueError, match=_exact(message)):
        _model(_discrete()).fit(neural, trial=label(trial))


def test_discrete_accepts_integer_and_boolean_labels(recording):
    neural, _, trial = recording
    _model(_discrete(), max_steps=1).fit(neural, trial=trial.astype(np.int16))
    _model(_discrete(), max_steps=1).fit(neural, trial=trial % 2 == 0)


# --- checkpoint arguments ------------------------------------------------------------------------

def test_checkpoint_arguments(recording, tmp_path):
    neural, position, _ = recording
    with pytest.raises(ValueError, match=_exact("checkpoint_every must be an int >= 1; got 0")):
        _model().fit(neural, position=position, checkpoint_dir=tmp_path, checkpoint_every=0)
    a_file = tmp_path / "not-a-dir"
    a_file.write_text("x")
    with pytest.raises(ValueError, match=_exact(
            f"checkpoint_dir {str(a_file)!r} exists and is not a directory; pass a directory")):
        _model().fit(neural, position=position, checkpoint_dir=a_file)
    with pytest.raises(ValueError, match=_exact(
            f"checkpoint_dir {str(a_file / 'sub')!r} cannot be created: Not a directory")):
        _model().fit(neural, position=position, checkpoint_dir=a_file / "sub")
    with pytest.raises(ValueError, match=_exact("checkpoint_dir must be a path (str or os.PathLike); got 5")):
        _model().fit(neural, position=position, checkpoint_dir=5)


# --- transform and attribution_map on new data ---------------------------------------------------

@pytest.mark.parametrize("method", ["transform", "attribution_map"])
@pytest.mark.parametrize("case, error, message", [
    ("fewer neurons", ValueError, "neural has 3 neurons but the model was fit on 5; they must match"),
    ("more neurons", ValueError, "neural has 6 neurons but the model was fit on 5; they must match"),
    ("3-D", ValueError, "neural must be a 2-D array (time points, neurons); got shape (1, 120, 5)"),
    ("empty", ValueError, "neural must have at least one time point; got shape (0, 5)"),
    ("strings", TypeError, "neural must hold numbers; got an array of dtype <U1"),
])
def test_new_data_that_does_not_match_the_model(fitted, recording, method, case, error, message):
    neural = recording[0]
    bad = {"fewer neurons": neural[:, :3], "more neurons": np.hstack([neural, neural[:, :1]]), "3-D": neural[None],
           "empty": neural[:0], "strings": np.full((T, N), "a")}[case]
    with pytest.raises(error, match=_exact(message)):
        getattr(fitted, method)(bad)


def test_non_finite_values_in_new_data_are_located_in_the_users_rows(fitted, recording):
    neural = _with(recording[0], 97, 4, np.nan)
    with pytest.raises(ValueError, match=_exact(
            "neural (rows 78..119) contains 1 non-finite value(s); the first (NaN) is at row 97, column 4. "
            "Remove or interpolate them first")):
        fitted.transform(neural, batch_size=40)  # third batch: rows 80..119 plus the window's 2 frames before
    with pytest.raises(ValueError, match=_exact(
            "neural (rows 80..99) contains 1 non-finite value(s); the first (NaN) is at row 97, column 4. "
            "Remove or interpolate them first")):
        fitted.attribution_map(neural, batch_size=16, verbose=False)  # positions 80..95: windows reach row 99


def test_recording_shorter_than_the_window_in_attribution(fitted, recording):
    with pytest.raises(ValueError, match=_exact("neural has 3 time points but the encoder needs windows of 5")):
        fitted.attribution_map(recording[0][:3], verbose=False)


# --- ground truth for scores ---------------------------------------------------------------------

@pytest.fixture(scope="module")
def amap(fitted, recording):
    return fitted.attribution_map(recording[0], num_samples=30, verbose=False)


@pytest.mark.parametrize("call, truth, error, message", [
    ("score", np.zeros((3, N), bool), ValueError,
     "ground_truth has shape (3, 5); expected (4, 5) (per entry) or (2, 5) (per block)"),
    ("score", np.zeros((4, N)), TypeError,
     "ground_truth must be a boolean array (True = connected); got dtype float64. Convert it explicitly, "
     "e.g. ground_truth != 0"),
    ("score", np.zeros((4, N), bool), ValueError,
     "ground_truth must contain both True and False entries to compute an AUC"),
    ("attribution_auc", np.zeros((4, N + 1), bool), ValueError,
     "ground_truth has shape (4, 6) but the attribution map has shape (4, 5); they must match"),
    ("attribution_auc", np.eye(4, N, dtype=int), TypeError,
     "ground_truth must be a boolean array (True = connected); got dtype int64. Convert it explicitly, "
     "e.g. ground_truth != 0"),
    ("block_auc", np.zeros((3, N), bool), ValueError,
     "block_truth has shape (3, 5) but the attribution map has shape (2, 5); they must match"),
    ("block_auc", np.zeros((2, N), np.float32), TypeError,
     "block_truth must be a boolean array (True = connected); got dtype float32. Convert it explicitly, "
     "e.g. block_truth != 0"),
    ("gap", np.zeros((N, 4), bool), ValueError,
     "ground_truth has shape (5, 4) but the attribution map has shape (4, 5); they must match"),
])
def test_ground_truth_of_the_wrong_shape_or_dtype(amap, call, truth, error, message):
    with pytest.raises(error, match=_exact(message)):
        if call == "score":
            amap.score(truth)
        else:
            getattr(xcebra.metrics, call)(amap, truth)


def test_non_finite_attribution_values_are_refused():
    values = np.full((2, 3), np.nan)
    truth = np.array([[True, False, True], [False, True, False]])
    for call in (xcebra.metrics.attribution_auc, xcebra.metrics.gap, xcebra.metrics.block_auc):
        with pytest.raises(ValueError, match=_exact("values contain NaN or infinite entries")):
            call(values, truth)


def test_other_array_likes_are_read_like_numpy_arrays(fitted, recording):
    import torch
    neural = recording[0]
    expected = fitted.transform(neural)
    np.testing.assert_array_equal(fitted.transform(torch.from_numpy(neural)), expected)
    np.testing.assert_array_equal(fitted.transform(neural.tolist()), expected)
    sparse = dict(num_samples=5, random_state=0, verbose=False)  # few windows far apart: read by fancy index
    np.testing.assert_array_equal(fitted.attribution_map(torch.from_numpy(neural), **sparse).values,
                                  fitted.attribution_map(neural, **sparse).values)
    with pytest.raises(TypeError, match=_exact("neural must hold numbers; got an array of dtype torch.complex64")):
        fitted.transform(torch.zeros((T, N), dtype=torch.complex64))
