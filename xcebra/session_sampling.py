"""Batches for several recordings at once (multi-session training) and for a new recording fitted against a
frozen model (``adapt``).

Each session is one recording with its own neurons and its own :class:`xcebra.sampling.BatchSampler`
(the objectives' distributions set up on that recording). A step draws ``batch_size`` references and
negatives in every session. Positives depend on the objective:

- a **label-driven** objective (``time_delta``, ``delta_normal``, ``discrete``) draws each reference's
  positive in a session chosen uniformly among all sessions, its own included: the target label is
  computed in the reference's session (for ``time_delta`` from that session's label changes) and matched
  in the chosen one, nearest in label space (``discrete``: the same class). In its own session the
  positive keeps its ``min_separation``; in another there is no exclusion zone, since no input frame is
  shared. This is what makes the block one space for all sessions: a point of session 2 is pulled
  towards the points of session 3 that have the same label. Labels must therefore be in the same units
  and frame in every session (the same arena, the same classes).
- a **time** objective draws its positive in the reference's own session (``t + time_offset``): time
  has no meaning across recordings.

A ``discrete`` class missing from the chosen session falls back to the reference's own session.
All randomness comes from one ``torch.Generator``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch
from scipy.spatial import cKDTree

from .sampling import BatchSampler, TimeOffset

__all__ = ["SessionBatch", "SessionSampler", "LabelAnchors", "AdaptBatch", "AdaptSampler", "crosses_sessions"]


def crosses_sessions(distribution: object) -> bool:
    """True for the distributions whose positives are drawn across sessions (every label-driven one)."""
    return not isinstance(distribution, TimeOffset)


def _uniform(low: int, high: int, size: int, generator: torch.Generator) -> torch.Tensor:
    return torch.randint(low, high, (size,), generator=generator, dtype=torch.int64)


@dataclass(frozen=True)
class SessionBatch:
    """Time indices of one multi-session step.

    Attributes
    ----------
    reference, negative : tuple of S tensors of shape (B,), time points of each session.
    positive_session, positive : tuple (one per objective) of (S * B,) int64 tensors: the session and time
        point of the positive of each reference, references ordered session by session
        (rows ``s * B .. (s + 1) * B - 1`` belong to session ``s``).
    """

    reference: tuple[torch.Tensor, ...]
    negative: tuple[torch.Tensor, ...]
    positive_session: tuple[torch.Tensor, ...]
    positive: tuple[torch.Tensor, ...]


class SessionSampler:
    """Draws :class:`SessionBatch` es over S sessions (see the module docstring).

    Parameters
    ----------
    samplers : sequence of S :class:`xcebra.sampling.BatchSampler`, one per session, each with the same
        objectives' distributions (in the same order) set up on its session; their ``batch_size`` is the
        references per session per step.
    generator : torch.Generator, the only source of randomness.
    """

    def __init__(self, samplers: Sequence[BatchSampler], generator: torch.Generator):
        self.samplers = list(samplers)
        if not self.samplers:
            raise ValueError("SessionSampler needs at least one session")
        counts = {len(s.distributions) for s in self.samplers}
        if len(counts) != 1:
            raise ValueError(f"every session must have the same objectives; got {sorted(counts)} distributions")
        self.generator = generator
        self.cross = [crosses_sessions(d) for d in self.samplers[0].distributions]

    @property
    def n_sessions(self) -> int:
        return len(self.samplers)

    @property
    def batch_size(self) -> int:
        return self.samplers[0].batch_size

    def sample(self) -> SessionBatch:
        generator, batch = self.generator, self.batch_size
        reference = tuple(_uniform(s.reference_domain.start, s.reference_domain.stop, batch, generator)
                          for s in self.samplers)
        negative = tuple(_uniform(s.domain.start, s.domain.stop, batch, generator) for s in self.samplers)
        sessions, positives = [], []
        for k, cross in enumerate(self.cross):
            if cross and self.n_sessions > 1:
                where, times = self._cross_positives(k, reference)
            else:
                times = torch.cat([s.distributions[k].positive(ref, generator)
                                   for s, ref in zip(self.samplers, reference)])
                where = torch.arange(self.n_sessions).repeat_interleave(batch)
            sessions.append(where)
            positives.append(times)
        return SessionBatch(reference, negative, tuple(sessions), tuple(positives))

    def _cross_positives(self, k: int, reference: tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, torch.Tensor]:
        """Objective ``k``'s positives: (session (S * B,), time point (S * B,)) of each reference."""
        generator, batch, n = self.generator, self.batch_size, self.n_sessions
        distributions = [s.distributions[k] for s in self.samplers]
        refs = [r.numpy() for r in reference]
        targets = [d.targets(r, generator) for d, r in zip(distributions, refs)]
        goal = _uniform(0, n, n * batch, generator).numpy()
        own = np.repeat(np.arange(n), batch)
        flat_targets = np.concatenate(targets)
        times = np.empty(n * batch, dtype=np.int64)
        for session, distribution in enumerate(distributions):  # one query per session searched in
            rows = np.flatnonzero((goal == session) & (own != session))
            if len(rows):
                times[rows], found = distribution.nearest(flat_targets[rows], generator)
                goal[rows[~found]] = own[rows[~found]]  # a class this session lacks: search the reference's own
        for session, distribution in enumerate(distributions):
            rows = np.flatnonzero((goal == session) & (own == session))
            if len(rows):
                local = rows - session * batch
                times[rows] = distribution.search(targets[session][local], refs[session][local], generator)
        return torch.from_numpy(goal.astype(np.int64)), torch.from_numpy(times)


class LabelAnchors:
    """Labelled points of a fitted multi-session model, searched by label for a new session's positives.

    Parameters
    ----------
    labels : (K,) int array (a ``discrete`` label) or (K, d) float array: the label of each anchor.
    discrete : bool
        Match the class exactly (uniform among the anchors of that class) instead of the nearest label.
    """

    def __init__(self, labels: np.ndarray, discrete: bool):
        labels = np.asarray(labels)
        self.discrete = discrete
        if discrete:
            self.labels = labels.reshape(len(labels)).astype(np.int64)
            order = np.argsort(self.labels, kind="stable")
            self._order = order
            self._classes, self._start, self._count = np.unique(self.labels[order], return_index=True,
                                                                return_counts=True)
        else:
            self.labels = labels.reshape(len(labels), -1).astype(np.float64)
            self._tree = cKDTree(self.labels)

    def __len__(self) -> int:
        return len(self.labels)

    def nearest(self, targets: np.ndarray, generator: torch.Generator) -> tuple[np.ndarray, np.ndarray]:
        """(anchor index (B,) int64, found (B,) bool) for each target label; found is False only for a class
        no anchor has."""
        if not self.discrete:
            _, index = self._tree.query(np.asarray(targets, dtype=np.float64), k=1)
            return np.asarray(index, dtype=np.int64).reshape(len(targets)), np.ones(len(targets), bool)
        targets = np.asarray(targets, dtype=np.int64)
        slot = np.clip(np.searchsorted(self._classes, targets), 0, len(self._classes) - 1)
        found = self._classes[slot] == targets
        count = np.where(found, self._count[slot], 1)
        draw = (torch.rand(len(targets), generator=generator, dtype=torch.float64).numpy() * count).astype(np.int64)
        return self._order[self._start[slot] + np.minimum(draw, count - 1)].astype(np.int64), found


@dataclass(frozen=True)
class AdaptBatch:
    """Indices of one ``adapt`` step.

    Attributes
    ----------
    reference, negative : (B,) time points of the new session.
    anchor_negative : (B,) indices of anchors used as further negatives of the label-driven objectives.
    from_anchor : tuple (one per objective) of (B,) bool: whether the positive is an anchor.
    positive : tuple (one per objective) of (B,) int64: an anchor index where ``from_anchor``, else a time
        point of the new session.
    """

    reference: torch.Tensor
    negative: torch.Tensor
    anchor_negative: torch.Tensor
    from_anchor: tuple[torch.Tensor, ...]
    positive: tuple[torch.Tensor, ...]


class AdaptSampler:
    """Batches for fitting a new session against a frozen model and its anchors.

    A label-driven objective takes its positive among the anchors (the frozen sessions' labelled points)
    with probability ``S / (S + 1)`` for a model of S sessions, as in multi-session training where a
    positive lies in one of the S + 1 sessions uniformly, and in the new session otherwise.

    Parameters
    ----------
    sampler : the new session's :class:`xcebra.sampling.BatchSampler`.
    anchors : one :class:`LabelAnchors` per objective, None for the ``time`` objectives.
    n_fitted_sessions : S, the sessions of the frozen model.
    generator : torch.Generator.
    """

    def __init__(self, sampler: BatchSampler, anchors: Sequence[LabelAnchors | None], n_fitted_sessions: int,
                 generator: torch.Generator):
        self.sampler, self.anchors, self.generator = sampler, list(anchors), generator
        self.share = n_fitted_sessions / (n_fitted_sessions + 1)
        self.n_anchors = max([len(a) for a in self.anchors if a is not None], default=0)

    @property
    def batch_size(self) -> int:
        return self.sampler.batch_size

    def sample(self) -> AdaptBatch:
        generator, sampler, batch = self.generator, self.sampler, self.batch_size
        reference = _uniform(sampler.reference_domain.start, sampler.reference_domain.stop, batch, generator)
        negative = _uniform(sampler.domain.start, sampler.domain.stop, batch, generator)
        anchor_negative = _uniform(0, max(1, self.n_anchors), batch, generator)
        ref = reference.numpy()
        flags, positives = [], []
        for distribution, anchors in zip(sampler.distributions, self.anchors):
            if anchors is None:
                flags.append(torch.zeros(batch, dtype=torch.bool))
                positives.append(distribution.positive(reference, generator))
                continue
            targets = distribution.targets(ref, generator)
            use = torch.rand(batch, generator=generator, dtype=torch.float64).numpy() < self.share
            chosen = np.empty(batch, dtype=np.int64)
            rows = np.flatnonzero(use)
            if len(rows):
                chosen[rows], found = anchors.nearest(targets[rows], generator)
                use[rows[~found]] = False
            own = np.flatnonzero(~use)
            if len(own):
                chosen[own] = distribution.search(targets[own], ref[own], generator)
            flags.append(torch.from_numpy(use))
            positives.append(torch.from_numpy(chosen))
        return AdaptBatch(reference, negative, anchor_negative, tuple(flags), tuple(positives))
