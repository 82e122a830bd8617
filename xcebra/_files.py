"""Files on disk: tensors in safetensors plus a JSON header, written atomically, read without running code.

Loading never unpickles: safetensors holds only raw tensor bytes and a JSON header. Before handing a
file to the safetensors reader we check its framing ourselves, so that pickles, truncated files and
absurd header sizes end in a clear ``ValueError`` rather than a crash or a huge allocation.

Every file carries a BLAKE2b checksum of its xcebra header and of every tensor (name, dtype, shape and
bytes), stored next to the header in the safetensors metadata. A file damaged after it was written (a
flipped bit on disk, a partial copy, a hand edit) therefore fails to load with a ``ValueError`` instead
of loading slightly different weights. The checksum guards against accidents, not against an attacker,
who can recompute it: loading stays safe because nothing in the file is ever executed, and the readers
(:meth:`xcebra.XCEBRA.load`, the checkpoint loader) check every value against the tensors before use.

Summaries are JSON (:func:`write_json`, atomic too; :func:`jsonable` turns numpy values into plain ones).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import math
import os
import struct
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load as _load_bytes
from safetensors.torch import save as _save_bytes

__all__ = ["write_tensors", "read_tensors", "atomic_write_bytes", "MAX_HEADER_BYTES", "jsonable", "write_json"]

_HEADER_KEY = "xcebra"
_DIGEST_KEY = "xcebra_blake2b"
#: a safetensors JSON header larger than this is refused (ours are a few kB)
MAX_HEADER_BYTES = 16 * 1024 * 1024


def atomic_write_bytes(path: str | os.PathLike, payload: bytes) -> None:
    """Write ``payload`` to ``path`` via a temporary file in the same directory and a rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(payload)
            handle.flush()
            os.fsync(handle.fileno())
        # mkstemp creates the file readable by its owner only; give it the permissions a plain open() would
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    _fsync_directory(path.parent)


def _fsync_directory(directory: Path) -> None:
    """Make a rename in ``directory`` durable (POSIX); a no-op where directories cannot be opened."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _digest(header_json: str, tensors: dict[str, torch.Tensor]) -> str:
    """BLAKE2b of the xcebra header and of every tensor's name, dtype, shape and bytes (in name order)."""
    digest = hashlib.blake2b(digest_size=32)
    digest.update(header_json.encode())
    for name in sorted(tensors):
        tensor = tensors[name].detach().cpu().contiguous()
        # the bytes' length follows from dtype and shape, so this encoding is unambiguous
        digest.update(json.dumps([name, str(tensor.dtype), list(tensor.shape)]).encode())
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy())  # the bytes, without a copy
    return digest.hexdigest()


def write_tensors(path: str | os.PathLike, tensors: dict[str, torch.Tensor], header: dict[str, Any]) -> None:
    """Save named tensors and a JSON-serialisable ``header`` to ``path`` atomically."""
    contiguous = {k: v.detach().cpu().contiguous() for k, v in tensors.items()}
    header_json = json.dumps(header, sort_keys=True, allow_nan=False)
    payload = _save_bytes(contiguous, metadata={_HEADER_KEY: header_json,
                                                 _DIGEST_KEY: _digest(header_json, contiguous)})
    atomic_write_bytes(path, payload)


def _describe_foreign(prefix: bytes) -> str | None:
    if prefix.startswith(b"PK\x03\x04"):
        return "a zip archive (the format of torch.save), which can run code when loaded"
    if prefix[:1] == b"\x80" and prefix[1:2] in {bytes([p]) for p in range(2, 6)}:
        return "a Python pickle, which can run code when loaded"
    return None


def read_tensors(path: str | os.PathLike, *, expected_format: str) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Read a file written by :func:`write_tensors`; every malformed input raises ``ValueError``.

    Parameters
    ----------
    path : file to read.
    expected_format : the ``format`` entry the header must carry (e.g. ``"xcebra-model"``).

    Raises
    ------
    ValueError
        The file cannot be read, is a pickle or zip archive (refused without being opened as one), is
        truncated, has a malformed header, holds another format, or its checksum does not match.
    """
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as error:
        raise ValueError(f"cannot read {str(path)!r}: {error.strerror or error}") from error
    foreign = _describe_foreign(data[:8])
    if foreign:
        raise ValueError(f"{str(path)!r} is {foreign}; xcebra only loads its own safetensors files and refuses it")
    if len(data) < 8:
        raise ValueError(f"{str(path)!r} is truncated: {len(data)} bytes, not a safetensors file")
    (header_size,) = struct.unpack("<Q", data[:8])
    if header_size > MAX_HEADER_BYTES or header_size > len(data) - 8:
        raise ValueError(
            f"{str(path)!r} is not a valid xcebra file: its header claims {header_size} bytes but the file has "
            f"{len(data)} (truncated or corrupted)")
    try:
        raw_header = json.loads(data[8:8 + header_size])
        if not isinstance(raw_header, dict):
            raise ValueError("header is not a JSON object")
        metadata = raw_header.get("__metadata__") or {}
        header_json = metadata[_HEADER_KEY] if isinstance(metadata, dict) and _HEADER_KEY in metadata else None
        header = json.loads(header_json) if header_json is not None else None
        if not isinstance(header, dict):
            raise ValueError("no xcebra header")
    except (ValueError, UnicodeDecodeError, TypeError, RecursionError) as error:  # deep nesting: RecursionError
        raise ValueError(f"{str(path)!r} is not a valid xcebra file: {error}") from None
    if header.get("format") != expected_format:
        raise ValueError(
            f"{str(path)!r} holds format {header.get('format')!r}, expected {expected_format!r}")
    try:
        tensors = _load_bytes(data)
    except (SafetensorError, ValueError, RuntimeError, OverflowError, MemoryError) as error:
        raise ValueError(f"{str(path)!r} is corrupted: {error}") from None
    expected = metadata.get(_DIGEST_KEY)
    if not isinstance(expected, str):
        raise ValueError(
            f"{str(path)!r} has no xcebra checksum: it was not written by this version of xcebra, or it was edited")
    if not hmac.compare_digest(_digest(header_json, tensors), expected):
        raise ValueError(
            f"{str(path)!r} is corrupted: its checksum does not match its contents (the file was damaged or "
            "edited after it was written)")
    return tensors, header


def jsonable(value: Any) -> Any:
    """Plain JSON types: numpy scalars/arrays to Python, tuples to lists, NaN/inf to None, paths to str."""
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return jsonable(value.tolist())
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    return value


def write_json(path: str | os.PathLike, payload: Mapping[str, Any]) -> Path:
    """Write ``payload`` as indented JSON, atomically (NaN becomes null)."""
    text = json.dumps(jsonable(payload), indent=2, sort_keys=False, allow_nan=False)
    path = Path(path)
    atomic_write_bytes(path, (text + "\n").encode("utf-8"))
    return path
