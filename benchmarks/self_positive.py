"""Ablation: the demo with the reference package's ``time_delta`` sampling, where a reference can be its own positive.

The reference package (cebra 0.6.1) searches the nearest neighbour of ``y[t] + delta`` among all time
points, ``t`` included, so when the drawn label change ``delta`` is smaller than the distance to any
other time point the positive pair is the reference with itself (13% of the demo's behaviour pairs;
the rest of the positives are the same in both). xcebra returns the nearest time point other than
``t`` (``xcebra.sampling``). This script reruns ``xcebra demo --seed S`` with the reference's rule
patched into the sampler (nothing else changes: same data, configuration, precision and seeds) and
sets the scores against the unpatched runs in ``benchmarks/results/demo_seeds/``.

    python benchmarks/self_positive.py --seeds 0,1,2,3,4,5,6,7      # about 5 minutes per seed (bf16)
    python benchmarks/self_positive.py --seeds 0,1,2,3,4,5,6,7 --reuse   # tabulate finished runs

Writes benchmarks/results/self_positive/{self_positive.md, summary_seedS.json}.
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

import numpy as np
import torch

HERE = Path(__file__).resolve().parent
COLUMNS = ("linear R2", "kNN R2", "ing AUC", "ing-block AUC", "jacobian AUC")


def reference_rule_positive(self, reference: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """The reference package's rule: the nearest time point to the target, the reference itself included."""
    targets = self._targets(reference.cpu().numpy(), generator)
    _, nearest = self.tree.query(targets, k=1)
    return torch.from_numpy((nearest + self.domain.start).astype(np.int64)).to(reference.device)


def self_pair_share(n: int = 200_000) -> float:
    """Share of the demo's behaviour positives that are the reference itself under the reference's rule."""
    from xcebra.datasets.ratinabox import ratinabox
    from xcebra.models import make_encoder
    from xcebra.sampling import Domain, TimeDelta

    position = ratinabox(verbose=False).position
    encoder = make_encoder("offset10", n_neurons=1, hidden_units=1, output_dim=1)
    distribution = TimeDelta(time_delta=1)
    distribution.setup(Domain.for_window(len(position), encoder.left, encoder.right), position)
    generator = torch.Generator().manual_seed(0)
    reference = torch.randint(distribution.domain.start, distribution.domain.stop - 10, (n,), generator=generator)
    positive = reference_rule_positive(distribution, reference, generator)
    return float((positive == reference).double().mean())


def row(summary: dict) -> list[float]:
    def auc(method):
        return next(r["block_auc"] for r in summary["auc"] if r["method"] == method)

    return [summary["decoding"]["behavior"]["linear_r2"], summary["decoding"]["behavior"]["knn_r2"],
            auc("ing"), auc("ing-block"), auc("jacobian")]


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", default="0,1,2,3,4,5,6,7", help="comma-separated model seeds")
    parser.add_argument("--scratch", type=Path, default=HERE / "scratch", help="where the demo runs are written")
    parser.add_argument("--reuse", action="store_true", help="reuse SCRATCH/self_positive_seedS/summary.json if present")
    parser.add_argument("--baseline", type=Path, default=HERE / "results" / "demo_seeds",
                        help="the unpatched runs' summaries (benchmarks/demo_seeds.py)")
    parser.add_argument("--out", type=Path, default=HERE / "results" / "self_positive")
    args = parser.parse_args(argv)
    try:
        seeds = [int(item) for item in args.seeds.split(",") if item.strip()]
    except ValueError:
        parser.error(f"--seeds must be comma-separated integers; got {args.seeds!r}")
    missing = [s for s in seeds if not (args.baseline / f"summary_seed{s}.json").exists()]
    if missing:
        parser.error(f"no unpatched run for seed(s) {missing} in {args.baseline}; run benchmarks/demo_seeds.py first")
    from xcebra import sampling
    from xcebra.demo import run_demo

    sampling._NearestNeighbourDistribution.positive = reference_rule_positive
    args.out.mkdir(parents=True, exist_ok=True)
    patched, baseline = {}, {}
    for seed in seeds:
        run = args.scratch / f"self_positive_seed{seed}"
        if not (args.reuse and (run / "summary.json").exists()):
            print(f"running the demo, seed {seed}, with the reference's time_delta rule -> {run}")
            run_demo(run, seed=seed, verbose=False)
        shutil.copyfile(run / "summary.json", args.out / f"summary_seed{seed}.json")
        patched[seed] = row(json.loads((run / "summary.json").read_text()))
        baseline[seed] = row(json.loads((args.baseline / f"summary_seed{seed}.json").read_text()))
    share = self_pair_share()
    lines = ["# The reference's time_delta rule (a reference may be its own positive) against xcebra's", "",
             f"`python benchmarks/self_positive.py --seeds {args.seeds}`: `xcebra demo --seed S` with the reference "
             f"package's nearest-neighbour rule patched into the sampler, against the same seeds unpatched "
             f"({args.baseline.relative_to(HERE.parent) if args.baseline.is_relative_to(HERE.parent) else args.baseline}). "
             f"Under the reference's rule {share:.1%} of the demo's behaviour pairs are a reference with itself. "
             "Behaviour block: held-out decoding of position, and the hypothesis AUC within the block.", "",
             "| seed | rule | " + " | ".join(COLUMNS) + " |", "|---|---" + "|---" * len(COLUMNS) + "|"]
    for seed in seeds:
        lines.append(f"| {seed} | reference's | " + " | ".join(f"{v:.3f}" for v in patched[seed]) + " |")
        lines.append(f"| {seed} | xcebra's | " + " | ".join(f"{v:.3f}" for v in baseline[seed]) + " |")
    a, b = np.array([patched[s] for s in seeds]), np.array([baseline[s] for s in seeds])
    lines.append("| median | reference's | " + " | ".join(f"{v:.3f}" for v in np.median(a, 0)) + " |")
    lines.append("| median | xcebra's | " + " | ".join(f"{v:.3f}" for v in np.median(b, 0)) + " |")
    lines.append("| mean paired difference (xcebra's - reference's) | | "
                 + " | ".join(f"{v:+.4f}" for v in (b - a).mean(0)) + " |")
    lines.append("| seeds where xcebra's rule scores higher / equal / lower | | "
                 + " | ".join(f"{int((d > 5e-4).sum())} / {int((abs(d) <= 5e-4).sum())} / {int((d < -5e-4).sum())}"
                              for d in (b - a).T) + " |")
    if len(seeds) >= 2:
        from scipy.stats import wilcoxon

        p = [wilcoxon(b[:, j], a[:, j]).pvalue if np.any(b[:, j] != a[:, j]) else 1.0 for j in range(len(COLUMNS))]
        lines.append("| Wilcoxon signed-rank, two-sided p | | " + " | ".join(f"{v:.3f}" for v in p) + " |")
    (args.out / "self_positive.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
