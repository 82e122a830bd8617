"""Encoders for several sessions: one whole encoder each (the default), or one input layer each and a shared trunk.

Sessions have different neurons, so each has at least its own first layer (neurons -> hidden units).
Two layouts:

- **shared trunk** (``share_trunk=True``): every layer after the first (the trunk) is one module object
  for all sessions, so the sessions meet in one network as well as in one space;
- **separate encoders** (``share_trunk=False``): every session has a whole encoder of its own, as in the
  reference package's multi-session models; the sessions share the embedding space only through the
  loss (label-driven positives drawn across sessions, :mod:`xcebra.session_sampling`).

:class:`SessionEmbedders` registers each weight once (shared: the input layers, then the trunk;
separate: each session's whole network), so its ``state_dict`` and ``parameters`` hold no duplicates;
``session_embedders[s]`` is session ``s``'s full :class:`xcebra.models.Embedder`, built of the same
module objects, which training, ``transform`` and every attribution method use unchanged.
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from .models import Embedder, make_encoder

__all__ = ["SessionEmbedders", "make_session_embedders", "new_session_embedder"]


class SessionEmbedders(nn.Module):
    """S embedders, sharing every layer after the first or none.

    Parameters
    ----------
    embedders : sequence of :class:`xcebra.models.Embedder`
        ``share_trunk=True``: each encoder's ``net`` is ``Sequential(input layer, *trunk)`` with the *same*
        trunk module objects (see :func:`make_session_embedders`); ``share_trunk=False``: no module is
        shared between two sessions.
    share_trunk : bool, default False
        Whether the sessions share every layer after the first (True) or each has a whole encoder (False).

    Attributes
    ----------
    share_trunk : bool
    inputs : nn.ModuleList of the S input layers (shared trunk) or of the S whole networks (separate).
    trunk : nn.ModuleList of the shared layers; empty for separate encoders.
    """

    share_trunk: bool = True  # for objects pickled before the attribute existed: the one layout then

    def __init__(self, embedders: Sequence[Embedder], share_trunk: bool = False):
        super().__init__()
        embedders = list(embedders)
        if not embedders:
            raise ValueError("SessionEmbedders needs at least one session")
        self.share_trunk = bool(share_trunk)
        trunk = list(embedders[0].encoder.net[1:]) if self.share_trunk else []
        for s, embedder in enumerate(embedders):
            self._check_layout(embedder, trunk, embedders[:s], f"session {s}'s encoder")
        self.inputs = nn.ModuleList([e.encoder.net[0] if self.share_trunk else e.encoder.net for e in embedders])
        self.trunk = nn.ModuleList(trunk)
        # a plain list, not registered: every weight is registered once above
        self._embedders = embedders

    def _check_layout(self, embedder: Embedder, trunk: list, others: Sequence[Embedder], what: str) -> None:
        net = embedder.encoder.net
        if self.share_trunk:
            if len(net) != len(trunk) + 1 or any(a is not b for a, b in zip(net[1:], trunk)):
                raise ValueError(f"{what} does not share the trunk of session 0")
            return
        own = {id(m) for m in net.modules()}
        if any(id(m) in own for other in others for m in other.encoder.net.modules()):
            raise ValueError(f"{what} shares a layer with another session, but share_trunk is False")

    def __len__(self) -> int:
        return len(self._embedders)

    def __getitem__(self, session: int) -> Embedder:
        return self._embedders[session]

    def __iter__(self):
        return iter(self._embedders)

    @property
    def window(self) -> int:
        return self._embedders[0].window

    @property
    def left(self) -> int:
        return self._embedders[0].left

    @property
    def n_neurons(self) -> tuple[int, ...]:
        return tuple(int(e.encoder.n_neurons) for e in self._embedders)

    def train(self, mode: bool = True) -> "SessionEmbedders":
        super().train(mode)
        for embedder in self._embedders:  # the wrappers' own flags follow the registered layers'
            embedder.training = mode
            embedder.encoder.training = mode
            embedder.encoder.net.training = mode
        return self

    def append(self, embedder: Embedder) -> None:
        """Add a session (``adapt``): one that shares this trunk, or, for separate encoders, shares nothing."""
        self._check_layout(embedder, list(self.trunk), self._embedders, "the new session's encoder")
        self.inputs.append(embedder.encoder.net[0] if self.share_trunk else embedder.encoder.net)
        self._embedders.append(embedder)

    def forward(self, *args, **kwargs):  # noqa: D401
        raise TypeError("SessionEmbedders is a container; embed with session_embedders[session](x)")


def new_session_embedder(trunk_owner: Embedder, model: str, n_neurons: int, hidden_units: int, output_dim: int,
                         lipschitz: float | None, output_clip: float | None, share_trunk: bool = False) -> Embedder:
    """An embedder for ``n_neurons`` neurons with ``trunk_owner``'s block layout; with ``share_trunk`` its layers
    after the first are ``trunk_owner``'s (the same objects), otherwise it is a whole encoder of its own.

    The new weights are initialised from torch's global generator (callers fork and seed it).
    """
    encoder = make_encoder(model, n_neurons, hidden_units, output_dim, lipschitz, output_clip)
    if share_trunk:
        encoder.net = nn.Sequential(encoder.net[0], *trunk_owner.encoder.net[1:])
    return Embedder(encoder, _blocks(trunk_owner), trunk_owner.normalized, trunk_owner.eps)


def _blocks(embedder: Embedder) -> list[tuple[str, slice]]:
    return [(str(k), slice(a, b)) for k, (a, b) in enumerate(embedder.block_slices)]


def make_session_embedders(model: str, n_neurons: Sequence[int], hidden_units: int, output_dim: int,
                           blocks: Sequence[tuple[str, slice]], normalized: Sequence[bool],
                           lipschitz: float | None = None, output_clip: float | None = None,
                           seed: int = 0, share_trunk: bool = False) -> SessionEmbedders:
    """Encoders for sessions of ``n_neurons[s]`` neurons, sharing one trunk or (``share_trunk=False``) each a
    whole encoder of its own, initialised from ``seed`` (torch's global generator is left as it was).

    Session 0's encoder is built first (its input layer and, when shared, the trunk), then each further
    session's input layer or encoder, in order: the same seed gives the same weights.
    """
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        first = Embedder(make_encoder(model, n_neurons[0], hidden_units, output_dim, lipschitz, output_clip),
                         blocks, normalized)
        embedders = [first]
        for n in n_neurons[1:]:
            embedders.append(new_session_embedder(first, model, n, hidden_units, output_dim, lipschitz, output_clip,
                                                  share_trunk))
    return SessionEmbedders(embedders, share_trunk)
