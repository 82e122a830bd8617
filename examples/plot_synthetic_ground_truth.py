"""
Recover a known ground truth on synthetic data
==============================================

A recording where we know which neurons are driven by which latent factors: 50 neurons, each a
random nonlinear function of a subset of six latents, three that follow "behaviour" (a smooth walk
in a box, which we observe) and three that only change over time (which we do not observe). We fit
xCEBRA with one objective per group of latents, compute the Inverted Neuron Gradient (ING) map and
ask the question the method can answer: which neurons drive each block of the embedding?

The full version (2,000 training steps) takes under two minutes on two CPU cores.
"""

# %%
# The data
# --------
# :func:`xcebra.datasets.make_synthetic` returns the recording and its ground truth. ``block_truth``
# has one row per group of latents: ``block_truth[0, n]`` says whether some behaviour latent drives
# neuron ``n``.
import os

import numpy as np

import xcebra
from xcebra import plotting

# The documentation's CI sets XCEBRA_DOCS_QUICK=1: the same code, a shorter fit.
QUICK = os.environ.get("XCEBRA_DOCS_QUICK") == "1"

data = xcebra.datasets.make_synthetic(noise="gaussian", random_state=0)
print("neural", data.neural.shape, " behaviour", data.behavior.shape,
      " block truth", data.block_truth.shape)
print("neurons driven by behaviour latents:", int(data.block_truth[0].sum()),
      " by time latents:", int(data.block_truth[1].sum()))

# %%
# The model
# ---------
# The embedding has six dimensions. Dimensions 0-2 are trained to follow the behaviour
# (``time_delta``: a positive pair is two time points whose behaviour differs by a change drawn from
# the data); all six are trained to follow time (``time``: the positive is the next time point). The
# first objective's dimensions become the ``behavior`` block, the rest the ``time`` block.
model = xcebra.XCEBRA(
    [xcebra.Objective("behavior", dims=(0, 3), distribution="time_delta", label="position"),
     xcebra.Objective("time", dims=(0, 6), distribution="time", time_offset=1)],
    model="offset1", hidden_units=128, output_dim=6, loss="euclidean", batch_size=512,
    max_steps=300 if QUICK else 2000, learning_rate=1e-3,
    regularizer_weight=0.01, regularizer_ramp=None, random_state=0, verbose=False)
model.fit(data.neural, position=data.behavior)
print("blocks:", model.blocks_)
print("Lipschitz bound used:", model.lipschitz_)

training_log = plotting.plot_training_log(model.log_)

# %%
# How well each block holds the behaviour
# ---------------------------------------
# Held-out decoding (five time-series splits: train on the past, test on the next segment). The
# behaviour block should decode the behaviour; the time block should not.
embedding = model.transform(data.neural)
scores = xcebra.metrics.decoding_scores(embedding, data.behavior, model.blocks_)
for block, s in scores.items():
    print(f"{block:9s} linear R2 {s['linear_r2']:.3f}   kNN R2 {s['knn_r2']:.3f}")

# %%
# The attribution map
# -------------------
# ``values`` has one row per embedding dimension and one column per neuron. Contrastive learning
# identifies each block only up to an invertible linear map, so single rows are not meaningful; the
# block-level map (the RMS over each block's rows) is. That is what we score against the truth.
amap = model.attribution_map(data.neural, method="ing", verbose=False)
block_auc = amap.score(data.block_truth, level="block")
entry_auc = amap.score(data.ground_truth(model.blocks_), level="entry")
print(f"block AUC {block_auc:.3f} (decide on this)")
print(f"entry AUC {entry_auc:.3f} (moves with the learned basis)")

map_figure = plotting.plot_attribution_map(amap)
# sphinx_gallery_thumbnail_number = 2

# %%
# The block-level map next to the truth: each block's map is scaled to its own maximum, because
# blocks are compared within themselves, never across.
block_figure = plotting.plot_block_map(amap)
truth_figure = plotting.plot_ground_truth(data.block_truth, blocks=model.blocks_)

# %%
# Which neurons are ranked wrongly? Sorting the behaviour block's values shows where the driven and
# the undriven neurons overlap, if anywhere.
order = np.argsort(-amap.block_values[0])
driven = data.block_truth[0][order]
print("behaviour block, neurons by decreasing attribution (1 = driven by a behaviour latent):")
print("".join("1" if d else "0" for d in driven))
