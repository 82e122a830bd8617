"""``xcebra fit-many``: one model per recording of a TOML manifest, fitted as parallel Dask tasks
(:func:`xcebra.parallel.fit_many`): a local cluster, a running scheduler, or SLURM jobs."""

from __future__ import annotations

import argparse
import contextlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .. import parallel
from ..estimators import XCEBRA
from ._common import add_common_options
from .config import manifest_entries, manifest_model, read_manifest

__all__ = ["add_parser", "run", "load_manifest", "EXAMPLE_MANIFEST", "EPILOG"]

EXAMPLE_MANIFEST = """\
# sessions.toml: where the models go, the model (as in a --config file), one [[fit]] per recording
out_dir = "models"
retries = 2
config = "model.toml"          # or the parameters inline in a [model] table

[[fit]]
data = "mouse1_day1.npz"
neural = "spikes"
labels = { position = "pos" }

[[fit]]
data = "mouse1_day2.h5"
neural = "data/spikes"
labels = { position = "behavior/xy" }
"""

EPILOG = f"""\
example:
  xcebra fit-many sessions.toml                           # a local cluster, one worker per core
  xcebra fit-many sessions.toml --scheduler tcp://10.0.0.5:8786
  xcebra fit-many sessions.toml --slurm cores=4 memory=16GB walltime=02:00:00 --jobs 8

Fits one model per [[fit]] table of the manifest, as parallel Dask tasks, and writes each to the
output directory as it finishes (named by a hash of its data and parameters; DIR/index.json says
which is which). A rerun skips the fits whose model is already there. --slurm starts workers as
SLURM jobs (dask-jobqueue's SLURMCluster; KEY=VALUE are its arguments). Paths in the manifest are
relative to it. A manifest:

{EXAMPLE_MANIFEST}"""


def add_parser(subparsers: Any, formatter: type) -> argparse.ArgumentParser:
    """Add the ``fit-many`` subcommand to ``subparsers``."""
    parser = subparsers.add_parser("fit-many", help="fit one model per recording of a manifest, in parallel (Dask)",
                                   description="Fit XCEBRA models to many recordings as parallel tasks on a Dask cluster: "
                                               "local, an existing scheduler, or SLURM jobs.",
                                   epilog=EPILOG, formatter_class=formatter)
    parser.add_argument("manifest", metavar="MANIFEST.toml", help="out_dir, the model, and one [[fit]] per recording")
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--scheduler", metavar="ADDRESS", help="a running Dask scheduler, e.g. tcp://host:8786")
    where.add_argument("--slurm", nargs="+", metavar="KEY=VALUE",
                       help="start workers as SLURM jobs: dask_jobqueue.SLURMCluster(KEY=VALUE, ...)")
    parser.add_argument("--jobs", type=int, metavar="N", help="with --slurm: SLURM jobs to start (default: one per fit)")
    parser.add_argument("--workers", type=int, metavar="N", help="local cluster: worker processes (default: one per core)")
    parser.add_argument("--out", metavar="DIR", help="output directory (overrides out_dir of the manifest)")
    add_common_options(parser)
    return parser


_MANIFEST_KEYS = ("out_dir", "retries", "config", "model", "fit")
_FIT_KEYS = ("data", "neural", "labels")


def load_manifest(path: str | Path) -> tuple[dict[str, Any], list[dict[str, Any]], dict[str, Any]]:
    """Read a fit-many manifest: (XCEBRA keyword arguments, jobs for :func:`xcebra.parallel.fit_many`, settings).

    Paths in it are relative to the manifest's folder. Raises ValueError (one line, naming the file
    and the entry) for unknown keys, a missing ``[[fit]]`` array or entries without ``data`` / ``neural``.
    """
    raw, where, base = read_manifest(path, "manifest", _MANIFEST_KEYS)
    params = manifest_model(raw, base, where)
    if params is None:
        raise ValueError(f"{where} has no model: add config = \"model.toml\" or a [model] table with the XCEBRA "
                         "parameters and [[model.objectives]]")
    if "objectives" not in params:
        raise ValueError(f"{where}: the model needs its objectives ([[objectives]] tables, see 'xcebra fit --help')")
    jobs = [{"neural": (data, neural), **{name: (data, key) for name, key in labels.items()}}
            for _, data, neural, labels in manifest_entries(raw, "fit", _FIT_KEYS, base, where)]
    settings = {"out_dir": str((base / raw.get("out_dir", "models")).resolve()), "retries": raw.get("retries", 2)}
    return params, jobs, settings


def _slurm_arguments(items: Sequence[str]) -> dict[str, Any]:
    arguments: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip().isidentifier():
            raise ValueError(f"--slurm takes KEY=VALUE arguments of SLURMCluster (e.g. cores=4 memory=16GB); got {item!r}")
        for convert in (int, float):
            try:
                arguments[key.strip()] = convert(value)
                break
            except ValueError:
                continue
        else:
            arguments[key.strip()] = value
    return arguments


def run(args: argparse.Namespace) -> int:
    params, jobs, settings = load_manifest(args.manifest)
    out_dir = args.out or settings["out_dir"]
    estimator = XCEBRA(**{**params, "verbose": not args.quiet})
    with contextlib.ExitStack() as stack:
        client = None
        if args.scheduler:
            from distributed import Client
            client = stack.enter_context(Client(args.scheduler))
        elif args.slurm:
            try:
                from dask_jobqueue import SLURMCluster
            except ModuleNotFoundError as error:
                raise ImportError('--slurm needs dask-jobqueue: pip install "xcebra[dask]"') from error
            from distributed import Client
            cluster = stack.enter_context(SLURMCluster(**_slurm_arguments(args.slurm)))
            cluster.scale(jobs=args.jobs or len(jobs))
            client = stack.enter_context(Client(cluster))
        elif args.workers:
            client = stack.enter_context(parallel.local_client(n_workers=args.workers))
        outcomes = parallel.fit_outcomes(estimator, jobs, client, out_dir, settings["retries"], not args.quiet)
    for i, (job, outcome) in enumerate(zip(jobs, outcomes)):
        what = "read (already fitted)" if outcome.skipped else f"fitted in {outcome.seconds:.1f} s"
        print(f"fit {i}: {job['neural'][0]} -> {outcome.path} ({what})")
    print(f"{len(outcomes)} models in {out_dir} (index: {Path(out_dir) / parallel.INDEX_NAME})")
    return 0
