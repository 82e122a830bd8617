"""Quality on the built-in synthetic data: does regularized xCEBRA + ING recover the ground truth?

For each noise model and seed, fits xCEBRA with and without the Jacobian regularizer and scores the
ING and plain-Jacobian maps at block level (the decision metric: what the method identifies) and per
entry (the seed's metric, which depends on the learned basis), plus how well the behaviour block
decodes the behaviour (held-out linear R2, time-series splits).

    python -m benchmarks.quality.quality_synthetic                 # 3 seeds x 2 noise models, ~10 min on 2 cores
    python -m benchmarks.quality.quality_synthetic --seeds 1 --steps 500   # quick look
    python -m benchmarks.quality.quality_synthetic --steps 6000 --param lipschitz=4   # Lipschitz-bounded encoder, ~15 min
    python -m benchmarks.quality.quality_synthetic --regularizer 1.0 --param learning_rate=3e-3 --out /tmp/sweep
    python -m benchmarks.quality.quality_synthetic --ceiling-steps 2000,8000   # plus the supervised ceiling
    python -m benchmarks.quality.quality_synthetic --ceiling-steps 2000,8000 --ceiling-regularizer 0,0.1

Writes benchmarks/results/quality_synthetic.{md,csv}.
"""

from __future__ import annotations

import argparse
import csv
import os
import sys
import time
import warnings
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

from benchmarks.common import RESULTS, parse_params

#: the configuration benchmarked (and used by tests/test_end_to_end.py): the paper's small synthetic setting
CONFIG = dict(model="offset1", hidden_units=128, loss="euclidean", batch_size=512, learning_rate=1e-3,
              regularizer_ramp=None)
STEPS = 2000
REGULARIZER = 0.01
#: the time objective's offset (steps): 1 on this data, whose time-only latents change from step to step
TIME_OFFSET = 1
DEFAULT_OUT = RESULTS


def latent_fit(embedding, blocks, data) -> dict:
    """Held-out R2 of each embedding block predicted from its own true latents (xcebra.metrics.latent_fit_scores):
    below 1 by what the block holds beyond a function of them (noise sensitivity, leakage, distortion)."""
    import xcebra

    scores = xcebra.metrics.latent_fit_scores(embedding, data.latents, blocks, data.latent_blocks)
    return {f"latent_fit_{name}_{kind}": scores[name][f"own_{kind}_r2"] for name, _ in blocks for kind in ("linear", "knn")}


def run_one(job: dict) -> list[dict]:
    import torch

    import xcebra

    torch.set_num_threads(job["threads"])
    data = xcebra.datasets.make_synthetic(noise=job["noise"], random_state=job["seed"])
    nb, nl = data.behavior.shape[1], data.latents.shape[1]
    model = xcebra.XCEBRA(
        [xcebra.Objective("behavior", dims=(0, nb), distribution="time_delta", label="behavior"),
         xcebra.Objective("time", dims=(0, nl), distribution="time", time_offset=job.get("time_offset", TIME_OFFSET))],
        output_dim=nl, max_steps=job["steps"], regularizer_weight=job["regularizer"], random_state=job["seed"],
        precision=job["precision"], verbose=False, **{**CONFIG, **job["params"]})
    start = time.perf_counter()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model.fit(data.neural, behavior=data.behavior)
    fit_seconds = time.perf_counter() - start
    embedding = model.transform(data.neural)
    decoding = xcebra.metrics.decoding_scores(embedding, data.behavior, model.blocks_)
    # training health: the euclidean InfoNCE is unbounded below, so a run whose embedding keeps growing shows
    # a time loss far below zero and a growing Jacobian norm (medians over the first and last 100 steps)
    log = model.log_
    ratios = xcebra.metrics.distance_ratios(embedding)
    health = {"behavior_loss_start": float(np.median(log["loss/behavior"][:100])),
              "behavior_loss_end": float(np.median(log["loss/behavior"][-100:])),
              "time_loss_start": float(np.median(log["loss/time"][:100])),
              "time_loss_end": float(np.median(log["loss/time"][-100:])),
              "regularizer_start": float(np.median(log["regularizer"][:100])),
              "regularizer_end": float(np.median(log["regularizer"][-100:])),
              "embedding_rms": float(np.sqrt(np.mean(embedding.astype(np.float64) ** 2))),
              "spread_end": xcebra.diagnostics.euclidean_spread(log, nl, max(model.temperatures_.values())),
              "growth_warning": any(issubclass(w.category, xcebra.diagnostics.EmbeddingGrowthWarning) for w in caught),
              "collapse_warning": any(issubclass(w.category, xcebra.diagnostics.EmbeddingCollapseWarning)
                                      for w in caught),
              # far-out time points: the largest distance from the median over the median distance, all points
              "distance_ratio_max": float(ratios.max()),
              "outlier_share": float(np.mean(ratios > 20)),
              **latent_fit(embedding, model.blocks_, data)}
    rows = []
    for method in ("ing", "jacobian"):
        amap = model.attribution_map(data.neural, method=method, verbose=False)
        block, per_block = xcebra.metrics.block_auc(amap, data.block_truth, per_block=True)
        rows.append({
            "noise": job["noise"], "seed": job["seed"], "regularizer": job["regularizer"], "method": method,
            "precision": job["precision"],
            "block_auc": block, "block_auc_behavior": per_block["behavior"], "block_auc_time": per_block["time"],
            "entry_auc": amap.score(data.latent_truth),
            "behavior_r2": decoding["behavior"]["linear_r2"], "time_block_behavior_r2": decoding["time"]["linear_r2"],
            "fit_seconds": fit_seconds, "steps": job["steps"], **health,
        })
    return rows


def run_ceiling(job: dict) -> list[dict]:
    """The same encoder trained by regression on the true latents: what an encoder that recovers them scores."""
    import torch

    import xcebra
    from xcebra.supervised import SupervisedRegressor

    torch.set_num_threads(job["threads"])
    data = xcebra.datasets.make_synthetic(noise=job["noise"], random_state=job["seed"])
    nb, nl = data.behavior.shape[1], data.latents.shape[1]
    model = SupervisedRegressor(model=CONFIG["model"], hidden_units=CONFIG["hidden_units"], output_dim=nl,
                                batch_size=CONFIG["batch_size"], max_steps=job["steps"],
                                learning_rate=CONFIG["learning_rate"], regularizer_weight=job["regularizer"],
                                random_state=job["seed"], verbose=False, blocks=[("behavior", (0, nb)), ("time", (nb, nl))])
    model.fit(data.neural, data.latents)
    fit = latent_fit(model.transform(data.neural), model.blocks_, data)
    rows = []
    for method in ("ing", "jacobian"):
        amap = model.attribution_map(data.neural, method=method, verbose=False)
        block, per_block = xcebra.metrics.block_auc(amap, data.block_truth, per_block=True)
        rows.append({"noise": job["noise"], "seed": job["seed"], "steps": job["steps"],
                     "regularizer": job["regularizer"], "method": method,
                     "block_auc": block, "block_auc_behavior": per_block["behavior"],
                     "block_auc_time": per_block["time"], **fit})
    return rows


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=STEPS)
    parser.add_argument("--workers", type=int, default=2, help="parallel fits (one thread each)")
    parser.add_argument("--bf16", action="store_true", help="also train with precision='bf16' (regularized runs)")
    parser.add_argument("--regularizer", type=float, default=REGULARIZER,
                        help=f"weight of the regularized runs (default {REGULARIZER}); each is paired with a run at 0")
    parser.add_argument("--param", action="append", default=[], metavar="NAME=JSON",
                        help="override an XCEBRA parameter of the configuration, e.g. --param learning_rate=3e-3")
    parser.add_argument("--ceiling-steps", default="", metavar="STEPS[,STEPS...]",
                        help="also fit the same encoder by regression on the true latents for these numbers of steps "
                             "(SupervisedRegressor) and score its maps the same way: the ceiling of an encoder that "
                             "recovers the latents")
    parser.add_argument("--ceiling-regularizer", default="0", metavar="WEIGHT[,WEIGHT...]",
                        help="Jacobian regularizer weights of the ceiling fits (default 0: none)")
    parser.add_argument("--time-offset", type=int, default=TIME_OFFSET,
                        help=f"offset of the time objective's positive pairs, in steps (default {TIME_OFFSET})")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args(argv)
    try:
        ceiling_weights = [float(item) for item in args.ceiling_regularizer.split(",") if item.strip()]
    except ValueError:
        parser.error(f"--ceiling-regularizer must be comma-separated numbers; got {args.ceiling_regularizer!r}")
    if not ceiling_weights or any(not w >= 0 for w in ceiling_weights):
        parser.error(f"--ceiling-regularizer must be numbers >= 0; got {args.ceiling_regularizer!r}")
    try:
        ceiling_steps = [int(item) for item in args.ceiling_steps.split(",") if item.strip()]
    except ValueError:
        parser.error(f"--ceiling-steps must be comma-separated integers; got {args.ceiling_steps!r}")
    if any(step < 1 for step in ceiling_steps):
        parser.error(f"--ceiling-steps must be positive; got {args.ceiling_steps!r}")
    params = parse_params(args.param, parser)
    import inspect

    import xcebra

    known = set(inspect.signature(xcebra.XCEBRA).parameters) - {"objectives", "output_dim", "max_steps",
                                                                "regularizer_weight", "random_state", "precision"}
    unknown = sorted(set(params) - known)
    if unknown:
        parser.error(f"--param {unknown[0]!r} is not an XCEBRA parameter this benchmark lets you set; "
                     f"expected one of {sorted(known)} (--steps and --regularizer have their own options)")
    if args.regularizer <= 0:
        parser.error(f"--regularizer must be > 0 (runs at 0 are always included); got {args.regularizer}")
    reg_weight = args.regularizer
    if args.time_offset < 1:
        parser.error(f"--time-offset must be a positive number of steps; got {args.time_offset}")
    common = dict(steps=args.steps, threads=1, params=params, time_offset=args.time_offset)
    jobs = [dict(noise=noise, seed=seed, regularizer=reg, precision="fp32", **common)
            for noise in ("gaussian", "poisson") for seed in range(args.seeds) for reg in (reg_weight, 0.0)]
    if args.bf16:
        jobs += [dict(noise=noise, seed=seed, regularizer=reg_weight, precision="bf16", **common)
                 for noise in ("gaussian", "poisson") for seed in range(args.seeds)]
    rows = []
    with ProcessPoolExecutor(args.workers) as pool:
        for result in pool.map(run_one, jobs):
            rows.extend(result)
            r = result[0]
            print(f"noise={r['noise']} seed={r['seed']} reg={r['regularizer']} {r['precision']}: ING block AUC {r['block_auc']:.3f}, "
                  f"Jacobian {result[1]['block_auc']:.3f}, behaviour R2 {r['behavior_r2']:.3f}", file=sys.stderr)
        ceiling_jobs = [dict(noise=noise, seed=seed, steps=steps, regularizer=weight, threads=1)
                        for noise in ("gaussian", "poisson") for steps in ceiling_steps for weight in ceiling_weights
                        for seed in range(args.seeds)]
        ceiling = [row for result in pool.map(run_ceiling, ceiling_jobs) for row in result]
    args.out.mkdir(parents=True, exist_ok=True)
    if ceiling:
        with open(args.out / "quality_synthetic_ceiling.csv", "w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=list(ceiling[0]))
            writer.writeheader()
            writer.writerows(ceiling)
    with open(args.out / "quality_synthetic.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    config = {**CONFIG, **params}
    command = " ".join(["python -m benchmarks.quality.quality_synthetic", f"--seeds {args.seeds}"]
                       + ([f"--steps {args.steps}"] if args.steps != STEPS else [])
                       + (["--bf16"] if args.bf16 else [])
                       + ([f"--regularizer {reg_weight:g}"] if reg_weight != REGULARIZER else [])
                       + ([f"--time-offset {args.time_offset}"] if args.time_offset != TIME_OFFSET else [])
                       + [f"--param {item}" for item in args.param]
                       + ([f"--ceiling-steps {','.join(map(str, ceiling_steps))}"] if ceiling_steps else [])
                       + ([f"--ceiling-regularizer {args.ceiling_regularizer}"]
                          if ceiling_steps and ceiling_weights != [0.0] else [])
                       + ([f"--out {args.out}"] if args.out != DEFAULT_OUT else []))
    lines = [
        "# Quality on synthetic data with known ground truth",
        "",
        f"`{command}`: "
        f"{args.seeds} seeds per noise model; {config['model']} encoder, {config['loss']} InfoNCE, batch "
        f"{config['batch_size']}, learning rate {config['learning_rate']:g}, "
        + (f"Lipschitz bound {config.get('lipschitz', 'auto')} (spectral normalisation; 'auto' = 4.0 for euclidean), "
           if config.get("lipschitz", "auto") is not None else "no Lipschitz bound, ")
        + f"{args.steps} steps; regularizer weight "
        f"{reg_weight:g} or 0; time objective offset {args.time_offset}"
        + (f"; overrides {params}" if params else "") + ".",
        "Median over seeds (min-max in brackets). Block AUC: per block, neurons ranked by the block's RMS attribution "
        "against the block's truth, averaged over blocks (the decision metric). Entry AUC: all (latent, neuron) "
        "entries against the latent-level truth (depends on the learned basis). Behaviour R2: held-out linear "
        "decoding of the behaviour from the behaviour block (5 time-series splits).",
        "",
        "| noise | regularizer | precision | method | block AUC | entry AUC | behaviour R2 |",
        "|---|---|---|---|---|---|---|",
    ]

    def cell(values):
        values = np.asarray(values)
        return f"{np.median(values):.3f} [{values.min():.3f}-{values.max():.3f}]"

    for noise in ("gaussian", "poisson"):
        for reg, precision in ((reg_weight, "fp32"), (0.0, "fp32"), (reg_weight, "bf16")):
            for method in ("ing", "jacobian"):
                sel = [r for r in rows if r["noise"] == noise and r["regularizer"] == reg and r["method"] == method
                       and r["precision"] == precision]
                if sel:
                    lines.append(f"| {noise} | {reg} | {precision} | {method} | {cell([r['block_auc'] for r in sel])} | "
                                 f"{cell([r['entry_auc'] for r in sel])} | {cell([r['behavior_r2'] for r in sel])} |")
    lines += ["", "Training health (per fit, ING rows): each objective's loss over the first / last 100 steps, "
              "the regularizer (Frobenius norm estimate of the Jacobian) likewise, the RMS of the final embedding, and "
              "the spread at the end of the fit (typical squared distance over the temperature, "
              "xcebra.diagnostics.euclidean_spread; an unbounded fit warns above 1e4), the warnings fit raised "
              "(xcebra.diagnostics: growth of an unbounded embedding, collapse to a constant one), and far-out time "
              "points: the largest distance from the embedding's median over the median distance "
              "(xcebra.metrics.distance_ratios) and the share of time points beyond 20 times. "
              "The euclidean InfoNCE has no lower bound: an unbounded embedding that keeps growing drives the time "
              "loss far below zero while the decoding R2, which is scale-free, can stay high.", "",
              "| noise | regularizer | precision | seed | behaviour loss start / end | time loss start / end | "
              "regularizer start / end | embedding RMS | spread | warnings | "
              "largest distance ratio / share > 20 | behaviour R2 |",
              "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        if r["method"] == "ing":
            warned = [name for name, key in (("growth", "growth_warning"), ("collapse", "collapse_warning")) if r[key]]
            lines.append(f"| {r['noise']} | {r['regularizer']} | {r['precision']} | {r['seed']} | "
                         f"{r['behavior_loss_start']:.3g} / {r['behavior_loss_end']:.3g} | "
                         f"{r['time_loss_start']:.3g} / {r['time_loss_end']:.3g} | "
                         f"{r['regularizer_start']:.3g} / {r['regularizer_end']:.3g} | {r['embedding_rms']:.3g} | "
                         f"{r['spread_end']:.3g} | {', '.join(warned) or 'none'} | {r['distance_ratio_max']:.3g} / "
                         f"{r['outlier_share']:.2%} | {r['behavior_r2']:.3f} |")
    lines += ["", "How much of each block is a function of its own true latents (xcebra.metrics.latent_fit_scores: "
              "held-out R2 of the block predicted from them, linear / kNN; per fit, regularized fp32 xCEBRA"
              + (" and the ceiling fits below" if ceiling else "") + "). xCEBRA identifies a block up to a linear map "
              "of its latents, so a perfect fit scores 1 / 1; '1 - kNN' is variance no function of the latents "
              "explains (response to the observation noise), which spreads attribution over neurons that carry only "
              "noise for the block.", "",
              "| noise | fit | seed | behaviour block linear / kNN | time block linear / kNN | ING block AUC |",
              "|---|---|---|---|---|---|"]
    fitted = [("xCEBRA", r) for r in rows if r["method"] == "ing" and r["regularizer"] == reg_weight
              and r["precision"] == "fp32"]
    fitted += [(f"supervised, {r['steps']} steps, regularizer {r['regularizer']:g}", r) for r in ceiling
               if r["method"] == "ing"]
    for label, r in sorted(fitted, key=lambda item: (item[1]["noise"], item[0] != "xCEBRA", item[0], item[1]["seed"])):
        lines.append(f"| {r['noise']} | {label} | {r['seed']} | {r['latent_fit_behavior_linear']:.3f} / "
                     f"{r['latent_fit_behavior_knn']:.3f} | {r['latent_fit_time_linear']:.3f} / "
                     f"{r['latent_fit_time_knn']:.3f} | {r['block_auc']:.3f} |")
    if ceiling:
        lines += ["", "Ceiling: the same encoder (same width, batch, learning rate) trained by regression on the true "
                  "latents (`xcebra.supervised.SupervisedRegressor`, blocks = the true behaviour and time latents), its "
                  "maps scored the same way. An encoder that recovers the latents exactly scores this; xCEBRA "
                  "identifies them only up to a linear map per block, which block AUC does not see. Block AUC per "
                  "seed, and the regularized xCEBRA fit of the same seed and noise (fp32) beside it.", "",
                  "| noise | training | method | block AUC, median [min-max] | per seed | behaviour / time block, median |",
                  "|---|---|---|---|---|---|"]
        for noise in ("gaussian", "poisson"):
            for method in ("ing", "jacobian"):
                sel = [r for r in rows if r["noise"] == noise and r["regularizer"] == reg_weight
                       and r["method"] == method and r["precision"] == "fp32"]
                lines.append(f"| {noise} | xCEBRA, {args.steps} steps | {method} | {cell([r['block_auc'] for r in sel])} | "
                             + " / ".join(f"{r['block_auc']:.3f}" for r in sel) + " | "
                             f"{np.median([r['block_auc_behavior'] for r in sel]):.3f} / "
                             f"{np.median([r['block_auc_time'] for r in sel]):.3f} |")
                for steps, weight in ((st, w) for st in ceiling_steps for w in ceiling_weights):
                    sel = [r for r in ceiling if r["noise"] == noise and r["method"] == method and r["steps"] == steps
                           and r["regularizer"] == weight]
                    label = f", regularizer {weight:g}" if weight > 0 else ""
                    lines.append(f"| {noise} | supervised on the true latents, {steps} steps{label} | {method} | "
                                 f"{cell([r['block_auc'] for r in sel])} | "
                                 + " / ".join(f"{r['block_auc']:.3f}" for r in sel) + " | "
                                 f"{np.median([r['block_auc_behavior'] for r in sel]):.3f} / "
                                 f"{np.median([r['block_auc_time'] for r in sel]):.3f} |")
    (args.out / "quality_synthetic.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    main()
