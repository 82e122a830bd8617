""":func:`run_demo`: the seed pipeline on simulated RatInABox data, written into a directory.

The analysis itself is the library's (:func:`xcebra.pipeline.analyze`, figures and sections from
:mod:`xcebra.viz.analysis`); this module adds what only the demo has: the seed's pooled hypothesis for
comparison, the trajectory, and the text that explains the numbers.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import os
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.base import clone

from .. import __version__
from .._files import jsonable, write_json
from ..hypotheses import HypothesisResult, test_hypothesis
from ..parallel import local_client
from ..pipeline import Analysis, PhaseTimer, analyze
from ..significance import significance
from ..typing import ArrayLike, NeuralArray
from ..viz import plot_ground_truth, plot_method_comparison, plot_trajectory, save_outputs
from ..viz.analysis import analysis_figures, analysis_sections, significance_report
from .config import (BEHAVIOR_HYPOTHESIS, SEED_HYPOTHESIS, DemoConfig, _resolve_config, build_model, simulate,
                     training_precision, with_steps)
from .summary import seed_comparison_text, summary_table_rows

__all__ = ["run_demo", "analyze_model"]

logger = logging.getLogger("xcebra")

#: the scored hypothesis's section, explained: why per block, why 'ing-block' is the headline
_HYPOTHESIS_TEXT = (
    "Scored hypothesis: behaviour block <- grid and place cells. AUC within the behaviour block: grid + place cells "
    "vs head-direction + speed cells (0.5 = chance). The block-level AUC is invariant to the basis learned within "
    "the block: decide on it. The time block is not scored; its mean attribution per cell type is shown in the "
    "previous section. Headline map: '{headline}'. 'ing-block' is the Inverted Neuron Gradient per block: it "
    "inverts each block's Jacobian on its own and keeps as many singular values as the block's objective "
    "identifies (2 for position: the behaviour block is identified as a function of the 2-d position, and its 4-d "
    "sphere leaves a third direction that the objective does not pin down). 'ing' is the paper's definition, the "
    "pseudo-inverse of the whole Jacobian. The two agree when the time block carries nothing of position. Here it "
    "does (time-contrastive learning picks up position, the slowest signal; see the decoding table): the encoder "
    "is then identified up to a block lower-triangular map, whose inverse mixes time-latent cells (head-direction, "
    "speed) into the behaviour rows of the whole inverse, while the behaviour block's own inverse stays exact "
    "when, as the hypothesis says, different cell types drive the two blocks.")


def analyze_model(model: Any, neural: NeuralArray, *, labels: Mapping[str, ArrayLike] | None = None,
                  cell_types: Sequence[str] | None = None, hypothesis: Mapping[str, Sequence[str]] | None = None,
                  methods: Sequence[str] = ("ing",), num_samples: int | None = None, batch_size: int = 1024,
                  time_stamps: Any = None, embedding_points: int = 10_000, raster_timepoints: int = 2000,
                  label_units: Mapping[str, str] | None = None, neural_label: str = "activity (a.u.)",
                  verbose: bool = True, timer: PhaseTimer | None = None) -> tuple[dict, dict, list[dict]]:
    """:func:`xcebra.pipeline.analyze` and its figures and sections in one call (kept for existing callers).

    Returns ``(results, figures, sections)``: ``Analysis.as_dict()``,
    :func:`xcebra.viz.analysis.analysis_figures` and :func:`xcebra.viz.analysis.analysis_sections`; the
    arguments are theirs.
    """
    analysis = analyze(model, neural, labels=labels, cell_types=cell_types, hypothesis=hypothesis, methods=methods,
                       num_samples=num_samples, batch_size=batch_size, verbose=verbose, timer=timer)
    figures = analysis_figures(model, neural, analysis, labels=labels, cell_types=cell_types, time_stamps=time_stamps,
                               embedding_points=embedding_points, raster_timepoints=raster_timepoints,
                               label_units=label_units, neural_label=neural_label)
    return analysis.as_dict(), figures, analysis_sections(model, analysis, figures)


def _nan(value: Any) -> float:
    return math.nan if value is None else float(value)


def _attribution_summary(analysis: Analysis, seed_results: dict[str, HypothesisResult]) -> tuple[dict, list[dict]]:
    """Per method: the scored hypothesis's numbers and the seed-style ones; and the flat AUC table."""
    attribution, auc_rows = {}, []
    for method, amap in analysis.attribution.items():
        scored, seed_style = analysis.hypothesis[method], seed_results[method]
        attribution[method] = {
            "hypothesis": {k: list(v) for k, v in scored.map.hypothesis.items()},
            "block_auc": scored.block_auc, "per_block_auc": scored.per_block_auc, "entry_auc": scored.entry_auc,
            "gap": scored.gap, "per_type": scored.per_type, "n_timepoints": amap.n_timepoints,
            "seed_style": {"hypothesis": {k: list(v) for k, v in seed_style.map.hypothesis.items()},
                           "entry_auc": seed_style.entry_auc, "block_auc": seed_style.block_auc,
                           "per_block_auc": seed_style.per_block_auc},
        }
        auc_rows.append({"method": method, "block_auc": scored.block_auc, "entry_auc": scored.entry_auc,
                         "seed_pooled_entry_auc": seed_style.entry_auc,
                         "seed_time_block_auc": seed_style.per_block_auc.get("time")})
    return attribution, auc_rows


def _summary(config: DemoConfig, mode: str, seed: int, precision: str, data: Any, model: Any, analysis: Analysis,
             seed_results: dict[str, HypothesisResult]) -> dict[str, Any]:
    """Every number of the run (``summary.json``), before timings and files are added."""
    attribution, auc_rows = _attribution_summary(analysis, seed_results)
    cell_types = data.cell_types.tolist()
    counts = {t: int(np.sum(data.cell_types == t)) for t in dict.fromkeys(cell_types)}
    return {
        "xcebra_version": __version__, "mode": mode, "seed": seed, "precision": precision,
        "config": config.to_dict(),
        "data": {"n_timepoints": data.n_timepoints, "n_neurons": data.n_neurons, "cell_types": counts,
                 "params": data.params},
        "blocks": [[name, s.start, s.stop] for name, s in model.blocks_],
        "decoding": analysis.decoding["position"],
        "attribution": attribution,
        "auc": auc_rows,
        "training": {"steps": int(config.max_steps),
                     "final": {k: float(np.asarray(v)[-1]) for k, v in model.log_.items() if len(v)}},
        "hypotheses": {"scored": BEHAVIOR_HYPOTHESIS, "seed_style": SEED_HYPOTHESIS},
        "headline_method": config.methods[0],
    }


def _demo_figures(config: DemoConfig, data: Any, seed_results: dict[str, HypothesisResult],
                  auc_rows: list[dict]) -> dict[str, tuple[str, Any]]:
    """The trajectory, the seed-style ground truth and the AUC per method at the three levels."""
    first = seed_results[config.methods[0]]
    levels = (("block_auc", "block (behaviour)"), ("entry_auc", "entry (behaviour rows)"),
              ("seed_pooled_entry_auc", "entry pooled (seed-style)"))
    return {
        "trajectory": ("Trajectory of the simulated agent in the 1 m box.",
                       plot_trajectory(data.position, time=data.time, max_timepoints=config.raster_timepoints)),
        "ground_truth_seed_style": (
            f"Seed-style ground truth, per entry ({config.output_dim} x N): behaviour rows <- grid and place cells, "
            "time rows <- head-direction and speed cells. Used only for the pooled per-entry AUC shown for "
            "comparison.",
            plot_ground_truth(first.map.ground_truth, blocks=first.map.blocks, cell_types=data.cell_types.tolist())),
        "method_comparison": (
            "AUC per method. 'block (behaviour)': the scored hypothesis, behaviour block, grid + place vs "
            "head-direction + speed (decide on this). 'entry (behaviour rows)': the same hypothesis per entry of "
            f"the behaviour rows. 'entry pooled (seed-style)': the seed's metric over all {config.output_dim} rows "
            "with the seed's hypothesis, which also asks the time block to ignore grid and place cells.",
            plot_method_comparison([{"method": r["method"], "auc": _nan(r[key]), "level": level}
                                    for key, level in levels for r in auc_rows])),
    }


def _overview(config: DemoConfig, data: Any, model: Any, precision: str, mode: str, summary: dict) -> str:
    counts = summary["data"]["cell_types"]
    n_attr = next(iter(summary["attribution"].values()))["n_timepoints"]
    used = model.min_separation_["behavior"]
    separation = (f"each at least {used} time points from its reference: the larger of the encoder window and "
                  "the position's autocorrelation time" if config.behavior_min_separation is None
                  else f"each at least {used} time points from its reference")
    return (
        f"Simulated RatInABox recording: {data.n_timepoints} time points ({config.duration:g} s at {config.dt:g} s) "
        f"x {data.n_neurons} neurons ({', '.join(f'{n} {t}' for t, n in counts.items())}), noise {config.noise:g}, "
        f"Poisson spikes. xCEBRA: behaviour objective on dims {config.behavior_dims[0]}-{config.behavior_dims[1] - 1} "
        f"(time_delta positives on position, {separation}), time objective on dims 0-{config.output_dim - 1} (offset "
        f"{config.time_offset}), encoder {config.model} with {config.hidden_units} hidden units, {config.loss} loss, "
        f"batch {config.batch_size}, {config.max_steps} steps, learning rate {config.learning_rate:g}, Jacobian "
        f"regularizer {config.regularizer_weight:g} (ramp {config.regularizer_ramp}), training precision "
        f"{precision} (requested: {config.precision}). Attribution over {n_attr} time points. Run mode: {mode}.")


def _demo_sections(config: DemoConfig, overview: str, summary: dict, sections: list[dict],
                   figures: dict) -> list[dict]:
    """The analysis's sections rearranged for the demo, with its overview and the seed comparison."""
    auc_rows, attribution = summary["auc"], summary["attribution"]
    by_heading = {s["heading"]: s for s in sections}
    by_heading["Data"]["figures"] = [figures["raster"], figures["trajectory"]]
    by_heading["Data"]["table"] = [{"cell type": t, "neurons": n} for t, n in summary["data"]["cell_types"].items()]
    by_heading["Hypothesis test"].update(
        heading="Hypothesis test, per block", text=_HYPOTHESIS_TEXT.format(headline=config.methods[0]),
        figures=[figures["ground_truth"]],
        table=[{"method": r["method"], "block AUC (behaviour)": r["block_auc"],
                "entry AUC (behaviour rows)": r["entry_auc"],
                "gap (behaviour)": attribution[r["method"]]["gap"].get("behavior")} for r in auc_rows])
    return [
        {"heading": "Overview", "text": overview, "table": summary_table_rows(summary)},
        *(by_heading[h] for h in ("Data", "Training", "Embedding and decoding", "Attribution maps",
                                  "Mean attribution per cell type and block", "Hypothesis test")),
        {"heading": "Why the seed's per-entry AUC was low", "text": seed_comparison_text(summary),
         "figures": [figures["ground_truth_seed_style"], figures["method_comparison"]],
         "table": [{"method": r["method"], "seed-style pooled entry AUC (comparison only)": r["seed_pooled_entry_auc"],
                    "time block AUC vs 'time <- head_direction, speed'": r["seed_time_block_auc"],
                    "block AUC (behaviour, scored)": r["block_auc"]} for r in auc_rows]},
    ]


def _timing_section(timer: PhaseTimer, start: float) -> dict[str, Any]:
    rows = [{"phase": k, "seconds": v} for k, v in timer.seconds.items()]
    rows.append({"phase": "total (before writing the report)", "seconds": time.perf_counter() - start})
    return {"heading": "Timings", "table": rows}


def _configuration(quick: bool, config: Any, precision: str | None, steps: int | None) -> tuple[str, DemoConfig]:
    """The run's mode (for the report) and configuration: the preset or ``config``, then the overrides."""
    mode, config = _resolve_config(quick, config)
    if precision is not None:
        config = dataclasses.replace(config, precision=precision)
    if steps is not None:
        config, mode = with_steps(config, steps), f"{mode}, {steps} steps"
    return mode, config


def _significance(model: Any, data: Any, out: Path, n_seeds: int, verbose: bool) -> tuple[dict, dict, dict]:
    """The significance section: ``n_seeds`` fits of the demo's configuration with shadow neurons (figures,
    report section, summary entry); the table goes to ``out/significance``."""
    cell_types = data.cell_types.tolist()
    with local_client() as client:
        result = significance(clone(model), data.spikes, n_seeds=n_seeds, client=client,
                              out_dir=out / "significance" / "fits", verbose=verbose, position=data.position)
    result.save(out / "significance", cell_types=cell_types)
    figures, section = significance_report(result, cell_types)
    summary = {"selected": {block: neurons.tolist() for block, neurons in result.selected().items()},
               "consistency": result.consistency, "n_seeds": n_seeds, "fdr": result.fdr}
    return figures, section, summary


def run_demo(out_dir: str | os.PathLike, *, quick: bool = False, verbose: bool = True, seed: int = 0,
             precision: str | None = None, steps: int | None = None, significance_seeds: int = 0,
             _config: Any = None) -> dict[str, Any]:
    """Run the seed pipeline on simulated RatInABox data and write a report.

    Steps: simulate (or load from the cache) the data; fit xCEBRA (behaviour objective on position,
    time objective, Jacobian regularizer); embed; decode position from each block; compute the ING,
    per-block ING (``"ing-block"``) and Jacobian attribution maps; test the hypothesis per block
    (``BEHAVIOR_HYPOTHESIS``) and, for comparison, the seed's pooled per-entry AUC (``SEED_HYPOTHESIS``);
    draw the figures.

    Parameters
    ----------
    out_dir : str or path-like
        Created if needed. Receives ``report.html``, one PNG per figure, ``summary.json`` and
        ``model.xcebra``.
    quick : bool, default=False
        A short run (600 s of data, 120 steps at batch 512, 1500 attributed time points): under two
        minutes on two cores. The default run is the seed's configuration (under ten minutes).
    verbose : bool, default=True
        Progress bars (simulation, training, attribution, saving figures).
    seed : int, default=0
        ``random_state`` of the model (the simulated data always use the seed data set's seed).
    precision : {"auto", "fp32", "bf16"}, optional
        Training arithmetic (default: the configuration's, ``"auto"``: see :func:`training_precision`).
    steps : int, optional
        Training steps instead of the configuration's (1000 in the seed's); a regularizer ramp given as
        steps is scaled with them, so it keeps the seed's shape (on at a quarter, full at half the fit).
    _config : str, DemoConfig or dict, optional
        For tests and experiments: a preset name (``"tiny"``), a full :class:`DemoConfig`, or a dict of
        :class:`DemoConfig` fields overriding the preset chosen by ``quick``.

    Returns
    -------
    dict
        The summary also written to ``summary.json``: ``config``, ``data``, ``decoding`` (per block:
        ``linear_r2``, ``linear_r2_train``, ``knn_r2``), ``attribution`` (per method: the scored
        hypothesis, ``block_auc``, ``entry_auc``, ``per_type`` means, and ``seed_style`` pooled scores),
        ``auc`` (a flat table), ``training``, ``timings`` (seconds per phase) and ``files``.
    """
    mode, config = _configuration(quick, _config, precision, steps)
    used_precision = training_precision(config.precision)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    timer, start = PhaseTimer("demo"), time.perf_counter()
    with timer("data"):
        data = simulate(config, verbose=verbose)
    cell_types = data.cell_types.tolist()
    model = build_model(config, precision=used_precision, random_state=seed, verbose=verbose)
    with timer("fit"):
        model.fit(data.spikes, position=data.position)
    model.save(out / "model.xcebra")
    labels = {"position": data.position}
    analysis = analyze(model, data.spikes, labels=labels, cell_types=cell_types, hypothesis=BEHAVIOR_HYPOTHESIS,
                       methods=config.methods, num_samples=config.num_samples,
                       batch_size=config.attribution_batch_size, verbose=verbose, timer=timer)
    with timer("hypotheses"):
        seed_results = {m: test_hypothesis(a, cell_types, SEED_HYPOTHESIS) for m, a in analysis.attribution.items()}
    summary = _summary(config, mode, seed, used_precision, data, model, analysis, seed_results)
    with timer("figures"):
        figures = analysis_figures(model, data.spikes, analysis, labels=labels, cell_types=cell_types,
                                   time_stamps=data.time, embedding_points=config.embedding_points,
                                   raster_timepoints=config.raster_timepoints, label_units={"position": "m"},
                                   neural_label="spike count per bin")
        figures.update(_demo_figures(config, data, seed_results, summary["auc"]))
    overview = _overview(config, data, model, used_precision, mode, summary)
    sections = _demo_sections(config, overview, summary, analysis_sections(model, analysis, figures), figures)
    if significance_seeds:
        with timer("significance"):
            extra, section, summary["significance"] = _significance(model, data, out, significance_seeds, verbose)
        figures.update(extra)
        sections.append(section)
    with timer("report"):
        written = save_outputs(out, figures, sections + [_timing_section(timer, start)],
                               title="xCEBRA on simulated RatInABox data", verbose=verbose)
    summary["timings"] = dict(timer.seconds, total=time.perf_counter() - start)
    summary["files"] = {"report": written["report"].name, "summary": "summary.json", "model": "model.xcebra",
                        "figures": [p.name for p in written["figures"]]}
    write_json(out / "summary.json", summary)
    logger.info("demo: wrote %s", out / "report.html")
    return jsonable(summary)
