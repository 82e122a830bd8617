"""Shared small fixtures: tiny recordings, tiny encoders and a factory for a complete training setup.

Everything here is deliberately small (a few neurons, a few hundred time points, hidden layers of 8
units) so that the whole suite stays fast on a shared two-core machine.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from xcebra.losses import Temperature
from xcebra.models import make_encoder
from xcebra.objectives import Embedder, Objective, block_layout
from xcebra.sampling import BatchSampler, Domain, make_distribution
from xcebra.training import LossHead, TrainingPlan

# one thread: faster for tiny tensors, and bitwise-stable reductions between runs
torch.set_num_threads(1)


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(0)


@pytest.fixture
def small_recording() -> tuple[np.ndarray, np.ndarray]:
    """(neural (200, 6) float32, position (200, 2) float32): a smooth random walk and a noisy readout."""
    rng = np.random.default_rng(1)
    position = np.cumsum(rng.normal(scale=0.1, size=(200, 2)), axis=0).astype(np.float32)
    mixing = rng.normal(size=(2, 6))
    neural = (np.tanh(position @ mixing) + 0.1 * rng.normal(size=(200, 6))).astype(np.float32)
    return neural, position


def build_embedder(model: str = "offset5", n_neurons: int = 6, hidden_units: int = 8, output_dim: int = 4,
                   objectives=None, loss: str = "cosine", seed: int = 0) -> Embedder:
    """A tiny encoder wrapped in the block normalisation of ``objectives`` (default: two nested objectives)."""
    if objectives is None:
        objectives = [Objective("behavior", dims=(0, 2), distribution="time_delta", label="position"),
                      Objective("time", dims=(0, output_dim), distribution="time", time_offset=3)]
    layout = block_layout(objectives, output_dim, loss)
    torch.manual_seed(seed)
    encoder = make_encoder(model, n_neurons, hidden_units, output_dim)
    return Embedder(encoder, layout.blocks, layout.normalized)


@pytest.fixture
def embedder_factory():
    """``build_embedder(model=..., n_neurons=..., hidden_units=..., output_dim=..., objectives=..., seed=...)``."""
    return build_embedder


def build_training_setup(neural: np.ndarray, position: np.ndarray, *, model: str = "offset5", seed: int = 0,
                         init_seed: int | None = None, batch_size: int = 16, max_steps: int = 4,
                         learning_rate: float = 1e-2, regularizer_weight: float = 0.0, regularizer_ramp=None,
                         regularizer_exact: bool = False, regularizer_batch_size: int | None = 8,
                         learnable_temperature: bool = False, forward_mode: str = "auto",
                         checkpoint_every: int = 0, output_dim: int = 4, loss: str = "cosine",
                         objectives=None) -> dict:
    """Everything ``training.fit`` needs, built the way the estimator builds it, for tiny data."""
    if objectives is None:
        objectives = [Objective("behavior", dims=(0, 2), distribution="time_delta", label="position"),
                      Objective("time", dims=(0, output_dim), distribution="time", time_offset=3)]
    layout = block_layout(objectives, output_dim, loss)
    embedder = build_embedder(model, neural.shape[1], 8, output_dim, objectives, loss=loss,
                              seed=seed if init_seed is None else init_seed)
    domain = Domain.for_window(neural.shape[0], embedder.left, embedder.window - embedder.left)
    distributions = []
    for objective in objectives:
        distribution = make_distribution(objective.distribution, **objective.distribution_options(embedder.window))
        distribution.setup(domain, position if objective.label else None)
        distributions.append(distribution)
    generator = torch.Generator().manual_seed(seed)
    sampler = BatchSampler(distributions, domain, batch_size, generator)
    heads = [LossHead(name=o.name, dims=o.slice, similarity=o.loss or loss,
                      temperature=Temperature(1.0, learnable=learnable_temperature, minimum=0.01))
             for o in objectives]
    plan = TrainingPlan(max_steps=max_steps, learning_rate=learning_rate, regularizer_weight=regularizer_weight,
                        regularizer_ramp=regularizer_ramp, regularizer_batch_size=regularizer_batch_size,
                        regularizer_exact=regularizer_exact, forward_mode=forward_mode,
                        checkpoint_every=checkpoint_every)
    return dict(embedder=embedder, heads=heads, sampler=sampler, neural=torch.from_numpy(neural), plan=plan,
                coverage=layout.coverage, generator=generator)


@pytest.fixture
def training_setup_factory():
    """``build_training_setup(neural, position, **options)`` -> dict of the arguments of ``training.fit``."""
    return build_training_setup
