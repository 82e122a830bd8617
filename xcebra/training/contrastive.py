"""The xCEBRA training step: sampled pairs, one forward pass, InfoNCE per objective, the Jacobian regularizer.

Each step draws references, negatives and one positive per objective, embeds every distinct time
point once (either as a batch of windows, or by running the convolutional encoder over the whole
recording when that is cheaper: :func:`xcebra.training.forward.embed_indices`), sums the objectives'
InfoNCE losses and, when its weight is positive, adds the Jacobian regularizer estimated on a random
subset of the references. :func:`fit` runs these steps in the shared loop (:func:`xcebra.training.loop.run`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch

from ..data import sliding_windows
from ..losses import Temperature, infonce
from ..models import Embedder
from ..regularizers import jacobian_penalty, ramp_weight
from ..sampling import BatchIndex, BatchSampler
from .distributed import ProcessGroup, Shard
from .forward import embed_indices, inference, output_dim
from .loop import StepOutput, TrainingPlan, run

__all__ = ["LossHead", "ContrastiveTask", "fit", "evaluate_losses"]


@dataclass
class LossHead:
    """One objective as the loop sees it: its slice, similarity, temperature and weight."""

    name: str
    dims: slice
    similarity: str
    temperature: Temperature
    weight: float = 1.0


def _losses(heads: Sequence[LossHead], z_ref, z_neg, z_pos) -> list[torch.Tensor]:
    return [infonce(z_ref[:, h.dims], zp[:, h.dims], z_neg[:, h.dims], h.similarity, h.temperature())
            for h, zp in zip(heads, z_pos)]


def euclidean_dims(heads: Sequence[LossHead], embedder: Embedder, device) -> slice | torch.Tensor | None:
    """The embedding dimensions seen by a euclidean objective (None if none): a slice where contiguous."""
    width = output_dim(embedder)
    dims = sorted({d for h in heads if h.similarity == "euclidean" for d in range(*h.dims.indices(width))})
    if not dims:
        return None
    # a slice where the dims are contiguous (they usually are): a view, not a gather, each step
    if dims == list(range(dims[0], dims[-1] + 1)):
        return slice(dims[0], dims[-1] + 1)
    return torch.tensor(dims, device=device)


class ContrastiveTask:
    """One xCEBRA training step (see the module docstring), for :func:`xcebra.training.loop.run`.

    Parameters
    ----------
    embedder : the network to train.
    heads : one per objective, in the order of ``sampler.distributions``.
    sampler : draws the batches.
    neural : (T, N) float32 tensor on the training device.
    plan : optimisation settings (regularizer, forward mode, precision).
    coverage : (D,) how many objectives see each embedding dimension (the regularizer's row weights).
    generator : the run's random generator (projections of the regularizer).
    group : data-parallel training with the other ranks of this group, optional.
    """

    def __init__(self, embedder: Embedder, heads: Sequence[LossHead], sampler: BatchSampler, neural: torch.Tensor,
                 plan: TrainingPlan, coverage: Sequence[int], generator: torch.Generator,
                 group: ProcessGroup | None = None):
        self.model, self.heads, self.sampler, self.neural, self.plan = embedder, list(heads), sampler, neural, plan
        self.criterion = torch.nn.ModuleList([h.temperature for h in heads])
        self.generator, self.group = generator, group
        # the euclidean losses are unbounded below as the embedding grows: log its spread (the estimator warns)
        self.euclidean_dims = euclidean_dims(heads, embedder, neural.device)
        self.sequence = neural.T.contiguous()[None] if embedder.window > 1 else None
        self.windows = sliding_windows(neural, embedder.window)
        self.reg_size = plan.regularizer_rows(sampler.batch_size)
        # the regularizer's row weights as a tensor once, not converted from the sequence at every step
        self.coverage = torch.as_tensor(coverage, dtype=torch.float32, device=neural.device)
        self.shard = None if group is None else Shard(group, embedder, neural, sampler.domain)

    def log_keys(self) -> list[str]:
        keys = ["loss", "regularizer", "regularizer_weight", "seconds"]
        keys += ["embedding_std"] if self.euclidean_dims is not None else []
        for h in self.heads:
            keys += [f"loss/{h.name}"] + ([f"temperature/{h.name}"] if h.temperature.learnable else [])
        return keys

    def _regularizer(self, reference: torch.Tensor) -> torch.Tensor:
        """The Jacobian penalty of this process on the step's first ``reg_size`` references."""
        plan = self.plan
        if self.shard is not None:
            return self.shard.regularizer(self.model, self.windows, reference, self.coverage, plan, self.generator)
        # index_select copies: the leaf the regularizer differentiates by is not a view of the data
        reg_windows = self.windows.index_select(0, reference - self.model.left).requires_grad_(True)
        reg_out = self.model(reg_windows, plan.precision)[:, 0]
        return jacobian_penalty(reg_out, reg_windows, row_weights=self.coverage,
                                n_projections=plan.regularizer_projections, exact=plan.regularizer_exact,
                                generator=self.generator)

    def step(self, step: int) -> StepOutput:
        plan, heads = self.plan, self.heads
        batch: BatchIndex = self.sampler.sample()
        index = torch.cat([batch.reference, batch.negative, *batch.positives])
        if self.shard is None:
            z = embed_indices(self.model, self.neural, index, plan.forward_mode, self.sequence, plan.precision)
        else:
            z = self.shard.embed(self.model, index, plan.forward_mode, plan.precision)
        z_ref, z_neg, *z_pos = z.split(len(batch.reference))
        losses = _losses(heads, z_ref, z_neg, z_pos)
        total = sum(h.weight * l for h, l in zip(heads, losses))
        weight = ramp_weight(step, plan.regularizer_weight, plan.regularizer_ramp)
        # under data parallelism every rank evaluates the whole contrastive loss: 1/world_size of it each, as
        # gradients are summed; the regularizer is split over ranks, each differentiating its own share
        objective = total if self.group is None else total / self.group.world_size
        regularizer = total.new_zeros(())
        if weight > 0:
            regularizer = self._regularizer(batch.reference[:self.reg_size])
            objective = objective + weight * regularizer
            if self.group is not None:
                regularizer = self.group.all_reduce_sum(regularizer)
            total = total + weight * regularizer
        monitored = {"loss": total, "regularizer": regularizer}
        monitored.update({f"loss/{h.name}": l for h, l in zip(heads, losses)})
        if self.euclidean_dims is not None:
            spread = z_ref.detach()[:, self.euclidean_dims].float()
            monitored["embedding_std"] = (spread - spread.mean(0)).square().mean().sqrt()
        checked = ("loss", "regularizer", *(f"loss/{h.name}" for h in heads))
        return StepOutput(objective, monitored, checked, {"regularizer_weight": weight})

    def after_update(self) -> dict[str, float]:
        return {f"temperature/{h.name}": float(h.temperature().detach()) for h in self.heads
                if h.temperature.learnable}

    def progress(self, values: dict[str, float]) -> dict[str, str]:
        return {h.name: f"{values[f'loss/{h.name}']:.3f}" for h in self.heads} | {"reg": f"{values['regularizer']:.3g}"}


def fit(embedder: Embedder, heads: Sequence[LossHead], sampler: BatchSampler, neural: torch.Tensor,
        plan: TrainingPlan, *, coverage: Sequence[int], generator: torch.Generator, verbose: bool = True,
        checkpoint_dir: str | os.PathLike | None = None, fingerprint: str = "",
        group: ProcessGroup | None = None) -> dict[str, np.ndarray]:
    """Train ``embedder`` in place by the xCEBRA objectives; return the log (per-step arrays).

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
    group : :class:`xcebra.training.distributed.ProcessGroup`, optional
        Train data-parallel with the other ranks of this group (every rank calls ``fit`` with the same
        arguments); the result equals a single process's. Only rank 0 shows progress and writes checkpoints.

    Returns
    -------
    dict of str -> ndarray of shape (steps,): ``loss`` (weighted sum, regularizer included), ``regularizer``,
    ``regularizer_weight``, ``seconds``, ``loss/<objective>``, with a learned temperature
    ``temperature/<objective>``, with a euclidean objective ``embedding_std``.

    Raises
    ------
    DivergenceError
        A loss, gradient or updated weight became NaN or infinite; the weights are those before that
        step and the error's ``log`` holds the log of the steps before it.
    ValueError
        The checkpoint in ``checkpoint_dir`` comes from another run, or is damaged; it is left untouched.
    """
    task = ContrastiveTask(embedder, heads, sampler, neural, plan, coverage, generator, group)
    return run(task, plan, generator=generator, verbose=verbose, checkpoint_dir=checkpoint_dir,
               fingerprint=fingerprint, group=group)


def evaluate_losses(embedder: Embedder, heads: Sequence[LossHead], sampler: BatchSampler, neural: torch.Tensor,
                    n_batches: int) -> list[float]:
    """Each head's InfoNCE loss averaged over ``n_batches`` batches of ``sampler`` on ``neural`` (no gradients)."""
    totals = [0.0] * len(heads)
    with inference(embedder):
        sequence = neural.T.contiguous()[None] if embedder.window > 1 else None
        for _ in range(n_batches):
            batch = sampler.sample()
            index = torch.cat([batch.reference, batch.negative, *batch.positives]).to(neural.device)
            z = embed_indices(embedder, neural, index, "auto", sequence)
            z_ref, z_neg, *z_pos = z.split(len(batch.reference))
            for k, value in enumerate(_losses(heads, z_ref, z_neg, z_pos)):
                totals[k] += float(value) / n_batches
    return totals
