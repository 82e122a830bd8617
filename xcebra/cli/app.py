"""The ``xcebra`` command: the parser made of the subcommands' modules, logging, and one-line errors."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

from sklearn.exceptions import NotFittedError

from .. import __version__
from ..exceptions import FitManyError
from . import attribute, benchmark, demo, embed, fit, fit_many, report, significance
from ._common import Parser, configure_logging, error_line

__all__ = ["main", "build_parser", "SUBCOMMANDS"]

#: subcommand -> its module (each has ``add_parser(subparsers, formatter)`` and ``run(args) -> int``)
SUBCOMMANDS = {"demo": demo, "fit": fit, "fit-many": fit_many, "embed": embed, "attribute": attribute,
               "report": report, "significance": significance, "benchmark": benchmark}

EPILOG = """\
examples:
  xcebra demo --quick --out demo_out
  xcebra fit rec.npz --neural spikes --label position=pos --out model.xcebra
  xcebra fit-many sessions.toml --slurm cores=4 memory=16GB --jobs 8
  xcebra embed model.xcebra rec.npz --neural spikes --out embedding.npy
  xcebra attribute model.xcebra rec.npz --neural spikes --method ing --out map.npz
  xcebra report model.xcebra rec.npz --neural spikes --label position=pos --cell-types types \\
      --hypothesis behavior=grid,place --out report_dir
  xcebra significance rec.npz --neural spikes --label position=pos --fdr 0.05 --out sig_dir
  xcebra benchmark attribution --quick --seeds 1

Run 'xcebra COMMAND --help' for the options of a command."""


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``xcebra`` command."""
    formatter = argparse.RawDescriptionHelpFormatter
    parser = Parser(prog="xcebra", formatter_class=formatter, epilog=EPILOG,
                    description="xCEBRA: regularized multi-objective contrastive learning and identifiable "
                                "attribution maps for neural time series.")
    parser.add_argument("--version", action="version", version=f"xcebra {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    subparsers.required = True
    for module in SUBCOMMANDS.values():
        module.add_parser(subparsers, formatter)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``xcebra`` command; returns the exit status."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        # rules argparse cannot state (e.g. --neural is required unless DATA is a sessions manifest)
        problem = getattr(SUBCOMMANDS[args.command], "usage_problem", lambda _: None)(args)
        if problem:
            parser.error(problem)
    except SystemExit as exit_:  # argparse: --help, --version (0) and usage errors (2)
        return int(exit_.code or 0) if isinstance(exit_.code, int) or exit_.code is None else 2
    configure_logging(args.verbose)
    try:
        return SUBCOMMANDS[args.command].run(args)
    except FitManyError as error:  # one line per failed fit
        if args.debug:
            raise
        for line in str(error).splitlines():
            print(f"xcebra: error: {' '.join(line.split())}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        if args.debug:
            raise
        print("xcebra: interrupted", file=sys.stderr)
        return 130
    except (ValueError, KeyError, OSError, TypeError, ImportError, NotFittedError, FloatingPointError,
            json.JSONDecodeError) as error:
        if args.debug:
            raise
        print(f"xcebra: error: {error_line(error)}", file=sys.stderr)
        return 1
