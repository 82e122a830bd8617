"""Calibration of ``xcebra.significance`` on synthetic data with a known ground truth.

Three parts, each a set of recordings analysed by :func:`xcebra.significance.significance` (shadow null,
seed ensemble, Benjamini-Hochberg per block):

- **truth**: ``make_synthetic`` recordings (Gaussian and Poisson noise, two lengths, ``--data-seeds`` data
  seeds). Per block, the false discovery proportion against ``block_truth`` (0 when nothing is selected;
  its mean over seeds estimates the FDR), the power (share of true drivers selected) and, to tell a
  miscalibrated test from a model that did not identify the block, the block AUC of the mean map.
- **independent**: the same neural data with the behaviour label of another seed's recording, so the
  behaviour block has nothing to find: the share of neurons it selects.
- **shadow-check** (``--shadow-check-seeds`` recordings, Gaussian, longest length): the same fits without
  shadows; block AUC, Spearman agreement of the maps and behaviour decoding (held-out linear R2 of the
  behaviour block), with and without shadows, against their seed-to-seed spread.

Every recording's numbers go to ``OUT/runs/<part>-<noise>-T<length>-s<seed>.json`` as it finishes, and the
fits to ``--fits`` (``fit_many``'s ``out_dir``): a rerun skips finished recordings and reads finished fits.
The tables are rebuilt from all runs present.

    python -m benchmarks.quality.significance_calibration    # 10 data seeds x 3 fits, 600 steps: ~25 min on 2 idle cores
    python -m benchmarks.quality.significance_calibration --data-seeds 2 --model-seeds 2 --steps 100 --out /tmp/sig  # smoke
    python -m benchmarks.quality.significance_calibration --data-seeds 10 --model-seeds 5 --steps 1500 \\
        --lengths 3000,12000 --out benchmarks/results/significance    # the issue's run, ~2-2.5 h on 2 idle cores

Writes OUT/calibration.csv (one row per part, noise, length, data seed and block), OUT/calibration.md and
OUT/calibration.png (OUT: benchmarks/results/significance).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from benchmarks.common import RESULTS, SCRATCH, parse_seeds

DEFAULT_OUT = RESULTS / "significance"
DEFAULT_FITS = SCRATCH / "significance_fits"
#: nested objectives as in the README; cosine at temperature 0.1 identifies both blocks of this data
#: (block AUC 0.96-0.99 at 800 steps, 6,000 time points, one seed each for Gaussian and Poisson)
CONFIG = dict(model="offset1", hidden_units=32, output_dim=8, temperature=0.1, batch_size=256, learning_rate=1e-3,
              regularizer_weight=0.01, regularizer_ramp=None)
N_NEURONS = 50
#: data seeds of the independent labels: far from the recordings' own
OTHER_SEED = 1000
COLUMNS = ("part", "noise", "length", "data_seed", "block", "n_neurons", "n_true", "n_selected", "n_false", "fdp",
           "power", "selected_share", "block_auc", "consistency", "min_selectable", "fit_seconds", "map_seconds")


def make_estimator(steps: int):
    import xcebra

    objectives = [xcebra.Objective("behavior", dims=(0, 4), distribution="time_delta", label="position"),
                  xcebra.Objective("time", dims=(0, CONFIG["output_dim"]), distribution="time", time_offset=1)]
    return xcebra.XCEBRA(objectives, max_steps=steps, random_state=0, verbose=False, num_threads=1, **CONFIG)


def recording(noise: str, length: int, seed: int, independent: bool):
    """(neural, behaviour label, block_truth): the label is another recording's trajectory if ``independent``."""
    import xcebra

    data = xcebra.datasets.make_synthetic(n_timepoints=length, n_neurons=N_NEURONS, noise=noise, random_state=seed)
    label = data.behavior
    if independent:
        label = xcebra.datasets.make_synthetic(n_timepoints=length, n_neurons=N_NEURONS, noise=noise,
                                               random_state=OTHER_SEED + seed).behavior
    return data, label


def block_rows(result, truth: np.ndarray, common: dict) -> list[dict]:
    """One row per block: FDP and power against ``truth`` (n_blocks, N), block AUC of the mean map."""
    from sklearn.metrics import roc_auc_score

    rows = []
    for b, name in enumerate(result.block_names):
        chosen, true = result.selected_mask[b], truth[b]
        n_selected, n_false = int(chosen.sum()), int((chosen & ~true).sum())
        rows.append({**common, "block": name, "n_neurons": int(len(true)), "n_true": int(true.sum()),
                     "n_selected": n_selected, "n_false": n_false, "fdp": n_false / max(n_selected, 1),
                     "power": float((chosen & true).sum() / max(true.sum(), 1)),
                     "selected_share": n_selected / len(true),
                     "block_auc": float(roc_auc_score(true, result.values[b])) if 0 < true.sum() < len(true) else
                     float("nan"),
                     "consistency": result.consistency[name], "min_selectable": result.min_selectable,
                     "fit_seconds": result.timings["fit_seconds"], "map_seconds": result.timings["map_seconds"]})
    return rows


def run_unit(unit: dict, args, client) -> dict:
    """One recording: significance, then (shadow-check) the same seeds without shadows."""
    import xcebra
    from xcebra.significance import significance

    data, label = recording(unit["noise"], unit["length"], unit["seed"], unit["part"] == "independent")
    estimator = make_estimator(args.steps)
    result = significance(estimator, data.neural, n_seeds=args.model_seeds, fdr=args.fdr, method=args.method,
                          n_shadows=None if args.shadows is None else args.shadows * N_NEURONS,
                          num_samples=args.num_samples, client=client, out_dir=args.fits, random_state=unit["seed"],
                          verbose=False, position=label)
    common = {"part": unit["part"], "noise": unit["noise"], "length": unit["length"], "data_seed": unit["seed"]}
    record = {"rows": block_rows(result, data.block_truth, common)}
    if unit["part"] == "shadow-check":
        record["shadow_check"] = shadow_check(result, data, estimator, args, client)
    return record


def shadow_check(result, data, estimator, args, client) -> dict:
    """The same seeds fitted without shadows: do shadows change the real neurons' map or decoding?"""
    from scipy.stats import spearmanr
    from sklearn.base import clone

    import xcebra
    from xcebra import parallel
    from xcebra.significance import add_shadows

    plain, shadowed, r2_plain, r2_shadowed = [], [], [], []
    for m, seed in enumerate(result.random_states):
        seeded = clone(estimator).set_params(random_state=seed)
        model = parallel.fit_many(seeded, [{"neural": data.neural, "position": data.behavior}], client=client,
                                  out_dir=args.fits, verbose=False)[0]
        plain.append(model.attribution_map(data.neural, method=args.method, num_samples=args.num_samples,
                                           verbose=False).block_values)
        r2_plain.append(xcebra.metrics.decoding_scores(model.transform(data.neural), data.behavior,
                                                       model.blocks_)["behavior"]["linear_r2"])
        augmented = add_shadows(data.neural, result.sources, result.shifts[m])
        path = parallel.model_path(args.fits, seeded, augmented, position=data.behavior)
        with_shadows = xcebra.XCEBRA.load(path)
        shadowed.append(result.seed_values[m] * result.scales[m][:, None])
        r2_shadowed.append(xcebra.metrics.decoding_scores(with_shadows.transform(augmented), data.behavior,
                                                          with_shadows.blocks_)["behavior"]["linear_r2"])
    check = {"behavior_r2_plain": r2_plain, "behavior_r2_shadowed": r2_shadowed}
    for b, name in enumerate(result.block_names):
        n = len(plain)
        pairs_within = [spearmanr(plain[i][b], plain[j][b])[0] for i in range(n) for j in range(i + 1, n)]
        pairs_across = [spearmanr(plain[i][b], shadowed[j][b])[0] for i in range(n) for j in range(n)]
        truth = data.block_truth[b]
        check[name] = {
            "spearman_plain_plain": float(np.mean(pairs_within)),
            "spearman_plain_shadowed": float(np.mean(pairs_across)),
            "auc_plain": xcebra.metrics.block_auc(np.mean(plain, axis=0)[[b]], truth[None]),
            "auc_shadowed": xcebra.metrics.block_auc(np.mean(shadowed, axis=0)[[b]], truth[None]),
        }
    return check


def units_of(args) -> list[dict]:
    longest = max(args.lengths)
    units = [dict(part="truth", noise=noise, length=length, seed=seed)
             for length in args.lengths for noise in args.noise for seed in args.data_seeds]
    if not args.no_independent:
        units += [dict(part="independent", noise=noise, length=longest, seed=seed)
                  for noise in args.noise for seed in args.data_seeds]
    units += [dict(part="shadow-check", noise="gaussian", length=longest, seed=seed)
              for seed in args.data_seeds[:args.shadow_check_seeds]]
    return units


def unit_file(out: Path, unit: dict) -> Path:
    return out / "runs" / f"{unit['part']}-{unit['noise']}-T{unit['length']}-s{unit['seed']}.json"


# ---------------------------------------------------------------------------------------------- tables
def mean_se(values) -> tuple[float, float]:
    values = np.asarray([v for v in values if np.isfinite(v)], dtype=float)
    if len(values) == 0:
        return float("nan"), float("nan")
    se = float(values.std(ddof=1) / np.sqrt(len(values))) if len(values) > 1 else float("nan")
    return float(values.mean()), se


def fmt(mean: float, se: float, digits: int = 3) -> str:
    if not np.isfinite(mean):
        return "-"
    return f"{mean:.{digits}f} ± {se:.{digits}f}" if np.isfinite(se) else f"{mean:.{digits}f}"


def summarise(rows: list[dict], checks: list[tuple[dict, dict]], args, seconds: float) -> str:
    groups: dict[tuple, list[dict]] = {}
    for row in rows:
        groups.setdefault((row["part"], row["noise"], row["length"], row["block"]), []).append(row)
    lines = ["# Calibration of the significance analysis (synthetic data)", "",
             "Written by `benchmarks/quality/significance_calibration.py`; command:", "",
             "```", "python -m benchmarks.quality.significance_calibration " + " ".join(args.argv), "```", "",
             f"Machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, {args.workers} Dask "
             f"workers; {len(rows)} block rows; this invocation took {seconds / 60:.1f} min (runs read from "
             f"earlier invocations are not timed).", "",
             f"Settings: {N_NEURONS} neurons, {len(args.data_seeds)} data seeds, {args.model_seeds} fits per "
             f"recording, {args.steps} steps, method `{args.method}`, shadows "
             f"{'4' if args.shadows is None else args.shadows} per neuron, FDR q = {args.fdr}; encoder {CONFIG}.", "",
             "## Known ground truth", "",
             "FDR: the false discovery proportion against `block_truth`, mean ± standard error over data seeds "
             "(0 where nothing is selected). Power: the share of true drivers selected. Block AUC: the mean map "
             "against the truth, i.e. whether the *model* identified the block; where it is low, false "
             "discoveries are neurons that really drive that fitted block, not a failure of the null.", "",
             "| noise | length | block | seeds | FDR | power | selected | block AUC | consistency | min selectable |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for (part, noise, length, block), group in sorted(groups.items()):
        if part != "truth":
            continue
        lines.append(f"| {noise} | {length} | {block} | {len(group)} | {fmt(*mean_se([r['fdp'] for r in group]))} | "
                     f"{fmt(*mean_se([r['power'] for r in group]))} | "
                     f"{fmt(*mean_se([r['n_selected'] for r in group]), 1)} | "
                     f"{fmt(*mean_se([r['block_auc'] for r in group]))} | "
                     f"{fmt(*mean_se([r['consistency'] for r in group]), 2)} | {group[0]['min_selectable']} |")
    lines += ["", "## Behaviour label independent of the neural data", "",
              "The label is the trajectory of another seed's recording: the behaviour block has nothing to find. "
              "Selected share: the share of the neurons it selects, mean ± standard error over data seeds (and "
              "the largest); the time block keeps its ground truth.", "",
              "| noise | length | block | seeds | selected share | largest share | FDR (time block) |",
              "|---|---|---|---|---|---|---|"]
    for (part, noise, length, block), group in sorted(groups.items()):
        if part != "independent":
            continue
        shares = [r["selected_share"] for r in group]
        fdr = fmt(*mean_se([r["fdp"] for r in group])) if block != "behavior" else "-"
        lines.append(f"| {noise} | {length} | {block} | {len(group)} | {fmt(*mean_se(shares))} | {max(shares):.3f} | "
                     f"{fdr} |")
    if checks:
        lines += ["", "## Do shadows change the real neurons' map?", "",
                  "The same seeds fitted without shadows. Spearman plain-plain: the mean rank agreement between "
                  "two fits without shadows (seed noise); plain-shadowed: between a fit without and one with "
                  "shadows. Block AUC of the mean map over seeds; behaviour R2: held-out linear decoding of the "
                  "label from the behaviour block (mean over seeds).", "",
                  "| data seed | block | Spearman plain-plain | Spearman plain-shadowed | AUC plain | AUC shadowed |",
                  "|---|---|---|---|---|---|"]
        for unit, check in checks:
            for block in ("behavior", "time"):
                c = check[block]
                lines.append(f"| {unit['seed']} | {block} | {c['spearman_plain_plain']:.3f} | "
                             f"{c['spearman_plain_shadowed']:.3f} | {c['auc_plain']:.3f} | {c['auc_shadowed']:.3f} |")
        lines += ["", "| data seed | behaviour R2 plain | behaviour R2 shadowed |", "|---|---|---|"]
        for unit, check in checks:
            lines.append(f"| {unit['seed']} | {np.mean(check['behavior_r2_plain']):.3f} | "
                         f"{np.mean(check['behavior_r2_shadowed']):.3f} |")
    fits = [r["fit_seconds"] for r in rows if r["block"] == "behavior"]
    maps = [r["map_seconds"] for r in rows if r["block"] == "behavior"]
    if fits:
        lines += ["", f"Cost per recording: fits {np.median(fits):.0f} s, maps {np.median(maps):.0f} s (medians; "
                  f"{args.model_seeds} fits sharing {args.workers} workers with other recordings)."]
    return "\n".join(lines) + "\n"


def plot(rows: list[dict], out: Path, fdr: float) -> None:
    from matplotlib.figure import Figure

    figure = Figure(figsize=(9.0, 3.4), layout="constrained")
    axes = figure.subplots(1, 2)
    keys = sorted({(r["noise"], r["block"]) for r in rows if r["part"] == "truth"})
    for (noise, block), marker in zip(keys, "osD^v<>"):
        lengths = sorted({r["length"] for r in rows if r["part"] == "truth"})
        for ax, metric in zip(axes, ("fdp", "power")):
            stats = [mean_se([r[metric] for r in rows if r["part"] == "truth" and r["noise"] == noise
                              and r["block"] == block and r["length"] == length]) for length in lengths]
            ax.errorbar(lengths, [s[0] for s in stats], yerr=[0 if not np.isfinite(s[1]) else s[1] for s in stats],
                        marker=marker, capsize=3, label=f"{noise}, {block}")
    axes[0].axhline(fdr, color="0.4", linestyle="--", linewidth=1, label=f"q = {fdr:g}")
    axes[0].set(xlabel="recording length (time points)", ylabel="false discovery proportion (mean ± s.e.)",
                title="FDR against the ground truth")
    axes[1].set(xlabel="recording length (time points)", ylabel="share of true drivers selected",
                title="Power", ylim=(0, 1.02))
    axes[0].legend(fontsize="small")
    figure.savefig(out / "calibration.png", dpi=120)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-seeds", default="10", help="a count N (seeds 0..N-1) or a list 0,3,7 (default 10)")
    parser.add_argument("--model-seeds", type=int, default=3, help="fits per recording (n_seeds; default 3)")
    parser.add_argument("--lengths", default="2000,6000", help="recording lengths (default 2000,6000)")
    parser.add_argument("--noise", default="gaussian,poisson")
    parser.add_argument("--steps", type=int, default=600)
    parser.add_argument("--fdr", type=float, default=0.05)
    parser.add_argument("--method", default="ing-block")
    parser.add_argument("--shadows", type=int, default=None, help="shadows per neuron (default: the library's, 4)")
    parser.add_argument("--num-samples", type=int, default=None, help="time points attributed per fit (default all)")
    parser.add_argument("--shadow-check-seeds", type=int, default=2, help="recordings of the shadow check (0: none)")
    parser.add_argument("--no-independent", action="store_true", help="skip the independent-label part")
    parser.add_argument("--workers", type=int, default=2, help="Dask worker processes (one thread each)")
    parser.add_argument("--concurrent", type=int, default=2, help="recordings analysed at the same time")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--fits", type=Path, default=DEFAULT_FITS, help="fit_many's out_dir (reused by reruns)")
    args = parser.parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)
    text = args.data_seeds.strip()
    args.data_seeds = list(range(int(text))) if text.isdigit() else parse_seeds(text, parser)
    try:
        args.lengths = [int(v) for v in args.lengths.split(",") if v.strip()]
    except ValueError:
        parser.error(f"--lengths must be comma-separated integers; got {args.lengths!r}")
    args.noise = [v.strip() for v in args.noise.split(",") if v.strip()]
    if not args.data_seeds or not args.lengths or any(length < 500 for length in args.lengths):
        parser.error("--data-seeds and --lengths must be non-empty, lengths >= 500")
    if any(noise not in ("gaussian", "poisson") for noise in args.noise):
        parser.error(f"--noise must list 'gaussian' and/or 'poisson'; got {args.noise}")
    if args.model_seeds < 2 or args.steps < 1 or not 0 < args.fdr < 1:
        parser.error("--model-seeds must be >= 2, --steps >= 1 and 0 < --fdr < 1")

    import torch

    from xcebra import parallel

    torch.set_num_threads(1)  # the shadow check's maps run here, beside the workers' fits
    started = time.perf_counter()
    units = units_of(args)
    todo = [unit for unit in units if not unit_file(args.out, unit).exists()]
    print(f"{len(units) - len(todo)} of {len(units)} recordings already done; {len(todo)} to run", file=sys.stderr)
    if todo:
        with parallel.local_client(n_workers=args.workers) as client:
            def work(unit):
                t0 = time.perf_counter()
                record = run_unit(unit, args, client)
                path = unit_file(args.out, unit)
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(json.dumps({"unit": unit, **record}, indent=1))
                behaviour = record["rows"][0]
                print(f"{path.stem}: behaviour selected {behaviour['n_selected']}, false {behaviour['n_false']}, "
                      f"power {behaviour['power']:.2f}, AUC {behaviour['block_auc']:.3f} "
                      f"({time.perf_counter() - t0:.0f} s)", file=sys.stderr, flush=True)

            with ThreadPoolExecutor(max_workers=args.concurrent) as pool:
                for future in [pool.submit(work, unit) for unit in todo]:
                    future.result()
    rows, checks = [], []
    for unit in units:
        path = unit_file(args.out, unit)
        if path.exists():
            record = json.loads(path.read_text())
            rows += record["rows"]
            if "shadow_check" in record:
                checks.append((record["unit"], record["shadow_check"]))
    args.out.mkdir(parents=True, exist_ok=True)
    with open(args.out / "calibration.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
    (args.out / "calibration.md").write_text(summarise(rows, checks, args, time.perf_counter() - started))
    plot(rows, args.out, args.fdr)
    print(f"wrote {args.out / 'calibration.md'}, .csv and .png", file=sys.stderr)


if __name__ == "__main__":
    main()
