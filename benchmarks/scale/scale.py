"""Scale-out: many fits on Dask workers, a chunked attribution map of 10^6 time points, DDP step time.

    python -m benchmarks.scale.scale --out benchmarks/results          # about 25 minutes on 2 cores
    python -m benchmarks.scale.scale --fits 4 --steps 500 --points 200000 --no-ddp   # a quick look

Measured in one run, on this machine (every cluster binds to 127.0.0.1):
  * 8 fits of the paper's small synthetic setting (T=12,000 x N=40, offset1 MLP, batch 512, euclidean
    loss, regularizer 0.01, 2,000 steps; each fit on its own data set) by ``xcebra.parallel.fit_many``
    on a local cluster of 2 single-threaded worker processes, against the same fits in a loop in one
    process with 2 threads. The parallel time includes starting and stopping the cluster.
  * The exact ING attribution map of 10^6 time points x 90 neurons (offset10 encoder of the seed
    configuration) by ``xcebra.parallel.attribution_map`` from a memory-mapped .npy file, in chunks
    of 50,000 time points on 2 single-threaded workers: seconds, time points per second, and the
    peak resident memory of each worker process (``ru_maxrss``, torch and xcebra included).
  * Data-parallel training (``torchrun --nproc_per_node=2``, gloo, 1 thread per rank) of the seed
    configuration (T=20,000 x 90, batch 2,500, offset10, 14 dims), median seconds per step with and
    without the regularizer, against one process with 2 threads.

Writes benchmarks/results/scale.{md,json}.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import socket
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

import xcebra
from xcebra import parallel

from benchmarks.common import RESULTS, run_module
from benchmarks.reference import reference_cebra as ref  # data makers; imports no cebra
from benchmarks.speed.speed import seed_model, synthetic_model


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def many_fits(n_fits: int, steps: int, workers: int) -> dict:
    datasets = [ref.make_synthetic_data(seed=seed) for seed in range(n_fits)]
    jobs = [{"neural": d["neural"], "position": d["position"]} for d in datasets]
    # in one process: the machine's cores as torch threads, one fit after the other
    loop_model = synthetic_model(max_steps=steps, num_threads=workers)
    started = time.perf_counter()
    for job in jobs:
        loop_model.fit(job["neural"], position=job["position"])
    loop_seconds = time.perf_counter() - started
    print(f"{n_fits} fits in a loop (1 process, {workers} threads): {loop_seconds:.1f} s", file=sys.stderr)
    started = time.perf_counter()
    with parallel.local_client(n_workers=workers, threads_per_worker=1) as client:
        ready = time.perf_counter()
        models = parallel.fit_many(synthetic_model(max_steps=steps), jobs, client=client)
        done = time.perf_counter()
    parallel_seconds = time.perf_counter() - started
    print(f"{n_fits} fits by fit_many ({workers} workers x 1 thread): {parallel_seconds:.1f} s "
          f"(cluster start {ready - started:.1f} s)", file=sys.stderr)
    assert len(models) == n_fits
    return {"n_fits": n_fits, "steps": steps, "workers": workers, "loop_seconds": loop_seconds,
            "parallel_seconds": parallel_seconds, "parallel_seconds_without_cluster_start": done - ready,
            "cluster_start_seconds": ready - started, "speedup": loop_seconds / parallel_seconds}


def chunked_attribution(points: int, chunk_size: int, workers: int, tmp: Path) -> dict:
    seed_data = ref.make_seed_data()
    model = seed_model(max_steps=1).fit(seed_data["neural"], position=seed_data["position"])
    rng = np.random.default_rng(1)
    path = tmp / "neural.npy"
    memmap = np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=(points, 90))
    for start in range(0, points, 100_000):  # written in pieces: the benchmark itself never holds it all
        stop = min(points, start + 100_000)
        memmap[start:stop] = rng.poisson(0.5, size=(stop - start, 90)).astype(np.float32)
    memmap.flush()
    del memmap
    with parallel.local_client(n_workers=workers, threads_per_worker=1) as client:
        started = time.perf_counter()
        amap = parallel.attribution_map(model, str(path), "ing", client=client, chunk_size=chunk_size, verbose=True)
        seconds = time.perf_counter() - started
    print(f"chunked ING map: {amap.n_timepoints} time points in {seconds:.1f} s "
          f"({amap.n_timepoints / seconds:.0f} points/s), peak worker {amap.options['peak_worker_bytes'] / 1e9:.2f} GB",
          file=sys.stderr)
    return {"time_points": amap.n_timepoints, "neurons": 90, "chunk_size": amap.options["chunk_size"],
            "chunks": amap.options["n_chunks"], "workers": workers, "seconds": seconds,
            "points_per_second": amap.n_timepoints / seconds, "peak_worker_bytes": amap.options["peak_worker_bytes"],
            "file_bytes": path.stat().st_size}


def _ddp_rank(out: str, steps: int, weight: float) -> None:
    """Run by torchrun: one rank of the seed configuration's fit; rank 0 writes the per-step seconds."""
    import torch.distributed as dist

    data = ref.make_seed_data()
    model = seed_model(max_steps=steps, regularizer_weight=weight, num_threads=1)
    model.fit(data["neural"], position=data["position"])
    if dist.get_rank() == 0:
        Path(out).write_text(json.dumps([float(s) for s in model.log_["seconds"]]))


def ddp_steps(steps: int, threads: int) -> dict:
    data = ref.make_seed_data()
    out = {}
    for label, weight in (("no_regularizer", 0.0), ("regularizer", 0.1)):
        single = seed_model(max_steps=steps, regularizer_weight=weight, num_threads=threads)
        single.fit(data["neural"], position=data["position"])
        one = statistics.median(single.log_["seconds"][2:])
        with tempfile.TemporaryDirectory() as tmp:
            result = Path(tmp) / "seconds.json"
            env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")}
            env["OMP_NUM_THREADS"] = "1"
            run_module("torch.distributed.run", "--nproc_per_node=2", "--master_addr=127.0.0.1",
                       f"--master_port={_free_port()}", "-m", "benchmarks.scale.scale", "--ddp-rank", result,
                       "--ddp-steps", steps, "--ddp-weight", weight, check=True, env=env)
            two = statistics.median(json.loads(result.read_text())[2:])
        out[label] = {"one_process_seconds": one, "two_processes_seconds": two, "speedup": one / two}
        print(f"DDP seed step ({label}): 1 process x {threads} threads {one:.3f} s, 2 processes x 1 thread "
              f"{two:.3f} s", file=sys.stderr)
    return {"steps_measured": steps - 2, **out}


def render_markdown(result: dict) -> str:
    m = result["machine"]
    lines = ["# Scale-out benchmark (`python -m benchmarks.scale.scale`)", "",
             f"Machine: {m['cpu']}, {m['cores']} cores, torch {m['torch']}, xcebra {m['xcebra']}; every cluster on 127.0.0.1.", ""]
    if "many_fits" in result:
        f = result["many_fits"]
        lines += ["## Many fits (`xcebra.parallel.fit_many`)", "",
                  f"{f['n_fits']} fits of the small synthetic setting ({f['steps']} steps each, each on its own data set).", "",
                  "| | seconds | speed-up |", "|---|---|---|",
                  f"| loop in one process, {f['workers']} threads | {f['loop_seconds']:.1f} | 1.0x |",
                  f"| fit_many, {f['workers']} workers x 1 thread (cluster start included) | {f['parallel_seconds']:.1f} | "
                  f"**{f['speedup']:.2f}x** |",
                  f"| ... without the cluster's start ({f['cluster_start_seconds']:.1f} s) | "
                  f"{f['parallel_seconds_without_cluster_start']:.1f} | "
                  f"{f['loop_seconds'] / f['parallel_seconds_without_cluster_start']:.2f}x |", ""]
    if "attribution" in result:
        a = result["attribution"]
        lines += ["## Chunked attribution map (`xcebra.parallel.attribution_map`)", "",
                  f"Exact ING map, {a['time_points']:,} time points x {a['neurons']} neurons (offset10, 14 dims), read by "
                  f"the workers from a memory-mapped .npy file of {a['file_bytes'] / 1e9:.2f} GB; {a['chunks']} chunks of "
                  f"{a['chunk_size']:,} on {a['workers']} single-threaded workers.", "",
                  "| seconds | time points / s | peak resident memory per worker |", "|---|---|---|",
                  f"| {a['seconds']:.0f} | {a['points_per_second']:,.0f} | {a['peak_worker_bytes'] / 1e9:.2f} GB |", ""]
    if "ddp" in result:
        d = result["ddp"]
        lines += ["## Data-parallel training (`torchrun --nproc_per_node=2`, gloo)", "",
                  f"Seed configuration, median seconds per step over {d['steps_measured']} steps.", "",
                  "| | 1 process x 2 threads | 2 processes x 1 thread | ratio |", "|---|---|---|---|"]
        for label in ("no_regularizer", "regularizer"):
            r = d[label]
            lines.append(f"| {label.replace('_', ' ')} | {r['one_process_seconds']:.3f} | "
                         f"{r['two_processes_seconds']:.3f} | {r['speedup']:.2f}x |")
        lines.append("")
    return "\n".join(lines)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--fits", type=int, default=8)
    parser.add_argument("--steps", type=int, default=2000, help="training steps of each small fit")
    parser.add_argument("--points", type=int, default=1_000_000, help="time points of the chunked attribution map")
    parser.add_argument("--chunk-size", type=int, default=50_000)
    parser.add_argument("--ddp-measured-steps", type=int, default=10)
    parser.add_argument("--no-fits", action="store_true")
    parser.add_argument("--no-attribution", action="store_true")
    parser.add_argument("--no-ddp", action="store_true")
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--ddp-rank", help=argparse.SUPPRESS)
    parser.add_argument("--ddp-steps", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--ddp-weight", type=float, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.ddp_rank:
        _ddp_rank(args.ddp_rank, args.ddp_steps, args.ddp_weight)
        return
    torch.set_num_threads(args.workers)
    result = {"machine": {"cpu": ref.cpu_model(), "cores": os.cpu_count(), "torch": torch.__version__,
                          "xcebra": xcebra.__version__, "python": platform.python_version()}}
    # DDP first: measured after the attribution part, its steps were 1.7x slower than alone (the closing
    # cluster's processes were still on the cores)
    if not args.no_ddp:
        result["ddp"] = ddp_steps(args.ddp_measured_steps + 2, args.workers)
    if not args.no_fits:
        result["many_fits"] = many_fits(args.fits, args.steps, args.workers)
    if not args.no_attribution:
        with tempfile.TemporaryDirectory() as tmp:
            result["attribution"] = chunked_attribution(args.points, args.chunk_size, args.workers, Path(tmp))
    args.out.mkdir(parents=True, exist_ok=True)
    previous = args.out / "scale.json"
    if previous.exists():  # a partial run (--no-...) keeps the parts it did not measure again
        result = {**json.loads(previous.read_text()), **result}
    (args.out / "scale.json").write_text(json.dumps(result, indent=2))
    (args.out / "scale.md").write_text(render_markdown(result))
    print(render_markdown(result))


if __name__ == "__main__":
    main()
