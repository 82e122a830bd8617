"""The training loop: sampling, one forward pass for all windows of a step, losses, regularizer, Adam.

Each step draws references, negatives and one positive per objective, embeds every distinct time
point once (either as a batch of windows, or by running the convolutional encoder over the whole
recording when that is cheaper), sums the objectives' InfoNCE losses and, when its weight is
positive, adds the Jacobian regularizer estimated on a random subset of the references.
"""

from __future__ import annotations

import hashlib
import logging
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from tqdm.auto import tqdm

from ._files import read_tensors, write_tensors
from .data import sliding_windows
from .losses import Temperature, infonce
from .objectives import Embedder
from .regularizers import jacobian_penalty, ramp_weight
from .sampling import BatchIndex, BatchSampler

__all__ = ["LossHead", "TrainingPlan", "DivergenceError", "fit", "embed_indices"]

logger = logging.getLogger("xcebra")
CHECKPOINT_FORMAT = "xcebra-checkpoint"
CHECKPOINT_NAME = "checkpoint.safetensors"


class DivergenceError(FloatingPointError):
    """Training produced a non-finite loss or gradient; the weights before that step were kept."""


@dataclass
class LossHead:
    """One objective as the loop sees it: its slice, similarity, temperature and weight."""

    name: str
    dims: slice
    similarity: str
    temperature: Temperature
    weight: float = 1.0


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


def embed_indices(embedder: Embedder, neural: torch.Tensor, index: torch.Tensor, mode: str = "auto",
                  sequence: torch.Tensor | None = None) -> torch.Tensor:
    """Embed the time points ``index`` (K,) of ``neural`` (T, N); returns (K, D), each distinct point computed once.

    ``mode="windows"`` gathers the distinct windows and embeds them as a batch; ``"sequence"`` runs the
    encoder over the whole recording (shared frames of overlapping windows computed once) and picks
    the rows; ``"auto"`` chooses the one that processes fewer frames.
    """
    window, left = embedder.window, embedder.left
    unique, inverse = torch.unique(index, return_inverse=True)
    if mode == "auto":
        # frames processed: a window batch costs about window frames per distinct time point, the whole
        # sequence one frame per time point (measured: equal cost at about T = 0.5 * U * window)
        mode = "sequence" if window > 1 and neural.shape[0] < 0.5 * len(unique) * window else "windows"
    if mode == "sequence":
        x = sequence if sequence is not None else neural.T.contiguous()[None]
        z = embedder(x)[0]
        return z[index - left]
    windows = sliding_windows(neural, window)[unique - left]
    return embedder(windows)[:, 0][inverse]


def _losses(heads: Sequence[LossHead], z_ref, z_neg, z_pos) -> list[torch.Tensor]:
    return [infonce(z_ref[:, h.dims], zp[:, h.dims], z_neg[:, h.dims], h.similarity, h.temperature())
            for h, zp in zip(heads, z_pos)]


def _fingerprint_data(neural: torch.Tensor, labels: dict) -> str:
    digest = hashlib.blake2b(digest_size=16)
    digest.update(np.ascontiguousarray(neural.cpu().numpy()).tobytes())
    for name in sorted(labels):
        digest.update(name.encode())
        digest.update(np.ascontiguousarray(labels[name]).tobytes())
    return digest.hexdigest()


@dataclass
class _Checkpoint:
    directory: Path
    fingerprint: str

    @property
    def path(self) -> Path:
        return self.directory / CHECKPOINT_NAME


def _save_checkpoint(ck: _Checkpoint, step: int, embedder, heads_module, optimizer, generator, log) -> None:
    tensors = {f"model.{k}": v for k, v in embedder.state_dict().items()}
    tensors.update({f"criterion.{k}": v for k, v in heads_module.state_dict().items()})
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


def _load_checkpoint(ck: _Checkpoint, embedder, heads_module, optimizer, generator, log) -> int:
    tensors, header = read_tensors(ck.path, expected_format=CHECKPOINT_FORMAT)
    if header.get("fingerprint") != ck.fingerprint:
        raise ValueError(
            f"checkpoint_dir {str(ck.directory)!r} holds a checkpoint of a different run (other data or "
            "hyper-parameters); use another checkpoint_dir or delete it to start afresh")
    embedder.load_state_dict({k[6:]: v for k, v in tensors.items() if k.startswith("model.")})
    heads_module.load_state_dict({k[10:]: v for k, v in tensors.items() if k.startswith("criterion.")})
    state: dict = {}
    for key, value in tensors.items():
        if key.startswith("optim."):
            _, index, name = key.split(".", 2)
            state.setdefault(int(index), {})[name] = value
    optimizer.load_state_dict({"state": state, "param_groups": header["param_groups"]})
    generator.set_state(tensors["generator"])
    for key in header["log_keys"]:
        log[key] = tensors[f"log.{key}"].tolist()
    return int(header["step"])


def fit(embedder: Embedder, heads: Sequence[LossHead], sampler: BatchSampler, neural: torch.Tensor,
        plan: TrainingPlan, *, coverage: Sequence[int], generator: torch.Generator, verbose: bool = True,
        checkpoint_dir: str | os.PathLike | None = None, fingerprint: str = "") -> dict[str, np.ndarray]:
    """Train ``embedder`` in place; return the log (per-step arrays).

    Parameters
    ----------
    embedder : the network to train.
    heads : one per objective, in the order of ``sampler.distributions``.
    sampler : draws the batches.
    neural : (T, N) float32 tensor on the training device.
    plan : optimisation settings.
    coverage : (D,) how many objectives see each embedding dimension (regularizer weights).
    generator : the run's random generator (sampling and projections).
    checkpoint_dir : if given, resume from the checkpoint found there (it must come from the same run,
        see ``fingerprint``) and save one every ``plan.checkpoint_every`` steps, atomically.

    Raises
    ------
    DivergenceError
        A loss or gradient became NaN or infinite; the weights are those before that step.
    """
    heads_module = torch.nn.ModuleList([h.temperature for h in heads])
    parameters = list(embedder.parameters()) + [p for p in heads_module.parameters() if p.requires_grad]
    optimizer = torch.optim.Adam(parameters, lr=plan.learning_rate)
    log: dict[str, list] = {"loss": [], "regularizer": [], "regularizer_weight": [], "seconds": []}
    for h in heads:
        log[f"loss/{h.name}"] = []
        if h.temperature.learnable:
            log[f"temperature/{h.name}"] = []
    checkpoint = None
    start = 0
    if checkpoint_dir is not None:
        checkpoint = _Checkpoint(Path(checkpoint_dir), fingerprint)
        if checkpoint.path.exists():
            start = _load_checkpoint(checkpoint, embedder, heads_module, optimizer, generator, log)
            logger.info("resuming from %s at step %d", checkpoint.path, start)
    sequence = neural.T.contiguous()[None] if embedder.window > 1 else None
    windows = sliding_windows(neural, embedder.window)
    left = embedder.left
    reg_size = sampler.batch_size if plan.regularizer_batch_size is None else min(plan.regularizer_batch_size, sampler.batch_size)
    embedder.train()
    bar = tqdm(total=plan.max_steps, initial=start, disable=not verbose, desc="xcebra fit", unit="step",
               dynamic_ncols=True)
    try:
        for step in range(start, plan.max_steps):
            started = time.perf_counter()
            batch: BatchIndex = sampler.sample()
            index = torch.cat([batch.reference, batch.negative, *batch.positives])
            z = embed_indices(embedder, neural, index, plan.forward_mode, sequence)
            z_ref, z_neg, *z_pos = z.split(len(batch.reference))
            losses = _losses(heads, z_ref, z_neg, z_pos)
            total = sum(h.weight * l for h, l in zip(heads, losses))
            weight = ramp_weight(step, plan.regularizer_weight, plan.regularizer_ramp)
            if weight > 0:
                reg_windows = windows[batch.reference[:reg_size] - left].clone().requires_grad_(True)
                reg_out = embedder(reg_windows)[:, 0]
                regularizer = jacobian_penalty(reg_out, reg_windows, row_weights=coverage,
                                               n_projections=plan.regularizer_projections,
                                               exact=plan.regularizer_exact, generator=generator)
                total = total + weight * regularizer
            else:
                regularizer = total.new_zeros(())
            optimizer.zero_grad(set_to_none=True)
            total.backward()
            grad_norm = torch.linalg.vector_norm(
                torch.stack([torch.linalg.vector_norm(p.grad) for p in parameters if p.grad is not None]))
            values = torch.stack([total.detach(), regularizer.detach(), grad_norm, *[l.detach() for l in losses]]).tolist()
            if not all(math.isfinite(v) for v in values):
                raise DivergenceError(
                    f"training diverged at step {step}: loss={values[0]:.4g}, gradient norm={values[2]:.4g}. "
                    "The weights from before this step were kept; lower learning_rate or regularizer_weight, "
                    "or check the data for extreme values")
            optimizer.step()
            log["loss"].append(values[0])
            log["regularizer"].append(values[1])
            log["regularizer_weight"].append(weight)
            log["seconds"].append(time.perf_counter() - started)
            for h, v in zip(heads, values[3:]):
                log[f"loss/{h.name}"].append(v)
                if h.temperature.learnable:
                    log[f"temperature/{h.name}"].append(float(h.temperature().detach()))
            bar.update(1)
            if verbose and (step % 10 == 0 or step == plan.max_steps - 1):
                bar.set_postfix({h.name: f"{v:.3f}" for h, v in zip(heads, values[3:])} | {"reg": f"{values[1]:.3g}"},
                                refresh=False)
            if checkpoint is not None and plan.checkpoint_every and (
                    (step + 1) % plan.checkpoint_every == 0 or step + 1 == plan.max_steps):
                _save_checkpoint(checkpoint, step + 1, embedder, heads_module, optimizer, generator, log)
    finally:
        bar.close()
        optimizer.zero_grad(set_to_none=True)
        embedder.eval()
    return {key: np.asarray(values, dtype=np.float64) for key, values in log.items()}
