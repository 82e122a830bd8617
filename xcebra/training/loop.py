"""The one training loop: Adam over a task's steps, divergence checks, the log, progress and checkpoints.

What a step computes is the task's business (:class:`Task`): the contrastive step of xCEBRA
(:mod:`xcebra.training.contrastive`) or the regression step of the supervised reference
(:mod:`xcebra.training.regression`). The loop owns everything they share:

- one Adam optimiser over the model's and the criterion's trainable parameters (fused kernel where torch
  has one);
- the backward pass, the gradient all-reduce in data-parallel training (:mod:`xcebra.training.distributed`)
  and the gradient norm;
- one host synchronisation per step: every monitored value is read in a single ``tolist``;
- divergence: a non-finite monitored value or gradient norm raises :class:`DivergenceError` before the
  update, and an update that makes a weight non-finite is undone before it raises, so the model always
  holds the last good weights and the error holds the log of the completed steps;
- the log (per-step floats), the progress bar, and atomic checkpoints with resume
  (:mod:`xcebra.training.checkpoint`).
"""

from __future__ import annotations

import logging
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol, Sequence

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from ..exceptions import DivergenceError
from .checkpoint import Checkpoint, load_checkpoint, remove_stale_temporaries, save_checkpoint
from .distributed import ProcessGroup, all_reduce_gradients

__all__ = ["TrainingPlan", "StepOutput", "Task", "run", "make_adam", "DivergenceError"]

logger = logging.getLogger("xcebra")


@dataclass(frozen=True)
class TrainingPlan:
    """Optimisation settings (see :class:`xcebra.XCEBRA` for their meaning)."""

    max_steps: int
    learning_rate: float
    regularizer_weight: float = 0.0
    regularizer_ramp: tuple[int, int] | None = None
    regularizer_batch_size: int | None = 256
    regularizer_projections: int = 1
    regularizer_exact: bool = False
    forward_mode: str = "auto"
    checkpoint_every: int = 0
    precision: str = "fp32"

    def regularizer_rows(self, batch_size: int) -> int:
        """How many of a step's ``batch_size`` references the regularizer is estimated on (per session in a
        multi-session fit, so each encoder gets what its own fit would)."""
        return batch_size if self.regularizer_batch_size is None else min(self.regularizer_batch_size, batch_size)


@dataclass
class StepOutput:
    """What one step of a task hands to the loop.

    Attributes
    ----------
    objective : 0-d tensor
        What is differentiated (in data-parallel training, this rank's share of it).
    monitored : dict of str -> 0-d tensor
        Values logged under their key, all read with one host synchronisation after the backward pass.
    checked : tuple of str
        Keys of ``monitored`` that must be finite (with the gradient norm); one that is not stops training.
    extras : dict of str -> float
        Values known without a synchronisation (e.g. the regularizer's weight), logged as they are.
    """

    objective: torch.Tensor
    monitored: dict[str, torch.Tensor]
    checked: tuple[str, ...]
    extras: dict[str, float] = field(default_factory=dict)


class Task(Protocol):
    """One kind of training step. ``model`` is trained and saved as ``model.*`` in checkpoints; ``criterion``
    holds the loss's own trainable parts (temperatures, a readout), saved as ``criterion.*``."""

    model: nn.Module
    criterion: nn.Module

    def log_keys(self) -> list[str]:
        """Every key of the log, in order (``"seconds"`` among them makes the loop time each step)."""

    def step(self, step: int) -> StepOutput:
        """Compute one step's objective (the loop differentiates it)."""

    def after_update(self) -> dict[str, float]:
        """Values to log that are read after the optimiser step (e.g. learned temperatures)."""

    def progress(self, values: dict[str, float]) -> dict[str, str]:
        """The progress bar's postfix for the monitored ``values`` of a step."""


def make_adam(parameters: Sequence[torch.Tensor], learning_rate: float) -> torch.optim.Adam:
    """Adam with torch's fused kernel where it has one (float32 on CPU or CUDA): one pass over each
    parameter per step instead of a chain of element-wise operations."""
    fused = all(p.device.type in ("cpu", "cuda") and p.dtype == torch.float32 for p in parameters)
    return torch.optim.Adam(parameters, lr=learning_rate, fused=fused or None)


def _as_arrays(log: dict[str, list]) -> dict[str, np.ndarray]:
    return {key: np.asarray(values, dtype=np.float64) for key, values in log.items()}


def _backward(output: StepOutput, optimizer: torch.optim.Optimizer, parameters: list[torch.Tensor],
              group: ProcessGroup | None) -> dict[str, float]:
    """Gradients of the step's objective (summed over ranks); returns the monitored values and ``grad_norm``."""
    optimizer.zero_grad(set_to_none=True)
    output.objective.backward()
    if group is not None:
        all_reduce_gradients(parameters)
    grads = [p.grad for p in parameters if p.grad is not None]
    # one foreach kernel for all the per-tensor norms: the small MLP's step is bound by operation count
    grad_norm = (torch.linalg.vector_norm(torch.stack(torch._foreach_norm(grads))) if grads
                 else output.objective.new_zeros(()))
    names = list(output.monitored)
    values = torch.stack([grad_norm.detach().float()] + [output.monitored[k].detach().float() for k in names])
    numbers = values.tolist()  # the step's one host synchronisation
    return {"grad_norm": numbers[0], **dict(zip(names, numbers[1:]))}


def _update(optimizer: torch.optim.Optimizer, parameters: list[torch.Tensor], last_good: list[torch.Tensor],
            step: int, values: dict[str, float], log: dict[str, list]) -> None:
    """The optimiser step, undone (and reported) if it made any weight non-finite."""
    with torch.no_grad():
        if hasattr(torch, "_foreach_copy_"):
            torch._foreach_copy_(last_good, parameters)
        else:  # older torch
            for saved, p in zip(last_good, parameters):
                saved.copy_(p)
    optimizer.step()
    # a norm is finite exactly when every entry is (or it overflowed float32, a divergence too)
    if not bool(torch.isfinite(torch.stack(torch._foreach_norm(parameters))).all()):
        with torch.no_grad():
            for saved, p in zip(last_good, parameters):
                p.copy_(saved)
        raise DivergenceError(
            f"training diverged at step {step}: the update made weights non-finite (loss={values['loss']:.4g}, "
            f"gradient norm={values['grad_norm']:.4g}). The weights from before this step were kept; lower "
            "learning_rate", step=step, log=_as_arrays(log))


def _check_finite(values: dict[str, float], checked: tuple[str, ...], step: int, log: dict[str, list]) -> None:
    if not all(math.isfinite(values[k]) for k in ("grad_norm", *checked)):
        raise DivergenceError(
            f"training diverged at step {step}: loss={values['loss']:.4g}, gradient norm={values['grad_norm']:.4g}. "
            "The weights from before this step were kept; lower learning_rate or regularizer_weight, "
            "or check the data for extreme values", step=step, log=_as_arrays(log))


def _resume(checkpoint_dir: str | os.PathLike | None, fingerprint: str, task: Task, optimizer, generator, log,
            plan: TrainingPlan, rank_zero: bool) -> tuple[Checkpoint | None, int]:
    """The run's checkpoint (None without ``checkpoint_dir``) and the step to start from."""
    if checkpoint_dir is None:
        return None, 0
    checkpoint, start = Checkpoint(Path(checkpoint_dir), fingerprint), 0
    if checkpoint.path.exists():  # every rank resumes from the same file (a shared file system)
        start = load_checkpoint(checkpoint, task.model, task.criterion, optimizer, generator, log, plan.max_steps)
        logger.info("resuming from %s at step %d", checkpoint.path, start)
    if rank_zero and checkpoint.directory.is_dir():
        remove_stale_temporaries(checkpoint.directory)
    return checkpoint, start


def run(task: Task, plan: TrainingPlan, *, generator: torch.Generator, verbose: bool = True,
        checkpoint_dir: str | os.PathLike | None = None, fingerprint: str = "", group: ProcessGroup | None = None,
        desc: str = "xcebra fit") -> dict[str, np.ndarray]:
    """Train ``task.model`` (and ``task.criterion``) in place for ``plan.max_steps`` steps; return the log.

    Parameters
    ----------
    task : Task
        What a step computes (:mod:`xcebra.training.contrastive`, :mod:`xcebra.training.regression`).
    plan : TrainingPlan
        ``max_steps``, ``learning_rate`` and ``checkpoint_every`` are read here.
    generator : torch.Generator
        The run's random generator (the task draws from it); saved in checkpoints.
    verbose : bool, default True
        Progress bar (rank 0 only).
    checkpoint_dir : path, optional
        Resume from the checkpoint found there (it must carry ``fingerprint``) and save one every
        ``plan.checkpoint_every`` steps and after the last, atomically (rank 0 only).
    group : ProcessGroup, optional
        Data-parallel training: parameters start from rank 0's and gradients are summed over ranks.
    desc : str
        The progress bar's title.

    Returns
    -------
    dict of str -> ndarray of shape (steps,), float64: the task's ``log_keys``.

    Raises
    ------
    DivergenceError
        A checked value, the gradient norm or an updated weight became non-finite; the weights are those
        from before that step and the error's ``log`` holds the completed steps.
    ValueError
        The checkpoint in ``checkpoint_dir`` comes from another run, or is damaged; it is left untouched.
    """
    parameters = list(task.model.parameters()) + [p for p in task.criterion.parameters() if p.requires_grad]
    optimizer = make_adam(parameters, plan.learning_rate)
    log: dict[str, list] = {key: [] for key in task.log_keys()}
    rank_zero = group is None or group.rank == 0
    if group is not None:
        group.broadcast_parameters(parameters)
    checkpoint, start = _resume(checkpoint_dir, fingerprint, task, optimizer, generator, log, plan, rank_zero)
    last_good = [p.detach().clone() for p in parameters]  # restored if an update turns a weight non-finite
    task.model.train()
    task.criterion.train()
    bar = tqdm(total=plan.max_steps, initial=start, disable=not (verbose and rank_zero), desc=desc, unit="step",
               dynamic_ncols=True)
    try:
        for step in range(start, plan.max_steps):
            started = time.perf_counter()
            output = task.step(step)
            values = _backward(output, optimizer, parameters, group)
            _check_finite(values, output.checked, step, log)
            _update(optimizer, parameters, last_good, step, values, log)
            for key in output.monitored:
                log[key].append(values[key])
            for key, value in {**output.extras, **task.after_update()}.items():
                log[key].append(value)
            if "seconds" in log:
                log["seconds"].append(time.perf_counter() - started)
            bar.update(1)
            if verbose and (step % 10 == 0 or step == plan.max_steps - 1):
                bar.set_postfix(task.progress(values), refresh=False)
            if checkpoint is not None and rank_zero and plan.checkpoint_every and (
                    (step + 1) % plan.checkpoint_every == 0 or step + 1 == plan.max_steps):
                save_checkpoint(checkpoint, step + 1, task.model, task.criterion, optimizer, generator, log)
    finally:
        bar.close()
        optimizer.zero_grad(set_to_none=True)
        task.model.eval()
        task.criterion.eval()
    return _as_arrays(log)
