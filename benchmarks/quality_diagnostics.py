"""Which neurons a synthetic-data fit misranks, and how strongly the ground truth connects them.

Fits the configuration of ``quality_synthetic.py`` (regularized, one noise model and seed) and lists, per
embedding block, the connected neurons ranked below some unconnected one and the unconnected neurons
ranked above some connected one, for the ING and Jacobian maps, with each neuron's true connection
strength to the block and to the other block: the RMS over time of the norm of d rate / d latents of that
block (finite differences through the generator), in units of the neuron's noise standard deviation.

    python benchmarks/quality_diagnostics.py --noise gaussian --seed 1

Writes benchmarks/results/quality_diagnostics_{noise}{seed}.md.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import numpy as np
from sklearn.metrics import roc_auc_score

sys.path.insert(0, str(Path(__file__).resolve().parent))
import quality_synthetic  # noqa: E402

HERE = Path(__file__).resolve().parent


def connection_strength(data, step: float = 1e-4) -> np.ndarray:
    """(n_blocks, N): RMS over time of ||d rates / d latents of the block||, divided by the noise std."""
    n_latents = data.latents.shape[1]
    columns = []
    for i in range(n_latents):
        shift = step * np.eye(n_latents)[i]
        columns.append((data.mixing(data.latents + shift) - data.mixing(data.latents - shift)) / (2 * step))
    jacobian = np.stack(columns, axis=1)  # (T, n_latents, N)
    noise_sd = (data.neural - data.rates).std(axis=0)
    return np.stack([np.sqrt((jacobian[:, part] ** 2).sum(axis=1).mean(axis=0))
                     for _, part in data.latent_blocks]) / noise_sd


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--noise", choices=("gaussian", "poisson"), default="gaussian")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--regularizer", type=float, default=quality_synthetic.REGULARIZER)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, default=HERE / "results")
    args = parser.parse_args(argv)
    import torch

    import xcebra

    torch.set_num_threads(args.threads)
    data = xcebra.datasets.make_synthetic(noise=args.noise, random_state=args.seed)
    nb, nl = data.behavior.shape[1], data.latents.shape[1]
    model = xcebra.XCEBRA(
        [xcebra.Objective("behavior", dims=(0, nb), distribution="time_delta", label="behavior"),
         xcebra.Objective("time", dims=(0, nl), distribution="time", time_offset=1)],
        output_dim=nl, max_steps=args.steps, regularizer_weight=args.regularizer, random_state=args.seed,
        verbose=False, **quality_synthetic.CONFIG)
    model.fit(data.neural, behavior=data.behavior)
    strength = connection_strength(data)
    maps = {m: model.attribution_map(data.neural, method=m, verbose=False).block_values for m in ("ing", "jacobian")}
    lines = ["# Misranked neurons on synthetic data", "",
             f"`python benchmarks/quality_diagnostics.py --noise {args.noise} --seed {args.seed}"
             + (f" --steps {args.steps}" if args.steps != 2000 else "")
             + (f" --regularizer {args.regularizer:g}" if args.regularizer != quality_synthetic.REGULARIZER else "")
             + "`. Values are the block-level attribution scaled to the block's maximum; strengths are in noise "
             "standard deviations (see the script's docstring). 'beaten': how many neurons of the other class it "
             "is misranked against.", ""]
    for b, name in enumerate(data.block_names):
        truth, other = data.block_truth[b], data.block_truth[1 - b]
        lines.append(f"## Block {name}: {int(truth.sum())} connected neurons; connected strength quantiles "
                     f"(min, 10%, median) {np.round(np.quantile(strength[b, truth], [0, 0.1, 0.5]), 2).tolist()}")
        for method, values in maps.items():
            v = values[b] / values[b].max()
            lines += ["", f"{method}: block AUC {roc_auc_score(truth, values[b]):.3f}", "",
                      "| neuron | class | value | strength to this block | strength to the other block | beaten |",
                      "|---|---|---|---|---|---|"]
            low = sorted((n for n in np.where(truth)[0] if (v[~truth] > v[n]).any()), key=lambda n: v[n])
            high = sorted((n for n in np.where(~truth)[0] if (v[truth] < v[n]).any()), key=lambda n: -v[n])
            for n in low:
                kind = "connected, mixed" if other[n] else "connected, this block only"
                lines.append(f"| {n} | {kind} | {v[n]:.3f} | {strength[b, n]:.2f} | {strength[1 - b, n]:.2f} | "
                             f"{int((v[~truth] > v[n]).sum())} |")
            for n in high:
                kind = "unconnected, other block only" if other[n] else "unconnected"
                lines.append(f"| {n} | {kind} | {v[n]:.3f} | 0 | {strength[1 - b, n]:.2f} | "
                             f"{int((v[truth] < v[n]).sum())} |")
        lines.append("")
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"quality_diagnostics_{args.noise}{args.seed}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    os.environ.setdefault("OMP_NUM_THREADS", "2")
    main()
