"""The attribution-method benchmark: which training and which attribution method recover the ground truth?

For K seeds of the built-in synthetic data (both noise models), trains the same encoder three ways:
contrastive with the Jacobian regularizer (xCEBRA), contrastive without it, and supervised (regression
on the true latents, as in the xCEBRA paper), then computes every attribution method's map and scores
it against the known ground truth at block level (the decision metric) and per entry.

Run it with ``xcebra benchmark attribution [--quick]`` or ``python benchmarks/attribution_methods.py``.
"""

from __future__ import annotations

import argparse
import csv
import json
import logging
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from . import metrics
from ._files import atomic_write_bytes
from .datasets import make_synthetic
from .estimators import XCEBRA
from .objectives import Objective
from .estimators import SupervisedRegressor
from .viz.maps import plot_method_comparison

__all__ = ["run_attribution_benchmark", "TRAININGS", "BENCHMARK_METHODS"]

logger = logging.getLogger("xcebra")

TRAININGS = ("contrastive+reg", "contrastive", "supervised")
BENCHMARK_METHODS = ("ing", "jacobian", "neuron-gradient", "integrated-gradients", "gradient-shap",
                     "feature-ablation", "shapley-sampling")
#: methods that cost a forward pass per neuron (and per permutation) and are run on fewer time points
_SLOW_METHODS = {"feature-ablation", "shapley-sampling"}


def _settings(quick: bool) -> dict:
    if quick:
        return dict(steps=600, n_timepoints=6000, num_samples=1000, slow_num_samples=150,
                    method_options={"integrated-gradients": {"n_steps": 16}, "gradient-shap": {"n_samples": 8},
                                    "shapley-sampling": {"n_samples": 4}})
    return dict(steps=2000, n_timepoints=12_000, num_samples=3000, slow_num_samples=500,
                method_options={"integrated-gradients": {"n_steps": 32}, "gradient-shap": {"n_samples": 16},
                                "shapley-sampling": {"n_samples": 8}})


def _train(training: str, data, steps: int, seed: int):
    nb, nl = data.behavior.shape[1], data.latents.shape[1]
    if training == "supervised":
        model = SupervisedRegressor(model="offset1", hidden_units=128, output_dim=nl, batch_size=512,
                                    max_steps=steps, learning_rate=1e-3, random_state=seed, verbose=False,
                                    blocks=[("behavior", (0, nb)), ("time", (nb, nl))])
        return model.fit(data.neural, data.latents)
    model = XCEBRA(
        [Objective("behavior", dims=(0, nb), distribution="time_delta", label="behavior"),
         Objective("time", dims=(0, nl), distribution="time", time_offset=1)],
        model="offset1", hidden_units=128, output_dim=nl, loss="euclidean", batch_size=512, max_steps=steps,
        learning_rate=1e-3, regularizer_weight=0.01 if training == "contrastive+reg" else 0.0,
        regularizer_ramp=None, random_state=seed, verbose=False)
    return model.fit(data.neural, behavior=data.behavior)


def _run_job(job: dict) -> list[dict]:
    torch.set_num_threads(job["threads"])
    settings = _settings(job["quick"])
    data = make_synthetic(n_timepoints=settings["n_timepoints"], noise=job["noise"], random_state=job["seed"])
    start = time.perf_counter()
    model = _train(job["training"], data, settings["steps"], job["seed"])
    fit_seconds = time.perf_counter() - start
    # the contrastive fits take the estimator's default bound on the euclidean embedding; say which it was
    bound = (f"lipschitz={model.lipschitz_}, output_clip={model.output_clip_}" if hasattr(model, "lipschitz_")
             else "none")
    rows = []
    for method in BENCHMARK_METHODS:
        samples = settings["slow_num_samples"] if method in _SLOW_METHODS else settings["num_samples"]
        options = settings["method_options"].get(method, {})
        start = time.perf_counter()
        amap = model.attribution_map(data.neural, method=method, num_samples=samples, random_state=job["seed"],
                                     verbose=False, **options)
        seconds = time.perf_counter() - start
        rows.append({"noise": job["noise"], "seed": job["seed"], "training": job["training"], "method": method,
                     "block_auc": metrics.block_auc(amap, data.block_truth),
                     "entry_auc": metrics.attribution_auc(amap.values, data.latent_truth),
                     "seconds": seconds, "seconds_per_1000_points": 1000 * seconds / samples,
                     "num_samples": samples, "fit_seconds": fit_seconds, "bound": bound})
    return rows


def run_attribution_benchmark(out_dir: str | Path, *, seeds: int = 3, quick: bool = False, workers: int = 2,
                              verbose: bool = True) -> list[dict]:
    """Run the benchmark and write ``attribution_methods.{md,csv,json,png}`` into ``out_dir``.

    Parameters
    ----------
    out_dir : directory for the results.
    seeds : int, data/training seeds per noise model.
    quick : smaller data, fewer steps and time points (under 5 minutes on 2 cores with 1 seed).
    workers : parallel processes (one thread each).

    Returns
    -------
    list of dict, one row per (noise, seed, training, method) with ``block_auc``, ``entry_auc`` and timings.
    """
    out_dir = Path(out_dir)
    jobs = [dict(noise=noise, seed=seed, training=training, quick=quick, threads=1)
            for noise in ("gaussian", "poisson") for seed in range(seeds) for training in TRAININGS]
    rows: list[dict] = []
    with ProcessPoolExecutor(workers) as pool, tqdm(total=len(jobs), disable=not verbose,
                                                    desc="attribution benchmark", unit="fit") as bar:
        for result in pool.map(_run_job, jobs):
            rows.extend(result)
            bar.update(1)
    _write(rows, out_dir, seeds=seeds, quick=quick)
    return rows


def _summary(rows: list[dict]) -> list[dict]:
    table = []
    for training in TRAININGS:
        for method in BENCHMARK_METHODS:
            sel = [r for r in rows if r["training"] == training and r["method"] == method]
            if not sel:
                continue
            block = np.array([r["block_auc"] for r in sel])
            entry = np.array([r["entry_auc"] for r in sel])
            table.append({"training": training, "method": method, "block_auc_mean": block.mean(),
                          "block_auc_std": block.std(), "entry_auc_mean": entry.mean(), "entry_auc_std": entry.std(),
                          "seconds_per_1000_points": float(np.mean([r["seconds_per_1000_points"] for r in sel])),
                          "runs": len(sel)})
    return table


def _bounds(rows: list[dict]) -> str:
    """The bounds the contrastive fits used, e.g. ``"lipschitz=4.0, output_clip=None"``."""
    return "; ".join(sorted({r.get("bound", "unrecorded") for r in rows if r["training"] != "supervised"}))


def _write(rows: list[dict], out_dir: Path, *, seeds: int, quick: bool) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    with open(out_dir / "attribution_methods.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    summary = _summary(rows)
    atomic_write_bytes(out_dir / "attribution_methods.json",
                       json.dumps({"rows": rows, "summary": summary}, indent=2, default=float).encode())
    settings = _settings(quick)
    lines = [
        "# Attribution methods on synthetic data with known ground truth", "",
        f"`xcebra benchmark attribution{' --quick' if quick else ''}`: {seeds} seed(s) x 2 noise models "
        f"(gaussian, poisson), {settings['n_timepoints']} time points x 50 neurons, offset1 encoder (128 hidden "
        f"units), {settings['steps']} training steps; contrastive fits: euclidean InfoNCE, batch 512, time offset 1, "
        f"the estimator's default bound on the embedding ({_bounds(rows)}); maps from {settings['num_samples']} "
        f"sampled time points "
        f"({settings['slow_num_samples']} for feature ablation and Shapley sampling). Mean (std) over runs.",
        "Block AUC: per embedding block, neurons ranked by the block's RMS attribution against the block's truth "
        "(what the method identifies; decide on this). Entry AUC: every (latent, neuron) entry against the "
        "latent-level truth (moves with the learned basis).", "",
        "| training | method | block AUC | entry AUC | s / 1000 points |", "|---|---|---|---|---|"]
    for r in summary:
        lines.append(f"| {r['training']} | {r['method']} | {r['block_auc_mean']:.3f} ({r['block_auc_std']:.3f}) | "
                     f"{r['entry_auc_mean']:.3f} ({r['entry_auc_std']:.3f}) | {r['seconds_per_1000_points']:.2f} |")
    lines += ["", "![methods](attribution_methods.png)", ""]
    atomic_write_bytes(out_dir / "attribution_methods.md", ("\n".join(lines) + "\n").encode())
    table = [{"method": f"{r['training']}: {r['method']}", "auc": r[f"{level}_auc"], "level": level,
              "seed": f"{r['noise']}-{r['seed']}"} for r in rows for level in ("block", "entry")]
    figure = plot_method_comparison(table)
    figure.savefig(out_dir / "attribution_methods.png", dpi=120)


def main(argv: Any = None) -> None:
    """``python benchmarks/attribution_methods.py``: the same as ``xcebra benchmark attribution``."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    args = parser.parse_args(argv)
    run_attribution_benchmark(args.out, seeds=args.seeds, quick=args.quick, workers=args.workers)
    print((args.out / "attribution_methods.md").read_text())
