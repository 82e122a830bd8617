"""What the subcommands share: the parser's error line, the common options, reading data files and models,
writing array files, and the one-line error messages.
"""

from __future__ import annotations

import argparse
import io
import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .._files import atomic_write_bytes
from ..datasets.io import load_arrays
from ..estimators import XCEBRA

__all__ = ["Parser", "add_common_options", "add_data_arguments", "parse_block_ranks", "parse_labels", "parse_hypothesis",
           "read_data", "load_model", "save_array_file", "read_cell_types", "configure_logging", "error_line"]

logger = logging.getLogger("xcebra")
_handler: logging.Handler | None = None

class Parser(argparse.ArgumentParser):
    """argparse with the error line as ``xcebra: error: ...`` (after the usage), exit status 2."""

    def error(self, message: str):  # noqa: D102 - argparse API
        self.print_usage(sys.stderr)
        self.exit(2, f"xcebra: error: {message}\n")


def add_common_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress messages (INFO)")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    parser.add_argument("--debug", action="store_true", help="show the full traceback on errors")


def add_data_arguments(parser: argparse.ArgumentParser, labels: bool = False, required: bool = True) -> None:
    parser.add_argument("--neural", required=required, metavar="KEY",
                        help="array of neural activity (time points x neurons) in DATA, e.g. spikes or group/data")
    if labels:
        parser.add_argument("--label", action="append", default=[], metavar="NAME=KEY",
                            help="a label array in DATA (time points [x dims]) passed to fit as NAME; repeatable; "
                                 "NAME alone means NAME=NAME")


def parse_block_ranks(items: Sequence[str]) -> dict[str, int]:
    ranks: dict[str, int] = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not name or not value.isdigit() or int(value) < 1:
            raise ValueError(f"--block-rank needs BLOCK=K with K an integer >= 1, e.g. behavior=2; got {item!r}")
        if name in ranks:
            raise ValueError(f"--block-rank gives block {name!r} twice")
        ranks[name] = int(value)
    return ranks


def parse_labels(items: Sequence[str]) -> dict[str, str]:
    labels: dict[str, str] = {}
    for item in items:
        name, sep, key = item.partition("=")
        name, key = name.strip(), (key.strip() if sep else name.strip())
        if not name or not key:
            raise ValueError(f"--label must be NAME=KEY (e.g. position=pos); got {item!r}")
        if not name.isidentifier():
            raise ValueError(f"--label name must be a Python identifier (letters, digits, _); got {name!r}")
        if name in ("neural", "checkpoint_dir", "checkpoint_every"):
            raise ValueError(f"--label name {name!r} is reserved; choose another name")
        if name in labels:
            raise ValueError(f"--label {name!r} is given twice")
        labels[name] = key
    return labels


def parse_hypothesis(items: Sequence[str]) -> dict[str, list[str]] | None:
    if not items:
        return None
    hypothesis: dict[str, list[str]] = {}
    for item in items:
        block, sep, types = item.partition("=")
        members = [t.strip() for t in types.split(",") if t.strip()]
        if not sep or not block.strip() or not members:
            raise ValueError(f"--hypothesis must be BLOCK=TYPE[,TYPE...] (e.g. behavior=grid,place); got {item!r}")
        hypothesis.setdefault(block.strip(), []).extend(members)
    return hypothesis


def read_data(path: str, neural_key: str, labels: dict[str, str] | None = None, *,
               lazy: bool = False) -> tuple[Any, dict[str, np.ndarray]]:
    keys = {"neural": neural_key, **{name: key for name, key in (labels or {}).items()}}
    arrays = load_arrays(path, keys, lazy=lazy)
    neural = arrays.pop("neural")
    if len(neural.shape) != 2:
        raise ValueError(f"{path!r}: --neural {neural_key!r} must be a 2-D array (time points x neurons); "
                         f"got shape {tuple(neural.shape)}")
    for name, values in arrays.items():
        if values.shape[0] != neural.shape[0]:
            raise ValueError(f"{path!r}: label {name!r} ({labels[name]!r}) has {values.shape[0]} time points but "
                             f"neural ({neural_key!r}) has {neural.shape[0]}; they must match")
    return neural, {name: np.asarray(values) for name, values in arrays.items()}


def load_model(path: str):
    return XCEBRA.load(path)


def save_array_file(path: Path, arrays: dict[str, np.ndarray], single: str | None = None) -> None:
    buffer = io.BytesIO()
    if single is not None:
        np.save(buffer, arrays[single], allow_pickle=False)
    else:
        np.savez(buffer, **arrays)
    atomic_write_bytes(path, buffer.getvalue())


def read_cell_types(spec: str, data_path: str, n_neurons: int) -> list[str]:
    candidate = Path(spec)
    if candidate.suffix.lower() in (".txt", ".csv", ".tsv") and candidate.is_file():
        try:
            text = candidate.read_text()
        except (OSError, UnicodeDecodeError) as error:
            raise ValueError(f"cannot read cell types from {spec!r}: {error}") from None
        entries = [t.strip() for line in text.splitlines() for t in line.replace("\t", ",").split(",") if t.strip()]
    else:
        values = load_arrays(data_path, {"cell types": spec})["cell types"]
        values = np.asarray(values)
        if values.ndim != 1:
            raise ValueError(f"--cell-types {spec!r} must be a 1-D array of names; got shape {values.shape}")
        entries = [v.decode() if isinstance(v, bytes) else str(v) for v in values.tolist()]
    if len(entries) != n_neurons:
        raise ValueError(f"--cell-types {spec!r} has {len(entries)} entries but the data have {n_neurons} neurons; "
                         "they must match")
    return entries


def configure_logging(verbose: bool) -> None:
    global _handler
    if _handler is not None:
        logger.removeHandler(_handler)
    _handler = logging.StreamHandler(sys.stderr)
    _handler.setFormatter(logging.Formatter("xcebra: %(message)s"))
    logger.addHandler(_handler)
    logger.setLevel(logging.INFO if verbose else logging.WARNING)


def error_line(error: BaseException) -> str:
    if isinstance(error, KeyError) and error.args and type(error) is KeyError:
        text = str(error.args[0])
    else:
        text = str(error)
    text = " ".join(text.split())
    return text or type(error).__name__
