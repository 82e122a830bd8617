"""Read named arrays from user files: ``.npz``, ``.npy``, ``.h5`` / ``.hdf5`` and NWB (``.nwb``).

One function, :func:`load_arrays`, maps *roles* (what the caller needs, e.g. ``"neural"`` or
``"position"``) to *keys* inside a file (e.g. ``"spikes"``, ``"behavior/position"``) and returns
``{role: array}``. :func:`list_keys` tells which keys a file offers.

=================  ===================================================================================
format             keys
=================  ===================================================================================
``.npz``           the names of the arrays in the archive (``np.load(..., allow_pickle=False)``)
``.npy``           a single array, available as ``"data"`` or under the file's stem
``.h5``/``.hdf5``  dataset paths such as ``"spikes"`` or ``"group/data"`` (needs ``h5py``)
``.nwb``           TimeSeries by name (``"spikes"``), or by path: ``"acquisition/spikes"``,
                   ``"processing/behavior/position"``, ``"processing/behavior/Position/xy"`` (a
                   series inside a container such as ``Position``); any unique trailing part of a
                   path works. The series' ``data`` is returned, time along the first axis. Needs
                   ``pynwb`` (``pip install "xcebra[nwb]"``)
=================  ===================================================================================

With ``lazy=True`` arrays are not read into memory where the format allows it: ``.npy`` files are
memory-mapped and HDF5 / NWB datasets are returned as ``h5py.Dataset`` objects (the file stays open
as long as they are referenced). :meth:`xcebra.XCEBRA.transform` and
:meth:`xcebra.XCEBRA.attribution_map` read such arrays in batches, so a recording larger than the
memory can be embedded and attributed. ``.npz`` archives are always read.

Every problem with a file ends in an exception whose message is one line that names the file:

- missing or unreadable file, wrong format, corrupt content, object (pickled) arrays: ``ValueError``;
- a key that is not in the file: :class:`MissingKeyError` (a ``KeyError``) listing the keys there are.

Example
-------
>>> import numpy as np, os, tempfile
>>> path = os.path.join(tempfile.mkdtemp(), "rec.npz")
>>> np.savez(path, spikes=np.zeros((100, 5)), pos=np.zeros((100, 2)))
>>> arrays = load_arrays(path, {"neural": "spikes", "position": "pos"})
>>> arrays["neural"].shape, arrays["position"].shape
((100, 5), (100, 2))
>>> list_keys(path)
['pos', 'spikes']
"""

from __future__ import annotations

import logging
import os
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from ..exceptions import MissingKeyError

__all__ = ["load_arrays", "list_keys", "MissingKeyError", "SUFFIXES"]

logger = logging.getLogger("xcebra")

#: file suffixes understood by :func:`load_arrays`, by format
SUFFIXES = {"npz": (".npz",), "npy": (".npy",), "hdf5": (".h5", ".hdf5", ".he5"), "nwb": (".nwb",)}
_MAX_LISTED = 20
_NWB_HINT = 'reading .nwb files needs the optional dependency pynwb: pip install "xcebra[nwb]"'
_H5_HINT = 'reading HDF5 files needs the optional dependency h5py: pip install h5py'


def _listing(keys: list[str]) -> str:
    if not keys:
        return "none"
    shown = ", ".join(repr(k) for k in keys[:_MAX_LISTED])
    return shown + (f", ... ({len(keys) - _MAX_LISTED} more)" if len(keys) > _MAX_LISTED else "")


def _one_line(error: BaseException) -> str:
    text = str(error.args[0]) if isinstance(error, KeyError) and error.args else str(error)
    text = " ".join(text.split())
    return text or type(error).__name__


def _format_of(path: Path) -> str:
    suffix = path.suffix.lower()
    for name, suffixes in SUFFIXES.items():
        if suffix in suffixes:
            return name
    known = ", ".join(s for suffixes in SUFFIXES.values() for s in suffixes)
    raise ValueError(f"{str(path)!r} has an unsupported file type {suffix or '(no suffix)'!r}; "
                     f"use one of {known}")


def _check_readable(path: Path) -> None:
    if not path.exists():
        raise ValueError(f"cannot read {str(path)!r}: no such file")
    if path.is_dir():
        raise ValueError(f"cannot read {str(path)!r}: it is a directory, not a data file")
    if not os.access(path, os.R_OK):
        raise ValueError(f"cannot read {str(path)!r}: permission denied")


def _missing(path: Path, role: str, key: str, available: list[str], kind: str = "key") -> MissingKeyError:
    what = f" (for {role})" if role and role != key else ""
    return MissingKeyError(f"{str(path)!r} has no {kind} {key!r}{what}; available: {_listing(available)}")


# ----------------------------------------------------------------------------------------------
# Public functions


def load_arrays(path: str | os.PathLike, keys: Mapping[str, str], *, lazy: bool = False) -> dict[str, Any]:
    """Read the arrays named by ``keys`` from one file.

    Parameters
    ----------
    path : str or path-like
        A ``.npz``, ``.npy``, ``.h5`` / ``.hdf5`` or ``.nwb`` file (see the module docstring).
    keys : mapping of str to str
        Role -> key in the file, e.g. ``{"neural": "spikes", "position": "behavior/pos"}``.
    lazy : bool, default=False
        Return memory maps (``.npy``) or ``h5py.Dataset`` objects (HDF5, NWB) instead of reading the
        data; ``.npz`` archives are always read.

    Returns
    -------
    dict of str to array
        ``{role: array}`` in the order of ``keys``; arrays keep the dtype stored in the file.

    Raises
    ------
    ValueError
        The file does not exist, cannot be read, has an unsupported suffix, is corrupt, or holds an
        object (pickled) array.
    MissingKeyError
        A key is not in the file; the message lists the keys that are.
    ImportError
        ``.h5`` without ``h5py`` or ``.nwb`` without ``pynwb``.
    """
    path = Path(path)
    if not isinstance(keys, Mapping):
        raise TypeError(f"keys must be a mapping of role -> key in the file; got {type(keys).__name__}")
    for role, key in keys.items():
        if not isinstance(key, str) or not key:
            raise TypeError(f"keys[{role!r}] must be a non-empty string naming an array in {str(path)!r}; "
                            f"got {key!r}")
    fmt = _format_of(path)
    _check_readable(path)
    reader = {"npz": _load_npz, "npy": _load_npy, "hdf5": _load_hdf5, "nwb": _load_nwb}[fmt]
    arrays = reader(path, dict(keys), lazy)
    for role, array in arrays.items():
        logger.info("read %s from %s[%r]: shape %s, dtype %s", role, path, keys[role],
                    tuple(array.shape), array.dtype)
    return arrays


def list_keys(path: str | os.PathLike) -> list[str]:
    """The keys :func:`load_arrays` accepts for ``path`` (sorted; NWB: the full paths of its TimeSeries)."""
    path = Path(path)
    fmt = _format_of(path)
    _check_readable(path)
    if fmt == "npz":
        with _open_npz(path) as archive:
            return sorted(archive.files)
    if fmt == "npy":
        return ["data"]
    if fmt == "hdf5":
        h5py = _import_h5py()
        with _open_h5(h5py, path) as handle:
            return _h5_datasets(handle)
    io, nwbfile = _open_nwb(path)
    try:
        return sorted(_nwb_series(nwbfile))
    finally:
        io.close()


# ----------------------------------------------------------------------------------------------
# .npz and .npy


def _magic(path: Path, size: int) -> bytes:
    try:
        with open(path, "rb") as handle:
            return handle.read(size)
    except OSError as error:
        raise ValueError(f"cannot read {str(path)!r}: {error.strerror or _one_line(error)}") from None


def _open_npz(path: Path):
    if _magic(path, 4) not in (b"PK\x03\x04", b"PK\x05\x06"):
        raise ValueError(f"cannot read {str(path)!r} as a .npz archive: it is not a zip file "
                         "(corrupt or another format)")
    try:
        archive = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as error:
        raise ValueError(f"cannot read {str(path)!r} as a .npz archive: {_one_line(error)}") from None
    if not isinstance(archive, np.lib.npyio.NpzFile):
        raise ValueError(f"cannot read {str(path)!r} as a .npz archive: it holds a single array (rename it to .npy)")
    return archive


def _load_npz(path: Path, keys: dict[str, str], lazy: bool) -> dict[str, Any]:
    with _open_npz(path) as archive:
        available = sorted(archive.files)
        out = {}
        for role, key in keys.items():
            if key not in archive.files:
                raise _missing(path, role, key, available, "array")
            try:
                out[role] = archive[key]
            except ValueError as error:
                if "allow_pickle" in str(error):
                    raise ValueError(f"{str(path)!r}: array {key!r} holds Python objects, which are not read "
                                     "(they could run code); store numbers instead") from None
                raise ValueError(f"cannot read array {key!r} of {str(path)!r}: {_one_line(error)}") from None
            except (OSError, EOFError, zipfile.BadZipFile, zipfile.LargeZipFile) as error:
                raise ValueError(f"cannot read array {key!r} of {str(path)!r}: {_one_line(error)}") from None
    return out


def _load_npy(path: Path, keys: dict[str, str], lazy: bool) -> dict[str, Any]:
    if _magic(path, 6) != b"\x93NUMPY":
        raise ValueError(f"cannot read {str(path)!r} as a .npy array: it does not start with the .npy signature "
                         "(corrupt or another format)")
    names = ("data", path.stem)
    for role, key in keys.items():
        if key not in names:
            raise _missing(path, role, key, ["data"], "array")
    try:
        array = np.load(path, allow_pickle=False, mmap_mode="r" if lazy else None)
    except ValueError as error:
        if "allow_pickle" in str(error):
            raise ValueError(f"{str(path)!r} holds Python objects, which are not read (they could run code); "
                             "store numbers instead") from None
        raise ValueError(f"cannot read {str(path)!r} as a .npy array: {_one_line(error)}") from None
    except (OSError, EOFError) as error:
        raise ValueError(f"cannot read {str(path)!r} as a .npy array: {_one_line(error)}") from None
    if not isinstance(array, np.ndarray):
        raise ValueError(f"cannot read {str(path)!r} as a .npy array: it is a .npz archive (rename it to .npz)")
    return {role: array for role in keys}


# ----------------------------------------------------------------------------------------------
# HDF5


def _import_h5py():
    try:
        import h5py
    except ImportError as error:
        raise ImportError(_H5_HINT) from error
    return h5py


def _open_h5(h5py, path: Path):
    try:
        return h5py.File(path, "r")
    except (OSError, ValueError) as error:
        raise ValueError(f"cannot read {str(path)!r} as an HDF5 file: {_one_line(error)}") from None


def _h5_datasets(handle) -> list[str]:
    import h5py
    names: list[str] = []
    handle.visititems(lambda name, obj: names.append(name) if isinstance(obj, h5py.Dataset) else None)
    return sorted(names)


def _load_hdf5(path: Path, keys: dict[str, str], lazy: bool) -> dict[str, Any]:
    h5py = _import_h5py()
    handle = _open_h5(h5py, path)
    keep_open = False
    try:
        out = {}
        for role, key in keys.items():
            name = key.strip("/")
            try:
                obj = handle.get(name) if name else None
            except (OSError, ValueError, KeyError) as error:
                raise ValueError(f"cannot read {key!r} of {str(path)!r}: {_one_line(error)}") from None
            if obj is None:
                raise _missing(path, role, key, _h5_datasets(handle), "dataset")
            if isinstance(obj, h5py.Group):
                inside = [f"{name}/{k}" for k in _h5_datasets(obj)]
                raise ValueError(f"{str(path)!r}: {key!r} is a group, not a dataset; datasets in it: "
                                 f"{_listing(inside)}")
            is_string = obj.dtype.kind in "SU" or h5py.check_string_dtype(obj.dtype) is not None
            if obj.dtype.kind not in "biuf" and not is_string:
                raise ValueError(f"{str(path)!r}: dataset {key!r} has dtype {obj.dtype}; numbers (or strings) "
                                 "are needed")
            if lazy and not is_string:
                out[role] = obj
                keep_open = True
            else:
                try:
                    out[role] = obj.asstr()[()] if is_string else obj[()]
                except (OSError, ValueError) as error:
                    raise ValueError(f"cannot read dataset {key!r} of {str(path)!r}: {_one_line(error)}") from None
        return out
    finally:
        if not keep_open:
            handle.close()


# ----------------------------------------------------------------------------------------------
# NWB


def _open_nwb(path: Path):
    try:
        from pynwb import NWBHDF5IO
    except ImportError as error:
        raise ImportError(_NWB_HINT) from error
    io = None
    try:
        io = NWBHDF5IO(str(path), "r")
        nwbfile = io.read()
    except Exception as error:  # noqa: BLE001 - pynwb/hdmf raise many types for a bad file
        if io is not None:
            try:
                io.close()
            except Exception:  # noqa: BLE001
                pass
        raise ValueError(f"cannot read {str(path)!r} as an NWB file: {_one_line(error)}") from None
    return io, nwbfile


def _nwb_series(nwbfile) -> dict[str, Any]:
    """Every TimeSeries of the file by its path: acquisition/<name>, processing/<module>/<name>[/<child>]."""
    from pynwb import TimeSeries

    found: dict[str, Any] = {}

    def visit(prefix: str, container) -> None:
        if isinstance(container, TimeSeries):
            found[prefix] = container
            return
        # multi-containers (Position, BehavioralTimeSeries, Fluorescence, ...) hold series in dicts
        for value in getattr(container, "fields", {}).values():
            if isinstance(value, dict):
                for child_name, child in value.items():
                    if isinstance(child, TimeSeries):
                        found[f"{prefix}/{child_name}"] = child

    for name, container in nwbfile.acquisition.items():
        visit(f"acquisition/{name}", container)
    for module_name, module in nwbfile.processing.items():
        for name, container in module.data_interfaces.items():
            visit(f"processing/{module_name}/{name}", container)
    return found


def _resolve_nwb_key(path: Path, role: str, key: str, series: dict[str, Any]):
    key = key.strip("/")
    if key in series:
        return series[key]
    matches = [p for p in series if p.endswith("/" + key)]
    if len(matches) == 1:
        return series[matches[0]]
    if len(matches) > 1:
        raise ValueError(f"{str(path)!r}: {key!r} is ambiguous; it matches {_listing(sorted(matches))}. "
                         "Give the full path")
    raise _missing(path, role, key, sorted(series), "TimeSeries")


def _load_nwb(path: Path, keys: dict[str, str], lazy: bool) -> dict[str, Any]:
    io, nwbfile = _open_nwb(path)
    keep_open = False
    try:
        series = _nwb_series(nwbfile)
        out = {}
        for role, key in keys.items():
            ts = _resolve_nwb_key(path, role, key, series)
            data = ts.data
            if not hasattr(data, "shape") or getattr(data, "dtype", np.dtype(object)).kind not in "biuf":
                raise ValueError(f"{str(path)!r}: TimeSeries {key!r} does not hold a numeric array")
            if lazy and not isinstance(data, np.ndarray):
                out[role] = data
                keep_open = True
            else:
                out[role] = np.asarray(data[()])
        if keep_open:
            # the datasets read from the file need it open; keep the reader alive with them
            _OPEN_NWB_READERS.append(io)
        return out
    finally:
        if not keep_open:
            io.close()


#: NWB readers kept open for lazily returned datasets (closed at interpreter exit)
_OPEN_NWB_READERS: list[Any] = []
