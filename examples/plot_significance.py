"""
Which neurons significantly drive each block
============================================

An attribution map gives every neuron a positive number for every block; on a real recording nothing
says which numbers are real. :func:`xcebra.significance.significance` turns the map into a decision per
(block, neuron) at a chosen false discovery rate, with an interval and a p-value:

- every fit gets *shadow neurons*, circularly time-shifted copies of the real ones: they keep each
  neuron's rate and autocorrelation but have nothing to do with the behaviour or with the other
  neurons, so what the model attributes to them is the attribution of a neuron that drives nothing;
- a few fits with different seeds give an interval per entry and a consistency score per block.

We run it on synthetic data, where the answer is known, and compare. The example takes about a minute
on two CPU cores.
"""

# %%
# The data and the configuration
# -------------------------------
# 30 neurons; each is driven by behaviour latents, time latents or both. We name these groups as if
# they were cell types, to show the per-type view a lab would use with real cell types.
import os

import numpy as np
from distributed import Client

import xcebra
from xcebra.significance import significance

# The documentation's CI sets XCEBRA_DOCS_QUICK=1: the same code, shorter fits.
QUICK = os.environ.get("XCEBRA_DOCS_QUICK") == "1"

data = xcebra.datasets.make_synthetic(n_timepoints=3000, n_neurons=30, random_state=0)
behaviour, time = data.block_truth
cell_types = np.where(behaviour & time, "mixed", np.where(behaviour, "behaviour only", "time only"))
print({name: int((cell_types == name).sum()) for name in ("behaviour only", "mixed", "time only")})

model = xcebra.XCEBRA(
    [xcebra.Objective("behavior", dims=(0, 4), distribution="time_delta", label="position"),
     xcebra.Objective("time", dims=(0, 8), distribution="time", time_offset=1)],
    model="offset1", hidden_units=32, output_dim=8, temperature=0.1, batch_size=128,
    max_steps=150 if QUICK else 600, learning_rate=1e-3, regularizer_weight=0.01, regularizer_ramp=None,
    random_state=0, verbose=False)

# %%
# The analysis
# ------------
# Three fits (``n_seeds``), each with four shadows per neuron (the default), run as Dask tasks through
# :func:`xcebra.parallel.fit_many`. Here the two workers are threads of this process, so the page's
# script runs as it is; without ``client`` a local cluster of worker processes is started (in a script,
# call it under ``if __name__ == "__main__":``), and the client of a SLURM cluster spreads the fits
# over its nodes. With ``out_dir``, a rerun reads the fits already written there.
with Client(processes=False, n_workers=2, threads_per_worker=1, dashboard_address=None) as client:
    result = significance(model, data.neural, position=data.behavior, n_seeds=3, fdr=0.05, client=client)
print(result)
print("smallest possible p-value:", round(1 / (result.n_shadows + 1), 4),
      "-> BH needs at least", result.min_selectable, "neurons there to select any")

# %%
# The map, with the selected entries marked
# -----------------------------------------
# Each entry is the neuron's attribution to the block divided by the median shadow of the same fit,
# averaged over the fits: 1 is a typical neuron that drives nothing. Dots mark the neurons selected at
# a false discovery rate of 5% (Benjamini-Hochberg, per block).
map_figure = result.plot_map(cell_types=cell_types)

# %%
# Intervals per neuron, grouped by type
# -------------------------------------
# The interval is over the fits (Student's t, 95%): how much the value moves from one seed to another on
# *this* recording. The dashed line is the largest shadow: a neuron above it has the smallest p-value
# the shadows allow.
interval_figure = result.plot_intervals(cell_types=cell_types)

# %%
# Against the ground truth
# ------------------------
# The table has one row per (block, neuron); ``result.save(directory)`` writes it as
# ``significance.csv`` with the per-block consistency in ``consistency.json``.
frame = result.to_frame(cell_types=cell_types)
print(frame.head())
for b, name in enumerate(result.block_names):
    chosen, truth = result.selected_mask[b], data.block_truth[b]
    print(f"{name}: {chosen.sum()} selected, {(chosen & ~truth).sum()} of them not drivers, "
          f"{(chosen & truth).sum()} of {truth.sum()} drivers found; consistency {result.consistency[name]:.2f}")

# %%
# What the null does not test: a neuron that does not drive a block but is correlated with one that
# does (a noisy copy, or one sharing its noise) is selected too, because the encoder uses it. The
# shadows are isolated neurons; real ones are not. See the background page "Significance of a map".
