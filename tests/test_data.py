"""Tests for xcebra.data (TimeSeries validation, sliding windows as views) and xcebra._validation."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from xcebra._validation import as_float_array, check_finite, check_float, check_int, check_option
from xcebra.data import TimeSeries, sliding_windows


# --- sliding windows ---------------------------------------------------------------------------

@pytest.mark.parametrize("window", [1, 2, 5, 10])
def test_sliding_windows_hold_the_right_frames(window):
    neural = torch.arange(12 * 3, dtype=torch.float32).reshape(12, 3)
    windows = sliding_windows(neural, window)
    assert windows.shape == (12 - window + 1, 3, window)
    for j in range(12 - window + 1):
        # entry j is frames j .. j + window - 1, laid out (neurons, lags)
        np.testing.assert_array_equal(windows[j].numpy(), neural[j:j + window].T.numpy())


def test_sliding_windows_are_views_not_copies():
    neural = torch.zeros(20, 4)
    windows = sliding_windows(neural, 5)
    assert windows.untyped_storage().data_ptr() == neural.untyped_storage().data_ptr()
    neural[7, 2] = 3.0
    # frame 7 appears in windows 3..7 at lag 7 - j
    for j in range(3, 8):
        assert windows[j, 2, 7 - j] == 3.0
    assert windows[2].abs().sum() == 0 and windows[8].abs().sum() == 0


def test_sliding_windows_too_short():
    with pytest.raises(ValueError, match="neural has 4 time points but the encoder needs windows of 5"):
        sliding_windows(torch.zeros(4, 2), 5)


# --- TimeSeries --------------------------------------------------------------------------------

def test_from_arrays_converts_and_keeps_label_kinds():
    rng = np.random.default_rng(0)
    neural = rng.normal(size=(30, 4))                       # float64 in
    ts = TimeSeries.from_arrays(neural, position=rng.normal(size=30), xy=rng.normal(size=(30, 2)),
                                trial=rng.integers(0, 3, size=30), trial_col=rng.integers(0, 3, size=(30, 1)),
                                flag=rng.random(30) > 0.5)
    assert ts.neural.dtype == np.float32 and ts.neural.shape == (30, 4)
    np.testing.assert_allclose(ts.neural, neural.astype(np.float32))
    assert ts.n_timepoints == 30 and ts.n_neurons == 4
    assert ts.label("position").shape == (30, 1) and ts.label("position").dtype == np.float32
    assert ts.label("xy").shape == (30, 2)
    # integer (and boolean) labels keep an integer dtype, (T, 1) is squeezed to (T,)
    assert ts.label("trial").dtype == np.int64 and ts.label("trial").shape == (30,)
    assert ts.label("trial_col").shape == (30,)
    assert ts.label("flag").dtype == np.int64


def test_tensor_shares_memory_on_cpu():
    ts = TimeSeries.from_arrays(np.ones((5, 2), dtype=np.float32))
    tensor = ts.tensor()
    assert tensor.dtype == torch.float32 and tensor.shape == (5, 2)
    assert tensor.data_ptr() == ts.neural.__array_interface__["data"][0]


@pytest.mark.parametrize("neural, labels, error, match", [
    (np.zeros((10, 2)), {"pos": np.zeros(9)}, ValueError, "label 'pos' has 9 rows but neural has 10"),
    (np.zeros((10, 2)), {"trial": np.zeros(9, dtype=int)}, ValueError, "label 'trial' has 9 rows but neural has 10"),
    (np.zeros(10), {}, ValueError, r"neural must be a 2-D array; got shape \(10,\)"),
    (np.zeros((0, 3)), {}, ValueError, r"at least one time point and one neuron; got shape \(0, 3\)"),
    (np.array([["a", "b"]]), {}, TypeError, "neural must hold numbers"),
    (np.zeros((10, 2)), {"pos": np.zeros((10, 2, 2))}, ValueError, "label 'pos' must be a 1-D or 2-D array"),
    (np.zeros((10, 2)), {"trial": np.zeros((10, 2, 2), dtype=int)}, ValueError,
     "label 'trial' must be a 1-D or 2-D array"),
])
def test_from_arrays_errors(neural, labels, error, match):
    with pytest.raises(error, match=match):
        TimeSeries.from_arrays(neural, **labels)


def test_non_finite_values_are_located():
    neural = np.zeros((10, 3))
    neural[4, 2] = np.nan
    neural[6, 0] = np.inf
    with pytest.raises(ValueError, match=r"neural contains 2 non-finite value\(s\); the first \(NaN\) is at row 4, column 2"):
        TimeSeries.from_arrays(neural)
    label = np.zeros(10)
    label[3] = -np.inf
    with pytest.raises(ValueError, match=r"label 'pos' contains 1 non-finite .*\(infinite\) is at row 3"):
        TimeSeries.from_arrays(np.zeros((10, 3)), pos=label)


@pytest.mark.filterwarnings("ignore:overflow encountered in cast:RuntimeWarning")
def test_float64_overflowing_float32_is_caught():
    neural = np.zeros((4, 2))
    neural[1, 1] = 1e300  # finite in float64, infinite once stored as float32
    with pytest.raises(ValueError, match="infinite"):
        TimeSeries.from_arrays(neural)


def test_unknown_label_lists_known_ones():
    ts = TimeSeries.from_arrays(np.zeros((5, 2)), position=np.zeros(5), speed=np.zeros(5))
    with pytest.raises(KeyError, match="label 'trial' was not given to fit; labels given: 'position', 'speed'"):
        ts.label("trial")
    with pytest.raises(KeyError, match="labels given: none"):
        TimeSeries.from_arrays(np.zeros((5, 2))).label("x")


# --- _validation -------------------------------------------------------------------------------

def test_check_option():
    assert check_option("loss", "cosine", ("cosine", "euclidean")) == "cosine"
    with pytest.raises(ValueError, match="loss must be one of 'cosine', 'euclidean'; got 'l2'"):
        check_option("loss", "l2", ("cosine", "euclidean"))


@pytest.mark.parametrize("value, kwargs, error, match", [
    (True, {}, TypeError, "n must be an integer; got True of type bool"),
    (2.0, {}, TypeError, "n must be an integer; got 2.0 of type float"),
    (0, {"minimum": 1}, ValueError, "n must be >= 1; got 0"),
    (9, {"maximum": 8}, ValueError, "n must be <= 8; got 9"),
])
def test_check_int_errors(value, kwargs, error, match):
    with pytest.raises(error, match=match):
        check_int("n", value, **kwargs)


def test_check_int_accepts_numpy_integers():
    assert check_int("n", np.int32(3), minimum=1) == 3 and type(check_int("n", np.int64(3))) is int


@pytest.mark.parametrize("value, kwargs, error, match", [
    ("1", {}, TypeError, "x must be a real number"),
    (np.nan, {}, ValueError, "x must be finite; got nan"),
    (0.0, {"minimum": 0.0, "strict": True}, ValueError, "x must be > 0.0; got 0.0"),
    (-1.0, {"minimum": 0.0}, ValueError, "x must be >= 0.0; got -1.0"),
    (2.0, {"maximum": 1.0}, ValueError, "x must be <= 1.0; got 2.0"),
])
def test_check_float_errors(value, kwargs, error, match):
    with pytest.raises(error, match=match):
        check_float("x", value, **kwargs)


def test_check_finite_ignores_integers_and_as_float_array_dims():
    check_finite("x", np.array([1, 2, 3]))
    assert as_float_array("x", [[1, 2]]).dtype == np.float32
    with pytest.raises(ValueError, match=r"x must be a 1-D or 2-D array; got shape \(1, 1, 1\)"):
        as_float_array("x", np.zeros((1, 1, 1)), ndim=(1, 2))
