"""One model on several animals against one model per animal (issue #30's measurements).

Data: :func:`xcebra.datasets.ratinabox_animals`: ``--animals`` simulated animals of ``--duration`` s each
(animal 0 on the real rat path of Sargolini et al. 2006, the others on simulated paths), each with its
own mix of grid, place, head-direction and speed cells, so different neuron counts; one more animal for
``adapt``. Model: the demo's architecture and objectives (offset10, 256 hidden units, 14 dims, behaviour
block 0:4 on position with ``time_delta`` positives, time objective with offset 10, cosine loss), with
``--batch-size`` references per session and ``--steps`` steps for the multi-session fit *and for each*
single-animal fit.

Measured:

- **cross-session decoding**: a kNN regressor of position on three animals' behaviour blocks, tested on
  the fourth, each animal held out in turn (R2; the model never saw the held-out animal's decoder data,
  only its recording in training);
- **per-animal hypothesis AUC**: ``ing-block`` map, behaviour block <- grid and place cells;
- **consistency** matrices of the behaviour blocks (:func:`xcebra.metrics.session_consistency`, 10 x 10
  position bins);
- **time per step**: median step of the multi-session fit against a single-animal fit with the same
  total batch (``animals x batch_size`` references), and against one recording as long as all animals
  together with that batch, each timed over ``--timing-steps`` steps;
- **adapt**: the extra animal adapted to the frozen multi-session model for each of ``--adapt-steps``
  step counts, against its own fresh fit of ``--steps`` steps: AUC, and decoding by the four animals'
  decoder (the fresh fit has no shared space, so only its within-animal decoding is comparable).

    python -m benchmarks.quality.multisession --seed 1 --out benchmarks/results/multisession_full_seed1
        # the default layout (a whole encoder per animal), both sides fitted, timings and adapt
    python -m benchmarks.quality.multisession --share-trunk yes --out benchmarks/results/multisession
        # one input layer per animal and a shared trunk
    python -m benchmarks.quality.multisession --share-trunk no --reuse-single benchmarks/results/multisession \
        --out benchmarks/results/multisession_separate_reg_full
        # the single-animal side read from an earlier run of the same settings; only the multi-session side fitted

``--reuse-single DIR`` takes every single-animal figure (decoding, AUC, consistency, the single fit's step, the
fifth animal's fresh fit) from ``DIR/multisession.json`` instead of refitting, after checking that its data,
steps, batch, learning rate, seed and map size are the same; only the multi-session side is fitted.

Writes OUT/multisession.json, OUT/multisession.md and OUT/consistency.png.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import numpy as np

from benchmarks.common import RESULTS

DEFAULT_OUT = RESULTS / "multisession"
HYPOTHESIS = {"behavior": ["grid", "place"]}


SINGLE_SIDE_SETTINGS = ("animals", "duration", "steps", "batch_size", "learning_rate", "num_samples", "seed", "data_seed")


def make_model(args: argparse.Namespace, batch_size: int | None = None, steps: int | None = None):
    import xcebra

    objectives = [xcebra.Objective("behavior", dims=(0, 4), distribution="time_delta", label="position"),
                  xcebra.Objective("time", dims=(0, 14), distribution="time", time_offset=10)]
    return xcebra.XCEBRA(objectives, model="offset10", hidden_units=256, output_dim=14, loss="cosine", temperature=1.0,
                         batch_size=batch_size or args.batch_size, max_steps=steps or args.steps,
                         learning_rate=args.learning_rate, regularizer_weight=0.1, regularizer_ramp="auto",
                         random_state=args.seed, verbose=False, num_threads=args.threads,
                         share_trunk=args.share_trunk == "yes")


def behaviour(model, neural, session=None) -> np.ndarray:
    z = model.transform(neural) if session is None else model.transform(neural, session=session)
    return z[:, dict(model.blocks_)["behavior"]]


def cross_decoding(blocks: list[np.ndarray], positions: list[np.ndarray], neighbours: int = 20) -> list[float]:
    """Held-out-animal R2 of a kNN decoder trained on the other animals' behaviour blocks."""
    from sklearn.metrics import r2_score
    from sklearn.neighbors import KNeighborsRegressor

    scores = []
    for held in range(len(blocks)):
        train = [i for i in range(len(blocks)) if i != held]
        decoder = KNeighborsRegressor(n_neighbors=neighbours).fit(np.concatenate([blocks[i] for i in train]),
                                                                 np.concatenate([positions[i] for i in train]))
        scores.append(float(r2_score(positions[held], decoder.predict(blocks[held]))))
    return scores


def within_decoding(block: np.ndarray, position: np.ndarray) -> float:
    """kNN R2 of one animal's own position from its own behaviour block, trained on the first 80% of time."""
    from sklearn.metrics import r2_score
    from sklearn.neighbors import KNeighborsRegressor

    cut = int(0.8 * len(block))
    decoder = KNeighborsRegressor(n_neighbors=20).fit(block[:cut], position[:cut])
    return float(r2_score(position[cut:], decoder.predict(block[cut:])))


def hypothesis_auc(model, neural, cell_types, args, session=None) -> float:
    from xcebra.hypotheses import test_hypothesis

    options = {} if session is None else {"session": session}
    amap = model.attribution_map(neural, method="ing-block", num_samples=args.num_samples, verbose=False, **options)
    return float(test_hypothesis(amap, cell_types, HYPOTHESIS).per_block_auc["behavior"])


def step_seconds(model) -> float:
    return float(np.median(model.log_["seconds"]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--animals", type=int, default=4)
    parser.add_argument("--duration", type=float, default=500.0)
    parser.add_argument("--steps", type=int, default=800)
    parser.add_argument("--batch-size", type=int, default=512, help="references per session and step")
    parser.add_argument("--learning-rate", type=float, default=1e-3)
    parser.add_argument("--adapt-steps", default="100,250,800")
    parser.add_argument("--timing-steps", type=int, default=40)
    parser.add_argument("--num-samples", type=int, default=2000, help="time points per attribution map")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--data-seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--quality-only", action="store_true",
                        help="decoding, AUC and consistency only: skip the step timings and adapt")
    parser.add_argument("--share-trunk", choices=("yes", "no"), default="no",
                        help="multi-session layout: a whole encoder per animal (no, the library's default), or one "
                             "input layer per animal and a shared trunk (yes)")
    parser.add_argument("--reuse-single", default=None, metavar="DIR",
                        help="read the single-animal side from DIR/multisession.json (same settings) instead of fitting")
    parser.add_argument("--out", default=str(DEFAULT_OUT))
    args = parser.parse_args()
    import torch

    import xcebra
    from xcebra.metrics import consistency_summary, session_consistency
    from xcebra.pipeline import block_consistency

    torch.set_num_threads(args.threads)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    animals = xcebra.datasets.ratinabox_animals(args.animals + 1, args.duration, seed=args.data_seed)
    extra, animals = animals[-1], animals[:-1]
    neural = [a.spikes for a in animals]
    positions = [a.position for a in animals]
    print("neurons per animal:", [x.shape[1] for x in neural], "extra:", extra.spikes.shape[1], flush=True)

    reused = read_single_side(args, [int(x.shape[1]) for x in neural]) if args.reuse_single else None
    multi = make_model(args).fit(neural, position=positions)
    print(f"multi-session fit: {time.perf_counter() - started:.0f} s", flush=True)
    multi_blocks = [behaviour(multi, x, s) for s, x in enumerate(neural)]
    result = {
        "neurons": [int(x.shape[1]) for x in neural],
        "cell_mix": [{t: int(np.sum(a.cell_types == t)) for t in ("grid", "place", "head_direction", "speed")}
                     for a in animals],
        "cross_decoding": {"multi": cross_decoding(multi_blocks, positions)},
        "within_decoding": {"multi": [within_decoding(b, p) for b, p in zip(multi_blocks, positions)]},
        "auc": {"multi": [hypothesis_auc(multi, x, a.cell_types, args, s) for s, (x, a) in enumerate(zip(neural, animals))]},
        "consistency": {"multi": block_consistency(multi, neural, positions, label_name="position").tolist()},
        "step_seconds": {"multi": step_seconds(multi)},
    }
    single_blocks = None
    if reused is None:
        singles = [make_model(args).fit(x, position=p) for x, p in zip(neural, positions)]
        print(f"single fits done: {time.perf_counter() - started:.0f} s", flush=True)
        single_blocks = [behaviour(m, x) for m, x in zip(singles, neural)]
        result["cross_decoding"]["single"] = cross_decoding(single_blocks, positions)
        result["within_decoding"]["single"] = [within_decoding(b, p) for b, p in zip(single_blocks, positions)]
        result["auc"]["single"] = [hypothesis_auc(m, x, a.cell_types, args) for m, x, a in zip(singles, neural, animals)]
        result["consistency"]["single"] = session_consistency(single_blocks, positions).tolist()
        result["step_seconds"]["single_same_batch"] = step_seconds(singles[0])
    else:
        for key in ("cross_decoding", "within_decoding", "auc", "consistency"):
            result[key]["single"] = reused[key]["single"]
        result["step_seconds"]["single_same_batch"] = reused["step_seconds"]["single_same_batch"]
    print(json.dumps({k: result[k] for k in ("cross_decoding", "auc")}, indent=1), flush=True)
    if not args.quality_only:
        fresh = (reused or {}).get("adapt", {}).get("fresh")
        if reused is not None and fresh is None:
            raise SystemExit(f"--reuse-single {args.reuse_single} has no adapt rows (a --quality-only run); "
                             "run with --quality-only too, or reuse a full run")
        timings_and_adapt(args, result, neural, positions, multi, multi_blocks, single_blocks, extra, out, fresh)
    result["settings"] = {k: v for k, v in vars(args).items() if k != "out"}
    result["machine"] = f"{platform.machine()}, {__import__('os').cpu_count()} cores, {args.threads} threads"
    result["seconds"] = time.perf_counter() - started
    (out / "multisession.json").write_text(json.dumps(result, indent=1))
    (out / "multisession.md").write_text(markdown(result, args))
    figure(result, out / "consistency.png")
    print(f"wrote {out / 'multisession.md'} ({result['seconds'] / 60:.1f} min); mean consistency multi "
          f"{consistency_summary(np.array(result['consistency']['multi'])):.3f}, single "
          f"{consistency_summary(np.array(result['consistency']['single'])):.3f}")


def read_single_side(args: argparse.Namespace, neurons: list[int]) -> dict:
    """The earlier result in ``--reuse-single``, once its single-animal side was measured with these settings."""
    path = Path(args.reuse_single) / "multisession.json"
    earlier = json.loads(path.read_text())
    differ = {k: (earlier["settings"].get(k), getattr(args, k)) for k in SINGLE_SIDE_SETTINGS
              if earlier["settings"].get(k) != getattr(args, k)}
    if differ or earlier["neurons"] != neurons:
        raise SystemExit(f"--reuse-single {path}: its single-animal side was measured with other settings "
                         f"(earlier, now): {differ or {'neurons': (earlier['neurons'], neurons)}}")
    return earlier


def timings_and_adapt(args, result, neural, positions, multi, multi_blocks, single_blocks, extra, out,
                      reused_fresh: dict | None = None) -> None:
    """The step timings and the adapt rows of ``result`` (everything but the quality measurements); the fifth
    animal's fresh fit is read from ``reused_fresh`` when given (``--reuse-single``)."""
    import xcebra

    # the same total batch in one recording: a short fit timed per step
    total = make_model(args, batch_size=args.batch_size * args.animals, steps=args.timing_steps)
    total.fit(neural[0], position=positions[0])
    result["step_seconds"]["single_total_batch"] = step_seconds(total)
    # ... and in one recording as long as all of them (a whole-sequence pass costs per frame, not per reference)
    long = make_model(args, batch_size=args.batch_size * args.animals, steps=args.timing_steps)
    long.fit(np.concatenate([x[:, :min(y.shape[1] for y in neural)] for x in neural]), position=np.concatenate(positions))
    result["step_seconds"]["single_total_length"] = step_seconds(long)
    result["step_seconds"]["multi_timed_again"] = step_seconds(
        make_model(args, steps=args.timing_steps).fit(neural, position=positions))

    fresh = None if reused_fresh is not None else make_model(args).fit(extra.spikes, position=extra.position)
    decoder_blocks, decoder_positions = multi_blocks, positions
    adapt_rows = []
    for steps in [int(s) for s in args.adapt_steps.split(",")]:
        model = xcebra.XCEBRA.load(out / "multi.xcebra") if (out / "multi.xcebra").exists() else None
        if model is None:
            multi.save(out / "multi.xcebra")
            model = xcebra.XCEBRA.load(out / "multi.xcebra")
        model.set_params(verbose=False)
        begun = time.perf_counter()
        index = model.adapt(extra.spikes, position=extra.position, max_steps=steps, random_state=args.seed)
        seconds = time.perf_counter() - begun
        block = behaviour(model, extra.spikes, index)
        scores = cross_decoding(decoder_blocks + [block], decoder_positions + [extra.position])
        adapt_rows.append({"steps": steps, "seconds": seconds, "auc": hypothesis_auc(model, extra.spikes,
                                                                                   extra.cell_types, args, index),
                           "decoding_by_fitted_animals": scores[-1],
                           "within_decoding": within_decoding(block, extra.position)})
    (out / "multi.xcebra").unlink(missing_ok=True)
    if reused_fresh is not None:
        result["adapt"] = {"neurons": int(extra.spikes.shape[1]), "rows": adapt_rows, "fresh": reused_fresh}
        return
    fresh_block = behaviour(fresh, extra.spikes)
    result["adapt"] = {"neurons": int(extra.spikes.shape[1]), "rows": adapt_rows,
                       "fresh": {"steps": args.steps, "auc": hypothesis_auc(fresh, extra.spikes, extra.cell_types, args),
                                 "within_decoding": within_decoding(fresh_block, extra.position),
                                 "decoding_by_fitted_animals": cross_decoding(
                                     single_blocks + [fresh_block], positions + [extra.position])[-1]}}


def markdown(r: dict, args: argparse.Namespace) -> str:
    from xcebra.metrics import consistency_summary

    n = len(r["neurons"])
    command = (f"python -m benchmarks.quality.multisession --animals {args.animals} --duration {args.duration:g} "
               f"--steps {args.steps} --batch-size {args.batch_size} --adapt-steps {args.adapt_steps}"
               + (f" --seed {args.seed}" if args.seed else "") + (" --quality-only" if args.quality_only else "")
               + f" --share-trunk {args.share_trunk}"
               + (f" --reuse-single {args.reuse_single}" if args.reuse_single else "") + f" --out {args.out}")
    lines = ["# One model on several animals (multi-session) against one model per animal", "",
             "Written by `benchmarks/quality/multisession.py`; command:", "", "```", command, "```", "",
             f"Machine: {r['machine']}; the whole run took {r['seconds'] / 60:.1f} min.", "",
             f"{n} RatInABox animals of {args.duration:g} s (animal 0 on the real rat path), neurons "
             f"{r['neurons']}; model offset10, 256 hidden units, 14 dims, behaviour block 0:4 on position, time "
             f"objective (offset 10), cosine; {args.steps} steps and {args.batch_size} references per session and "
             f"step, for the multi-session fit and for each single-animal fit. Multi-session layout: "
             + ("one input layer per animal and a shared trunk." if args.share_trunk == "yes" else
                "a whole encoder per animal (no shared layer).")
             + (f" The single-animal columns are read from `{args.reuse_single}` (same data and settings)."
                if args.reuse_single else ""), "",
             "| animal | grid / place / head direction / speed | cross-session kNN R2, multi | single | "
             "hypothesis AUC (ing-block), multi | single | gain |", "|---|---|---|---|---|---|---|"]
    for i in range(n):
        mix = r["cell_mix"][i]
        gain = r["auc"]["multi"][i] - r["auc"]["single"][i]
        lines.append(f"| {i} | {mix['grid']} / {mix['place']} / {mix['head_direction']} / {mix['speed']} | "
                     f"{r['cross_decoding']['multi'][i]:.3f} | {r['cross_decoding']['single'][i]:.3f} | "
                     f"{r['auc']['multi'][i]:.3f} | {r['auc']['single'][i]:.3f} | {gain:+.3f} |")
    gains = np.array(r["auc"]["multi"]) - np.array(r["auc"]["single"])
    s = r["step_seconds"]
    lines += ["", f"Median AUC gain {np.median(gains):+.3f} (worst animal {gains.min():+.3f}). Within-animal kNN R2 "
              f"(train on the first 80% of time): multi {np.round(r['within_decoding']['multi'], 3).tolist()}, single "
              f"{np.round(r['within_decoding']['single'], 3).tolist()}.", "",
              f"Consistency of the behaviour blocks (mean off-diagonal R2): multi "
              f"{consistency_summary(np.array(r['consistency']['multi'])):.3f}, single "
              f"{consistency_summary(np.array(r['consistency']['single'])):.3f} (figure: consistency.png).", ""]
    if "adapt" not in r:  # --quality-only
        return "\n".join(lines)
    lines += [f"Time per step (median): multi-session {s['multi']:.3f} s ({s['multi_timed_again']:.3f} s in a "
              f"{args.timing_steps}-step rerun); one animal with the same total batch ({n} x {args.batch_size}) "
              f"{s['single_total_batch']:.3f} s; one recording as long as all {n} together (their first neurons "
              f"concatenated in time) with that batch {s['single_total_length']:.3f} s; one animal with "
              f"{args.batch_size} references {s['single_same_batch']:.3f} s.", "",
              f"## adapt: a new animal ({r['adapt']['neurons']} neurons) on the frozen model", "",
              "| fit | steps | seconds | AUC | kNN R2 by the fitted animals' decoder | within-animal kNN R2 |",
              "|---|---|---|---|---|---|"]
    for row in r["adapt"]["rows"]:
        lines.append(f"| adapt | {row['steps']} | {row['seconds']:.0f} | {row['auc']:.3f} | "
                     f"{row['decoding_by_fitted_animals']:.3f} | {row['within_decoding']:.3f} |")
    f = r["adapt"]["fresh"]
    lines += [f"| fresh single fit | {f['steps']} | - | {f['auc']:.3f} | {f['decoding_by_fitted_animals']:.3f} "
              f"(single fits' decoder) | {f['within_decoding']:.3f} |", ""]
    return "\n".join(lines)


def figure(r: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from xcebra.viz import plot_consistency_matrix

    fig, axes = plt.subplots(1, 2, figsize=(9, 4), layout="constrained")
    for ax, key in zip(axes, ("multi", "single")):
        plot_consistency_matrix(np.array(r["consistency"][key]), ax=ax,
                                title=f"{'one model, all animals' if key == 'multi' else 'one model per animal'}")
    fig.savefig(path, dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    main()
