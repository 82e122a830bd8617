"""``xcebra demo``: the seed pipeline end to end on simulated RatInABox data (:func:`xcebra.demo.run_demo`)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from .. import demo
from ._common import add_common_options

__all__ = ["add_parser", "run", "EPILOG"]

EPILOG = """\
example:
  xcebra demo --quick --out demo_out     # about 2 minutes on 2 cores
  xcebra demo --out demo_out             # the seed's configuration, under 10 minutes
  xcebra demo --steps 2000 --out demo_2k  # twice the training (regularizer ramp scaled)
  xcebra demo --quick --significance-seeds 3 --out demo_sig  # + which neurons significantly drive each block

Writes DIR/report.html (all figures embedded), one PNG per figure, DIR/summary.json and
DIR/model.xcebra, and prints a summary table."""


def add_parser(subparsers: Any, formatter: type) -> argparse.ArgumentParser:
    """Add the ``demo`` subcommand to ``subparsers``."""
    parser = subparsers.add_parser("demo", help="the seed pipeline end to end on simulated RatInABox data",
                                   description="Simulate RatInABox data, fit xCEBRA, compute ING, per-block ING and Jacobian "
                                               "attribution maps, test the cell-type hypothesis per block and write a report.",
                                   epilog=EPILOG, formatter_class=formatter)
    parser.add_argument("--quick", action="store_true", help="short run: 600 s of data, 120 steps (< 2 min)")
    parser.add_argument("--out", default="xcebra_demo", metavar="DIR", help="output directory (default: xcebra_demo)")
    parser.add_argument("--seed", type=int, default=0, help="random_state of the model (default: 0)")
    parser.add_argument("--steps", type=int, metavar="N",
                        help="training steps (default: the seed's 1000, --quick 120); the regularizer ramp scales with them")
    parser.add_argument("--precision", choices=("auto", "fp32", "bf16"), default="auto",
                        help="training arithmetic; auto: bf16 on CPUs with native bf16 units, else fp32 (default: auto)")
    parser.add_argument("--significance-seeds", type=int, default=0, metavar="M",
                        help="add the section on which neurons significantly drive each block: M more fits of the "
                             "demo's configuration with shadow neurons (default: 0, no section)")
    add_common_options(parser)
    return parser


def run(args: argparse.Namespace) -> int:
    # looked up on the package at call time: the demo's entry point is replaced there in tests
    summary = demo.run_demo(args.out, quick=args.quick, verbose=not args.quiet, seed=args.seed, precision=args.precision,
                            steps=args.steps, significance_seeds=args.significance_seeds)
    print(demo.format_summary(summary))
    print(f"\nwrote {Path(args.out) / 'report.html'}, {Path(args.out) / 'summary.json'}, "
          f"{len(summary['files']['figures'])} figures and {Path(args.out) / 'model.xcebra'}")
    return 0
