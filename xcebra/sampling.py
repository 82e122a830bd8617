"""Distributions of positive pairs, and the batch sampler that draws references, positives and negatives.

Time points are indices into the recording. An encoder with receptive field ``left + right`` embeds
time point ``t`` from frames ``t - left .. t + right - 1``; only time points whose whole window lies in
the recording are *valid*: ``t`` in ``[left, T - right]``. Every index drawn here is valid, and so is
its positive: nothing is clamped to the edges (clamping over-samples edge windows and makes late
time-contrastive positives collapse onto their reference).

All randomness comes from one ``torch.Generator``: the same seed gives the same indices.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch
from scipy.spatial import cKDTree

from ._validation import check_float, check_int

__all__ = [
    "Domain", "BatchIndex", "TimeOffset", "TimeDelta", "DeltaNormal", "Discrete", "BatchSampler",
    "DISTRIBUTIONS", "make_distribution", "label_autocorrelation_time",
]


@dataclass(frozen=True)
class Domain:
    """Valid time points ``start <= t < stop`` of a recording for an encoder's window."""

    start: int
    stop: int

    @classmethod
    def for_window(cls, n_timepoints: int, left: int, right: int) -> "Domain":
        return cls(start=left, stop=n_timepoints - right + 1)

    @property
    def size(self) -> int:
        return max(0, self.stop - self.start)


@dataclass(frozen=True)
class BatchIndex:
    """Time indices of one training batch: ``reference`` and ``negative`` (B,), one (B,) tensor of positives per objective."""

    reference: torch.Tensor
    negative: torch.Tensor
    positives: tuple[torch.Tensor, ...]


def label_autocorrelation_time(label: np.ndarray) -> int:
    """Lag, in time points, at which the label's autocorrelation first falls below 1/e.

    ``label``: (T,) or (T, d) float array. Each column is standardised; the autocorrelation is
    averaged over columns (FFT, biased estimator, O(T log T)). A constant label, or one that stays
    correlated over the whole recording, returns T. Used as the default ``min_separation`` of
    label-driven positives: pairs closer in time than this are near copies of each other, whatever
    the label says.
    """
    label = np.asarray(label, dtype=np.float64)
    if label.ndim == 1:
        label = label[:, None]
    n_timepoints = label.shape[0]
    if n_timepoints < 2:
        return n_timepoints
    centred = label - label.mean(axis=0)
    scale = centred.std(axis=0)
    centred = centred[:, scale > 0] / scale[scale > 0]
    if centred.shape[1] == 0:
        return n_timepoints
    spectrum = np.fft.rfft(centred, n=2 * n_timepoints, axis=0)
    autocorrelation = np.fft.irfft(spectrum * np.conj(spectrum), axis=0)[:n_timepoints].mean(axis=1)
    below = np.flatnonzero(autocorrelation / autocorrelation[0] < np.exp(-1.0))
    return int(below[0]) if len(below) else n_timepoints


def _uniform(low: int, high: int, size: int, generator: torch.Generator) -> torch.Tensor:
    return torch.randint(low, high, (size,), generator=generator, dtype=torch.int64)


class _Distribution:
    """Base class: a conditional distribution p(positive | reference) over valid time points."""

    #: whether the distribution reads a label
    needs_label = False

    def setup(self, domain: Domain, label: np.ndarray | None) -> None:
        """Bind to a recording: build indices once per fit."""
        self.domain = domain

    def reference_domain(self) -> Domain:
        """Time points that may serve as references (a positive must exist for each)."""
        return self.domain

    def positive(self, reference: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        raise NotImplementedError


class TimeOffset(_Distribution):
    """Time-contrastive positives: the positive of reference ``t`` is ``t + time_offset``."""

    def __init__(self, time_offset: int = 1):
        self.time_offset = check_int("time_offset", time_offset, minimum=1)

    def reference_domain(self) -> Domain:
        return Domain(self.domain.start, self.domain.stop - self.time_offset)

    def positive(self, reference: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        return reference + self.time_offset


#: label neighbours queried per reference, in the whole recording and, for the references this leaves
#: without a positive, in one thinned copy of it
_FIRST_NEIGHBOURS = 16


class _NearestNeighbourDistribution(_Distribution):
    """Positives are the nearest neighbours, in label space, of a target derived from the reference's label.

    A positive ``t'`` of reference ``t`` is at least ``min_separation`` time points away,
    ``|t' - t| >= min_separation``: with 1 only the reference itself is excluded; with the encoder's
    window a positive shares no input frame with its reference; with the label's autocorrelation
    time it is not a near copy of it (see :class:`xcebra.Objective`, whose default is the larger).

    The search, O(batch log T) per step with k-d trees built once in :meth:`setup`:
    - the nearest :data:`_FIRST_NEIGHBOURS` labels of the target; the nearest of them outside the
      exclusion zone is the positive, exactly. This settles every reference unless the label is slow
      on the scale of the separation;
    - a reference left without one (all its nearest labels lie in its own zone) takes the nearest
      allowed label among every ``stride``-th time point, ``stride = ceil((2 * min_separation - 1) /
      (_FIRST_NEIGHBOURS - 1))``, at a phase drawn per batch. The zone holds fewer than
      ``_FIRST_NEIGHBOURS`` of those points, so one query settles it; its label lies within about
      ``stride`` steps of the exact answer's, a fraction of the autocorrelation time when the
      separation is its default. The exact search would read ``2 * min_separation`` neighbours per
      reference: 22 ms per batch of 512 at a separation of 73, more than a whole training step.
    """

    needs_label = True

    def __init__(self, min_separation: int = 1):
        self.min_separation = check_int("min_separation", min_separation, minimum=1)

    def setup(self, domain: Domain, label: np.ndarray | None) -> None:
        super().setup(domain, label)
        if label is None:
            raise ValueError(f"{type(self).__name__} needs a label")
        label = np.asarray(label, dtype=np.float64)
        if label.ndim == 1:
            label = label[:, None]
        self.label = label
        # at most 2 * min_separation - 1 time points lie within the exclusion zone of a reference, so
        # one more guarantees every reference a positive, and that many neighbours always contain one
        self._k = 2 * self.min_separation
        if domain.size < self._k:
            raise ValueError(
                f"{type(self).__name__} with min_separation={self.min_separation} needs at least {self._k} valid "
                f"time points; got {domain.size}")
        valid = label[domain.start:domain.stop]
        self.tree = cKDTree(valid)
        self._stride = max(1, -(-(2 * self.min_separation - 1) // (_FIRST_NEIGHBOURS - 1)))
        self._thinned = [cKDTree(valid[phase::self._stride]) for phase in range(self._stride)] \
            if self._stride > 1 and self._k > _FIRST_NEIGHBOURS else None

    def _targets(self, reference: np.ndarray, generator: torch.Generator) -> np.ndarray:
        raise NotImplementedError

    def _nearest_allowed(self, targets: np.ndarray, ref: np.ndarray, k: int, phase: int | None = None
                         ) -> tuple[np.ndarray, np.ndarray]:
        """Per reference, the nearest of the ``k`` label neighbours of its target outside its exclusion zone.

        ``phase``: search the thinned copy of that phase instead of every time point. Returns (chosen
        time points, found mask); where no neighbour qualifies, found is False.
        """
        if phase is None:
            _, neighbours = self.tree.query(targets, k=k)
            neighbours = neighbours.reshape(len(ref), k) + self.domain.start
        else:
            _, neighbours = self._thinned[phase].query(targets, k=k)
            neighbours = neighbours.reshape(len(ref), k) * self._stride + phase + self.domain.start
        allowed = np.abs(neighbours - ref[:, None]) >= self.min_separation
        # neighbours come sorted by distance: the first allowed one is the nearest allowed time point
        first = np.argmax(allowed, axis=1)
        rows = np.arange(len(ref))
        return neighbours[rows, first], allowed[rows, first]

    def targets(self, reference: np.ndarray, generator: torch.Generator) -> np.ndarray:
        """The label each reference's positive should have: (B, d) float64 for ``reference`` (B,) time points."""
        return self._targets(reference, generator)

    def search(self, targets: np.ndarray, ref: np.ndarray, generator: torch.Generator) -> np.ndarray:
        """The time point nearest to each target in label space, at least ``min_separation`` from its reference.

        ``targets`` (B, d) float64, ``ref`` (B,) int time points of this recording; returns (B,) int64.
        """
        # the draw happens every batch, so that the stream of random numbers does not depend on the data
        phase = int(_uniform(0, self._stride, 1, generator)) if self._thinned is not None else None
        chosen, found = self._nearest_allowed(targets, ref, min(self._k, _FIRST_NEIGHBOURS))
        if not found.all():
            missing = ~found
            if self._thinned is None:  # a zone of fewer than _FIRST_NEIGHBOURS points: 2 * min_separation settle it
                chosen[missing], _ = self._nearest_allowed(targets[missing], ref[missing], self._k)
            else:
                k = min(_FIRST_NEIGHBOURS, self._thinned[phase].n)
                chosen[missing], settled = self._nearest_allowed(targets[missing], ref[missing], k, phase)
                if not settled.all():  # only when the thinned copy is shorter than the zone: a tiny recording
                    rows = np.flatnonzero(missing)[~settled]
                    chosen[rows], _ = self._nearest_allowed(targets[rows], ref[rows], self._k)
        return chosen.astype(np.int64)

    def nearest(self, targets: np.ndarray, generator: torch.Generator) -> tuple[np.ndarray, np.ndarray]:
        """The valid time point whose label is nearest to each target, with no exclusion zone: for references
        of *another* recording (multi-session sampling). Returns (time points (B,) int64, found (B,) bool, all True)."""
        _, nearest = self.tree.query(targets, k=1)
        return np.asarray(nearest, dtype=np.int64).reshape(len(targets)) + self.domain.start, np.ones(len(targets), bool)

    def positive(self, reference: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        ref = reference.cpu().numpy()
        chosen = self.search(self.targets(ref, generator), ref, generator)
        return torch.from_numpy(chosen).to(reference.device)


class TimeDelta(_NearestNeighbourDistribution):
    """Behaviour-contrastive positives that follow the empirical change of the label.

    For reference ``t``: draw ``s`` uniformly among rows where ``y[s + time_delta]`` exists, set the
    target ``y[t] + (y[s + time_delta] - y[s])``, and return the valid time point at least
    ``min_separation`` steps from ``t`` whose label is nearest to the target.
    """

    def __init__(self, time_delta: int = 1, min_separation: int = 1):
        super().__init__(min_separation)
        self.time_delta = check_int("time_delta", time_delta, minimum=1)

    def setup(self, domain: Domain, label: np.ndarray | None) -> None:
        super().setup(domain, label)
        if self.label.shape[0] <= self.time_delta:
            raise ValueError(
                f"time_delta={self.time_delta} needs more than {self.time_delta} time points; "
                f"the label has {self.label.shape[0]}")
        # only real changes: rows 0..time_delta-1 have no predecessor and contribute nothing
        self.changes = self.label[self.time_delta:] - self.label[:-self.time_delta]

    def _targets(self, reference: np.ndarray, generator: torch.Generator) -> np.ndarray:
        draws = _uniform(0, len(self.changes), len(reference), generator).numpy()
        return self.label[reference] + self.changes[draws]


class DeltaNormal(_NearestNeighbourDistribution):
    """Positives near the reference's label: target ``y[t] + N(0, delta^2 I)``, then the nearest neighbour."""

    def __init__(self, delta: float = 0.1, min_separation: int = 1):
        super().__init__(min_separation)
        self.delta = check_float("delta", delta, minimum=0.0, strict=True)

    def _targets(self, reference: np.ndarray, generator: torch.Generator) -> np.ndarray:
        noise = torch.randn((len(reference), self.label.shape[1]), generator=generator, dtype=torch.float64)
        return self.label[reference] + self.delta * noise.numpy()


class Discrete(_Distribution):
    """Positives drawn uniformly among the other valid time points with the same integer label."""

    needs_label = True

    def setup(self, domain: Domain, label: np.ndarray | None) -> None:
        super().setup(domain, label)
        label = np.asarray(label)
        if label.ndim == 2 and label.shape[1] == 1:
            label = label[:, 0]
        if label.ndim != 1 or label.dtype.kind not in "iub":
            raise ValueError(
                f"discrete sampling needs a 1-D integer label; got dtype {label.dtype} and shape {label.shape}")
        # an empty domain (window longer than the recording) has stop < start: no negative-index slicing
        valid = label[domain.start:domain.start + domain.size].astype(np.int64)
        order = np.argsort(valid, kind="stable")
        classes, starts, counts = np.unique(valid[order], return_index=True, return_counts=True)
        singletons = classes[counts < 2]
        if len(singletons):
            raise ValueError(
                f"discrete label value(s) {singletons[:5].tolist()} occur at only one valid time point, "
                "so they have no positive; merge or drop them")
        class_of = np.searchsorted(classes, valid)
        rank = np.empty(len(valid), dtype=np.int64)
        rank[order] = np.arange(len(valid)) - starts[class_of[order]]
        self._members = torch.from_numpy(order + domain.start)  # valid time points sorted by class
        self._start = torch.from_numpy(starts[class_of])          # per valid time point: its class's first slot
        self._count = torch.from_numpy(counts[class_of])          # ... its class size
        self._rank = torch.from_numpy(rank)                       # ... its own slot within the class
        self._valid = valid
        self._classes, self._class_start, self._class_count = classes, starts, counts

    def targets(self, reference: np.ndarray, generator: torch.Generator) -> np.ndarray:
        """The class each reference's positive must have: (B,) int64."""
        return self._valid[np.asarray(reference) - self.domain.start]

    def search(self, targets: np.ndarray, ref: np.ndarray, generator: torch.Generator) -> np.ndarray:
        """A uniform draw among the other valid time points of the reference's class: (B,) int64."""
        local = torch.from_numpy(np.asarray(ref, dtype=np.int64)) - self.domain.start
        count = self._count[local]
        # uniform over the class minus the reference itself: draw among count - 1 slots, skip our own
        draw = (torch.rand(len(local), generator=generator, dtype=torch.float64) * (count - 1)).long()
        draw = draw + (draw >= self._rank[local]).long()
        return self._members[self._start[local] + draw].numpy()

    def nearest(self, targets: np.ndarray, generator: torch.Generator) -> tuple[np.ndarray, np.ndarray]:
        """A uniform draw among this recording's valid time points of each target class (for references of
        another recording). Returns (time points (B,) int64, found (B,) bool: False where the class is absent)."""
        targets = np.asarray(targets, dtype=np.int64)
        slot = np.clip(np.searchsorted(self._classes, targets), 0, len(self._classes) - 1)
        found = self._classes[slot] == targets
        count = np.where(found, self._class_count[slot], 1)
        draw = (torch.rand(len(targets), generator=generator, dtype=torch.float64).numpy() * count).astype(np.int64)
        chosen = self._members.numpy()[self._class_start[slot] + np.minimum(draw, count - 1)]
        return chosen.astype(np.int64), found

    def positive(self, reference: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        ref = reference.cpu().numpy()
        return torch.from_numpy(self.search(self.targets(ref, generator), ref, generator)).to(reference.device)


DISTRIBUTIONS = {
    "time": TimeOffset,
    "time_delta": TimeDelta,
    "delta_normal": DeltaNormal,
    "discrete": Discrete,
}


def make_distribution(name: str, **options) -> _Distribution:
    """Build a distribution by name (``time``, ``time_delta``, ``delta_normal``, ``discrete``)."""
    if name not in DISTRIBUTIONS:
        listed = ", ".join(repr(k) for k in DISTRIBUTIONS)
        raise ValueError(f"distribution must be one of {listed}; got {name!r}")
    return DISTRIBUTIONS[name](**options)


class BatchSampler:
    """Draws batches of references, negatives and one positive per distribution.

    References are uniform over the time points valid for *every* distribution (so that each has a
    positive); negatives are uniform over all valid time points and shared by all objectives.

    Parameters
    ----------
    distributions : sequence of distributions, already ``setup`` on the same domain.
    domain : valid time points of the recording.
    batch_size : int, references (and negatives) per batch.
    generator : torch.Generator, the only source of randomness.
    """

    def __init__(self, distributions: Sequence[_Distribution], domain: Domain, batch_size: int,
                 generator: torch.Generator):
        self.distributions = list(distributions)
        self.domain = domain
        self.batch_size = batch_size
        self.generator = generator
        start = max([domain.start] + [d.reference_domain().start for d in self.distributions])
        stop = min([domain.stop] + [d.reference_domain().stop for d in self.distributions])
        if stop - start < 1:
            raise ValueError(
                f"no time point can be a reference: the recording has {domain.size} valid time points for the "
                "encoder's window, and the objectives' offsets leave none; use more data or smaller offsets")
        self.reference_domain = Domain(start, stop)

    def sample(self) -> BatchIndex:
        reference = _uniform(self.reference_domain.start, self.reference_domain.stop, self.batch_size, self.generator)
        negative = _uniform(self.domain.start, self.domain.stop, self.batch_size, self.generator)
        positives = tuple(d.positive(reference, self.generator) for d in self.distributions)
        return BatchIndex(reference=reference, negative=negative, positives=positives)
