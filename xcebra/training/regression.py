"""The supervised reference's training step: the MSE of a readout of the embedding on a standardised target.

Each step draws ``batch_size`` time points with complete windows uniformly at random, embeds their
windows, maps the embedding through the readout and takes the mean squared error to the standardised
target; with a positive ``weight`` the Jacobian penalty of the embedding (one random projection per
sample, over the whole batch) is added. :func:`fit_regression` runs these steps in the shared loop
(:func:`xcebra.training.loop.run`), so the supervised reference trains with the same optimiser,
divergence checks and log as xCEBRA.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from ..models import Embedder
from ..regularizers import jacobian_penalty
from .loop import StepOutput, TrainingPlan, run

__all__ = ["RegressionTask", "fit_regression"]


class RegressionTask:
    """One regression step (see the module docstring), for :func:`xcebra.training.loop.run`.

    Parameters
    ----------
    embedder : the network to train.
    readout : maps the embedding (B, D) to the target (B, d_target); trained with it (``nn.Identity``: none).
    windows : tensor of shape (n_valid, N, window), the windows of every time point with a complete window.
    targets : tensor of shape (n_valid, d_target), the standardised target of each window's time point.
    batch_size : time points per step.
    weight : weight of the Jacobian penalty (0: not computed).
    generator : draws the batches and the penalty's projections.
    """

    def __init__(self, embedder: Embedder, readout: nn.Module, windows: torch.Tensor, targets: torch.Tensor,
                 batch_size: int, weight: float, generator: torch.Generator):
        self.model, self.criterion = embedder, readout
        self.windows, self.targets, self.batch_size = windows, targets, batch_size
        self.weight, self.generator = float(weight), generator

    def log_keys(self) -> list[str]:
        return ["loss", "regularizer", "total"] if self.weight > 0 else ["loss"]

    def step(self, step: int) -> StepOutput:
        index = torch.randint(len(self.windows), (self.batch_size,), generator=self.generator,
                              device=self.windows.device)
        if self.weight > 0:
            batch = self.windows[index].clone().requires_grad_(True)
            embedding = self.model(batch)[:, 0]
            loss = torch.mean((self.criterion(embedding) - self.targets[index]) ** 2)
            penalty = jacobian_penalty(embedding, batch, generator=self.generator)
            total = loss + self.weight * penalty
            return StepOutput(total, {"loss": loss, "regularizer": penalty, "total": total}, ("loss", "total"))
        loss = torch.mean((self.criterion(self.model(self.windows[index])[:, 0]) - self.targets[index]) ** 2)
        return StepOutput(loss, {"loss": loss}, ("loss",))

    def after_update(self) -> dict[str, float]:
        return {}

    def progress(self, values: dict[str, float]) -> dict[str, str]:
        return {"mse": f"{values['loss']:.4f}"}


def fit_regression(embedder: Embedder, readout: nn.Module, windows: torch.Tensor, targets: torch.Tensor, *,
                   batch_size: int, max_steps: int, learning_rate: float, weight: float = 0.0,
                   generator: torch.Generator, verbose: bool = True) -> dict[str, np.ndarray]:
    """Train ``embedder`` and ``readout`` in place by regression; return the log.

    Parameters are :class:`RegressionTask`'s, plus ``max_steps`` and ``learning_rate`` (Adam).

    Returns
    -------
    dict of str -> ndarray of shape (steps,): ``loss`` (the MSE); with a penalty also ``regularizer`` and
    ``total`` (MSE + weight * penalty, what was minimised).

    Raises
    ------
    DivergenceError
        The loss, the penalty, a gradient or an updated weight became non-finite; the weights are those
        before that step and the error's ``log`` holds the completed steps.
    """
    task = RegressionTask(embedder, readout, windows, targets, batch_size, weight, generator)
    plan = TrainingPlan(max_steps=max_steps, learning_rate=learning_rate)
    return run(task, plan, generator=generator, verbose=verbose, desc="supervised fit")
