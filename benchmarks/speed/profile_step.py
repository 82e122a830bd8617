"""Where the time goes: torch.profiler tables of one training step and of the Jacobian, and the two
design choices measured against their straightforward alternatives.

    python -m benchmarks.speed.profile_step [--threads 2] > benchmarks/results/profile.md

1. Seed configuration (offset10, T=20,000, batch 2,500): one step embedding the step's ~10,000
   distinct time points as a batch of windows vs one pass of the encoder over the whole recording
   (what `training.embed_indices` picks here), forward + backward; and that pass with Conv1d vs one
   matrix product per kernel tap (`ConvEncoder.forward_matmuls`), in fp32 and under bf16 autocast.
2. Window Jacobians for the attribution map: `torch.func.vmap(jacrev)` vs one reverse pass per output
   dimension over the whole batch (what `attribution.jacobian.window_jacobian` does).
3. Operator tables (torch.profiler) of a seed-configuration step with the regularizer and of a step of
   the small synthetic setting (offset1 MLP, batch 512).
4. A whole fit of the small synthetic setting (600 steps), split into its training steps and the
   rest of ``XCEBRA.fit`` (set-up and post-fit work), for the bounds the estimator offers
   (``--breakdown-only`` runs just this part).
6. ``--parts`` (only this part): a 300-step fit of the small setting split by the step's parts (batch
   sampling, forward pass, InfoNCE losses, regularizer, backward pass, optimizer update; wall seconds of each
   function, wrapped), and its eager floor split into the main pass and the regularizer's pass.
5. ``--compile`` (only this part): the eager floor of the small setting's step
   (:func:`benchmarks.speed.speed.arithmetic_floor`) against the same step with its main forward and
   backward compiled by ``torch.compile``, alternated three times, with the compile time.
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np
import torch
from torch.profiler import ProfilerActivity, profile

from xcebra.attribution.jacobian import window_jacobian
from xcebra.data import sliding_windows
from xcebra.models import make_encoder
from xcebra.objectives import Embedder
from xcebra.training import embed_indices

from benchmarks.reference import reference_cebra as ref
from benchmarks.speed import speed


def timed(fn, repeats: int = 3) -> float:
    fn()
    start = time.perf_counter()
    for _ in range(repeats):
        fn()
    return (time.perf_counter() - start) / repeats


def fit_breakdown(model, data: dict) -> dict:
    """Seconds of one ``model.fit``: the training steps (the wall time of each step, which the fit logs in
    ``log_["seconds"]``) and the rest of the call (validation, encoder, sampler and its k-d tree before the
    loop; the post-fit work after it). Where the time goes inside a step is section 3's operator table."""
    start = time.perf_counter()
    model.fit(data["neural"], position=data["position"])
    total = time.perf_counter() - start
    steps = float(model.log_["seconds"].sum())
    return {"total": total, "steps": len(model.log_["seconds"]), "median_step": float(np.median(model.log_["seconds"])),
            "parts": {"training steps": steps, "outside the steps (set-up and post-fit)": total - steps},
            "lipschitz": getattr(model, "lipschitz_", model.lipschitz),
            "output_clip": getattr(model, "output_clip_", model.output_clip)}


def print_breakdowns(steps: int) -> None:
    """Section 4: the whole fit of the small synthetic setting at each bound, one column per bound."""
    data = ref.make_synthetic_data()
    speed.synthetic_model(max_steps=5).fit(data["neural"], position=data["position"])  # warm-up (allocator, MKL)
    bounds = {"defaults": {}, "lipschitz=None": dict(lipschitz=None), "lipschitz=4.0": dict(lipschitz=4.0),
              "output_clip=5.0": dict(lipschitz=None, output_clip=5.0)}
    results = {name: fit_breakdown(speed.synthetic_model(max_steps=steps, **kw), data) for name, kw in bounds.items()}
    default = results["defaults"]
    print(f"## 4. A whole {steps}-step fit of the small synthetic setting, by part (wall seconds)\n")
    print(f"Load average after: {' '.join(f'{x:.1f}' for x in os.getloadavg())}. \"defaults\" resolved to "
          f"lipschitz={default['lipschitz']}, output_clip={default['output_clip']}.\n")
    print("| part | " + " | ".join(results) + " |\n|---|" + "---|" * len(results))
    for part in default["parts"]:
        print(f"| {part} | " + " | ".join(f"{r['parts'][part]:.2f}" for r in results.values()) + " |")
    print("| **whole fit** | " + " | ".join(f"**{r['total']:.2f}**" for r in results.values()) + " |")
    print("| median step (ms) | " + " | ".join(f"{1e3 * r['median_step']:.1f}" for r in results.values()) + " |\n")


def print_compiled(rounds: int = 3) -> None:
    """Section 5: the small setting's eager floor against its main pass compiled, alternated ``rounds`` times."""
    data = ref.make_synthetic_data()
    eager, compiled = [], []
    for _ in range(rounds):
        eager.append(speed.arithmetic_floor(data, repeats=30))
        compiled.append(speed.arithmetic_floor(data, repeats=30, compiled=True))
    print("## 5. The small setting's step: eager against torch.compile (median ms per step, each round)\n")
    print("| round | eager | compiled main pass | compile time of the compiled run (s) |\n|---|---|---|---|")
    for k, (e, c) in enumerate(zip(eager, compiled)):
        print(f"| {k + 1} | {1e3 * e['median_step_seconds']:.1f} | {1e3 * c['median_step_seconds']:.1f} | "
              f"{c['compile_seconds']:.1f} |")
    print(f"\nLoad average after: {' '.join(f'{x:.1f}' for x in os.getloadavg())}.\n")


def print_parts(steps: int = 300) -> None:
    """Section 6: where a step of the small setting goes, part by part, and its floor split in two."""
    from xcebra.sampling import BatchSampler
    from xcebra.training import contrastive, loop

    seconds: dict[str, float] = {}
    targets = [(contrastive, "embed_indices", "forward pass"), (contrastive, "_losses", "InfoNCE losses"),
               (contrastive.ContrastiveTask, "_regularizer", "regularizer (forward and its vector-Jacobian product)"),
               (loop, "_backward", "backward pass (double backward of the regularizer included)"),
               (loop, "_update", "optimizer update and weight check"), (BatchSampler, "sample", "batch sampling")]
    originals = [(owner, name, getattr(owner, name)) for owner, name, _ in targets]

    def timed_call(function, part):
        def wrapper(*args, **kwargs):
            start = time.perf_counter()
            try:
                return function(*args, **kwargs)
            finally:
                seconds[part] = seconds.get(part, 0.0) + time.perf_counter() - start
        return wrapper

    data = ref.make_synthetic_data()
    speed.synthetic_model(max_steps=20).fit(data["neural"], position=data["position"])  # warm-up
    for owner, name, part in targets:
        setattr(owner, name, timed_call(getattr(owner, name), part))
    try:
        model = speed.synthetic_model(max_steps=steps)
        model.fit(data["neural"], position=data["position"])
    finally:
        for owner, name, function in originals:
            setattr(owner, name, function)
    step = float(np.median(model.log_["seconds"]))
    print(f"## 6. A step of the small synthetic setting by part ({steps}-step fit, default bound)\n")
    print(f"Median step {1e3 * step:.1f} ms; mean ms per step of each part:\n")
    print("| part | ms per step |\n|---|---|")
    for part, total in seconds.items():
        print(f"| {part} | {1e3 * total / steps:.2f} |")
    main_only = speed.arithmetic_floor(data, repeats=30, regularizer=False)
    whole = speed.arithmetic_floor(data, repeats=30)
    print("\nIts eager floor (`speed.arithmetic_floor`), median ms per step:\n")
    print("| | ms |\n|---|---|")
    print(f"| main pass only (forward and backward on the distinct rows) | {1e3 * main_only['median_step_seconds']:.1f} |")
    print(f"| main pass and the regularizer's pass (the floor) | {1e3 * whole['median_step_seconds']:.1f} |")
    print(f"\nLoad average after: {' '.join(f'{x:.1f}' for x in os.getloadavg())}.\n")


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--synthetic-steps", type=int, default=600, help="steps of the fit broken down in section 4")
    parser.add_argument("--breakdown-only", action="store_true", help="only section 4")
    parser.add_argument("--compile", action="store_true", help="only section 5 (torch.compile against eager)")
    parser.add_argument("--parts", action="store_true", help="only section 6 (a small-setting step by part)")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    print("# Where the time goes\n")
    flags = (" --breakdown-only" if args.breakdown_only else " --compile" if args.compile
             else " --parts" if args.parts else "")
    print(f"`python -m benchmarks.speed.profile_step --threads {args.threads}{flags}` on {ref.cpu_model()}; "
          f"load average before: {' '.join(f'{x:.1f}' for x in os.getloadavg())}.\n")
    if args.breakdown_only:
        print_breakdowns(args.synthetic_steps)
        return
    if args.compile:
        print_compiled()
        return
    if args.parts:
        print_parts()
        return

    data = ref.make_seed_data()
    neural = torch.from_numpy(data["neural"])
    embedder = Embedder(make_encoder("offset10", 90, 256, 14), [("behavior", slice(0, 4)), ("time", slice(4, 14))],
                        [True, True])
    index = torch.randint(5, 20_000 - 5 - 10, (10_000,), generator=torch.Generator().manual_seed(0))

    def step(mode):
        def run():
            z = embed_indices(embedder, neural, index, mode)
            z.pow(2).sum().backward()
        return run

    windows_s, sequence_s = timed(step("windows")), timed(step("sequence"))
    print("## 1. Embedding a step's time points (seed configuration, forward + backward)\n")
    print("| path | seconds |\n|---|---|")
    print(f"| batch of {len(torch.unique(index))} distinct windows | {windows_s:.3f} |")
    print(f"| whole recording in one pass | {sequence_s:.3f} |")
    print(f"\nWhole-sequence evaluation is {windows_s / sequence_s:.1f}x faster here.\n")

    encoder = embedder.encoder
    sequence = neural.T.contiguous()[None]

    def whole_pass(forward, bf16):
        def run():
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                out = forward(sequence)
            out.float().pow(2).sum().backward()
        return run

    print("## 1b. The convolutions of that pass: Conv1d against one matrix product per kernel tap\n")
    print("Forward + backward of the offset10 encoder over the whole recording (T = 20,000); "
          "`forward_matmuls` is what `ConvEncoder.forward` takes for whole sequences and under CPU autocast.\n")
    print("| precision | Conv1d (s) | one product per tap (s) |\n|---|---|---|")
    for label, bf16 in (("fp32", False), ("bf16 autocast", True)):
        print(f"| {label} | {timed(whole_pass(encoder.net, bf16)):.3f} | "
              f"{timed(whole_pass(encoder.forward_matmuls, bf16)):.3f} |")
    print()

    windows = sliding_windows(neural, 10)[:1024]

    def jacrev():
        def one(w):
            return embedder(w[None])[0, 0]
        return torch.func.vmap(torch.func.jacrev(one))(windows)

    vmap_s, loop_s = timed(jacrev, 2), timed(lambda: window_jacobian(embedder, windows), 2)
    print("## 2. Jacobians of 1,024 windows (offset10, 14 outputs)\n")
    print("| method | seconds |\n|---|---|")
    print(f"| torch.func.vmap(jacrev) | {vmap_s:.3f} |\n| one reverse pass per output dimension | {loop_s:.3f} |")
    print(f"\nThe per-dimension passes are {vmap_s / loop_s:.1f}x faster.\n")

    for title, model, d in (("seed configuration, with regularizer", speed.seed_model(max_steps=3), data),
                            ("small synthetic setting (offset1 MLP)", speed.synthetic_model(max_steps=20),
                             ref.make_synthetic_data())):
        model.fit(d["neural"], position=d["position"])
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            model.fit(d["neural"], position=d["position"])
        steps = model.max_steps
        print(f"## 3. Operators in {steps} steps of the {title}\n")
        print(f"Median step {np.median(model.log_['seconds']):.4f} s.\n")
        print("```")
        print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=12, max_name_column_width=40))
        print("```\n")
    print_breakdowns(args.synthetic_steps)


if __name__ == "__main__":
    main()
