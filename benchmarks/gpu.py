"""One prepared run on a GPU machine: is the CUDA path correct, and how fast is it next to the reference?

Run where the GPU is, from the repository root, with the wheels that machine lacks (`make gpu-wheels`
fetches them here into `.whl/`; benchmarks/README.md, "On a GPU", has the whole command):

    python3 -m benchmarks.gpu --out benchmarks/results             # the full run, under 8 minutes on one H100
    python3 -m benchmarks.gpu --device cpu --quick --out /tmp/gpu  # a dry run of every step, on a CPU

In one process and one run, on one card:
1. the machine: device name, torch and CUDA versions, clocks (``nvidia-smi``);
2. the tests marked ``cuda`` (tests/test_cuda.py: training, transform, maps, save on the GPU and load on
   the CPU, bf16 against fp32), with ``XCEBRA_TEST_DEVICE`` set to ``--device``;
3. xcebra on the seed configuration's data shape (T = 20,000 x N = 90, the data maker the speed benchmark
   shares with the reference side): the median training step in fp32 and bf16, with and without the
   regularizer; the whole 1,000-step fit; the exact Jacobian and ING maps of all 20,000 time points; the
   ING map of 10^6 x 90 (the recording tiled);
4. the reference package (cebra 0.6.1) on the same data, the same card and the same steps, as a child
   process (benchmarks/reference/reference_cebra.py with ``--device``): fp32 steps with and without the
   regularizer, the whole fit and its Jacobian map. It has no bf16 path.

Writes OUT/gpu.md and OUT/gpu.json. Every time on the GPU is taken after ``torch.cuda.synchronize()``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

import xcebra

from benchmarks.common import REPO, SCRATCH, run_module
from benchmarks.reference import reference_cebra as ref
from benchmarks.speed.speed import seed_model

#: the seed notebook's training length
DEMO_STEPS = 1000


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def _timed(device: str, work, *args, **kwargs) -> tuple[float, object]:
    _sync(device)
    start = time.perf_counter()
    result = work(*args, **kwargs)
    _sync(device)
    return time.perf_counter() - start, result


def machine(device: str) -> dict:
    """What ran: versions, the device and (on NVIDIA) its clocks now."""
    info = {"torch": torch.__version__, "cuda": torch.version.cuda, "device": device, "python": sys.version.split()[0],
            "xcebra": xcebra.__version__, "cpu": ref.cpu_model()}
    if device.startswith("cuda"):
        props = torch.cuda.get_device_properties(0)
        info.update(name=props.name, memory_gib=round(props.total_memory / 2 ** 30, 1),
                    capability=f"{props.major}.{props.minor}", multiprocessors=props.multi_processor_count)
        try:
            query = "name,driver_version,clocks.sm,clocks.max.sm,clocks.mem,power.draw"
            info["nvidia_smi"] = subprocess.run(["nvidia-smi", f"--query-gpu={query}", "--format=csv"],
                                                capture_output=True, text=True, timeout=30).stdout.strip()
        except (OSError, subprocess.SubprocessError) as error:
            info["nvidia_smi"] = f"unavailable: {error}"
    return info


def cuda_tests(device: str) -> dict:
    """tests/test_cuda.py on ``device``; its exit code and summary line."""
    env = {**os.environ, "XCEBRA_TEST_DEVICE": device.split(":")[0]}
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-m", "cuda", "-p", "no:cacheprovider",
                           str(REPO / "tests" / "test_cuda.py")], cwd=REPO, env=env, capture_output=True, text=True)
    lines = done.stdout.strip().splitlines()
    return {"returncode": done.returncode, "summary": lines[-1] if lines else done.stderr[-500:],
            "seconds": time.perf_counter() - start, "failures": [ln for ln in lines if ln.startswith("FAILED")]}


def xcebra_side(data: dict, device: str, steps: int, demo_steps: int, big_rows: int, **small) -> dict:
    """Median step in four arithmetic settings, the whole fit, and the maps (seconds).

    ``small``: parameter overrides of the seed configuration for a dry run (e.g. a smaller batch).
    """
    out: dict = {"steps": {}}
    for precision in ("fp32", "bf16"):
        for weight in (0.0, 0.1):
            model = seed_model(device=device, precision=precision, regularizer_weight=weight,
                               max_steps=steps + 3, **small)
            model.fit(data["neural"], position=data["position"])
            step = statistics.median(model.log_["seconds"][3:])
            out["steps"][f"{precision}, regularizer {'on' if weight else 'off'}"] = step
            print(f"xcebra {precision} regularizer={weight}: median step {step * 1e3:.2f} ms", file=sys.stderr)
    model = seed_model(device=device, max_steps=demo_steps, regularizer_ramp="auto", **small)  # the seed's ramp
    out["fit_seconds"], _ = _timed(device, model.fit, data["neural"], position=data["position"])
    out["fit_steps"] = demo_steps
    for method in ("jacobian", "ing"):
        out[f"{method}_map_seconds"], _ = _timed(device, model.attribution_map, data["neural"], method=method,
                                                 verbose=False)
    tiles = -(-big_rows // len(data["neural"]))
    big = np.tile(data["neural"], (tiles, 1))[:big_rows]
    out["big_map_rows"] = big_rows
    out["big_map_seconds"], big_map = _timed(device, model.attribution_map, big, method="ing", verbose=False)
    out["big_map_finite"] = bool(np.isfinite(big_map.values).all())
    return out


def reference_side(data_path: Path, device: str, steps: int, demo_steps: int) -> dict | None:
    """The reference package as a child process on the same card; None where cebra is not installed."""
    probe = subprocess.run([sys.executable, "-c", "import cebra"], capture_output=True)
    if probe.returncode != 0:
        print("reference: cebra is not importable here; skipping (see `make gpu-wheels`)", file=sys.stderr)
        return None
    out = data_path.with_suffix(".reference.json")
    run_module("benchmarks.reference.reference_cebra", "--data", data_path, "--setting", "seed", "--device", device,
               "--steps", steps, "--whole-fit-steps", demo_steps, "--out", out, check=True)
    record = json.loads(out.read_text())
    return {"steps": {"fp32, regularizer off": record["no_regularizer"]["median_total_seconds"],
                      "fp32, regularizer on": record["with_regularizer"]["median_total_seconds"]},
            "fit_seconds": record.get("whole_fit", {}).get("seconds"),
            "jacobian_map_seconds": record.get("attribution", {}).get("seconds"), "cebra": record["cebra_version"]}


def render(result: dict) -> str:
    m, ours, theirs = result["machine"], result["xcebra"], result["reference"] or {}
    head = (f"# On a GPU\n\n`python3 -m benchmarks.gpu` on {m.get('name', m['device'])} (torch {m['torch']}, "
            f"CUDA {m['cuda']}); data: T = 20,000 x N = 90, the seed configuration.\n\n"
            f"CUDA tests (`pytest -m cuda`): {result['tests']['summary']}\n\n")
    rows = ["| measure | xcebra | cebra 0.6.1 | ratio |", "|---|---|---|---|"]

    def row(name: str, mine: float | None, other: float | None, unit: str = "s") -> None:
        scale = 1e3 if unit == "ms" else 1.0
        cells = [f"{v * scale:.3g} {unit}" if v is not None else "n/a" for v in (mine, other)]
        ratio = f"{other / mine:.1f}x" if mine and other else ""
        rows.append(f"| {name} | {cells[0]} | {cells[1]} | {ratio} |")

    for name, seconds in ours["steps"].items():
        row(f"training step, {name}", seconds, theirs.get("steps", {}).get(name), "ms")
    row(f"whole fit, {ours['fit_steps']:,} steps", ours["fit_seconds"], theirs.get("fit_seconds"))
    row("Jacobian map, 20,000 x 90", ours["jacobian_map_seconds"], theirs.get("jacobian_map_seconds"))
    row("ING map, 20,000 x 90", ours["ing_map_seconds"], None)
    row(f"ING map, {ours['big_map_rows']:,} x 90", ours["big_map_seconds"], None)
    return head + "\n".join(rows) + "\n\nMachine: `" + json.dumps(m) + "`\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cuda", help="cuda (default) or cpu for a dry run")
    parser.add_argument("--quick", action="store_true", help="a few steps and small maps: check that every step runs")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results")
    parser.add_argument("--no-reference", action="store_true")
    args = parser.parse_args(argv)
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        parser.error("--device cuda, but torch sees no CUDA device (use --device cpu for a dry run)")
    steps, demo_steps, big_rows = (3, 6, 50_000) if args.quick else (20, DEMO_STEPS, 1_000_000)
    SCRATCH.mkdir(parents=True, exist_ok=True)
    data = ref.make_seed_data()
    data_path = SCRATCH / "gpu_seed_data.npz"
    np.savez(data_path, **data)
    result = {"machine": machine(args.device), "tests": cuda_tests(args.device)}
    print("cuda tests:", result["tests"]["summary"], file=sys.stderr)
    # a dry run on a CPU without bf16 units would take an hour at the seed's batch of 2,500
    small = dict(batch_size=256, hidden_units=64) if args.quick else {}
    result["xcebra"] = xcebra_side(data, args.device, steps, demo_steps, big_rows, **small)
    result["reference"] = None if args.no_reference else reference_side(data_path, args.device, steps, demo_steps)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "gpu.json").write_text(json.dumps(result, indent=2, default=float))
    (args.out / "gpu.md").write_text(render(result))
    print(render(result))


if __name__ == "__main__":
    main()
