"""Speed and memory of xcebra, side by side with the reference package on the same data and machine.

    make bench                        # = python -m benchmarks.speed.speed --out benchmarks/results
    python -m benchmarks.speed.speed --no-reference --no-scaling    # our side only, quick
    python -m benchmarks.speed.speed --bounds none,lipschitz4,clip5 --repeats 2 --out /tmp/bounds
        # only the small synthetic setting (600 steps) at each bound, round-robin with the reference

Measured in one run (2 threads unless --threads):
  * the machine's dense matmul throughput (fp32 and bf16, 2048 x 2048), to state results as a
    fraction of what the hardware does;
  * the seed configuration (T=20,000 x N=90, batch 2,500, offset10 encoder with 256 units, 14 output
    dims, time_delta behaviour + time objectives): median seconds per training step without and with
    the Jacobian regularizer, FLOPs of one step (torch's FlopCounterMode), the exact attribution map
    (Jacobian + ING over all time points) and the map from 2,000 sampled time points: seconds and peak
    memory;
  * the paper's small synthetic setting (T=12,000 x N=40, offset1 MLP of the reference's width,
    batch 512, euclidean loss, regularizer 0.01): the whole fit (``XCEBRA.fit``, set-up and post-fit
    included) of 600 and of 2,000 steps, xcebra at the estimator's default bound on the embedding
    (neither ``lipschitz`` nor ``output_clip`` is passed; the bound the fit resolved is reported);
  * the reference package (cebra 0.6.1) on the same data and settings, when `make bench-env` has
    created .venv-bench (run as a subprocess: benchmarks/reference/reference_cebra.py);
  * a scaling table: time per step and per attribution map as T, N and the batch grow (--scaling).

Writes benchmarks/results/speed.{md,json} and speed_scaling.png (with --bounds: speed_bounds.{md,json}).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

import xcebra
from xcebra import Objective

from benchmarks.common import REFERENCE_PYTHON, RESULTS, run_module
from benchmarks.reference import reference_cebra as ref  # data makers and memory probe; imports no cebra

DEVICE = "cpu"


def matmul_throughput(threads: int, size: int = 2048, repeats: int = 10) -> dict:
    """Dense matmul GFLOP/s in fp32 and bf16 on this machine."""
    out = {}
    for name, dtype in (("fp32", torch.float32), ("bf16", torch.bfloat16)):
        a = torch.randn(size, size, dtype=dtype)
        b = torch.randn(size, size, dtype=dtype)
        a @ b
        start = time.perf_counter()
        for _ in range(repeats):
            a @ b
        seconds = (time.perf_counter() - start) / repeats
        out[f"{name}_gflops"] = 2 * size ** 3 / seconds / 1e9
    return out


def seed_model(**overrides) -> xcebra.XCEBRA:
    params = dict(
        objectives=[Objective("behavior", dims=(0, 4), distribution="time_delta", label="position"),
                    Objective("time", dims=(0, 14), distribution="time", time_offset=10)],
        model="offset10", hidden_units=256, output_dim=14, loss="cosine", temperature=1.0, batch_size=2500,
        learning_rate=3e-4, regularizer_weight=0.1, regularizer_ramp=None, random_state=0, verbose=False,
        device=DEVICE)
    params.update(overrides)
    return xcebra.XCEBRA(**params)


def synthetic_model(**overrides) -> xcebra.XCEBRA:
    # the reference's offset1-model-mse is an MLP of widths 30/30/10 x output_dim (180/180/60 for 6
    # outputs); ours is N -> H -> H -> H/2 -> D, and H=180 gives the same cost per frame within 10%
    params = dict(
        objectives=[Objective("behavior", dims=(0, 3), distribution="time_delta", label="position"),
                    Objective("time", dims=(0, 6), distribution="time", time_offset=10)],
        model="offset1", hidden_units=180, output_dim=6, loss="euclidean", temperature=1.0, batch_size=512,
        learning_rate=3e-4, regularizer_weight=0.01, regularizer_ramp=None, random_state=0, verbose=False,
        device=DEVICE)
    params.update(overrides)
    return xcebra.XCEBRA(**params)


#: bounds on the embedding that ``--bounds`` compares, by name: estimator parameters ({}: the estimator's default)
BOUNDS = {"default": {}, "none": dict(lipschitz=None), "lipschitz4": dict(lipschitz=4.0),
          "clip5": dict(lipschitz=None, output_clip=5.0)}


def synthetic_fit(data: dict, steps: int, **overrides) -> dict:
    """Time one whole ``fit`` of the small synthetic setting; no overrides: the estimator's default bound."""
    model = synthetic_model(max_steps=steps, **overrides)
    start = time.perf_counter()
    model.fit(data["neural"], position=data["position"])
    seconds = time.perf_counter() - start
    # the bound the default resolved to ("auto" -> lipschitz_); older estimators have only the parameters
    bound = {name: getattr(model, f"{name}_", getattr(model, name)) for name in ("lipschitz", "output_clip")}
    print(f"synthetic: {steps} steps in {seconds:.1f} s (lipschitz={bound['lipschitz']}, "
          f"output_clip={bound['output_clip']})", file=sys.stderr)
    return {"steps": steps, "fit_seconds": seconds, "median_step_seconds": float(np.median(model.log_["seconds"])),
            **bound}


def arithmetic_floor(data: dict, repeats: int = 50, compiled: bool = False, regularizer: bool = True) -> dict:
    """Seconds of one step's network arithmetic in eager PyTorch, without anything around it.

    The network of :func:`synthetic_model` with no bound (plain ``nn.Linear`` layers), forward and backward on
    the distinct rows among as many random time points as a step draws (reference, negative and one positive
    per objective: (2 + objectives) x batch) plus the Jacobian regularizer's pass on its rows (forward, vector-Jacobian
    product and its double backward): no sampling, no InfoNCE, no optimizer, no spectral normalisation, no
    logging. A training step that runs these operations in eager fp32 PyTorch cannot be faster than this
    median, so ``reference fit / (steps x floor)`` bounds the speed-up such an implementation reaches on this
    machine; going below it takes less arithmetic (fewer rows, a cheaper regularizer) or fused kernels.

    ``compiled=True`` runs the main forward and backward through ``torch.compile`` (inductor; the regularizer's
    double backward stays eager, which compiled graphs do not support) and adds ``compile_seconds``, the first
    step's time, to the result. ``regularizer=False`` leaves the regularizer's pass out (the main pass alone).
    """
    from xcebra.models import Embedder, make_encoder
    from xcebra.regularizers import jacobian_penalty

    model = synthetic_model()
    neural = torch.from_numpy(np.asarray(data["neural"], dtype=np.float32))
    encoder = make_encoder(model.model, neural.shape[1], model.hidden_units, model.output_dim)
    # the regularizer's row weights: how many objectives see each embedding dimension, as in training
    coverage = torch.zeros(model.output_dim)
    for objective in model.objectives:
        coverage[slice(*objective.dims)] += 1
    # the blocks' layout does not change the arithmetic (euclidean: no normalisation), only the width does
    embedder = Embedder(encoder, [("embedding", slice(0, model.output_dim))], [False])
    generator = torch.Generator().manual_seed(0)
    n_rows = (2 + len(model.objectives)) * model.batch_size
    n_regularized = min(model.regularizer_batch_size or model.batch_size, model.batch_size)
    main_pass = torch.compile(embedder, dynamic=True) if compiled else embedder

    def one_step() -> None:
        # each distinct time point once, as the training step embeds them
        rows = torch.unique(torch.randint(0, neural.shape[0], (n_rows,), generator=generator))
        windows = neural.index_select(0, rows)[:, :, None]
        regularized = windows[:n_regularized].clone().requires_grad_(True)
        embedder.zero_grad(set_to_none=True)
        objective = main_pass(windows)[:, 0].square().mean()  # a stand-in for the losses
        if regularizer:
            penalty = jacobian_penalty(embedder(regularized)[:, 0], regularized, row_weights=coverage,
                                       generator=generator)
            objective = objective + model.regularizer_weight * penalty
        objective.backward()

    start = time.perf_counter()
    one_step()
    first = time.perf_counter() - start
    for _ in range(4):
        one_step()
    seconds = []
    for _ in range(repeats):
        start = time.perf_counter()
        one_step()
        seconds.append(time.perf_counter() - start)
    result = {"rows": n_rows, "regularized_rows": n_regularized, "median_step_seconds": statistics.median(seconds),
              "step_seconds": seconds}
    return {**result, "compile_seconds": first} if compiled else result


def step_seconds(model: xcebra.XCEBRA, data: dict, steps: int, warmup: int = 2) -> list[float]:
    model.set_params(max_steps=warmup + steps)
    model.fit(data["neural"], position=data["position"])
    return [float(s) for s in model.log_["seconds"][warmup:]]


def step_flops(model: xcebra.XCEBRA, data: dict) -> float:
    """FLOPs of one training step, counted by torch's FlopCounterMode.

    The counter cannot trace the regularizer's ``autograd.grad`` on a leaf, so the step is counted
    without it, and the regularizer's share is estimated as 5 forward passes of its windows (forward,
    vector-Jacobian product and its double backward, each about as costly as 1-2 forwards).
    """
    from torch.utils.flop_counter import FlopCounterMode

    from xcebra.models import ConvEncoder

    weight = model.regularizer_weight
    model.set_params(max_steps=1, regularizer_weight=0.0)
    # the counter does not see the in-place products (baddbmm_) of the tap-wise convolution the whole-
    # sequence pass uses, so the step is counted with Conv1d, which does the same multiply-adds
    built_layout = ConvEncoder._is_built_layout
    ConvEncoder._is_built_layout = lambda self: False
    try:
        with FlopCounterMode(display=False) as counter:
            model.fit(data["neural"], position=data["position"])
    finally:
        ConvEncoder._is_built_layout = built_layout
    flops = float(counter.get_total_flops())
    model.set_params(regularizer_weight=weight)
    if weight > 0:
        encoder = model.encoder_
        n_windows = min(model.regularizer_batch_size or model.batch_size, model.batch_size)
        windows = torch.randn(n_windows, data["neural"].shape[1], encoder.window, device=next(encoder.parameters()).device)
        with FlopCounterMode(display=False) as counter, torch.no_grad():
            encoder(windows)
        flops += 5 * float(counter.get_total_flops())
    return flops


def attribution_run(model: xcebra.XCEBRA, neural: np.ndarray, **kwargs) -> dict:
    with ref.PeakMemory() as memory:
        start = time.perf_counter()
        amap = model.attribution_map(neural, method="ing", verbose=False, **kwargs)
        seconds = time.perf_counter() - start
    return {"seconds": seconds, "peak_increase_bytes": memory.peak_increase, "map": amap}


def fresh_process_memory(model: xcebra.XCEBRA, neural: np.ndarray, threads: int) -> dict:
    """Peak resident memory of the exact map in a new process (after it loaded the model and the data).

    Measured in the training process, the map reuses memory the training steps left in the allocator's
    heap, so its increase there reads as ~0; a fresh process shows what the map itself needs.
    """
    with tempfile.TemporaryDirectory() as tmp:
        model_path, data_path = Path(tmp) / "model.xcebra", Path(tmp) / "neural.npy"
        model.save(model_path)
        np.save(data_path, neural)
        done = run_module("benchmarks.speed.speed", "--attribution-memory", model_path, data_path,
                          "--threads", threads, capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def _measure_attribution_memory(model_path: str, data_path: str) -> None:
    model = xcebra.XCEBRA.load(model_path)
    neural = np.load(data_path)
    with ref.PeakMemory() as memory:
        model.attribution_map(neural, method="ing", verbose=False)
    print(json.dumps({"rss_before_bytes": memory.rss_before, "peak_rss_bytes": memory.peak_rss,
                      "peak_increase_bytes": memory.peak_increase}))


def run_reference(setting: str, data_path: Path, threads: int, steps: int | None) -> dict | None:
    if not REFERENCE_PYTHON.exists():
        print("reference: .venv-bench not found (run `make bench-env`); skipping", file=sys.stderr)
        return None
    out = data_path.with_suffix(f".{setting}{'' if steps is None else f'-{steps}'}.json")
    arguments = ["--data", data_path, "--setting", setting, "--out", out, "--threads", threads, "--no-progress"]
    if steps is not None:
        arguments += ["--steps", steps]
    print("reference:", REFERENCE_PYTHON, "-m benchmarks.reference.reference_cebra", *arguments, file=sys.stderr)
    run_module("benchmarks.reference.reference_cebra", *arguments, python=REFERENCE_PYTHON, check=True,
               env={**os.environ, "OMP_NUM_THREADS": str(threads)})
    return json.loads(out.read_text())


def scaling(threads: int, steps: int) -> list[dict]:
    """Seconds per step and per attribution map (2,000 sampled points) as T, N and the batch grow."""
    rows = []
    grid = ([("T", t, dict(num_timepoints=t)) for t in (10_000, 50_000, 200_000)]
            + [("N", n, dict(num_neurons=n)) for n in (50, 200, 1000)]
            + [("batch", b, {}) for b in (512, 2048, 8192)])
    for axis, value, shape in grid:
        data = ref.make_seed_data(**shape)
        batch = value if axis == "batch" else 2500
        model = seed_model(batch_size=batch)
        seconds = step_seconds(model, data, steps, warmup=1)
        attribution = attribution_run(model, data["neural"], num_samples=2000)
        rows.append({"axis": axis, "value": value, "T": len(data["neural"]), "N": data["neural"].shape[1],
                     "batch": batch, "step_seconds": statistics.median(seconds),
                     "attribution_2000_seconds": attribution["seconds"]})
        print(f"scaling {axis}={value}: {rows[-1]['step_seconds']:.3f} s/step, "
              f"attribution(2000) {attribution['seconds']:.2f} s", file=sys.stderr)
    return rows


def plot_scaling(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    fig = Figure(figsize=(12, 3.6), layout="constrained")
    for ax, axis, label in zip(fig.subplots(1, 3), ("T", "N", "batch"),
                               ("time points T", "neurons N", "batch size")):
        sel = [r for r in rows if r["axis"] == axis]
        x = [r["value"] for r in sel]
        ax.loglog(x, [r["step_seconds"] for r in sel], "o-", label="training step")
        ax.loglog(x, [r["attribution_2000_seconds"] for r in sel], "s-", label="ING map, 2,000 points")
        ax.set_xlabel(label)
        ax.set_ylabel("seconds")
        ax.grid(True, which="both", alpha=0.3)
        ax.set_title(f"scaling with {label}")
    fig.axes[0].legend()
    fig.savefig(path, dpi=120)


def bounds_side_by_side(args) -> None:
    """The small synthetic setting's whole fit at each bound of ``--bounds``, next to the reference.

    Round-robin ``--repeats`` times (every bound, then the reference, then again), so that a machine whose
    load drifts weighs on all of them alike; medians are reported, with every value and the load average.
    Writes speed_bounds.{json,md} in --out.
    """
    names = args.bounds.split(",")
    unknown = sorted(set(names) - set(BOUNDS))
    if unknown:
        raise SystemExit(f"--bounds: unknown {unknown}; choose from {sorted(BOUNDS)}")
    data = ref.make_synthetic_data()
    synthetic_model(max_steps=5).fit(data["neural"], position=data["position"])  # warm-up: allocator, MKL
    runs = {name: [] for name in names}
    reference, floors = [], []
    load = {"before": os.getloadavg()}
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "synthetic.npz"
        np.savez(path, **data)
        for _ in range(args.repeats):
            floors.append(arithmetic_floor(data)["median_step_seconds"])
            for name in names:
                runs[name].append(synthetic_fit(data, args.synthetic_short_steps, **BOUNDS[name]))
            if not args.no_reference:
                reference.append(run_reference("synthetic", path, args.threads, args.synthetic_short_steps))
    load["after"] = os.getloadavg()
    result = {"machine": {"cpu": ref.cpu_model(), "threads": args.threads, "torch": torch.__version__,
                          "xcebra": xcebra.__version__, "load_average": load},
              "steps": args.synthetic_short_steps, "xcebra": runs, "reference": [r["fit_seconds"] for r in reference if r],
              "floor_step_seconds": floors}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "speed_bounds.json").write_text(json.dumps(result, indent=2, default=float))
    (args.out / "speed_bounds.md").write_text(render_bounds(result))
    print((args.out / "speed_bounds.md").read_text())


def render_bounds(result: dict) -> str:
    m, steps = result["machine"], result["steps"]
    theirs = statistics.median(result["reference"]) if result["reference"] else None
    lines = [f"# Small synthetic setting: whole {steps:,}-step fit by bound on the embedding", "",
             f"`python -m benchmarks.speed.speed --bounds ...` on {m['cpu']}, {m['threads']} threads, torch {m['torch']}; "
             f"load average {' / '.join(f'{x:.1f}' for x in m['load_average']['before'])} before and "
             f"{' / '.join(f'{x:.1f}' for x in m['load_average']['after'])} after. Medians of "
             f"{len(next(iter(result['xcebra'].values())))} round-robin runs; every run in brackets.", "",
             "| xcebra bound | lipschitz | output_clip | xcebra (s) | cebra 0.6.1 (s) | speed-up |", "|---|---|---|---|---|---|"]
    reference_text = (f"{theirs:.1f} [{', '.join(f'{x:.1f}' for x in result['reference'])}]" if theirs else "not measured")
    for name, fits in result["xcebra"].items():
        seconds = [f["fit_seconds"] for f in fits]
        ours = statistics.median(seconds)
        lines.append(f"| {name} | {fits[0]['lipschitz']} | {fits[0]['output_clip']} | {ours:.1f} "
                     f"[{', '.join(f'{x:.1f}' for x in seconds)}] | {reference_text} | "
                     + (f"**{theirs / ours:.1f}x** |" if theirs else " |"))
    if result.get("floor_step_seconds"):
        lines += ["", _floor_sentence(statistics.median(result["floor_step_seconds"]), steps, theirs,
                                      statistics.median(f["median_step_seconds"] for f in next(iter(result["xcebra"].values()))))]
    return "\n".join(lines) + "\n"


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device", default="cpu", help="cpu, cuda or auto (the reference side always runs on the CPU)")
    parser.add_argument("--steps", type=int, default=10, help="measured steps per setting (after 2 warm-up steps)")
    parser.add_argument("--synthetic-steps", type=int, default=2000)
    parser.add_argument("--synthetic-short-steps", type=int, default=600,
                        help="steps of the second, shorter fit of the small synthetic setting (both sides)")
    parser.add_argument("--reference-steps", type=int, default=None, help="measured steps on the reference side")
    parser.add_argument("--no-reference", action="store_true")
    parser.add_argument("--bounds", metavar="NAMES",
                        help="only the small synthetic setting (--synthetic-short-steps steps) at each of these bounds, "
                             f"comma-separated from {', '.join(BOUNDS)}, next to the reference; writes speed_bounds.md")
    parser.add_argument("--repeats", type=int, default=1, help="--bounds: round-robin repetitions")
    parser.add_argument("--no-scaling", action="store_true")
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--attribution-memory", nargs=2, metavar=("MODEL", "NEURAL_NPY"), help=argparse.SUPPRESS)
    parser.add_argument("--render", type=Path, metavar="JSON",
                        help="only rewrite speed.md in --out from a speed.json this script wrote (no measurement)")
    args = parser.parse_args(argv)
    if args.render:
        (args.out / "speed.md").write_text(render_markdown(json.loads(args.render.read_text())))
        return
    torch.set_num_threads(args.threads)
    if args.attribution_memory:
        _measure_attribution_memory(*args.attribution_memory)
        return
    global DEVICE
    DEVICE = args.device
    if args.bounds:
        bounds_side_by_side(args)
        return
    args.out.mkdir(parents=True, exist_ok=True)
    result = {"machine": {"cpu": ref.cpu_model(), "device": args.device, "threads": args.threads, "torch": torch.__version__,
                          "xcebra": xcebra.__version__, "python": platform.python_version(),
                          **matmul_throughput(args.threads)}}
    print(f"matmul: {result['machine']['fp32_gflops']:.0f} GFLOP/s fp32, {result['machine']['bf16_gflops']:.0f} bf16",
          file=sys.stderr)

    seed_data = ref.make_seed_data()
    seed = {}
    for label, weight in (("no_regularizer", 0.0), ("regularizer", 0.1)):
        times = step_seconds(seed_model(regularizer_weight=weight), seed_data, args.steps)
        flops = step_flops(seed_model(regularizer_weight=weight), seed_data)
        seed[label] = {"median_step_seconds": statistics.median(times), "step_seconds": times, "step_flops": flops,
                       "fraction_of_fp32_peak": flops / statistics.median(times) / 1e9 / result["machine"]["fp32_gflops"]}
        print(f"seed {label}: {seed[label]['median_step_seconds']:.3f} s/step, {flops / 1e9:.0f} GFLOP/step", file=sys.stderr)
    for label, weight in (("bf16_no_regularizer", 0.0), ("bf16_regularizer", 0.1)):
        times = step_seconds(seed_model(regularizer_weight=weight, precision="bf16"), seed_data, args.steps)
        seed[label] = {"median_step_seconds": statistics.median(times), "step_seconds": times}
        print(f"seed {label}: {seed[label]['median_step_seconds']:.3f} s/step", file=sys.stderr)
    model = seed_model(max_steps=1)
    model.fit(seed_data["neural"], position=seed_data["position"])
    exact = attribution_run(model, seed_data["neural"])
    sampled = attribution_run(model, seed_data["neural"], num_samples=2000)
    relative = np.abs(sampled["map"].values - exact["map"].values) / exact["map"].values.mean()
    seed["attribution_exact"] = {k: v for k, v in exact.items() if k != "map"}
    seed["attribution_exact"]["fresh_process"] = fresh_process_memory(model, seed_data["neural"], args.threads)
    seed["attribution_2000"] = {k: v for k, v in sampled.items() if k != "map"}
    seed["attribution_2000"]["max_relative_deviation"] = float(relative.max())
    seed["attribution_2000"]["mean_stderr_relative"] = float(sampled["map"].stderr.mean() / sampled["map"].values.mean())
    print(f"seed attribution: exact {exact['seconds']:.1f} s, {exact['peak_increase_bytes'] / 1e9:.2f} GB; "
          f"2000 points {sampled['seconds']:.2f} s", file=sys.stderr)
    result["seed"] = seed

    syn_data = ref.make_synthetic_data()
    result["synthetic_short"] = synthetic_fit(syn_data, args.synthetic_short_steps)
    result["synthetic"] = synthetic_fit(syn_data, args.synthetic_steps)
    result["synthetic"]["step_flops"] = step_flops(synthetic_model(), syn_data)
    result["synthetic_floor"] = arithmetic_floor(syn_data)

    if not args.no_reference:
        with tempfile.TemporaryDirectory() as tmp:
            seed_path, syn_path = Path(tmp) / "seed.npz", Path(tmp) / "synthetic.npz"
            np.savez(seed_path, **seed_data)
            np.savez(syn_path, **syn_data)
            result["reference_seed"] = run_reference("seed", seed_path, args.threads, args.reference_steps)
            result["reference_synthetic"] = run_reference("synthetic", syn_path, args.threads, args.synthetic_steps)
            result["reference_synthetic_short"] = run_reference("synthetic", syn_path, args.threads,
                                                                args.synthetic_short_steps)
    if not args.no_scaling:
        result["scaling"] = scaling(args.threads, steps=3)
        plot_scaling(result["scaling"], args.out / "speed_scaling.png")
    (args.out / "speed.json").write_text(json.dumps(result, indent=2, default=float))
    (args.out / "speed.md").write_text(render_markdown(result, args))
    print((args.out / "speed.md").read_text())


def _bound_sentence(synthetic: dict) -> str:
    """Which bound on the embedding the small synthetic rows' xcebra fits used (the estimator's default)."""
    if "lipschitz" not in synthetic:  # a speed.json from before the bound was recorded
        return "The small synthetic rows ran xcebra at the estimator's defaults (bound not recorded)."
    lipschitz, clip = synthetic["lipschitz"], synthetic["output_clip"]
    parts = ([f"lipschitz={lipschitz:g} (every weight spectrally normalised, output scaled by {lipschitz:g})"]
             if lipschitz is not None else []) + ([f"output_clip={clip:g} (hard clip of every output)"]
                                                  if clip is not None else [])
    bound = " and ".join(parts) if parts else "no bound (lipschitz=None, output_clip=None)"
    return (f"The small synthetic rows ran xcebra at the estimator's default bound on the embedding: {bound}; "
            "the reference runs its offset1-model-mse, which has none.")


def _floor_sentence(floor: float, steps: int, reference_seconds: float | None, step_seconds: float) -> str:
    """What the arithmetic floor (:func:`arithmetic_floor`) of a step says about the speed-up that can be reached."""
    text = (f"Eager floor of one step (`arithmetic_floor`: forward and backward of the bare network on the rows a "
            f"step embeds plus the regularizer's pass, in eager fp32 PyTorch, nothing else): {1e3 * floor:.1f} ms, "
            f"against a median training step of {1e3 * step_seconds:.1f} ms in the fits above; {steps:,} steps of it "
            f"take {steps * floor:.1f} s.")
    if reference_seconds:
        text += (f" Against the reference's {reference_seconds:.1f} s, a step made of these operations reaches at most "
                 f"{reference_seconds / (steps * floor):.1f}x on this machine, with zero overhead around them.")
    return text


def render_markdown(result: dict, args=None) -> str:
    m, s = result["machine"], result["seed"]
    bf16_fraction = (s["no_regularizer"]["step_flops"] / s["bf16_no_regularizer"]["median_step_seconds"] / 1e9
                     / m["bf16_gflops"]) if "bf16_no_regularizer" in s else None
    reference_total = ((result.get("reference_seed") or {}).get("no_regularizer") or {}).get("median_total_seconds")
    reference_fraction = 200.0 / reference_total / m["fp32_gflops"] if reference_total else None
    lines = ["# Speed and memory", "",
             f"`python -m benchmarks.speed.speed` on {m['cpu']} (device {m.get('device', 'cpu')}), {m['threads']} threads, torch {m['torch']}. "
             f"Dense matmul in the same run: {m['fp32_gflops']:.0f} GFLOP/s fp32, {m['bf16_gflops']:.0f} GFLOP/s bf16.", ""]
    rs, ry = result.get("reference_seed"), result.get("reference_synthetic")
    lines += ["| measurement | xcebra | cebra 0.6.1 | speed-up |", "|---|---|---|---|"]

    def row(name, ours, theirs, unit="s", fmt="{:.3f}"):
        if theirs is None:
            lines.append(f"| {name} | {fmt.format(ours)} {unit} | not measured | |")
        else:
            lines.append(f"| {name} | {fmt.format(ours)} {unit} | {fmt.format(theirs)} {unit} | **{theirs / ours:.1f}x** |")

    # the reference's step time includes drawing the batch (its loader samples inside the loop), as ours does
    row("seed config: training step, no regularizer (median)", s["no_regularizer"]["median_step_seconds"],
        ((rs or {}).get("no_regularizer") or {}).get("median_total_seconds"))
    row("seed config: training step, with regularizer (median)", s["regularizer"]["median_step_seconds"],
        ((rs or {}).get("with_regularizer") or {}).get("median_total_seconds"))
    row("seed config, precision='bf16': training step, no regularizer", s["bf16_no_regularizer"]["median_step_seconds"],
        ((rs or {}).get("no_regularizer") or {}).get("median_total_seconds"))
    row("seed config, precision='bf16': training step, with regularizer", s["bf16_regularizer"]["median_step_seconds"],
        ((rs or {}).get("with_regularizer") or {}).get("median_total_seconds"))
    ref_attr = (rs or {}).get("attribution") or {}
    row("seed config: exact Jacobian + ING map, 20,000 points", s["attribution_exact"]["seconds"], ref_attr.get("seconds"), fmt="{:.1f}")
    row("seed config: ING map from 2,000 sampled points", s["attribution_2000"]["seconds"], ref_attr.get("seconds"), fmt="{:.2f}")
    mem = ref_attr.get("memory", {}).get("peak_increase_bytes")
    ours = s["attribution_exact"]["fresh_process"]["peak_increase_bytes"]
    lines.append(f"| seed config: attribution peak memory (exact map; peak RSS increase, ours in a fresh process) | "
                 f"{ours / 1e9:.2f} GB | "
                 + (f"{mem / 1e9:.2f} GB | {mem / max(ours, 1):.1f}x less |" if mem else "not measured | |"))
    short = result.get("synthetic_short")
    if short:
        row(f"small synthetic setting: whole {short['steps']:,}-step fit", short["fit_seconds"],
            (result.get("reference_synthetic_short") or {}).get("fit_seconds"), fmt="{:.1f}")
    row(f"small synthetic setting: whole {result['synthetic']['steps']:,}-step fit", result["synthetic"]["fit_seconds"],
        (ry or {}).get("fit_seconds"), fmt="{:.1f}")
    if "synthetic_floor" in result and short:
        lines += ["", _floor_sentence(result["synthetic_floor"]["median_step_seconds"], short["steps"],
                                      (result.get("reference_synthetic_short") or {}).get("fit_seconds"),
                                      short["median_step_seconds"])]
    lines += ["", _bound_sentence(result["synthetic"]), "",
              f"One seed-config step is {s['no_regularizer']['step_flops'] / 1e9:.0f} GFLOP without and "
              f"{s['regularizer']['step_flops'] / 1e9:.0f} GFLOP with the regularizer (counted by torch), i.e. "
              f"{100 * s['no_regularizer']['fraction_of_fp32_peak']:.0f}% / {100 * s['regularizer']['fraction_of_fp32_peak']:.0f}% "
              "of the fp32 matmul throughput measured above (the counter also counts work the backward pass skips, "
              "such as the first layer's input gradient, so these fractions are upper bounds)."
              + (f" In bf16 the same arithmetic runs at {100 * bf16_fraction:.0f}% of the bf16 matmul throughput: there the "
                 "element-wise work (GELU and its backward, losses, casts) dominates." if bf16_fraction else "")
              + (f" The reference's step evaluates ~10,000 windows separately (~200 GFLOP with backward): "
                 f"{100 * reference_fraction:.0f}% of the fp32 matmul throughput at its measured step time (sampling "
                 "with a dense distance matrix included)." if reference_fraction else ""),
              f"The 2,000-point map deviates from the exact one by at most {100 * s['attribution_2000']['max_relative_deviation']:.1f}% "
              f"of the map's mean value (its reported standard error is {100 * s['attribution_2000']['mean_stderr_relative']:.1f}% of it on average).",
              ""]
    if "scaling" in result:
        lines += ["## Scaling (seed configuration; step = median of 3; map = ING from 2,000 sampled points)", "",
                  "| varied | T | N | batch | s / step | s / map |", "|---|---|---|---|---|---|"]
        lines += [f"| {r['axis']} | {r['T']} | {r['N']} | {r['batch']} | {r['step_seconds']:.3f} | {r['attribution_2000_seconds']:.2f} |"
                  for r in result["scaling"]]
        lines += ["", "![scaling](speed_scaling.png)", ""]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
