"""The multi-session xCEBRA step, and the ``adapt`` step that fits a new session against a frozen model.

Multi-session step (:class:`SessionTask`): every session's references, negatives and the positives that
land in it are embedded by that session's encoder (one pass per session, each distinct time point once:
:func:`xcebra.training.forward.embed_indices`). Then, per objective:

- a label-driven objective (positives across sessions, :mod:`xcebra.session_sampling`) is one InfoNCE
  over the references of all sessions against the negatives of all sessions (S * B of each), so the
  block cannot tell sessions apart: its space is shared;
- a time objective is an InfoNCE per session, its references against that session's negatives only, and
  the mean over sessions: negatives of other sessions would reward a block that encodes which session a
  point comes from, which the behaviour block must not.

The Jacobian regularizer is each session's penalty on its first ``regularizer_batch_size`` references (as
in a single-session fit), averaged over sessions.

Adapt step (:class:`AdaptTask`): on a shared trunk only the new session's input layer is trained; the
trunk stays in evaluation mode, so its weights, and the spectral normalisation's power-iteration vectors
of a bounded encoder, are left bit for bit as they were. With separate encoders the new session's whole
encoder is trained, and no fitted session's weight takes part in the step. A label-driven objective's positive is, with probability
``S / (S + 1)``, one of the frozen model's anchors (labelled embeddings of the fitted sessions, fixed
tensors), and its negatives are the new session's negatives and as many anchors.
"""

from __future__ import annotations

import os
from typing import Sequence

import numpy as np
import torch

from ..data import sliding_windows
from ..losses import infonce
from ..regularizers import jacobian_penalty, ramp_weight
from ..session_models import SessionEmbedders
from ..session_sampling import AdaptSampler, SessionSampler
from .contrastive import LossHead, euclidean_dims
from .forward import embed_indices
from .loop import StepOutput, TrainingPlan, run

__all__ = ["SessionTask", "AdaptTask", "fit_sessions", "adapt_session"]


def _split_by_session(sessions: torch.Tensor, times: torch.Tensor, n_sessions: int) -> tuple[list, torch.Tensor]:
    """Per session, the time points of ``times`` (K,) that lie in it; and the order that puts the concatenation
    of those back into the rows of ``times``."""
    rows = [torch.nonzero(sessions == s).flatten() for s in range(n_sessions)]
    order = torch.argsort(torch.cat(rows))
    return [times[r] for r in rows], order


def _penalty(embedder, windows: torch.Tensor, reference: torch.Tensor, plan: TrainingPlan, coverage: torch.Tensor,
             generator: torch.Generator) -> torch.Tensor:
    # index_select copies: the leaf the regularizer differentiates by is not a view of the data
    reg_windows = windows.index_select(0, reference - embedder.left).requires_grad_(True)
    out = embedder(reg_windows, plan.precision)[:, 0]
    return jacobian_penalty(out, reg_windows, row_weights=coverage, n_projections=plan.regularizer_projections,
                            exact=plan.regularizer_exact, generator=generator)


class _StepBase:
    """What both tasks share: the log's keys, the temperatures, the progress bar."""

    heads: list[LossHead]

    def log_keys(self) -> list[str]:
        keys = ["loss", "regularizer", "regularizer_weight", "seconds"]
        for h in self.heads:
            keys += [f"loss/{h.name}"] + ([f"temperature/{h.name}"] if h.temperature.learnable else [])
        return keys

    def after_update(self) -> dict[str, float]:
        return {f"temperature/{h.name}": float(h.temperature().detach()) for h in self.heads
                if h.temperature.learnable}

    def progress(self, values: dict[str, float]) -> dict[str, str]:
        return {h.name: f"{values[f'loss/{h.name}']:.3f}" for h in self.heads} | {"reg": f"{values['regularizer']:.3g}"}

    def _output(self, step: int, losses: list[torch.Tensor], regularizer_fn) -> StepOutput:
        plan, heads = self.plan, self.heads
        total = sum(h.weight * l for h, l in zip(heads, losses))
        weight = ramp_weight(step, plan.regularizer_weight, plan.regularizer_ramp)
        regularizer = total.new_zeros(())
        objective = total
        if weight > 0:
            regularizer = regularizer_fn()
            objective = objective + weight * regularizer
            total = total + weight * regularizer
        monitored = {"loss": total, "regularizer": regularizer}
        monitored.update({f"loss/{h.name}": l for h, l in zip(heads, losses)})
        checked = ("loss", "regularizer", *(f"loss/{h.name}" for h in heads))
        return StepOutput(objective, monitored, checked, {"regularizer_weight": weight})


class SessionTask(_StepBase):
    """One multi-session training step (see the module docstring), for :func:`xcebra.training.loop.run`.

    Parameters
    ----------
    embedders : the sessions' networks (trained in place).
    heads : one per objective, in the order of the sessions' distributions.
    sampler : draws the batches.
    neural : S tensors (T_s, N_s), float32, on the training device.
    plan : optimisation settings.
    coverage : (D,) how many objectives see each embedding dimension (the regularizer's row weights).
    generator : the run's random generator (the regularizer's projections).
    """

    def __init__(self, embedders: SessionEmbedders, heads: Sequence[LossHead], sampler: SessionSampler,
                 neural: Sequence[torch.Tensor], plan: TrainingPlan, coverage: Sequence[int],
                 generator: torch.Generator):
        self.model, self.heads, self.sampler, self.neural, self.plan = embedders, list(heads), sampler, list(neural), plan
        self.criterion = torch.nn.ModuleList([h.temperature for h in heads])
        self.generator = generator
        self.n_sessions = len(embedders)
        self.sequences = [x.T.contiguous()[None] if embedders.window > 1 else None for x in self.neural]
        self.windows = [sliding_windows(x, embedders.window) for x in self.neural]
        # per session, as in a single-session fit: each session's encoder (or input layer) gets a penalty
        # estimated on as many rows as its own fit would give it
        self.reg_size = plan.regularizer_rows(sampler.batch_size)
        self.coverage = torch.as_tensor(coverage, dtype=torch.float32, device=self.neural[0].device)
        self.cross = list(sampler.cross)
        self.euclidean_dims = euclidean_dims(self.heads, embedders[0], self.neural[0].device)

    def log_keys(self) -> list[str]:
        keys = super().log_keys()
        return keys + (["embedding_std"] if self.euclidean_dims is not None else [])

    def _embed(self, batch) -> tuple[list, list, list]:
        """(z_ref per session, z_neg per session, z_pos per objective in reference order (S * B, D))."""
        n, plan = self.n_sessions, self.plan
        device = self.neural[0].device
        per_session = [_split_by_session(w.to(device), t.to(device), n)
                       for w, t in zip(batch.positive_session, batch.positive)]
        z_ref, z_neg, pieces = [], [], [[] for _ in per_session]
        for s in range(n):
            parts = [batch.reference[s].to(device), batch.negative[s].to(device)]
            parts += [times[s] for times, _ in per_session]
            z = embed_indices(self.model[s], self.neural[s], torch.cat(parts), plan.forward_mode, self.sequences[s],
                              plan.precision)
            chunks = z.split([len(p) for p in parts])
            z_ref.append(chunks[0])
            z_neg.append(chunks[1])
            for k, chunk in enumerate(chunks[2:]):
                pieces[k].append(chunk)
        z_pos = [torch.cat(chunks).index_select(0, order) for chunks, (_, order) in zip(pieces, per_session)]
        return z_ref, z_neg, z_pos

    def step(self, step: int) -> StepOutput:
        batch = self.sampler.sample()
        z_ref, z_neg, z_pos = self._embed(batch)
        all_ref, all_neg = torch.cat(z_ref), torch.cat(z_neg)
        size = self.sampler.batch_size
        losses = []
        for head, positive, cross in zip(self.heads, z_pos, self.cross):
            dims, temperature = head.dims, head.temperature()
            if cross:
                losses.append(infonce(all_ref[:, dims], positive[:, dims], all_neg[:, dims], head.similarity,
                                      temperature))
            else:
                per_session = [infonce(r[:, dims], positive[s * size:(s + 1) * size, dims], m[:, dims],
                                       head.similarity, temperature) for s, (r, m) in enumerate(zip(z_ref, z_neg))]
                losses.append(torch.stack(per_session).mean())

        def regularizer():
            return torch.stack([
                _penalty(self.model[s], self.windows[s], batch.reference[s][:self.reg_size].to(self.neural[s].device),
                         self.plan, self.coverage, self.generator) for s in range(self.n_sessions)]).mean()

        output = self._output(step, losses, regularizer)
        if self.euclidean_dims is not None:  # the spread the growth check reads (as in single-session fits)
            spread = all_ref.detach()[:, self.euclidean_dims].float()
            output.monitored["embedding_std"] = (spread - spread.mean(0)).square().mean().sqrt()
        return output


class AdaptTask(_StepBase):
    """One ``adapt`` step (see the module docstring): trains ``embedder``'s input layer, or all of it.

    Parameters
    ----------
    embedder : the new session's network; with ``share_trunk`` its layers after the first are the frozen
        shared trunk.
    heads : one per objective (their temperatures are fixed: the criterion has no trainable part here).
    sampler : :class:`xcebra.session_sampling.AdaptSampler`.
    neural : (T, N) float32 tensor of the new session.
    anchor_embedding : (K, D) float32 tensor, the anchors' embeddings (fixed).
    plan, coverage, generator : as for :class:`SessionTask`.
    share_trunk : bool, default False
        Train the input layer only (the rest is the frozen shared trunk); False: train the whole encoder.
    """

    def __init__(self, embedder, heads: Sequence[LossHead], sampler: AdaptSampler, neural: torch.Tensor,
                 anchor_embedding: torch.Tensor, plan: TrainingPlan, coverage: Sequence[int],
                 generator: torch.Generator, share_trunk: bool = False):
        self.embedder, self.heads, self.sampler, self.neural, self.plan = embedder, list(heads), sampler, neural, plan
        net = embedder.encoder.net
        self.model = net[0] if share_trunk else net  # what is trained (and checkpointed)
        self.criterion = torch.nn.ModuleList()
        self.anchors = anchor_embedding.to(neural.device)
        self.generator = generator
        self.sequence = neural.T.contiguous()[None] if embedder.window > 1 else None
        self.windows = sliding_windows(neural, embedder.window)
        self.reg_size = plan.regularizer_rows(sampler.batch_size)
        self.coverage = torch.as_tensor(coverage, dtype=torch.float32, device=neural.device)
        self.trunk = list(net[1:]) if share_trunk else []
        self._trunk_grad = [(p, p.requires_grad) for m in self.trunk for p in m.parameters()]
        for p, _ in self._trunk_grad:  # frozen: no gradient is computed for the shared weights
            p.requires_grad_(False)

    def restore(self) -> None:
        """The trunk's evaluation mode and ``requires_grad`` flags as they were before this task."""
        for module in self.trunk:
            module.eval()
        for p, flag in self._trunk_grad:
            p.requires_grad_(flag)

    def step(self, step: int) -> StepOutput:
        for module in self.trunk:  # the loop puts the trained input layer in training mode, never the trunk
            module.eval()
        batch = self.sampler.sample()
        device = self.neural.device
        # an anchor positive is not embedded here: its slot holds the reference, a valid time point
        own = [torch.where(flag, batch.reference, pos) for flag, pos in zip(batch.from_anchor, batch.positive)]
        parts = [batch.reference, batch.negative, *own]
        z = embed_indices(self.embedder, self.neural, torch.cat(parts).to(device), self.plan.forward_mode,
                          self.sequence, self.plan.precision)
        z_ref, z_neg, *z_own = z.split([len(p) for p in parts])
        anchor_negatives = self.anchors.index_select(0, batch.anchor_negative.to(device))
        losses = []
        for head, flag, positive, z_pos, anchors in zip(self.heads, batch.from_anchor, batch.positive, z_own,
                                                        self.sampler.anchors):
            dims = head.dims
            if anchors is None:
                losses.append(infonce(z_ref[:, dims], z_pos[:, dims], z_neg[:, dims], head.similarity,
                                      head.temperature()))
                continue
            flag = flag.to(device)
            from_anchor = self.anchors.index_select(0, torch.where(flag, positive, torch.zeros_like(positive)).to(device))
            z_pos = torch.where(flag[:, None], from_anchor, z_pos)
            negatives = torch.cat([z_neg, anchor_negatives])
            losses.append(infonce(z_ref[:, dims], z_pos[:, dims], negatives[:, dims], head.similarity,
                                  head.temperature()))

        def regularizer():
            return _penalty(self.embedder, self.windows, batch.reference[:self.reg_size].to(device), self.plan,
                            self.coverage, self.generator)

        return self._output(step, losses, regularizer)


def fit_sessions(embedders: SessionEmbedders, heads: Sequence[LossHead], sampler: SessionSampler,
                 neural: Sequence[torch.Tensor], plan: TrainingPlan, *, coverage: Sequence[int],
                 generator: torch.Generator, verbose: bool = True, checkpoint_dir: str | os.PathLike | None = None,
                 fingerprint: str = "") -> dict[str, np.ndarray]:
    """Train every session's encoder (and the shared trunk, if any) in place; return the log (per-step arrays).

    Same contract as :func:`xcebra.training.contrastive.fit` (log keys, divergence, checkpoints), for S
    sessions: ``neural`` holds S tensors (T_s, N_s) and ``sampler`` draws every session's batch.
    """
    task = SessionTask(embedders, heads, sampler, neural, plan, coverage, generator)
    return run(task, plan, generator=generator, verbose=verbose, checkpoint_dir=checkpoint_dir,
               fingerprint=fingerprint, desc="xcebra fit (sessions)")


def adapt_session(embedder, heads: Sequence[LossHead], sampler: AdaptSampler, neural: torch.Tensor,
                  anchor_embedding: torch.Tensor, plan: TrainingPlan, *, coverage: Sequence[int],
                  generator: torch.Generator, verbose: bool = True, share_trunk: bool = False) -> dict[str, np.ndarray]:
    """Train ``embedder`` (a new session) in place against the frozen model: its input layer on the frozen
    shared trunk, or (``share_trunk=False``) its whole encoder; return the log."""
    task = AdaptTask(embedder, heads, sampler, neural, anchor_embedding, plan, coverage, generator, share_trunk)
    try:
        return run(task, plan, generator=generator, verbose=verbose, desc="xcebra adapt")
    finally:
        task.restore()
