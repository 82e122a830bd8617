"""Where the time goes: torch.profiler tables of one training step and of the Jacobian, and the two
design choices measured against their straightforward alternatives.

    python benchmarks/profile_step.py [--threads 2] > benchmarks/results/profile.md

1. Seed configuration (offset10, T=20,000, batch 2,500): one step embedding the step's ~10,000
   distinct time points as a batch of windows vs one pass of the encoder over the whole recording
   (what `training.embed_indices` picks here), forward + backward; and that pass with Conv1d vs one
   matrix product per kernel tap (`ConvEncoder.forward_matmuls`), in fp32 and under bf16 autocast.
2. Window Jacobians for the attribution map: `torch.func.vmap(jacrev)` vs one reverse pass per output
   dimension over the whole batch (what `attribution.jacobian.window_jacobian` does).
3. Operator tables (torch.profiler) of a seed-configuration step with the regularizer and of a step of
   the small synthetic setting (offset1 MLP, batch 512).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch
from torch.profiler import ProfilerActivity, profile

sys.path.insert(0, str(Path(__file__).resolve().parent))
import reference_cebra as ref  # noqa: E402
import speed  # noqa: E402

from xcebra.attribution.jacobian import window_jacobian  # noqa: E402
from xcebra.data import sliding_windows  # noqa: E402
from xcebra.models import make_encoder  # noqa: E402
from xcebra.objectives import Embedder  # noqa: E402
from xcebra.training import embed_indices  # noqa: E402


def timed(fn, repeats: int = 3) -> float:
    fn()
    start = time.perf_counter()
    for _ in range(repeats):
        fn()
    return (time.perf_counter() - start) / repeats


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    print("# Where the time goes\n")
    print(f"`python benchmarks/profile_step.py --threads {args.threads}` on {ref.cpu_model()}; "
          f"load average before: {' '.join(f'{x:.1f}' for x in __import__('os').getloadavg())}.\n")

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


if __name__ == "__main__":
    main()
