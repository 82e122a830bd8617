"""Sessions manifests: the TOML file that ``xcebra fit`` reads to fit one multi-session model.

``xcebra fit sessions.toml --out model.xcebra`` fits one model on every ``[[session]]`` of the manifest
(:meth:`xcebra.XCEBRA.fit` on a list of recordings): one input layer per session, the behaviour block
shared. Every session names the same labels; the model comes from the manifest (``config = FILE`` or a
``[model]`` table), from ``--config``, or from the command line's defaults, later ones overriding
earlier ones.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ._common import parse_labels, read_data
from .config import config_from_table, load_config, read_toml

__all__ = ["EXAMPLE_SESSIONS", "is_sessions_manifest", "load_sessions_manifest", "read_sessions"]

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


def load_sessions_manifest(path: str | Path) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Read a sessions manifest: (XCEBRA keyword arguments it sets, one {data, neural, labels, cell_types} per session).

    Paths are resolved relative to the manifest's folder. Raises ValueError (one line, naming the file
    and the entry) for unknown keys, no ``[[session]]`` table, a session without ``data`` or ``neural``,
    or sessions that name different labels.
    """
    path = Path(path)
    raw = read_toml(path, "sessions manifest")
    where = f"sessions manifest {str(path)!r}"
    unknown = sorted(set(raw) - set(_MANIFEST_KEYS))
    if unknown:
        raise ValueError(f"{where} has unknown key(s) {', '.join(unknown)}; allowed: {', '.join(_MANIFEST_KEYS)}")
    if "config" in raw and "model" in raw:
        raise ValueError(f"{where}: give the model either as config = FILE or as a [model] table, not both")
    base = path.parent
    params: dict[str, Any] = {}
    if "config" in raw:
        params = load_config(base / raw["config"])
    elif isinstance(raw.get("model"), dict):
        params = config_from_table(raw["model"], f"{where} [model]")
    entries = raw.get("session")
    if not isinstance(entries, list) or not entries or not all(isinstance(e, dict) for e in entries):
        raise ValueError(f"{where} needs one [[session]] table per recording, each with data and neural")
    sessions = []
    for i, entry in enumerate(entries):
        bad = sorted(set(entry) - set(_SESSION_KEYS))
        if bad:
            raise ValueError(f"{where}: session[{i}] has unknown key(s) {', '.join(bad)}; "
                             f"allowed: {', '.join(_SESSION_KEYS)}")
        missing = [k for k in ("data", "neural") if k not in entry]
        if missing:
            raise ValueError(f"{where}: session[{i}] needs {' and '.join(missing)}")
        labels = entry.get("labels", {})
        if not isinstance(labels, dict) or not all(isinstance(v, str) for v in labels.values()):
            raise ValueError(f"{where}: session[{i}].labels must be a table of NAME = \"KEY\", e.g. "
                             "{ position = \"pos\" }")
        try:
            parse_labels([f"{name}={key}" for name, key in labels.items()])  # the same rules as --label
        except ValueError as error:
            raise ValueError(f"{where}: session[{i}].labels: {str(error).replace('--label name ', 'name ')}") from None
        if sessions and set(labels) != set(sessions[0]["labels"]):
            raise ValueError(f"{where}: session[{i}] names labels {sorted(labels)} but session[0] names "
                             f"{sorted(sessions[0]['labels'])}; every session needs the same labels")
        cell_types = entry.get("cell_types")
        if cell_types is not None and not isinstance(cell_types, str):
            raise ValueError(f"{where}: session[{i}].cell_types must be a key in its data or a text file's name")
        sessions.append({"data": str((base / entry["data"]).resolve()), "neural": str(entry["neural"]),
                         "labels": dict(labels), "cell_types": cell_types})
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
