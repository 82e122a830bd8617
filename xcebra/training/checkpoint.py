"""Checkpoints of a training run: the whole state (weights, optimiser, generator, log), written atomically.

A checkpoint is written with a temporary file, fsync and rename (:mod:`xcebra._files`), so a run killed
at any moment leaves either the previous complete checkpoint or the new complete one. It carries the
run's fingerprint (a hash of the data and the hyper-parameters that change the result), so a checkpoint
directory can only resume the run that wrote it. A file that fails to load was damaged afterwards or
does not come from this run: it is refused with a message naming it, never silently overwritten.
"""

from __future__ import annotations

import hashlib
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from .._files import read_tensors, write_tensors

__all__ = ["CHECKPOINT_FORMAT", "CHECKPOINT_NAME", "Checkpoint", "fingerprint_data", "prepare_checkpoint_dir",
           "save_checkpoint", "load_checkpoint", "remove_stale_temporaries"]

logger = logging.getLogger("xcebra")
CHECKPOINT_FORMAT = "xcebra-checkpoint"
CHECKPOINT_NAME = "checkpoint.safetensors"
#: errors that mean "this file does not describe this run"; each becomes one ValueError naming the file
_MALFORMED = (KeyError, TypeError, ValueError, RuntimeError, IndexError, AttributeError)


def fingerprint_data(neural: torch.Tensor, labels: dict) -> str:
    """A hash of every value of ``neural`` (T, N) and of each label, by name: equal only for the same data."""
    digest = hashlib.blake2b(digest_size=16)
    digest.update(np.ascontiguousarray(neural.cpu().numpy()).tobytes())
    for name in sorted(labels):
        digest.update(name.encode())
        digest.update(np.ascontiguousarray(labels[name]).tobytes())
    return digest.hexdigest()


@dataclass
class Checkpoint:
    """Where a run checkpoints (``directory``) and which run it is (``fingerprint``)."""

    directory: Path
    fingerprint: str

    @property
    def path(self) -> Path:
        return self.directory / CHECKPOINT_NAME


def prepare_checkpoint_dir(checkpoint_dir: Any) -> Path:
    """Create ``checkpoint_dir`` before training, so that a bad path fails now and not at the first checkpoint."""
    try:
        directory = Path(checkpoint_dir)
    except TypeError:
        raise ValueError(f"checkpoint_dir must be a path (str or os.PathLike); got {checkpoint_dir!r}") from None
    if directory.exists() and not directory.is_dir():
        raise ValueError(f"checkpoint_dir {str(directory)!r} exists and is not a directory; pass a directory")
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise ValueError(f"checkpoint_dir {str(directory)!r} cannot be created: {error.strerror or error}") from None
    if not os.access(directory, os.W_OK | os.X_OK):
        raise ValueError(f"checkpoint_dir {str(directory)!r} is not writable; pass a directory you can write to")
    return directory


def save_checkpoint(ck: Checkpoint, step: int, model: nn.Module, criterion: nn.Module,
                    optimizer: torch.optim.Optimizer, generator: torch.Generator, log: dict[str, list]) -> None:
    """Write the state after ``step`` completed steps: ``model`` and ``criterion`` weights, Adam, generator, log."""
    tensors = {f"model.{k}": v for k, v in model.state_dict().items()}
    tensors.update({f"criterion.{k}": v for k, v in criterion.state_dict().items()})
    opt_state = optimizer.state_dict()
    for index, state in opt_state["state"].items():
        for key, value in state.items():
            tensors[f"optim.{index}.{key}"] = torch.as_tensor(value)
    tensors["generator"] = generator.get_state()
    tensors.update({f"log.{k}": torch.tensor(v, dtype=torch.float64) for k, v in log.items()})
    header = {"format": CHECKPOINT_FORMAT, "format_version": 1, "step": step, "fingerprint": ck.fingerprint,
              "param_groups": [{k: v for k, v in g.items()} for g in opt_state["param_groups"]],
              "log_keys": sorted(log)}
    write_tensors(ck.path, tensors, header)


def _check_state(what: str, tensors: dict, expected: dict) -> None:
    """Same names, shapes and dtypes as the module's state: refuse before anything is copied."""
    if set(tensors) != set(expected):
        missing = sorted(set(expected) - set(tensors))[:3]
        extra = sorted(set(tensors) - set(expected))[:3]
        raise ValueError(f"its {what} does not match this model (missing {missing}, unexpected {extra})")
    for key, value in expected.items():
        if tensors[key].shape != value.shape or tensors[key].dtype != value.dtype:
            raise ValueError(f"its {what} entry {key!r} has shape {tuple(tensors[key].shape)} and dtype "
                             f"{tensors[key].dtype}; this model needs {tuple(value.shape)} and {value.dtype}")


def _optimizer_state(tensors: dict, header: dict, optimizer: torch.optim.Optimizer) -> dict:
    """The optimiser's state dict from the file, checked against ``optimizer``'s parameters."""
    state: dict = {}
    for key, value in tensors.items():
        if key.startswith("optim."):
            _, index, name = key.split(".", 2)
            state.setdefault(int(index), {})[name] = value
    flat = [p for g in optimizer.param_groups for p in g["params"]]
    for index, entries in state.items():
        if not 0 <= index < len(flat):
            raise ValueError(f"its optimizer state names parameter {index}; this model has {len(flat)}")
        for name, value in entries.items():
            if name != "step" and value.shape != flat[index].shape:
                raise ValueError(f"its optimizer state {name!r} of parameter {index} has shape "
                                 f"{tuple(value.shape)}; this model needs {tuple(flat[index].shape)}")
    optimizer_state = {"state": state, "param_groups": header["param_groups"]}
    # the optimizer validates its own state; load it into a scratch copy first so a failure changes nothing
    scratch = torch.optim.Adam([torch.nn.Parameter(p.detach().clone()) for p in flat],
                               lr=optimizer.param_groups[0]["lr"])
    scratch.load_state_dict(optimizer_state)
    return optimizer_state


def _checked_state(tensors: dict, header: dict, model: nn.Module, criterion: nn.Module,
                   optimizer: torch.optim.Optimizer, generator: torch.Generator, log: dict,
                   max_steps: int) -> dict[str, Any]:
    """Every part of the file, checked against this run before any of it is used; raises on the first mismatch."""
    step = header["step"]
    if isinstance(step, bool) or not isinstance(step, int) or not 0 <= step <= max_steps:
        raise ValueError(f"its step {step!r} is not an int in 0..max_steps={max_steps}")
    model_state = {k[6:]: v for k, v in tensors.items() if k.startswith("model.")}
    _check_state("model", model_state, model.state_dict())
    criterion_state = {k[10:]: v for k, v in tensors.items() if k.startswith("criterion.")}
    _check_state("criterion", criterion_state, criterion.state_dict())
    generator_state = tensors["generator"]
    if generator_state.dtype != torch.uint8 or generator_state.shape != generator.get_state().shape:
        raise ValueError("its random generator state is malformed")
    log_keys = header["log_keys"]
    if sorted(log_keys) != sorted(log) or any(tensors[f"log.{k}"].shape != (step,) for k in log_keys):
        raise ValueError(f"its log does not match this run (keys {log_keys}, {step} steps)")
    return {"step": step, "model": model_state, "criterion": criterion_state, "generator": generator_state,
            "optimizer": _optimizer_state(tensors, header, optimizer),
            "log": {key: tensors[f"log.{key}"].tolist() for key in log_keys}}


def load_checkpoint(ck: Checkpoint, model: nn.Module, criterion: nn.Module, optimizer: torch.optim.Optimizer,
                    generator: torch.Generator, log: dict[str, list], max_steps: int) -> int:
    """Restore the run's whole state from ``ck.path`` and return its step; a damaged or foreign file raises
    ValueError, changing nothing (every part is checked before the first one is loaded)."""
    try:
        tensors, header = read_tensors(ck.path, expected_format=CHECKPOINT_FORMAT)
    except ValueError as error:
        raise ValueError(
            f"cannot resume from checkpoint {str(ck.path)!r}: {error}. Delete the file to start the run afresh, "
            "or pass another checkpoint_dir") from None
    if header.get("fingerprint") != ck.fingerprint:
        raise ValueError(
            f"checkpoint_dir {str(ck.directory)!r} holds a checkpoint of a different run (other data or "
            "hyper-parameters); use another checkpoint_dir or delete it to start afresh")
    try:
        state = _checked_state(tensors, header, model, criterion, optimizer, generator, log, max_steps)
    except _MALFORMED as error:
        detail = f"missing entry {error}" if isinstance(error, KeyError) else str(error)
        raise ValueError(
            f"cannot resume from checkpoint {str(ck.path)!r}: {detail}. Delete the file to start the run afresh, "
            "or pass another checkpoint_dir") from error
    model.load_state_dict(state["model"])
    criterion.load_state_dict(state["criterion"])
    optimizer.load_state_dict(state["optimizer"])
    generator.set_state(state["generator"])
    log.update(state["log"])
    return state["step"]


def remove_stale_temporaries(directory: Path) -> None:
    """Delete the temporary files of checkpoint writes that a killed run left behind."""
    for stale in directory.glob(f".{CHECKPOINT_NAME}.*.tmp"):
        try:
            stale.unlink()
            logger.info("removed %s, left by an interrupted checkpoint write", stale)
        except OSError:
            pass
