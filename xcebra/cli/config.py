"""TOML configs: every XCEBRA parameter and the objectives, from a file (``--config``) or ``--param NAME=VALUE``.

The keys a config may set are derived from the estimator (:func:`config_parameters`: ``get_params()``
without ``objectives``) and from :class:`xcebra.Objective`'s fields, so a new hyper-parameter is
settable without touching this module. TOML has no null: ``"none"`` stands for None.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..estimators import XCEBRA
from ..objectives import Objective
from ._common import parse_labels

__all__ = ["load_config", "config_from_table", "parse_param_options", "config_parameters", "objective_fields",
           "read_toml", "NONE_IN_CONFIG", "EXAMPLE_CONFIG"]

#: TOML has no null: a parameter that takes None is written as this string
NONE_IN_CONFIG = "none"

EXAMPLE_CONFIG = """\
# model.toml: XCEBRA parameters, then one [[objectives]] table per objective
model = "offset10"
output_dim = 14
batch_size = 2500
max_steps = 1000
learning_rate = 3e-4
regularizer_weight = 0.1
regularizer_ramp = [250, 500]

[[objectives]]
name = "behavior"
dims = [0, 4]
distribution = "time_delta"
label = "position"

[[objectives]]
name = "time"
dims = [0, 14]
distribution = "time"
time_offset = 10
"""


def config_parameters() -> tuple[str, ...]:
    """XCEBRA parameters a config file (or ``--param``) may set besides ``objectives``: all of ``get_params()``.

    Derived from the estimator's signature, so a new hyper-parameter is settable without touching this module.
    """
    return tuple(name for name in XCEBRA._get_param_names() if name != "objectives")


def objective_fields() -> tuple[str, ...]:
    """The keys of an ``[[objectives]]`` table: the fields of :class:`xcebra.Objective`."""
    return tuple(field.name for field in dataclasses.fields(Objective))


def load_config(path: str | Path) -> dict[str, Any]:
    """Read a TOML config: XCEBRA parameters and an ``[[objectives]]`` array; returns XCEBRA keyword arguments.

    Raises ValueError (one line, naming the file) for unreadable TOML, unknown keys or bad objectives.
    """
    return config_from_table(read_toml(path, "config"), f"config {str(path)!r}")


def _toml_module(what: str):
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        try:
            import tomli as tomllib  # type: ignore[no-redef]
        except ModuleNotFoundError as error:
            raise ImportError(f"reading {what} on Python 3.10 needs tomli: pip install tomli") from error
    return tomllib


def read_toml(path: str | Path, what: str) -> dict[str, Any]:
    tomllib = _toml_module(f"a {what} file")
    path = Path(path)
    try:
        with open(path, "rb") as handle:
            return tomllib.load(handle)
    except OSError as error:
        raise ValueError(f"cannot read {what} {str(path)!r}: {error.strerror or error}") from None
    except tomllib.TOMLDecodeError as error:
        raise ValueError(f"{what} {str(path)!r} is not valid TOML: {error}") from None


def parse_param_options(items: Sequence[str]) -> dict[str, Any]:
    """``--param NAME=VALUE`` options -> XCEBRA keyword arguments; VALUE is read as a TOML value.

    A bare word that is not a TOML value (``precision=bf16``) is taken as a string; ``"none"`` is None.
    """
    tomllib = _toml_module("a --param option")
    raw: dict[str, Any] = {}
    for item in items:
        name, sep, text = item.partition("=")
        name = name.strip()
        if not sep or not name:
            raise ValueError(f"--param needs NAME=VALUE; got {item!r}")
        try:
            raw[name] = tomllib.loads(f"value = {text.strip()}")["value"]
        except tomllib.TOMLDecodeError:
            raw[name] = text.strip()
    if "objectives" in raw:
        raise ValueError("--param cannot set objectives; give them in --config FILE.toml as [[objectives]] tables")
    return config_from_table(raw, "--param")


def config_from_table(raw: dict[str, Any], where: str) -> dict[str, Any]:
    """XCEBRA keyword arguments from a parsed config table (``where`` names it in error messages)."""
    if "xcebra" in raw and isinstance(raw["xcebra"], dict):  # also accept everything under an [xcebra] table
        raw = {**raw["xcebra"], **{k: v for k, v in raw.items() if k != "xcebra"}}
    allowed = config_parameters()
    unknown = sorted(set(raw) - set(allowed) - {"objectives"})
    if unknown:
        raise ValueError(f"{where} has unknown key(s) {', '.join(unknown)}; allowed: "
                         f"{', '.join(allowed)}, objectives")
    params = {k: None if isinstance(v, str) and v.lower() == NONE_IN_CONFIG else v
              for k, v in raw.items() if k != "objectives"}
    if isinstance(params.get("regularizer_ramp"), list):
        params["regularizer_ramp"] = tuple(params["regularizer_ramp"])
    if "objectives" in raw:
        tables = raw["objectives"]
        if not isinstance(tables, list) or not tables or not all(isinstance(t, dict) for t in tables):
            raise ValueError(f"{where}: objectives must be an array of tables ([[objectives]]), "
                             "one per objective")
        objectives = []
        for i, table in enumerate(tables):
            fields = objective_fields()
            bad = sorted(set(table) - set(fields))
            if bad:
                raise ValueError(f"{where}: objectives[{i}] has unknown key(s) {', '.join(bad)}; "
                                 f"allowed: {', '.join(fields)}")
            table = {k: None if isinstance(v, str) and v.lower() == NONE_IN_CONFIG and k != "name" else v
                     for k, v in table.items()}
            missing = [k for k in ("name", "dims", "distribution") if k not in table]
            if missing:
                raise ValueError(f"{where}: objectives[{i}] needs {', '.join(missing)}")
            try:
                objectives.append(Objective(**{**table, "dims": tuple(table["dims"])
                                               if isinstance(table["dims"], list) else table["dims"]}))
            except (TypeError, ValueError) as error:
                raise ValueError(f"{where}: objectives[{i}]: {error}") from None
        params["objectives"] = objectives
    return params


def read_manifest(path: str | Path, what: str, allowed: Sequence[str]) -> tuple[dict[str, Any], str, Path]:
    """A TOML manifest (``fit-many``'s or a sessions manifest): (its table, its name for messages, its folder).

    Raises ValueError (one line, naming the file) for unknown keys or a model given both as ``config`` and
    as a ``[model]`` table.
    """
    path = Path(path)
    raw = read_toml(path, what)
    where = f"{what} {str(path)!r}"
    unknown = sorted(set(raw) - set(allowed))
    if unknown:
        raise ValueError(f"{where} has unknown key(s) {', '.join(unknown)}; allowed: {', '.join(allowed)}")
    if "config" in raw and "model" in raw:
        raise ValueError(f"{where}: give the model either as config = FILE or as a [model] table, not both")
    return raw, where, path.parent


def manifest_model(raw: dict[str, Any], base: Path, where: str) -> dict[str, Any] | None:
    """The XCEBRA keyword arguments of a manifest's ``config = FILE`` or ``[model]`` table; None if it has neither."""
    if "config" in raw:
        return load_config(base / raw["config"])
    if isinstance(raw.get("model"), dict):
        return config_from_table(raw["model"], f"{where} [model]")
    return None


def manifest_entries(raw: dict[str, Any], table: str, allowed: Sequence[str], base: Path,
                     where: str) -> list[tuple[dict[str, Any], str, str, dict[str, str]]]:
    """Each ``[[table]]`` entry of a manifest: (the entry, its data file resolved against ``base``, its neural key,
    its labels {name: key}), checked with one-line errors naming the entry."""
    entries = raw.get(table)
    if not isinstance(entries, list) or not entries or not all(isinstance(e, dict) for e in entries):
        raise ValueError(f"{where} needs one [[{table}]] table per recording, each with data and neural")
    checked = []
    for i, entry in enumerate(entries):
        bad = sorted(set(entry) - set(allowed))
        if bad:
            raise ValueError(f"{where}: {table}[{i}] has unknown key(s) {', '.join(bad)}; allowed: {', '.join(allowed)}")
        missing = [k for k in ("data", "neural") if k not in entry]
        if missing:
            raise ValueError(f"{where}: {table}[{i}] needs {' and '.join(missing)}")
        labels = entry.get("labels", {})
        if not isinstance(labels, dict) or not all(isinstance(v, str) for v in labels.values()):
            raise ValueError(f"{where}: {table}[{i}].labels must be a table of NAME = \"KEY\", e.g. "
                             "{ position = \"pos\" }")
        try:
            parse_labels([f"{name}={key}" for name, key in labels.items()])  # the same rules as --label
        except ValueError as error:
            raise ValueError(f"{where}: {table}[{i}].labels: {str(error).replace('--label name ', 'name ')}") from None
        checked.append((entry, str((base / entry["data"]).resolve()), str(entry["neural"]), dict(labels)))
    return checked
