"""Training health read from a finished fit's log: the two failures a fit can hide, and their warnings.

A fit checks its log once, after training, for two failures that leave no
NaN behind and that the loss curve alone does not show:

- :class:`EmbeddingGrowthWarning`: a euclidean embedding without a bound (``lipschitz=None`` and
  ``output_clip=None``) inflated. The euclidean InfoNCE is unbounded below, so a time objective whose
  positives are closer than every negative lowers its loss by scaling the embedding up without limit.
  The default bound (see :class:`xcebra.XCEBRA`, ``lipschitz``) makes this impossible by construction, so
  only a fit that opted out of it is checked.
- :class:`EmbeddingCollapseWarning`: an objective ended at ``log(batch_size)``, the InfoNCE of an
  embedding that maps every time point to one vector (e.g. every unit died after a too large step).
  Every attribution map of such a fit is zero.

Both read only the per-step log (no extra forward pass). Warnings retired with their probes, and why,
are in the decision log (docs/design-notes.md, "Fewer alarms").
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from ..exceptions import EmbeddingCollapseWarning, EmbeddingGrowthWarning

__all__ = ["EmbeddingGrowthWarning", "EmbeddingCollapseWarning", "SPREAD_LIMIT", "euclidean_spread",
           "collapsed_objectives", "growth_message", "collapse_message", "training_warnings"]


#: scaled spread (see :func:`euclidean_spread`) above which an unbounded fit warns: a healthy fit of the
#: synthetic benchmark sits near 1e2, every inflating one measured at 1e5 or more
SPREAD_LIMIT = 1e4


def euclidean_spread(log: dict[str, np.ndarray], n_dims: int, temperature: float, fraction: float = 0.05) -> float | None:
    """Typical squared distance between two embedded points, in units of the temperature, at the end of a fit.

    ``2 * n_dims * median(log["embedding_std"][-k:])**2 / temperature`` with ``k = max(1, fraction * steps)``:
    the expected ``|z_i - z_j|^2 / temperature`` of two independent points whose ``n_dims`` euclidean
    coordinates each have the logged standard deviation. These are the InfoNCE logits; when they are in
    the thousands the softmax over negatives is one-hot, and a loss still falling is falling by scale.

    Parameters
    ----------
    log : a fit's log (``XCEBRA.log_``); uses ``log["embedding_std"]`` (steps,).
    n_dims : number of euclidean embedding dimensions.
    temperature : the largest temperature of the euclidean objectives (the most lenient reading).

    Returns
    -------
    float, or None when the log has no ``embedding_std`` (no euclidean objective) or no steps.
    """
    std = np.asarray(log.get("embedding_std", ()), dtype=np.float64)
    if len(std) == 0:
        return None
    k = max(1, int(fraction * len(std)))
    return float(2 * n_dims * np.median(std[-k:]) ** 2 / temperature)


def collapsed_objectives(log: dict[str, np.ndarray], chance: float, fraction: float = 0.05,
                         min_steps: int = 100) -> dict[str, float]:
    """The objectives whose loss ended at ``chance``, the loss of a constant embedding.

    The end is the median of ``log["loss/<name>"]`` over the last ``k = max(1, fraction * steps)`` steps;
    an objective is reported when ``|end - chance| <= 1e-3 * max(1, chance)``. A loss far *above* chance is
    not a collapse: a euclidean objective's loss also rises when another objective spreads the shared
    embedding, with its pairs still ordered (the default-bounded fits of the synthetic benchmark end at
    11-14 nats with a batch of 512, and decode their label with R2 0.92). Fits shorter than
    ``min_steps`` are not judged: an encoder a few steps from its initialisation is near chance by
    design (smoke tests, quick runs).

    Parameters
    ----------
    log : a fit's log (``XCEBRA.log_``); uses every ``loss/<name>`` entry, each (steps,).
    chance : ``log(M)`` for M negatives: with every score equal, each reference's loss is that.
    fraction : share of the steps the median is taken over, in (0, 1].
    min_steps : fits with fewer logged steps are not judged (an empty result).

    Returns
    -------
    dict of objective name -> its final loss (nats), only for the collapsed objectives.
    """
    if not 0 < fraction <= 1:
        raise ValueError(f"fraction must be in (0, 1]; got {fraction!r}")
    collapsed = {}
    for key, values in log.items():
        if not key.startswith("loss/"):
            continue
        values = np.asarray(values, dtype=np.float64)
        if len(values) < max(1, min_steps):
            continue
        end = float(np.median(values[-max(1, int(fraction * len(values))):]))
        if abs(end - chance) <= 1e-3 * max(1.0, chance):
            collapsed[key[len("loss/"):]] = end
    return collapsed


def growth_message(log: dict[str, np.ndarray], spread: float, temperature: float) -> str:
    """The text of :class:`EmbeddingGrowthWarning` for a fit whose scaled spread is ``spread``."""
    std = log["embedding_std"]
    return (f"the unbounded euclidean embedding grew during fit (standard deviation {std[0]:.3g} at the first step, "
            f"{std[-1]:.3g} at the last; log_['embedding_std']): squared distances are ~{spread:.2g} times the "
            f"temperature ({temperature:.3g}), so the InfoNCE softmax is saturated and its loss, unbounded below, "
            "falls by inflating the scale. Scale-free scores (decoding R2) may still look fine while attribution "
            "maps do not. Leave lipschitz at its default ('auto': a bound of 4.0 for euclidean losses) or set "
            "output_clip; loss='cosine' bounds the scale too")


def collapse_message(collapsed: dict[str, float], chance: float) -> str:
    """The text of :class:`EmbeddingCollapseWarning` for ``collapsed`` {objective: final loss}."""
    listed = ", ".join(f"{name!r} ended at {end:.4g}" for name, end in collapsed.items())
    return (f"objective {listed} = log(batch_size) = {chance:.4g} (median over the last 5% of steps; "
            "log_['loss/<name>']), the loss of an embedding that tells no positive from the negatives: the fit "
            "learned nothing for it. Either every unit died after a too large step (the embedding is constant and "
            "the attribution maps are zero: lower learning_rate), or the neural data carry no information about "
            "this objective's label (check with a decoder)")


def training_warnings(log: dict[str, np.ndarray], batch_size: int, heads: Sequence, temperatures: dict[str, float],
                      output_dim: int, *, bounded: bool, min_steps: int = 100) -> list[tuple[type, str]]:
    """The warnings a finished fit's log calls for, as (category, message) pairs, in the order to raise them.

    Parameters
    ----------
    log : the fit's log (``XCEBRA.log_``).
    batch_size : negatives per reference: a constant embedding's loss is ``log(batch_size)``.
    heads : the fit's loss heads (:class:`xcebra.training.contrastive.LossHead`): names, slices, similarities.
    temperatures : the final temperature of each objective, by name.
    output_dim : width of the embedding.
    bounded : the encoder was built with a Lipschitz bound or an output clip (it cannot inflate).
    min_steps : fits with fewer steps are not judged for a collapse.
    """
    found: list[tuple[type, str]] = []
    chance = float(np.log(batch_size))  # every score equal: each reference's loss is log(negatives)
    collapsed = collapsed_objectives(log, chance, min_steps=min_steps)
    if collapsed:
        found.append((EmbeddingCollapseWarning, collapse_message(collapsed, chance)))
    euclidean = [head for head in heads if head.similarity == "euclidean"]
    if not euclidean or bounded:
        return found  # a bounded embedding cannot inflate
    n_dims = len({d for head in euclidean for d in range(*head.dims.indices(output_dim))})
    temperature = max(temperatures[head.name] for head in euclidean)
    spread = euclidean_spread(log, n_dims, temperature)
    if spread is not None and spread > SPREAD_LIMIT:
        found.append((EmbeddingGrowthWarning, growth_message(log, spread, temperature)))
    return found
