"""The demo's scores over several model seeds, next to the reference package's runs on the same data.

Runs ``xcebra demo --seed S --out SCRATCH/demo_seedS`` for each seed (same simulated RatInABox data,
the seed's configuration; 8-10 minutes per seed on 2 cores in bf16), or reuses a finished run's
``summary.json`` with ``--reuse`` (from SCRATCH, else the copy already in OUT), copies each summary next
to the table and writes the table: behaviour-block decoding of position (held-out linear and kNN R2)
and the behaviour-block AUC of the ING, per-block ING and Jacobian maps, per seed and as median
[min-max].

``--reference`` adds the reference package's runs, scored by the same functions: each item is either
the output of ``reference_ratinabox`` (scored here; needs ``--data``, the data file it was fitted
on) or a results JSON of ``ratinabox_side_by_side`` (its ``cebra`` entry). Each scored run is kept
in OUT as ``reference_NAME.json``, so ``--reference OUT/reference_NAME.json`` reuses it. The table then
compares the two packages column by column: medians, how many runs reach the reference's median, and
a two-sided Mann-Whitney U test (are the runs of one package shifted against the other's?).

    python -m benchmarks.reference.demo_seeds --seeds 0,1,2,3
    python -m benchmarks.reference.demo_seeds --seeds 0,1,2,3 --reuse      # only tabulate finished runs
    python -m benchmarks.reference.demo_seeds --seeds 0,1 --steps 2000 --out benchmarks/results/demo_seeds_2000steps
    python -m benchmarks.reference.demo_seeds --seeds 0,1,2,3,4,5,6,7 --reuse --data benchmarks/scratch/ratinabox_default.npz \\
        --reference benchmarks/scratch/reference_seed2.npz benchmarks/results/demo_seeds/reference_seed1.json \\
        first_unseeded=benchmarks/results/ratinabox_side_by_side.json

Writes OUT/demo_seeds.md, OUT/summary_seedS.json and OUT/reference_NAME.json (OUT: benchmarks/results/demo_seeds).
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np

from benchmarks.common import RESULTS, SCRATCH, parse_seeds

METHODS = ("ing", "ing-block", "jacobian")
DEFAULT_OUT = RESULTS / "demo_seeds"


def demo_row(summary: dict) -> dict:
    """Scores of one ``xcebra demo`` run: the table's columns."""
    def auc(method):
        return next(row["block_auc"] for row in summary["auc"] if row["method"] == method)

    return {"linear R2": summary["decoding"]["behavior"]["linear_r2"],
            "kNN R2": summary["decoding"]["behavior"]["knn_r2"],
            **{f"{m} AUC": auc(m) for m in METHODS}}


def reference_row(scored: dict) -> dict:
    """The same columns for one reference run scored by ``ratinabox_side_by_side.score`` (a map it lacks: NaN)."""
    return {"linear R2": scored["decoding"]["behavior"]["linear_r2"],
            "kNN R2": scored["decoding"]["behavior"]["knn_r2"],
            **{f"{m} AUC": scored[m]["behavior_block_auc"] if m in scored else float("nan") for m in METHODS}}


def score_reference(path: Path, data: Path | None, parser: argparse.ArgumentParser) -> dict:
    """Scores of one reference run, from a results JSON or from the output of reference_ratinabox."""
    if not path.exists():
        parser.error(f"--reference {path}: no such file")
    if path.suffix == ".json":
        loaded = json.loads(path.read_text())
        scored = loaded.get("cebra", loaded)  # a side-by-side results file, or a run this script scored
        if "decoding" not in scored:
            parser.error(f"--reference {path}: no reference scores in it (expected a 'cebra' entry or 'decoding')")
        return scored
    if data is None:
        parser.error(f"--reference {path}: scoring a reference run needs --data, the data file it was fitted on")
    from benchmarks.reference.ratinabox_side_by_side import score

    recording, run = np.load(data), np.load(path)
    maps = {"ing": run["jf_inv_svd"], "jacobian": run["jf"]}
    if "jf_inv_block" in run.files:
        maps["ing-block"] = run["jf_inv_block"]
    info = json.loads(str(run["info"]))
    return {**score(run["embedding"], maps, recording["position"], recording["cell_types"]),
            "fit_seconds": info["fit_seconds"], "seed": info.get("seed"), "source": path.name}


def mann_whitney(ours: np.ndarray, theirs: np.ndarray) -> str:
    from scipy.stats import mannwhitneyu

    ours, theirs = ours[np.isfinite(ours)], theirs[np.isfinite(theirs)]
    if len(ours) < 2 or len(theirs) < 2:
        return "-"
    return f"{mannwhitneyu(ours, theirs, alternative='two-sided').pvalue:.2f}"


def spread(values: np.ndarray) -> str:
    values = values[np.isfinite(values)]
    return f"{np.median(values):.3f} [{values.min():.3f}-{values.max():.3f}]" if len(values) else "-"


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", default="0,1,2,3", help="comma-separated model seeds (default 0,1,2,3)")
    parser.add_argument("--scratch", type=Path, default=SCRATCH, help="where the demo runs are written")
    parser.add_argument("--reuse", action="store_true",
                        help="reuse SCRATCH/demo_seedS/summary.json, else OUT/summary_seedS.json, if present")
    parser.add_argument("--steps", type=int, help="training steps (xcebra demo --steps; default: the seed's 1000)")
    parser.add_argument("--reference", nargs="+", default=[], metavar="[NAME=]RUN",
                        help="reference runs: reference_ratinabox outputs (.npz, scored with --data) or results "
                             "JSONs; NAME (default: the file name without 'reference_') labels the run")
    parser.add_argument("--data", type=Path, help="the data file the reference runs were fitted on (.npz)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args(argv)
    seeds = parse_seeds(args.seeds, parser)
    args.out.mkdir(parents=True, exist_ok=True)
    summaries = {}
    for seed in seeds:
        run = args.scratch / (f"demo_seed{seed}" + (f"_steps{args.steps}" if args.steps else ""))
        summary, kept = run / "summary.json", args.out / f"summary_seed{seed}.json"
        if args.reuse and not summary.exists() and kept.exists():
            summaries[seed] = json.loads(kept.read_text())
            continue
        if not (args.reuse and summary.exists()):
            command = [sys.executable, "-m", "xcebra.cli", "demo", "--seed", str(seed), "--out", str(run), "--quiet"]
            command += ["--steps", str(args.steps)] if args.steps else []
            print("running: xcebra", " ".join(command[3:]), file=sys.stderr)
            subprocess.run(command, check=True)
        summaries[seed] = json.loads(summary.read_text())
        shutil.copyfile(summary, kept)

    references = {}
    for item in args.reference:
        name, _, location = item.rpartition("=")
        path = Path(location)
        name = name or path.stem.removeprefix("reference_")
        if name in references:
            parser.error(f"--reference: two runs are named {name!r}; label them NAME=RUN")
        scored = score_reference(path, args.data, parser)
        kept = args.out / f"reference_{name}.json"
        if not (kept.exists() and kept.resolve() == path.resolve()):
            kept.write_text(json.dumps(scored, indent=2, default=float))
        references[name] = scored

    rows = {seed: demo_row(s) for seed, s in summaries.items()}
    columns = list(next(iter(rows.values())))
    precision = sorted({s["precision"] for s in summaries.values()})
    steps = sorted({s["config"]["max_steps"] for s in summaries.values()})
    flags = ((f" --steps {args.steps}" if args.steps else "") + (" --reuse" if args.reuse else "")
             + (f" --out {args.out}" if args.out != DEFAULT_OUT else "") + (f" --data {args.data}" if args.data else ""))
    config = "the seed's configuration, " + (f"{args.steps} steps (regularizer ramp scaled)" if args.steps else
                                             f"{'/'.join(map(str, steps))} steps")
    lines = ["# The demo over model seeds", "",
             f"`python -m benchmarks.reference.demo_seeds --seeds {args.seeds}{flags}"
             + (" --reference " + " ".join(args.reference) if args.reference else "")
             + f"` (each seed: `xcebra demo --seed S{f' --steps {args.steps}' if args.steps else ''}`; same simulated "
             f"data, {config}, training precision {'/'.join(precision)}). "
             "Behaviour block: held-out decoding of position, and the hypothesis 'grid and place cells rank above "
             "head-direction and speed cells' as a block-level AUC within the behaviour block.", "",
             "| seed | " + " | ".join(columns) + " |", "|---" * (len(columns) + 1) + "|"]
    for seed, row in rows.items():
        lines.append(f"| {seed} | " + " | ".join(f"{row[c]:.3f}" for c in columns) + " |")
    ours = {c: np.array([row[c] for row in rows.values()]) for c in columns}
    lines.append("| median [min-max] | " + " | ".join(spread(ours[c]) for c in columns) + " |")
    counts = {m: int(np.sum(ours[f"{m} AUC"] >= 0.99)) for m in METHODS}
    lines += ["", "Fits with behaviour-block AUC >= 0.99: "
              + ", ".join(f"{m} {n} of {len(rows)}" for m, n in counts.items()) + "."]

    if references:
        ref_rows = {name: reference_row(s) for name, s in references.items()}
        theirs = {c: np.array([row[c] for row in ref_rows.values()]) for c in columns}
        lines += ["", "## The reference package (cebra 0.6.1) on the same data and configuration", "",
                  "Each run fitted by `.venv-bench/bin/python -m benchmarks.reference.reference_ratinabox --data DATA.npz --out "
                  "RUN.npz [--seed S]` (fp32, 1000 steps) and scored here by the same functions as xcebra's. Its "
                  "'ing-block' is the per-block inverse of the reference's own per-time Jacobians (behaviour block at "
                  "rank 2, as xcebra's); runs made before the script computed it have none ('-').", "",
                  "| run | " + " | ".join(columns) + " |", "|---" * (len(columns) + 1) + "|"]
        for name, row in ref_rows.items():
            lines.append(f"| {name} | " + " | ".join("-" if np.isnan(row[c]) else f"{row[c]:.3f}" for c in columns)
                         + " |")
        lines.append("| median [min-max] | " + " | ".join(spread(theirs[c]) for c in columns) + " |")
        lines += ["", "| | " + " | ".join(columns) + " |", "|---" * (len(columns) + 1) + "|",
                  f"| xcebra, median of {len(rows)} | " + " | ".join(f"{np.median(ours[c]):.3f}" for c in columns) + " |",
                  f"| reference, median of {len(ref_rows)} runs | "
                  + " | ".join(spread(theirs[c]).split(" ")[0] for c in columns) + " |",
                  "| xcebra runs at or above the reference's median | "
                  + " | ".join(f"{int(np.sum(ours[c] >= np.nanmedian(theirs[c])))} of {len(rows)}"
                               if np.isfinite(theirs[c]).any() else "-" for c in columns) + " |",
                  "| Mann-Whitney U, two-sided p | " + " | ".join(mann_whitney(ours[c], theirs[c]) for c in columns)
                  + " |"]
        ref_counts = {m: int(np.sum(theirs[f"{m} AUC"] >= 0.99)) for m in METHODS}
        lines += ["", "Reference runs with behaviour-block AUC >= 0.99: "
                  + ", ".join(f"{m} {n} of {int(np.isfinite(theirs[f'{m} AUC']).sum())}" for m, n in ref_counts.items())
                  + "."]
    (args.out / "demo_seeds.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
