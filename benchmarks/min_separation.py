"""Ablation: behaviour positives that may share input frames with their reference (``min_separation=1``).

A convolutional encoder embeds time point ``t`` from a window of frames (``offset10``: ``t - 5 .. t + 4``).
By default (``Objective(min_separation=None)``) a ``time_delta`` positive lies at least one window from
its reference, so the pair shares no frame. With ``min_separation=1`` only the reference itself is
excluded, and the nearest label to the target is often a few steps away: the pair then shares most of
its frames, and the encoder can match it on anything that changes slowly, position or not. This script
reruns ``xcebra demo --seed S`` with ``behavior_min_separation=1`` (nothing else changes: same data,
configuration, precision and seeds) and sets the scores against the default runs in
``benchmarks/results/demo_seeds/``.

    python benchmarks/min_separation.py --seeds 0,1,2,3,4,5,6,7        # 7-9 minutes per seed here (bf16, 2 cores)
    python benchmarks/min_separation.py --seeds 0,1,2,3,4,5,6,7 --reuse   # tabulate finished runs

Writes benchmarks/results/min_separation/{min_separation.md, summary_seedS.json} (the ``min_separation=1`` runs).
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

import numpy as np
import torch

from _ablation import COLUMNS as BEHAVIOUR_COLUMNS
from _ablation import behaviour_row, paired_table
from _args import parse_seeds

HERE = Path(__file__).resolve().parent
# the time block's linear R2 for position reads how much position the time objective puts there
COLUMNS = (*BEHAVIOUR_COLUMNS, "time block linear R2")


def row(summary: dict) -> list[float]:
    return [*behaviour_row(summary), summary["decoding"]["time"]["linear_r2"]]


def shared_frame_share(n: int = 200_000) -> tuple[float, float, float]:
    """Share of the demo's behaviour pairs within one window of their reference with ``min_separation=1``,
    and the median label distance of positive to target (cm) with 1 and with the window."""
    from xcebra.datasets.ratinabox import ratinabox
    from xcebra.models import make_encoder
    from xcebra.sampling import Domain, TimeDelta

    position = ratinabox(verbose=False).position
    encoder = make_encoder("offset10", n_neurons=1, hidden_units=1, output_dim=1)
    domain = Domain.for_window(len(position), encoder.left, encoder.right)
    reference = torch.randint(domain.start, domain.stop - 10, (n,), generator=torch.Generator().manual_seed(0))
    share, distances = 0.0, []
    for separation in (1, encoder.window):
        distribution = TimeDelta(time_delta=1, min_separation=separation)
        distribution.setup(domain, position)
        targets = distribution._targets(reference.numpy(), torch.Generator().manual_seed(1))
        positive = distribution.positive(reference, torch.Generator().manual_seed(1)).numpy()
        distances.append(100 * float(np.median(np.linalg.norm(position[positive] - targets, axis=1))))
        if separation == 1:
            share = float((np.abs(positive - reference.numpy()) < encoder.window).mean())
    return share, *distances


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", default="0,1,2,3,4,5,6,7", help="comma-separated model seeds")
    parser.add_argument("--scratch", type=Path, default=HERE / "scratch", help="where the demo runs are written")
    parser.add_argument("--reuse", action="store_true",
                        help="reuse SCRATCH/min_separation1_seedS/summary.json, else OUT/summary_seedS.json, if present")
    parser.add_argument("--baseline", type=Path, default=HERE / "results" / "demo_seeds",
                        help="the default runs' summaries (benchmarks/demo_seeds.py)")
    parser.add_argument("--out", type=Path, default=HERE / "results" / "min_separation")
    args = parser.parse_args(argv)
    seeds = parse_seeds(args.seeds, parser)
    missing = [s for s in seeds if not (args.baseline / f"summary_seed{s}.json").exists()]
    if missing:
        parser.error(f"no default run for seed(s) {missing} in {args.baseline}; run benchmarks/demo_seeds.py first")
    from xcebra.demo import run_demo

    args.out.mkdir(parents=True, exist_ok=True)
    variant, baseline, kept_only, legacy = {}, {}, [], []
    for seed in seeds:
        run, kept = args.scratch / f"min_separation1_seed{seed}", args.out / f"summary_seed{seed}.json"
        if args.reuse and (run / "summary.json").exists():
            shutil.copyfile(run / "summary.json", kept)
        elif args.reuse and kept.exists():
            kept_only.append(seed)
        else:
            print(f"running the demo, seed {seed}, with behaviour positives allowed to share frames -> {run}")
            run_demo(run, seed=seed, verbose=False, _config={"behavior_min_separation": 1})
            shutil.copyfile(run / "summary.json", kept)
        summary = json.loads(kept.read_text())
        variant[seed] = row(summary)
        if seed in kept_only and "behavior_min_separation" not in summary["config"]:
            legacy.append(seed)
        baseline[seed] = row(json.loads((args.baseline / f"summary_seed{seed}.json").read_text()))
    share, near, far = shared_frame_share()
    baseline_path = (args.baseline.relative_to(HERE.parent) if args.baseline.is_relative_to(HERE.parent)
                     else args.baseline)
    lines = ["# Behaviour positives that may share input frames with their reference (min_separation=1) "
             "against the default (one encoder window)", "",
             f"`python benchmarks/min_separation.py --seeds {args.seeds}`: `xcebra demo --seed S` with the "
             f"behaviour objective's `min_separation=1`, against the same seeds with the default ({baseline_path}). "
             f"With min_separation=1, {share:.1%} of the demo's behaviour pairs lie within one window (10 time "
             f"points) of each other; the positive's position is a median {near:.2f} cm from the target "
             f"({far:.2f} cm at the default). Behaviour block: held-out decoding of position, and the hypothesis "
             "AUC within the block."
             + (f" The min_separation=1 summaries of seed(s) {', '.join(map(str, kept_only))} were reused from "
                f"{args.out.name}/, not rerun" + (" (made before the option existed: the rule was then the only one)"
                                                  if legacy else "") + "." if kept_only else ""),
             ""]
    lines += paired_table(COLUMNS, seeds, variant, baseline, "min_separation", "1", "window (default)")
    (args.out / "min_separation.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
