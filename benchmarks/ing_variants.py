"""Why "ing-block": ways of inverting the Jacobian of a fitted seed-configuration model, scored on the hypothesis.

On the seed's RatInABox setting the paper's ING (pseudo-inverse of the whole Jacobian) ranks grid and
place cells above head-direction and speed cells less well than the plain Jacobian does. This script
computes the lag-summed Jacobian at a sample of time points once and scores several inverses of it
within the behaviour block (block-level AUC of the hypothesis "behaviour <- grid, place"), and prints the
median singular values of each block, which show the cause.

    python benchmarks/ratinabox_side_by_side.py --data benchmarks/scratch/ratinabox_default.npz \\
        --reuse-reference --save-model benchmarks/scratch/side_by_side.xcebra
    python benchmarks/ing_variants.py --model benchmarks/scratch/side_by_side.xcebra \\
        --data benchmarks/scratch/ratinabox_default.npz

Writes benchmarks/results/ing_variants.md.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch
from sklearn.linear_model import LinearRegression
from sklearn.metrics import roc_auc_score

import xcebra
from xcebra.attribution.compute import read_windows
from xcebra.attribution.jacobian import block_pseudo_inverse, lag_summed_jacobian, pseudo_inverse

HERE = Path(__file__).resolve().parent
HYPOTHESIS = ("grid", "place")


def jacobians(model: xcebra.XCEBRA, neural: np.ndarray, n: int, seed: int, batch: int = 500) -> torch.Tensor:
    """Lag-summed Jacobians (n, D, N), float32, at ``n`` time points drawn without replacement."""
    embedder = model.encoder_
    positions = xcebra.attribution.select_time_points(neural.shape[0] - embedder.window + 1, n, seed)
    parts = [lag_summed_jacobian(embedder, torch.from_numpy(read_windows(neural, positions[i:i + batch],
                                                                         embedder.window)))
             for i in range(0, len(positions), batch)]
    return torch.cat(parts)


def behaviour_auc(attribution: torch.Tensor, rows: slice, truth: np.ndarray) -> float:
    """Block-level AUC of the hypothesis: RMS over the block's rows of the time-averaged |attribution|."""
    mean_abs = attribution.abs().mean(0).double().numpy()
    return float(roc_auc_score(truth, np.sqrt((mean_abs[rows] ** 2).mean(0))))


def project_rows(jacobian: torch.Tensor, rank: int) -> torch.Tensor:
    """Each (D_b, N) matrix replaced by its best rank-``rank`` approximation."""
    u, s, vh = torch.linalg.svd(jacobian.double(), full_matrices=False)
    return ((u[..., :rank] * s[:, None, :rank]) @ vh[:, :rank]).float()


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, required=True, help="a fitted seed-configuration model")
    parser.add_argument("--data", type=Path, required=True, help="the data file of ratinabox_side_by_side.py")
    parser.add_argument("--num-samples", type=int, default=3000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, default=HERE / "results")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    data = np.load(args.data)
    spikes, cell_types = data["spikes"], data["cell_types"]
    model = xcebra.XCEBRA.load(args.model)
    (_, behaviour), (_, time_block) = model.blocks_
    truth = np.isin(cell_types, HYPOTHESIS)
    jac = jacobians(model, spikes, args.num_samples, args.seed)
    slices = model.encoder_.block_slices

    def spectrum(part: torch.Tensor) -> str:
        s = torch.linalg.svdvals(part.double())
        return ", ".join(f"{v:.3f}" for v in np.median((s / s[:, :1]).numpy(), axis=0))

    # the time block with its linear dependence on the behaviour block removed (a block-triangular change of
    # basis, which the identifiability of xCEBRA allows): J_t - B J_b with B fitted on the embedding
    embedding = model.transform(spikes)
    coupling = LinearRegression().fit(embedding[:, behaviour], embedding[:, time_block]).coef_
    decoupled = jac.clone()
    decoupled[:, time_block] -= torch.from_numpy(coupling).float() @ jac[:, behaviour]

    variants = [
        ("Jacobian", jac),
        ("ING (paper: pseudo-inverse of the whole Jacobian)", pseudo_inverse(jac)),
        ("ING after removing the time block's linear dependence on the behaviour block", pseudo_inverse(decoupled)),
        *[(f"ING of the whole Jacobian truncated to rank {k}", pseudo_inverse(jac, rank=k)) for k in (10, 8, 6)],
        ("ING with the behaviour rows projected to rank 2", pseudo_inverse(torch.cat(
            [project_rows(jac[:, behaviour], 2), jac[:, time_block]], 1))),
        ("per-block ING, full rank", block_pseudo_inverse(jac, slices)),
        ("per-block ING, behaviour block rank 3", block_pseudo_inverse(jac, slices, [3, None])),
        ("per-block ING, behaviour block rank 2 (= 'ing-block' default: position is 2-d)",
         block_pseudo_inverse(jac, slices, [2, None])),
    ]
    rows = [(name, behaviour_auc(value, behaviour, truth)) for name, value in variants]
    lines = ["# Inverting the Jacobian: which inverse identifies the behaviour block's cells", "",
             f"`python benchmarks/ing_variants.py --model {args.model} --data {args.data}`"
             f"{'' if args.num_samples == 3000 else f' --num-samples {args.num_samples}'}: "
             f"{args.num_samples} time points (seed {args.seed}). Hypothesis: the behaviour block is driven by "
             "grid and place cells, not by head-direction and speed cells; block-level AUC within the behaviour block.",
             "", f"Median singular values over time, relative to the largest: behaviour block "
             f"({behaviour.stop - behaviour.start} dims) {spectrum(jac[:, behaviour])}; time block "
             f"({time_block.stop - time_block.start} dims) {spectrum(jac[:, time_block])}.", "",
             "| map | behaviour-block AUC |", "|---|---|"]
    lines += [f"| {name} | {auc:.4f} |" for name, auc in rows]
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "ing_variants.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    sys.exit(main())
