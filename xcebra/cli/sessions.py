"""Sessions manifests: the TOML file that ``xcebra fit`` reads to fit one multi-session model.

``xcebra fit sessions.toml --out model.xcebra`` fits one model on every ``[[session]]`` of the manifest
(:meth:`xcebra.XCEBRA.fit` on a list of recordings): one encoder per session (``share_trunk = true`` in
the model: one input layer each on shared layers), the behaviour block shared. Every session names the
same labels; the model comes from the manifest (``config = FILE`` or a ``[model]`` table), from
``--config``, or from the command line's defaults, later ones overriding earlier ones.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ._common import read_data
from .config import manifest_entries, manifest_model, read_manifest

__all__ = ["EXAMPLE_SESSIONS", "is_sessions_manifest", "neural_or_manifest", "load_sessions_manifest", "read_sessions"]

EXAMPLE_SESSIONS = """\
# sessions.toml: one [[session]] per recording, all fitted into one model; paths relative to this file
config = "model.toml"          # optional: or a [model] table, or --config on the command line

[[session]]
data = "rat1.npz"
neural = "spikes"
labels = { position = "pos" }
cell_types = "types"           # optional, for 'xcebra report': a key in data or a text file

[[session]]
data = "rat2.h5"
neural = "data/spikes"
labels = { position = "behavior/xy" }
"""

_MANIFEST_KEYS = ("config", "model", "session")
_SESSION_KEYS = ("data", "neural", "labels", "cell_types")


def is_sessions_manifest(path: str) -> bool:
    """A DATA argument that names a sessions manifest (a ``.toml`` file) rather than one recording."""
    return str(path).lower().endswith(".toml")


def neural_or_manifest(args: Any) -> str | None:
    """The usage rule of ``fit`` and ``report``: ``--neural`` is required unless DATA is a sessions manifest."""
    if args.neural is None and not is_sessions_manifest(args.data):
        return "--neural KEY is required (the array of neural activity in DATA), unless DATA is a sessions manifest (.toml)"
    return None


def load_sessions_manifest(path: str | Path) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Read a sessions manifest: (XCEBRA keyword arguments it sets, one {data, neural, labels, cell_types} per session).

    Paths are resolved relative to the manifest's folder. Raises ValueError (one line, naming the file
    and the entry) for unknown keys, no ``[[session]]`` table, a session without ``data`` or ``neural``,
    or sessions that name different labels.
    """
    raw, where, base = read_manifest(path, "sessions manifest", _MANIFEST_KEYS)
    params = manifest_model(raw, base, where) or {}
    sessions = []
    for i, (entry, data, neural, labels) in enumerate(manifest_entries(raw, "session", _SESSION_KEYS, base, where)):
        if sessions and set(labels) != set(sessions[0]["labels"]):
            raise ValueError(f"{where}: session[{i}] names labels {sorted(labels)} but session[0] names "
                             f"{sorted(sessions[0]['labels'])}; every session needs the same labels")
        cell_types = entry.get("cell_types")
        if cell_types is not None and not isinstance(cell_types, str):
            raise ValueError(f"{where}: session[{i}].cell_types must be a key in its data or a text file's name")
        sessions.append({"data": data, "neural": neural, "labels": labels, "cell_types": cell_types})
    return params, sessions


def read_sessions(sessions: list[dict[str, Any]]) -> tuple[list[np.ndarray], dict[str, list[np.ndarray]]]:
    """Every session's neural array and labels: (S arrays (T_s, N_s), {label name: S arrays})."""
    neural, labels = [], {name: [] for name in sessions[0]["labels"]}
    for entry in sessions:
        array, label_arrays = read_data(entry["data"], entry["neural"], entry["labels"])
        neural.append(np.asarray(array))
        for name, value in label_arrays.items():
            labels[name].append(value)
    return neural, labels
