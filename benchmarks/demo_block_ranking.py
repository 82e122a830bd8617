"""Which neurons decide the demo's behaviour-block hypothesis AUC, and how the choice of inverse moves it.

For finished demo runs (``xcebra demo --seed S --out DIR``: the model and the cached RatInABox data), the
behaviour-block AUC of the Jacobian, the paper's ING and the per-block inverse at behaviour rank 2 and at
full numerical rank (3 on the 4-d cosine block), each on the same seeded sample of time points, and for each map the connected neurons (grid,
place) that rank lowest and the unconnected ones (head-direction, speed) that rank highest, with grid
cells labelled by module (1 = finest scale, 0.3 m). Also the position information of every cell type: the
held-out R2 of each neuron's firing rate predicted from position (kNN), which says whether the hypothesis
itself holds neuron by neuron. And how strongly the time block responds to what moves the behaviour block:
per time point, the share of the time block's squared Jacobian (Frobenius) that lies along the behaviour
block's two identified directions in neuron space (its top right singular vectors; a random pair of
directions would take 2 / N of it, 0.022 for 90 neurons). That share is the coupling the paper's ING has to
undo: when the time block also encodes position, the encoder is identified up to a block lower-triangular
map, whose inverse mixes time-latent neurons into the behaviour rows of the whole-Jacobian inverse, while
the behaviour block's own inverse stays exact for separate cell populations (tests/test_jacobian.py).
Over runs of the same length (four or more), the rank correlation between the time block's linear R2 for
position, a direct reading of that lower-left block, and each map's AUC.

    xcebra demo --seed 0 --out /tmp/demo0 && xcebra demo --seed 1 --out /tmp/demo1
    python benchmarks/demo_block_ranking.py /tmp/demo0 /tmp/demo1
    # the committed table: the runs of benchmarks/demo_seeds.py (8 seeds at 1,000 steps, 4 at 2,000)
    python benchmarks/demo_block_ranking.py benchmarks/scratch/demo_seed{0,1,2,3,4,5,6,7} \
        benchmarks/scratch/demo_seed{0,1,2,3}_steps2000

Writes benchmarks/results/demo_block_ranking.md.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
CONNECTED = ("grid", "place")


def _label(index: int, types: np.ndarray, n_grid: int, n_modules: int) -> str:
    if types[index] != "grid":
        return f"{index} {types[index]}"
    module = next(m for m, members in enumerate(np.array_split(np.arange(n_grid), n_modules)) if index in members)
    return f"{index} grid m{module + 1}"


def analyse(run: Path, n_timepoints: int, seed: int) -> dict:
    import torch
    from sklearn.metrics import roc_auc_score
    from sklearn.model_selection import cross_val_score
    from sklearn.neighbors import KNeighborsRegressor

    import xcebra
    from xcebra.attribution.compute import read_windows
    from xcebra.attribution.jacobian import block_pseudo_inverse, lag_summed_jacobian, pseudo_inverse

    summary = json.loads((run / "summary.json").read_text())
    params = summary["data"]["params"]
    rec = xcebra.datasets.ratinabox(**params)
    model = xcebra.XCEBRA.load(run / "model.xcebra")
    embedder = model.encoder_.eval()
    neural = np.asarray(rec.spikes, dtype=np.float32)
    types = np.asarray(rec.cell_types).astype(str)
    truth = np.isin(types, CONNECTED)
    behavior = dict((name, s) for name, s in model.blocks_)["behavior"]
    valid = len(neural) - embedder.window + 1
    positions = np.sort(np.random.default_rng(seed).choice(valid, min(n_timepoints, valid), replace=False))
    chunks = [lag_summed_jacobian(embedder, torch.as_tensor(read_windows(neural, positions[i:i + 512], embedder.window)))
              for i in range(0, len(positions), 512)]
    jacobian = torch.cat(chunks).detach()  # (B, D, N) float32: the pseudo-inverse cutoff follows its precision
    maps = {"Jacobian": jacobian, "ING (whole Jacobian)": pseudo_inverse(jacobian, "svd")}
    others = [None] * (len(embedder.block_slices) - 1)  # the behaviour block comes first in the demo's layout
    maps["per-block inverse, behaviour rank 2 ('ing-block' default)"] = block_pseudo_inverse(
        jacobian, embedder.block_slices, [2, *others])
    maps["per-block inverse, full numerical rank"] = block_pseudo_inverse(jacobian, embedder.block_slices, [None, *others])
    singular = torch.linalg.svdvals(jacobian[:, behavior]).median(0).values.numpy()
    identified = torch.linalg.svd(jacobian[:, behavior].double(), full_matrices=False).Vh[:, :2]  # (B, 2, N)
    time_rows = jacobian[:, behavior.stop:].double()
    coupling = ((time_rows @ identified.transpose(1, 2)).pow(2).sum((1, 2)) / time_rows.pow(2).sum((1, 2))).numpy()
    rows = []
    for name, values in maps.items():
        block = np.sqrt((values[:, behavior].abs().mean(0).numpy() ** 2).mean(0))  # as AttributionMap.block_values
        order = np.argsort(block)
        low = [i for i in order if truth[i]][:4]
        high = [i for i in order[::-1] if not truth[i]][:4]
        label = lambda i: f"{_label(i, types, params['n_grid'], params['grid_modules'])} ({block[i] / block.max():.2f})"  # noqa: E731
        rows.append({"map": name, "auc": float(roc_auc_score(truth, block)),
                     "lowest connected": ", ".join(map(label, low)), "highest unconnected": ", ".join(map(label, high))})
    step = max(1, len(rec.position) // 4000)
    info = np.array([cross_val_score(KNeighborsRegressor(20), rec.position[::step], rec.rates[::step, n], cv=3).mean()
                     for n in range(neural.shape[1])])
    groups = {t: info[types == t] for t in dict.fromkeys(types)}
    if params["n_grid"]:
        for m, members in enumerate(np.array_split(np.arange(params["n_grid"]), params["grid_modules"])):
            groups[f"grid m{m + 1}"] = info[members]
    return {"run": str(run), "seed": summary["seed"], "precision": summary["precision"],
            "demo_auc": {m: summary["attribution"][m]["block_auc"] for m in summary["attribution"]},
            "singular": singular / singular.max(), "rows": rows, "steps": summary["training"]["steps"],
            "n_neurons": int(neural.shape[1]),
            "coupling": (float(np.quantile(coupling, 0.25)), float(np.median(coupling)), float(np.quantile(coupling, 0.75))),
            "time_linear_r2": summary["decoding"]["time"]["linear_r2"],
            "info": {k: (float(v.min()), float(np.median(v)), float(v.max())) for k, v in groups.items()}}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", nargs="+", type=Path, help="output directories of `xcebra demo`")
    parser.add_argument("--timepoints", type=int, default=4000, help="time points sampled per run (default 4000)")
    parser.add_argument("--out", type=Path, default=HERE / "results" / "demo_block_ranking.md")
    args = parser.parse_args(argv)
    for run in args.runs:
        if not (run / "model.xcebra").is_file() or not (run / "summary.json").is_file():
            parser.error(f"{str(run)!r} is not a finished demo run (needs model.xcebra and summary.json)")
    import torch

    torch.set_num_threads(2)
    results = [analyse(run, args.timepoints, seed=0) for run in args.runs]
    lines = ["# The demo's behaviour-block hypothesis, neuron by neuron", "",
             f"`python benchmarks/demo_block_ranking.py {' '.join(str(r) for r in args.runs)}` "
             f"({args.timepoints} time points sampled per run, seed 0), each run made by `xcebra demo --seed S --out "
             "DIR [--steps N]` (the demo's configuration; steps per run below). Hypothesis: the behaviour block is driven "
             "by grid and place cells, not by head-direction and speed cells; AUC within the behaviour block. "
             "Neuron lists: index, type (grid module m1 = finest, 0.3 m) and block value relative to the largest.", ""]
    for res in results:
        demo = ", ".join(f"{m} {v:.3f}" for m, v in res["demo_auc"].items())
        lines += [f"## Model seed {res['seed']}, {res['steps']} steps ({res['precision']})", "",
                  f"The demo's own scores (all time points): {demo}. Median singular values of the behaviour block's "
                  "Jacobian over time, relative to the largest: " + ", ".join(f"{v:.3f}" for v in res["singular"]) + ".", "",
                  "| map | AUC | lowest-ranked connected | highest-ranked unconnected |", "|---|---|---|---|"]
        lines += [f"| {r['map']} | {r['auc']:.4f} | {r['lowest connected']} | {r['highest unconnected']} |"
                  for r in res["rows"]]
        lines += ["", "Position information per cell type (held-out kNN R2 of each firing rate from position; "
                  "min / median / max): " + "; ".join(f"{k} {a:.2f} / {b:.2f} / {c:.2f}"
                                                      for k, (a, b, c) in res["info"].items()) + ".", "",
                  "Coupling of the time block to the behaviour block's identified directions (share of its squared "
                  "Jacobian; 25% / median / 75% over time points; 2 / N = {:.3f} by chance): ".format(2 / res["n_neurons"])
                  + " / ".join(f"{v:.3f}" for v in res["coupling"])
                  + f". Time block's held-out linear R2 for position: {res['time_linear_r2']:.3f}.", ""]
    lines += ["## Coupling against the paper's ING, all runs", "",
              "| run | steps | coupling (median) | time block linear R2 | ING AUC | ing-block AUC | Jacobian AUC |",
              "|---|---|---|---|---|---|---|"]
    lines += [f"| seed {r['seed']} | {r['steps']} | {r['coupling'][1]:.3f} | {r['time_linear_r2']:.3f} | "
              f"{r['demo_auc'].get('ing', float('nan')):.3f} | {r['demo_auc'].get('ing-block', float('nan')):.3f} | "
              f"{r['demo_auc'].get('jacobian', float('nan')):.3f} |" for r in results]
    lines.append("")
    for steps in sorted({r["steps"] for r in results}):
        group = [r for r in results if r["steps"] == steps]
        if len(group) < 4:
            continue
        from scipy.stats import spearmanr

        r2 = [r["time_linear_r2"] for r in group]
        rho = {m: spearmanr(r2, [r["demo_auc"].get(m, np.nan) for r in group]) for m in ("ing", "ing-block", "jacobian")}
        lines += [f"Spearman rank correlation over the {len(group)} runs of {steps} steps between the time block's linear "
                  "R2 for position (how linearly the time block holds position: the lower-left block of L) and each "
                  "map's AUC: " + ", ".join(f"{m} {v.statistic:+.2f} (p = {v.pvalue:.3f})" for m, v in rho.items())
                  + ".", ""]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
