"""Ground truth for real recordings from cell-type hypotheses: which cell types should drive which block.

On simulated data the true connectivity between latents and neurons is known; on a recording it is
not. What one usually has is a *hypothesis*: "the behaviour block should be driven by grid and place
cells, the time block by head-direction and speed cells". This module turns such a hypothesis into
a boolean ground-truth map for the embedding layout of a fitted model (:func:`hypothesis_map`) and
scores an attribution map against it (:func:`test_hypothesis`).

Scores are computed per block of the embedding, because contrastive learning identifies each block
only up to an invertible linear map (docs: background, "Identifiable per block"): the block-level AUC uses
``amap.block_values`` (RMS over the rows of each block) and is the number to decide on; the
per-entry AUC over ``amap.values`` is reported for comparison with the original xCEBRA notebook.
Blocks that the hypothesis does not mention are not scored.

Example
-------
>>> import numpy as np, types
>>> cell_types = ["grid", "grid", "place", "head_direction"]
>>> blocks = [("behavior", slice(0, 2)), ("time", slice(2, 3))]
>>> values = np.array([[0.9, 0.8, 0.7, 0.1], [0.8, 0.9, 0.6, 0.2], [0.1, 0.2, 0.1, 0.9]])
>>> block_values = np.stack([np.sqrt((values[s] ** 2).mean(0)) for _, s in blocks])
>>> amap = types.SimpleNamespace(values=values, blocks=blocks, block_values=block_values)
>>> result = test_hypothesis(amap, cell_types, {"behavior": ["grid", "place"], "time": ["head_direction"]})
>>> result.block_auc
1.0
"""

from .ground_truth import HypothesisMap, hypothesis_map
from .scores import HypothesisResult, test_hypothesis

__all__ = ["HypothesisMap", "HypothesisResult", "hypothesis_map", "test_hypothesis"]
