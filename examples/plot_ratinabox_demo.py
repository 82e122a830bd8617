"""
The seed demo on simulated RatInABox data
=========================================

The notebook this project started from trained xCEBRA on a simulated rat foraging in a 1 m box,
recorded from 90 neurons of four types: grid, place, head-direction and speed cells. The embedding
has a *behaviour* block trained to follow the rat's position and a *time* block trained to follow
time. The question: is the behaviour block driven by grid and place cells, and not by
head-direction and speed cells?

This is ``xcebra demo --quick`` step by step, with the library functions it is made of. The quick
configuration (600 s of data, 120 training steps at batch 512) takes about two minutes on two CPU
cores; ``xcebra demo`` runs the seed's full configuration and writes an HTML report.
"""

# %%
# The recording
# -------------
# :func:`xcebra.datasets.ratinabox` simulates the data with RatInABox (installed with the ``demo``
# extra) and caches it, so a second call with the same arguments reads it back. The configuration
# comes from :data:`xcebra.demo.PRESETS`, the presets of ``xcebra demo``.
import dataclasses
import os

import xcebra
from xcebra import demo, plotting

# The documentation's CI sets XCEBRA_DOCS_QUICK=1: the same code, less data and training.
QUICK = os.environ.get("XCEBRA_DOCS_QUICK") == "1"
config = demo.PRESETS["quick"]
if QUICK:
    config = dataclasses.replace(demo.with_steps(config, 40), duration=300.0)

data = demo.simulate(config)
print(data)

raster = plotting.plot_raster(data.spikes, cell_types=data.cell_types, time=data.time,
                              max_timepoints=1000, value_label="spike count per bin")
trajectory = plotting.plot_trajectory(data.position, time=data.time, max_timepoints=1000)

# %%
# The model
# ---------
# Two objectives, as in the seed: ``behavior`` on dimensions 0-3, whose positive pairs are time points
# with a matching change of position (each at least one encoder window away from its reference), and
# ``time`` on all 14 dimensions, whose positive is the time point 10 bins later. Dimensions 4-13
# therefore form the ``time`` block. The encoder is a convolution over 10 time bins (``offset10``), and
# the Jacobian regularizer is ramped in over the second quarter of the training.
model = demo.build_model(config, precision=demo.training_precision("auto"), random_state=0)
model.fit(data.spikes, position=data.position)
print("blocks:", model.blocks_)
print("training precision:", model.precision)

# %%
# The embedding
# -------------
# Held-out decoding of position from each block, and the behaviour block coloured by the x coordinate.
embedding = model.transform(data.spikes)
scores = xcebra.metrics.decoding_scores(embedding, data.position, model.blocks_)
for block, s in scores.items():
    print(f"{block:9s} position: linear R2 {s['linear_r2']:.3f}   kNN R2 {s['knn_r2']:.3f}")
embedding_figure = plotting.plot_embedding(embedding, model.blocks_, data.position[:, 0],
                                           color_label="position x (m)", max_points=5000)

# %%
# The attribution map and the hypothesis
# --------------------------------------
# ``"ing-block"`` inverts each block's Jacobian on its own (the demo's headline map; why:
# :doc:`/background/identifiability`). We attribute a random subset of time points, much faster
# than all of them; ``amap.stderr`` says how precise the mean is.
amap = model.attribution_map(data.spikes, method="ing-block", num_samples=config.num_samples,
                             verbose=False)
result = xcebra.hypotheses.test_hypothesis(amap, data.cell_types, demo.BEHAVIOR_HYPOTHESIS)
print(result.summary())

map_figure = plotting.plot_attribution_map(amap, cell_types=data.cell_types)
# sphinx_gallery_thumbnail_number = 4
means_figure = plotting.plot_cell_type_means(amap, data.cell_types)

# %%
# The block AUC is the probability that a grid or place cell has a larger attribution within the
# behaviour block than a head-direction or speed cell (0.5 is chance). The time block is not scored:
# time-contrastive learning picks up the slowest signal in the data, which here is position, so the
# time block is driven by grid and place cells too (see its panel above).
print(f"behaviour block <- grid, place: AUC {result.block_auc:.3f}")
