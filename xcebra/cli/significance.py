"""``xcebra significance``: which neurons significantly drive each block, from a seed ensemble and shadow neurons."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from ..attribution import METHODS
from ..parallel import local_client
from ..significance import significance
from ._common import add_common_options, add_data_arguments, parse_labels, read_cell_types, read_data
from .fit import add_estimator_options, estimator_from_args

__all__ = ["add_parser", "run", "EPILOG"]

EPILOG = """\
example:
  xcebra significance rec.npz --neural spikes --label position=pos --out sig/
  xcebra significance rec.npz --neural spikes --label position=pos --config model.toml --fdr 0.1 \\
      --seeds 5 --cell-types types --workers 2 --out sig/

Fits --seeds models of the configuration (as 'xcebra fit' builds it), each on the recording with shadow
neurons appended (circularly time-shifted copies of real neurons: the null), and writes
DIR/significance.csv (block, neuron, value, ci_low, ci_high, p_value, selected; one row per block and
neuron), DIR/consistency.json (per-block consistency across seeds, the selected sets and the settings)
and two figures. The fits are kept in DIR/fits: a rerun reads them instead of fitting again."""


def add_parser(subparsers: Any, formatter: type) -> argparse.ArgumentParser:
    """Add the ``significance`` subcommand to ``subparsers``."""
    parser = subparsers.add_parser(
        "significance", help="a decision per block and neuron: p-values, intervals and FDR control",
        description="Which neurons significantly drive each block of the embedding, at a chosen false "
                    "discovery rate, on a recording without ground truth.", epilog=EPILOG, formatter_class=formatter)
    parser.add_argument("data", metavar="DATA", help=".npz, .npy, .h5/.hdf5 or .nwb file")
    add_data_arguments(parser, labels=True)
    parser.add_argument("--out", required=True, metavar="DIR", help="output folder")
    add_estimator_options(parser)
    parser.add_argument("--fdr", type=float, default=0.05, help="false discovery rate per block (default: 0.05)")
    parser.add_argument("--seeds", type=int, default=5, metavar="M", help="fits in the ensemble (default: 5)")
    parser.add_argument("--shadows", type=int, metavar="S", help="shadow neurons per fit (default: 4 per neuron)")
    parser.add_argument("--method", default="ing-block", choices=METHODS, help="attribution method (default: ing-block)")
    parser.add_argument("--cell-types", metavar="KEY|FILE",
                        help="cell type per neuron (an array in DATA, or a .txt/.csv file): a column of the table "
                             "and the grouping of the interval plot")
    parser.add_argument("--workers", type=int, help="local Dask workers (default: one per core)")
    add_common_options(parser)
    return parser


def run(args: argparse.Namespace) -> int:
    labels = parse_labels(args.label)
    estimator = estimator_from_args(args, list(labels))
    neural, label_arrays = read_data(args.data, args.neural, labels)
    cell_types = read_cell_types(args.cell_types, args.data, neural.shape[1]) if args.cell_types else None
    out = Path(args.out)
    with local_client(n_workers=args.workers) as client:
        result = significance(estimator, neural, n_seeds=args.seeds, n_shadows=args.shadows, fdr=args.fdr,
                              method=args.method, client=client, out_dir=out / "fits", verbose=not args.quiet,
                              **label_arrays)
    result.save(out, cell_types=cell_types, figures=True)
    chosen = ", ".join(f"{block} {len(neurons)}" for block, neurons in result.selected().items())
    consistency = ", ".join(f"{block} {value:.2f}" for block, value in result.consistency.items())
    print(f"wrote {out / 'significance.csv'}: {neural.shape[1]} neurons, {args.seeds} fits; selected at FDR "
          f"{args.fdr:g}: {chosen}; consistency {consistency}")
    return 0
