"""Which neurons significantly drive each block: a shadow-neuron null, a seed ensemble, and FDR decisions.

An attribution map gives every neuron some positive number for every block; on a recording without a
ground truth nothing says which numbers are real. :func:`significance` turns a map into a decision per
(block, neuron), with an error rate, from two ingredients:

- **Shadow neurons, the null.** Each fit gets ``n_shadows`` extra input columns, each a circularly
  time-shifted copy of a real neuron (Boruta-style feature selection). A shadow keeps its source
  neuron's rate, distribution and autocorrelation, but the shift (at least a tenth of the recording and
  three autocorrelation times of the labels and of the neural data) breaks its relation to the labels,
  the latents and the other neurons; every shadow has its own shift, so the shadows together are not a
  shifted copy of the recording. What the fitted model attributes to the shadows, per block, is the
  attribution of a neuron that does not drive that block.
- **A seed ensemble.** ``n_seeds`` fits, clones of the estimator with ``random_state = base + m``, each
  with its own shadow shifts, all through :func:`xcebra.parallel.fit_many` (Dask workers, SLURM, or a
  local cluster); with ``out_dir`` a rerun reads the fits already written there instead of fitting
  them again.

Choices, and why
----------------
- **Four shadows per neuron** (``n_shadows = 4 * n_neurons``; slot ``k`` copies neuron ``k % n_neurons`` in
  every seed, only its shift changes). The null then holds the population's own mix of rates and
  autocorrelations, and a shadow slot's statistic is a mean over seeds of copies of *one* neuron, just
  as a real neuron's is: pooling shadows of different neurons across seeds would make the null means
  less dispersed than a real neuron's and the p-values too small. Why four and not one: the smallest
  p-value is ``1 / (n_shadows + 1)``, so Benjamini-Hochberg can select in a block only when at least
  ``n_neurons / (fdr * (n_shadows + 1))`` neurons reach it (:attr:`SignificanceResult.min_selectable`):
  20 at ``fdr = 0.05`` with one shadow per neuron, 5 with four. On two synthetic recordings (50 neurons,
  32 driving the time block; ``python -m benchmarks.quality.significance_calibration``, docs: background, "Significance
  of a map") one shadow per neuron selected no neuron of the time block, four selected 13.5 on average
  with no false discovery. The price: only the encoder's first layer sees the wider input (a training
  step of the demo's encoder took at most 20% longer with 5x the input columns, on a busy machine), but
  shadows are slow signals a time-contrastive block can use, so they shift that block's map more than
  one shadow per neuron does (the behaviour block's map and decoding were unchanged beyond seed noise).
- **Scale-free per seed: divide by the seed's median shadow value in the block.** Fits differ in the
  overall scale of their maps (the embedding's scale, the block's width, the regularizer), so raw
  values averaged over seeds would let one fit dominate. A value of 3 reads "three times the
  attribution of a typical non-driving neuron in this fit". The median is robust to a few shadows that
  happen to catch signal. Ranks would also be scale-free, but throw away the effect size that the
  interval reports.
- **Value: the mean over seeds of the normalised attribution; interval: Student's t over seeds**
  (``confidence``, default 95%). The interval covers the variability between fits (initialisation,
  batches, shadow shifts) *for this recording*; it says nothing about another recording of the same
  cells.
- **p-value: empirical, against the block's pooled shadow null, with the same statistic.**
  ``p = (1 + #{shadow statistics >= value}) / (1 + n_shadows)`` (ties count against the neuron), where a
  shadow slot's statistic is, like a real neuron's, its mean normalised value over the seeds. If a
  non-driving neuron's statistic is exchangeable with the shadows', this p-value is valid (never
  below uniform) at any sample size.
- **Decisions: Benjamini-Hochberg at ``fdr``, per block.** All p-values of a block share one null
  sample; such conformal p-values are positively dependent (PRDS; Bates, Candès, Lei, Romano and Sesia,
  *Testing for outliers with conformal p-values*, Ann. Statist. 2023), the condition under which BH
  controls the false discovery rate. Blocks answer different questions (and a block identifies its
  own latent only), so each block is its own family; the FDR holds per block, not over all blocks.
- **Consistency: the mean pairwise Spearman correlation of the block's real-neuron map across seeds**
  (the analogue for maps of CEBRA's consistency of embeddings). Ranks ignore each seed's scale.
- **Attribution method: ``"ing-block"`` by default**: each block's own Jacobian rows are inverted, at
  the rank its objective identifies, so a block's decision does not depend on how another block was
  learned (docs: design notes, "Attribution": the per-block inverse recovers the behaviour columns even
  when the time block also encodes behaviour).

What this does not test (docs: background, "Significance of a map"): a neuron that does not drive a
block but is correlated with one that does carries the driver's information and is selected too; the
shadows break cross-neuron structure, so the null is that of an *isolated* neuron.

Modules: :mod:`.stats` (p-values, Benjamini-Hochberg, intervals, consistency: pure functions), :mod:`.shadows`
(the null), :mod:`.result` (:class:`SignificanceResult`: table, files, figures) and :mod:`.analysis` (the front
door, :func:`significance`). Layering: it uses the estimators, :mod:`xcebra.parallel` and :mod:`xcebra.viz`;
nothing in the package imports it except the demo and the command line.
"""

from __future__ import annotations

from .analysis import significance
from .result import CSV_COLUMNS, SignificanceResult
from .shadows import add_shadows, minimum_shift, shadow_shifts, shadow_sources
from .stats import benjamini_hochberg, consistency_scores, empirical_p_values, normalise_by_null, seed_intervals

__all__ = ["significance", "SignificanceResult", "empirical_p_values", "benjamini_hochberg", "consistency_scores",
           "seed_intervals", "normalise_by_null", "shadow_sources", "shadow_shifts", "minimum_shift", "add_shadows",
           "CSV_COLUMNS"]
