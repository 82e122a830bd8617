"""``xcebra benchmark attribution``: the attribution-method benchmark (:mod:`xcebra.benchmark`).

Trains the same encoder three ways on synthetic data with a known ground truth and scores every
attribution method's map against it; writes ``attribution_methods.{md,csv,json,png}`` into ``--out``
(the same files as ``python benchmarks/attribution_methods.py``).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from ..benchmark import run_attribution_benchmark
from ._common import add_common_options

__all__ = ["add_parser", "run", "EPILOG"]

EPILOG = """\
example:
  xcebra benchmark attribution --quick --seeds 1      # under 5 minutes on 2 cores
  xcebra benchmark attribution --seeds 3 --workers 2 --out benchmarks/results

Writes OUT/attribution_methods.md (the table, also printed), .csv, .json and .png."""


def add_parser(subparsers: Any, formatter: type) -> argparse.ArgumentParser:
    """Add the ``benchmark`` subcommand to ``subparsers``."""
    parser = subparsers.add_parser("benchmark", help="benchmarks of the library (attribution methods)",
                                   description="Run a benchmark and write its results.",
                                   epilog=EPILOG, formatter_class=formatter)
    parser.add_argument("which", choices=("attribution",), metavar="BENCHMARK",
                        help="attribution: every attribution method x three trainings on synthetic data")
    parser.add_argument("--quick", action="store_true", help="smaller data, fewer steps and time points")
    parser.add_argument("--seeds", type=int, default=3, metavar="K", help="seeds per noise model (default: 3)")
    parser.add_argument("--workers", type=int, default=2, metavar="N", help="parallel processes (default: 2)")
    parser.add_argument("--out", default="benchmarks/results", metavar="DIR",
                        help="output directory (default: benchmarks/results)")
    add_common_options(parser)
    return parser


def run(args: argparse.Namespace) -> int:
    if args.seeds < 1 or args.workers < 1:
        raise ValueError(f"--seeds and --workers must be >= 1; got {args.seeds} and {args.workers}")
    out = Path(args.out)
    run_attribution_benchmark(out, seeds=args.seeds, quick=args.quick, workers=args.workers, verbose=not args.quiet)
    print((out / "attribution_methods.md").read_text())
    return 0
