"""The data of a job: arrays sent to the workers, or files (``path`` or ``(path, key)``) the workers read.

Checks of the ``datasets`` argument of :func:`xcebra.parallel.fit_many`, what a worker loads, and how a
job is described in ``index.json``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from ..datasets.io import load_arrays

__all__ = ["is_path", "is_file_spec", "file_and_key", "describe", "check_jobs", "load_job"]


def is_path(value: Any) -> bool:
    return isinstance(value, (str, os.PathLike))


def is_file_spec(value: Any) -> bool:
    return is_path(value) or (isinstance(value, (tuple, list)) and len(value) == 2 and is_path(value[0])
                               and isinstance(value[1], str))


def file_and_key(role: str, value: Any) -> tuple[str, str]:
    """(path, key) of a file spec: a path (key: "data" for .npy, else the role's name) or a (path, key) pair."""
    if is_path(value):
        path = os.fspath(value)
        return path, ("data" if path.endswith(".npy") else role)
    return os.fspath(value[0]), value[1]


def describe(value: Any) -> str:
    """A job's entry for people: ``file[key]`` or ``array of shape (T, N)``."""
    if is_path(value):
        return os.fspath(value)
    if is_file_spec(value):
        return f"{os.fspath(value[0])}[{value[1]!r}]"
    shape = getattr(value, "shape", None)
    return f"array of shape {tuple(shape)}" if shape is not None else type(value).__name__


def check_jobs(datasets: Any) -> list[dict[str, Any]]:
    if isinstance(datasets, Mapping) or not isinstance(datasets, Sequence) or isinstance(datasets, (str, bytes)):
        raise ValueError(f"datasets must be a list of dicts such as {{'neural': array or path, 'position': ...}}; "
                         f"got {type(datasets).__name__}")
    jobs = []
    for i, job in enumerate(datasets):
        if not isinstance(job, Mapping):
            raise ValueError(f"datasets[{i}] must be a dict with a 'neural' entry; got {type(job).__name__}")
        if "neural" not in job:
            raise ValueError(f"datasets[{i}] has no 'neural' entry; it has {', '.join(map(repr, job)) or 'none'}")
        for role in job:
            if not isinstance(role, str) or not role.isidentifier():
                raise ValueError(f"datasets[{i}]: entry names must be identifiers (neural, position, ...); "
                                 f"got {role!r}")
            if role in ("checkpoint_dir", "checkpoint_every"):
                raise ValueError(f"datasets[{i}]: {role!r} is reserved by fit and cannot name a label")
        jobs.append(dict(job))
    return jobs


def load_job(job: Mapping[str, Any]) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """The arrays of one job, read here (on the worker): files are opened lazily, then read whole for fit."""
    arrays = {}
    for role, value in job.items():
        if is_file_spec(value):
            path, key = file_and_key(role, value)
            value = load_arrays(path, {role: key}, lazy=True)[role]
        arrays[role] = np.asarray(value)
    neural = arrays.pop("neural")
    return neural, arrays
