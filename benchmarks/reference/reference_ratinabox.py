"""The reference package's full seed run on our RatInABox data: 1000 steps, embedding, attribution maps.

Runs in the reference environment (`make bench-env`), never imports xcebra:

    .venv-bench/bin/python -m benchmarks.reference.reference_ratinabox --data DATA.npz --out REF.npz [--steps 1000] [--seed S]

DATA.npz holds `spikes` (T, N) and `position` (T, 2). The script reproduces the seed notebook cell by
cell (configuration built by `reference_cebra.build_solver`, the seed's `LinearRampUp` schedule for the
regularizer, `solver.fit`), then embeds every time point as the notebook does and computes its
"jacobian-based" attribution. REF.npz receives `embedding` (T, 14), `jf`, `jf_inv_svd`,
`jf_convabs_inv_svd` (each (14, N): mean absolute value over time, the notebook's reduction),
`jf_inv_block` (the same reduction of the per-block inverse of the reference's own per-time Jacobians,
behaviour rows at rank 2: what xcebra's "ing-block" computes, here from the reference's fit) and a
JSON string `info` with timings. `benchmarks/reference/ratinabox_side_by_side.py` scores it next to xcebra.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from benchmarks.reference import reference_cebra as ref


#: (start, stop, rank) of each embedding block for the per-block inverse; rank None keeps every singular
#: value above the cutoff (the behaviour block is trained on the 2-d position)
BLOCK_RANKS = ((0, 4, 2), (4, 14, None))


def per_block_inverse(jacobians: np.ndarray, blocks=BLOCK_RANKS) -> np.ndarray:
    """(T, D, N) Jacobians -> (T, D, N): each block's rows are pinv(J_t[block]).T, keeping at most its rank of
    singular values and none below max(D_b, N) * eps(float32) * s_max (scipy's default cutoff for float32)."""
    out = np.empty(jacobians.shape, dtype=np.float64)
    for start, stop, rank in blocks:
        part = jacobians[:, start:stop].astype(np.float64)
        u, s, vh = np.linalg.svd(part, full_matrices=False)
        kept = s > max(part.shape[1:]) * np.finfo(np.float32).eps * s[:, :1]
        if rank is not None:
            kept &= np.arange(s.shape[1]) < rank
        inverse_s = np.where(kept, 1.0 / np.where(kept, s, 1.0), 0.0)
        # pinv(J) = V diag(1/s) U^T; its transpose is U diag(1/s) V^T
        out[:, start:stop] = (u * inverse_s[:, None, :]) @ vh
    return out


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=None,
                        help="seed torch's and numpy's global generators first (the reference takes no seed of its own; "
                             "default: unseeded, as the seed notebook runs)")
    args = parser.parse_args(argv)

    import torch

    torch.set_num_threads(args.threads)
    if args.seed is not None:
        torch.manual_seed(args.seed)
        np.random.seed(args.seed)
    import cebra
    import cebra.attribution
    from cebra.data import TensorDataset
    from cebra.solver.schedulers import LinearRampUp

    data = np.load(args.data)
    neural = torch.from_numpy(np.asarray(data["spikes"], dtype=np.float32))
    position = torch.from_numpy(np.asarray(data["position"], dtype=np.float32))
    cfg = dict(ref.SEED_CONFIG)
    solver, loader, _ = ref.build_solver(
        neural, position, model_name=cfg["model"], num_units=cfg["num_units"], output_dim=cfg["output_dim"],
        batch_size=cfg["batch_size"], num_steps=args.steps, learning_rate=cfg["learning_rate"], loss=cfg["loss"],
        temperature=cfg["temperature"], behavior_dims=cfg["behavior_dims"], time_dims=cfg["time_dims"],
        time_delta=cfg["time_delta"], time_offset=cfg["time_offset"], renormalize=True, tqdm_on=True)
    scheduler = LinearRampUp(n_splits=2, step_to_switch_on_reg=args.steps // 4,
                             step_to_switch_off_reg=args.steps // 2, start_weight=0.0, end_weight=0.1)
    start = time.perf_counter()
    solver.fit(loader=loader, valid_loader=None, log_frequency=None, scheduler_regularizer=scheduler,
               scheduler_loss=None)
    fit_seconds = time.perf_counter() - start

    # embedding, exactly as the notebook computes it
    data_emb = TensorDataset(neural, continuous=torch.zeros(len(neural)))
    data_emb.configure_for(solver.model)
    batch = data_emb[torch.arange(len(data_emb))]
    solver.model.split_outputs = False
    with torch.no_grad():
        embedding = solver.model(batch).detach().cpu().numpy()

    start = time.perf_counter()
    model = solver.model
    neural.requires_grad_(True)
    method = cebra.attribution.init(name="jacobian-based", model=model, input_data=neural,
                                    output_dimension=model.num_output)
    result = method.compute_attribution_map()
    attribution_seconds = time.perf_counter() - start
    info = {"cebra_version": cebra.__version__, "steps": args.steps, "fit_seconds": fit_seconds,
            "attribution_seconds": attribution_seconds, "threads": args.threads, "seed": args.seed, "config": cfg,
            "final_losses": {str(k): v[-1] for k, v in solver.log.items() if len(v)}}
    np.savez(args.out, embedding=embedding,
             jf=np.abs(result["jf"]).mean(0), jf_inv_svd=np.abs(result["jf-inv-svd"]).mean(0),
             jf_convabs_inv_svd=np.abs(result["jf-convabs-inv-svd"]).mean(0),
             jf_inv_block=np.abs(per_block_inverse(np.asarray(result["jf"]))).mean(0),
             info=json.dumps(info, default=str))
    print(json.dumps(info, default=str, indent=1))


if __name__ == "__main__":
    main()
