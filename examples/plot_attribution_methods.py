"""
Compare attribution methods on one fitted model
===============================================

Every method answers the same question (how strongly does each neuron drive each embedding
dimension?) through one call, ``model.attribution_map(neural, method=...)``, and returns the same
:class:`xcebra.AttributionMap`. Here one model fitted to synthetic data with a known ground truth is
explained by five methods and each map is scored by its block-level AUC:

- ``"ing"``: the Inverted Neuron Gradient of the paper, the pseudo-inverse of the encoder's Jacobian;
- ``"ing-block"``: the same, each block of the embedding inverted on its own;
- ``"jacobian"``: the encoder's Jacobian itself (a gradient map);
- ``"integrated-gradients"`` and ``"gradient-shap"``: two of the baselines the paper compares with,
  computed by captum (installed with the ``baselines`` extra).

The benchmark of the results page :doc:`/results/attribution-methods` runs this comparison over
seeds and noise models, with the perturbation methods and a supervised reference added.
"""

# %%
# One fitted model
# ----------------
import os

import xcebra
from xcebra import plotting

# The documentation's CI sets XCEBRA_DOCS_QUICK=1: the same code, a shorter fit.
QUICK = os.environ.get("XCEBRA_DOCS_QUICK") == "1"

data = xcebra.datasets.make_synthetic(n_timepoints=6000, noise="poisson", random_state=1)
model = xcebra.XCEBRA(
    [xcebra.Objective("behavior", dims=(0, 3), distribution="time_delta", label="position"),
     xcebra.Objective("time", dims=(0, 6), distribution="time", time_offset=1)],
    model="offset1", hidden_units=128, output_dim=6, loss="euclidean", batch_size=512,
    max_steps=300 if QUICK else 1500, learning_rate=1e-3,
    regularizer_weight=0.01, regularizer_ramp=None, random_state=0, verbose=False)
model.fit(data.neural, position=data.behavior)
print("blocks:", model.blocks_)

# %%
# Five maps, one call each
# ------------------------
# The gradient methods run on every time point. The captum baselines cost more per time point
# (integrated gradients: one gradient per integration step), so they attribute a random subset of
# 2,000 time points; ``stderr`` of each map says how precise its time average is.
# ``"gradient-shap"`` draws its baselines from Gaussian noise of standard deviation ``baseline_std``,
# which should be on the scale of the data.
options = {
    "ing": {},
    "ing-block": {},
    "jacobian": {},
    "integrated-gradients": {"num_samples": 2000, "n_steps": 16},
    "gradient-shap": {"num_samples": 2000, "baseline_std": float(data.neural.std())},
}
maps = {method: model.attribution_map(data.neural, method=method, verbose=False, **kwargs)
        for method, kwargs in options.items()}

rows = []
for method, amap in maps.items():
    block_auc = amap.score(data.block_truth, level="block")
    entry_auc = amap.score(data.ground_truth(model.blocks_), level="entry")
    rows += [{"method": method, "auc": block_auc, "level": "block"},
             {"method": method, "auc": entry_auc, "level": "entry"}]
    print(f"{method:21s} block AUC {block_auc:.3f}  entry AUC {entry_auc:.3f}  "
          f"({amap.n_timepoints} time points)")

comparison = plotting.plot_method_comparison(rows)

# %%
# Decide on the block level: the per-entry AUC moves with the basis the model happened to learn
# within each block, which contrastive learning does not identify. The maps themselves, side by side:
ing_figure = plotting.plot_attribution_map(maps["ing"])
jacobian_figure = plotting.plot_attribution_map(maps["jacobian"])
