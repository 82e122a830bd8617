"""Ablation: the demo with the reference package's ``time_delta`` sampling, where a reference can be its own positive.

The reference package (cebra 0.6.1) searches the nearest neighbour of ``y[t] + delta`` among all time
points, ``t`` included, so when the drawn label change ``delta`` is smaller than the distance to any
other time point the positive pair is the reference with itself (13% of the demo's behaviour pairs;
the rest of the positives are the same in both). xcebra returns the nearest time point other than
``t`` (``xcebra.sampling``). This script reruns ``xcebra demo --seed S`` with the reference's rule
patched into the sampler (nothing else changes: same data, configuration, precision and seeds) and
sets the scores against the unpatched runs with ``min_separation=1`` (xcebra's rule when this ablation was
made, before positives were kept one encoder window away) in ``benchmarks/results/min_separation/``.

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

from _ablation import COLUMNS, behaviour_row, paired_table
from _args import parse_seeds

HERE = Path(__file__).resolve().parent


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


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", default="0,1,2,3,4,5,6,7", help="comma-separated model seeds")
    parser.add_argument("--scratch", type=Path, default=HERE / "scratch", help="where the demo runs are written")
    parser.add_argument("--reuse", action="store_true", help="reuse SCRATCH/self_positive_seedS/summary.json if present")
    parser.add_argument("--baseline", type=Path, default=HERE / "results" / "min_separation",
                        help="the unpatched runs' summaries at min_separation=1, the rule this ablation was "
                             "measured against (benchmarks/min_separation.py)")
    parser.add_argument("--out", type=Path, default=HERE / "results" / "self_positive")
    args = parser.parse_args(argv)
    seeds = parse_seeds(args.seeds, parser)
    missing = [s for s in seeds if not (args.baseline / f"summary_seed{s}.json").exists()]
    if missing:
        parser.error(f"no unpatched run for seed(s) {missing} in {args.baseline}; run benchmarks/min_separation.py first")
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
        patched[seed] = behaviour_row(json.loads((run / "summary.json").read_text()))
        baseline[seed] = behaviour_row(json.loads((args.baseline / f"summary_seed{seed}.json").read_text()))
    share = self_pair_share()
    lines = ["# The reference's time_delta rule (a reference may be its own positive) against xcebra's", "",
             f"`python benchmarks/self_positive.py --seeds {args.seeds}`: `xcebra demo --seed S` with the reference "
             f"package's nearest-neighbour rule patched into the sampler, against the same seeds unpatched "
             f"({args.baseline.relative_to(HERE.parent) if args.baseline.is_relative_to(HERE.parent) else args.baseline}). "
             f"Under the reference's rule {share:.1%} of the demo's behaviour pairs are a reference with itself. "
             "Behaviour block: held-out decoding of position, and the hypothesis AUC within the block.", ""]
    lines += paired_table(COLUMNS, seeds, patched, baseline, "rule", "reference's", "xcebra's")
    (args.out / "self_positive.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
