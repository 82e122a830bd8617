"""The demo's scores over several model seeds: how often does each map pass the hypothesis test?

Runs ``xcebra demo --seed S --out SCRATCH/demo_seedS`` for each seed (same simulated RatInABox data,
the seed's configuration; about 4 minutes per seed on 2 cores in bf16), or reuses a finished run's
``summary.json`` with ``--reuse``, copies each summary next to the table and writes the table:
behaviour-block decoding of position (held-out linear and kNN R2) and the behaviour-block AUC of the
ING, per-block ING and Jacobian maps, per seed and as median [min-max].

    python benchmarks/demo_seeds.py --seeds 0,1,2,3
    python benchmarks/demo_seeds.py --seeds 0,1,2,3 --reuse      # only tabulate finished runs
    python benchmarks/demo_seeds.py --seeds 0,1 --steps 2000 --out benchmarks/results/demo_seeds_2000steps

Writes benchmarks/results/demo_seeds/{demo_seeds.md, summary_seedS.json}.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
METHODS = ("ing", "ing-block", "jacobian")
DEFAULT_OUT = HERE / "results" / "demo_seeds"


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", default="0,1,2,3", help="comma-separated model seeds (default 0,1,2,3)")
    parser.add_argument("--scratch", type=Path, default=HERE / "scratch", help="where the demo runs are written")
    parser.add_argument("--reuse", action="store_true", help="reuse SCRATCH/demo_seedS/summary.json if present")
    parser.add_argument("--steps", type=int, help="training steps (xcebra demo --steps; default: the seed's 1000)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args(argv)
    try:
        seeds = [int(item) for item in args.seeds.split(",") if item.strip()]
    except ValueError:
        parser.error(f"--seeds must be comma-separated integers; got {args.seeds!r}")
    if not seeds:
        parser.error("--seeds is empty")
    args.out.mkdir(parents=True, exist_ok=True)
    summaries = {}
    for seed in seeds:
        run = args.scratch / (f"demo_seed{seed}" + (f"_steps{args.steps}" if args.steps else ""))
        summary = run / "summary.json"
        if not (args.reuse and summary.exists()):
            command = [sys.executable, "-m", "xcebra.cli", "demo", "--seed", str(seed), "--out", str(run), "--quiet"]
            command += ["--steps", str(args.steps)] if args.steps else []
            print("running: xcebra", " ".join(command[3:]), file=sys.stderr)
            subprocess.run(command, check=True)
        summaries[seed] = json.loads(summary.read_text())
        shutil.copyfile(summary, args.out / f"summary_seed{seed}.json")

    def auc(s, method):
        return next(row["block_auc"] for row in s["auc"] if row["method"] == method)

    columns = {"linear R2": lambda s: s["decoding"]["behavior"]["linear_r2"],
               "kNN R2": lambda s: s["decoding"]["behavior"]["knn_r2"],
               **{f"{m} AUC": (lambda s, m=m: auc(s, m)) for m in METHODS}}
    precision = sorted({s["precision"] for s in summaries.values()})
    steps = sorted({s["config"]["max_steps"] for s in summaries.values()})
    flags = (f" --steps {args.steps}" if args.steps else "") + (f" --out {args.out}" if args.out != DEFAULT_OUT else "")
    config = "the seed's configuration, " + (f"{args.steps} steps (regularizer ramp scaled)" if args.steps else
                                             f"{'/'.join(map(str, steps))} steps")
    lines = ["# The demo over model seeds", "",
             f"`python benchmarks/demo_seeds.py --seeds {args.seeds}{flags}` (each seed: `xcebra demo --seed S"
             f"{f' --steps {args.steps}' if args.steps else ''}`; same simulated data, {config}, "
             f"training precision {'/'.join(precision)}). "
             "Behaviour block: held-out decoding of position, and the hypothesis 'grid and place cells rank above "
             "head-direction and speed cells' as a block-level AUC within the behaviour block.", "",
             "| seed | " + " | ".join(columns) + " |", "|---" * (len(columns) + 1) + "|"]
    for seed, s in summaries.items():
        lines.append(f"| {seed} | " + " | ".join(f"{f(s):.3f}" for f in columns.values()) + " |")
    cells = []
    for f in columns.values():
        values = np.array([f(s) for s in summaries.values()])
        cells.append(f"{np.median(values):.3f} [{values.min():.3f}-{values.max():.3f}]")
    lines.append("| median [min-max] | " + " | ".join(cells) + " |")
    counts = {m: sum(auc(s, m) >= 0.99 for s in summaries.values()) for m in METHODS}
    lines += ["", "Fits with behaviour-block AUC >= 0.99: "
              + ", ".join(f"{m} {n} of {len(summaries)}" for m, n in counts.items()) + "."]
    (args.out / "demo_seeds.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
