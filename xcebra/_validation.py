"""Argument checks shared by every module: each error names the argument, the value and what is expected."""

from __future__ import annotations

import numbers
from typing import Any, Iterable

import numpy as np

__all__ = ["check_option", "check_int", "check_float", "check_finite", "as_float_array", "is_int", "is_real",
           "check_parameters", "resolve_device", "check_neural_array"]


def check_option(name: str, value: Any, allowed: Iterable[Any]) -> Any:
    """Return ``value`` if it is one of ``allowed``, else raise a ValueError that lists them."""
    allowed = tuple(allowed)
    if value not in allowed:
        listed = ", ".join(repr(a) for a in allowed)
        raise ValueError(f"{name} must be one of {listed}; got {value!r}")
    return value


def check_int(name: str, value: Any, minimum: int | None = None, maximum: int | None = None) -> int:
    """Return ``value`` as int if it is an integer within [minimum, maximum]."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an integer; got {value!r} of type {type(value).__name__}")
    value = int(value)
    if minimum is not None and value < minimum:
        raise ValueError(f"{name} must be >= {minimum}; got {value}")
    if maximum is not None and value > maximum:
        raise ValueError(f"{name} must be <= {maximum}; got {value}")
    return value


def check_float(name: str, value: Any, minimum: float | None = None, *, strict: bool = False,
                maximum: float | None = None) -> float:
    """Return ``value`` as float if it is a finite real number above ``minimum`` (strictly if ``strict``)."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number; got {value!r} of type {type(value).__name__}")
    value = float(value)
    if not np.isfinite(value):
        raise ValueError(f"{name} must be finite; got {value}")
    if minimum is not None and (value <= minimum if strict else value < minimum):
        raise ValueError(f"{name} must be {'>' if strict else '>='} {minimum}; got {value}")
    if maximum is not None and value > maximum:
        raise ValueError(f"{name} must be <= {maximum}; got {value}")
    return value


def check_finite(name: str, array: np.ndarray, *, rows: int | np.ndarray | None = None,
                 hint: str = "Remove or interpolate them before fitting") -> None:
    """Raise a ValueError that locates the first NaN or infinite entry of ``array``.

    ``rows`` maps the rows of ``array`` to the rows of the recording they were read from (for arrays
    read in batches): an int (the first row) or an array (one index per row), so that the message
    names the row of the user's array.
    """
    if array.dtype.kind not in "fc":
        return
    bad = ~np.isfinite(array)
    if bad.any():
        position = tuple(int(i) for i in np.argwhere(bad)[0])
        kind = "NaN" if np.isnan(array[position]) else "infinite"
        if rows is None:
            row = position[0]
        elif isinstance(rows, int):
            row = rows + position[0]
        else:
            row = int(rows[position[0]])
        where = f"row {row}" + (f", column {position[1]}" if len(position) > 1 else "")
        raise ValueError(
            f"{name} contains {int(bad.sum())} non-finite value(s); the first ({kind}) is at {where}. {hint}")


def as_float_array(name: str, value: Any, ndim: tuple[int, ...] = (2,), layout: str | None = None) -> np.ndarray:
    """Convert array-like ``value`` to a float32 numpy array with one of the allowed numbers of dimensions.

    Memory-mapped arrays and h5py datasets are read as they are sliced; this function reads all of ``value``.
    ``layout`` (e.g. ``"(time points, neurons)"``) is added to the message of a wrong number of dimensions.
    """
    try:
        array = np.asarray(value)
    except Exception as error:  # noqa: BLE001 - any failure to convert is the user's input
        raise TypeError(f"{name} must be array-like; got {type(value).__name__} ({error})") from error
    if array.dtype == object or array.dtype.kind not in "biuf":
        raise TypeError(f"{name} must hold numbers; got an array of dtype {array.dtype}")
    if array.ndim not in ndim:
        expected = " or ".join(f"{d}-D" for d in ndim)
        hint = f" (expected {layout})" if layout else ""
        raise ValueError(f"{name} must be a {expected} array; got shape {array.shape}{hint}")
    return array.astype(np.float32, copy=False)


def is_int(value: Any, low: int | None = None) -> bool:
    """True for an integer (not a bool) that is at least ``low``."""
    return isinstance(value, numbers.Integral) and not isinstance(value, (bool, np.bool_)) and (low is None or value >= low)


def is_real(value: Any, low: float | None = None, strict: bool = False) -> bool:
    """True for a finite real number (not a bool) above ``low`` (strictly if ``strict``)."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real) or not np.isfinite(value):
        return False
    return low is None or (value > low if strict else value >= low)


def check_parameters(estimator: Any, constraints: dict) -> None:
    """Check an estimator's hyper-parameters against ``{name: (check, description)}``.

    One message shape for all: ``The 'p' parameter of Estimator must be <description>. Got v instead.``
    """
    owner = type(estimator).__name__
    for name, (check, expected) in constraints.items():
        value = getattr(estimator, name)
        if not check(value):
            raise ValueError(f"The '{name}' parameter of {owner} must be {expected}. Got {value!r} instead.")


def resolve_device(device: Any, owner: str):
    """``"auto"`` -> CUDA if available else CPU; anything else through ``torch.device``, checked."""
    import torch

    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(device)
    except (RuntimeError, TypeError) as error:
        raise ValueError(f"The 'device' parameter of {owner} must be 'auto', 'cpu', 'cuda' or a torch.device. "
                         f"Got {device!r} instead.") from error
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"The 'device' parameter of {owner} asks for 'cuda' but no CUDA device is available; "
                         "use 'auto' or 'cpu'")
    return resolved


def check_neural_array(neural: Any, n_features: int, name: str = "neural") -> Any:
    """Check shape and dtype of a (T, N) array-like without reading it (np.memmap and h5py datasets stay on disk)."""
    import torch

    shape, dtype = getattr(neural, "shape", None), getattr(neural, "dtype", None)
    if shape is None or dtype is None:
        try:
            neural = np.asarray(neural)
        except (ValueError, TypeError) as error:
            raise TypeError(f"{name} must be array-like; got {type(neural).__name__} ({error})") from None
        shape, dtype = neural.shape, neural.dtype
    if len(shape) != 2:
        raise ValueError(f"{name} must be a 2-D array (time points, neurons); got shape {tuple(shape)}")
    if isinstance(dtype, torch.dtype):
        numeric = not dtype.is_complex
    else:
        try:
            numeric = np.dtype(dtype).kind in "biuf"
        except TypeError:  # a dtype numpy does not know: let the first read decide
            numeric = True
    if not numeric:
        raise TypeError(f"{name} must hold numbers; got an array of dtype {dtype}")
    if shape[0] == 0:
        raise ValueError(f"{name} must have at least one time point; got shape {tuple(shape)}")
    if shape[1] != n_features:
        raise ValueError(
            f"{name} has {shape[1]} neurons but the model was fit on {n_features}; they must match")
    return neural
