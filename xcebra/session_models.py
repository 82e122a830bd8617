"""Encoders for several sessions: one input layer per session, every later layer shared.

Sessions have different neurons, so each has its own first layer (neurons -> hidden units); the rest of
the encoder (its trunk) and the block normalisation are shared, so every session embeds into one space.
:class:`SessionEmbedders` registers each weight once (the input layers, then the trunk), so its
``state_dict`` and ``parameters`` hold no duplicates; ``session_embedders[s]`` is session ``s``'s full
:class:`xcebra.models.Embedder`, built of the same module objects, which training, ``transform`` and
every attribution method use unchanged.
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from .models import Embedder, make_encoder

__all__ = ["SessionEmbedders", "make_session_embedders", "new_session_embedder"]


class SessionEmbedders(nn.Module):
    """S embedders sharing every layer after the first.

    Parameters
    ----------
    embedders : sequence of :class:`xcebra.models.Embedder`
        Each encoder's ``net`` is ``Sequential(input layer, *trunk)`` with the *same* trunk module objects
        (see :func:`make_session_embedders`).

    Attributes
    ----------
    inputs : nn.ModuleList of the S input layers.
    trunk : nn.ModuleList of the shared layers.
    """

    def __init__(self, embedders: Sequence[Embedder]):
        super().__init__()
        embedders = list(embedders)
        if not embedders:
            raise ValueError("SessionEmbedders needs at least one session")
        trunk = list(embedders[0].encoder.net[1:])
        for s, embedder in enumerate(embedders):
            if len(embedder.encoder.net) != len(trunk) + 1 or any(
                    a is not b for a, b in zip(embedder.encoder.net[1:], trunk)):
                raise ValueError(f"session {s}'s encoder does not share the trunk of session 0")
        self.inputs = nn.ModuleList([e.encoder.net[0] for e in embedders])
        self.trunk = nn.ModuleList(trunk)
        # a plain list, not registered: every weight is registered once above
        self._embedders = embedders

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
        """Add a session whose encoder shares this trunk (``adapt``)."""
        if any(a is not b for a, b in zip(embedder.encoder.net[1:], self.trunk)) or \
                len(embedder.encoder.net) != len(self.trunk) + 1:
            raise ValueError("the new session's encoder does not share this model's trunk")
        self.inputs.append(embedder.encoder.net[0])
        self._embedders.append(embedder)

    def forward(self, *args, **kwargs):  # noqa: D401
        raise TypeError("SessionEmbedders is a container; embed with session_embedders[session](x)")


def new_session_embedder(trunk_owner: Embedder, model: str, n_neurons: int, hidden_units: int, output_dim: int,
                         lipschitz: float | None, output_clip: float | None) -> Embedder:
    """An embedder for ``n_neurons`` neurons whose layers after the first are ``trunk_owner``'s (the same objects).

    The new input layer is initialised from torch's global generator (callers fork and seed it).
    """
    encoder = make_encoder(model, n_neurons, hidden_units, output_dim, lipschitz, output_clip)
    encoder.net = nn.Sequential(encoder.net[0], *trunk_owner.encoder.net[1:])
    return Embedder(encoder, _blocks(trunk_owner), trunk_owner.normalized, trunk_owner.eps)


def _blocks(embedder: Embedder) -> list[tuple[str, slice]]:
    return [(str(k), slice(a, b)) for k, (a, b) in enumerate(embedder.block_slices)]


def make_session_embedders(model: str, n_neurons: Sequence[int], hidden_units: int, output_dim: int,
                           blocks: Sequence[tuple[str, slice]], normalized: Sequence[bool],
                           lipschitz: float | None = None, output_clip: float | None = None,
                           seed: int = 0) -> SessionEmbedders:
    """Encoders for sessions of ``n_neurons[s]`` neurons sharing one trunk, initialised from ``seed``
    (torch's global generator is left as it was).

    Session 0's encoder is built first (its input layer and the trunk), then each further session's input
    layer, in order: the same seed gives the same weights.
    """
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        first = Embedder(make_encoder(model, n_neurons[0], hidden_units, output_dim, lipschitz, output_clip),
                         blocks, normalized)
        embedders = [first]
        for n in n_neurons[1:]:
            embedders.append(new_session_embedder(first, model, n, hidden_units, output_dim, lipschitz, output_clip))
    return SessionEmbedders(embedders)
