"""``xcebra attribute``: the attribution map of a fitted model on a recording, written to ``.npz``."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import numpy as np

from ..attribution import METHODS, get_method
from ._common import add_common_options, add_data_arguments, load_model, parse_block_ranks, read_data, save_array_file

__all__ = ["add_parser", "run", "EPILOG"]

#: the methods that keep a rank per block (``--block-rank``): those with a ``block_ranks`` option
_RANKED_METHODS = tuple(name for name in METHODS if "block_ranks" in get_method(name).options)

EPILOG = """\
example:
  xcebra attribute model.xcebra rec.npz --neural spikes --method ing --out map.npz
  xcebra attribute model.xcebra rec.h5 --neural data/spikes --method jacobian --num-samples 5000 --out jac.npz
  xcebra attribute model.xcebra rec.npz --neural spikes --method ing-block --block-rank behavior=2 --out ingb.npz

map.npz holds values (output_dim, N), stderr, block_values (n_blocks, N), block_names,
block_bounds (n_blocks, 2), method and n_timepoints (and block_ranks for ing-block: 0 = full rank)."""


def add_parser(subparsers: Any, formatter: type) -> argparse.ArgumentParser:
    """Add the ``attribute`` subcommand to ``subparsers``."""
    parser = subparsers.add_parser("attribute", help="attribution map: which neurons drive which embedding dimension",
                                   description="Compute an attribution map of a fitted model on DATA.",
                                   epilog=EPILOG, formatter_class=formatter)
    parser.add_argument("model", metavar="MODEL")
    parser.add_argument("data", metavar="DATA")
    add_data_arguments(parser)
    parser.add_argument("--method", default="ing", choices=METHODS, help="default: ing")
    parser.add_argument("--num-samples", type=int, metavar="N", help="attribute N random time points (default: all)")
    parser.add_argument("--lags", default="sum", choices=("sum", "abs"), help="default: sum")
    parser.add_argument("--session", type=int, metavar="I",
                        help="multi-session models: the session DATA comes from (0-based, as fitted)")
    parser.add_argument("--batch-size", type=int, default=1024, help="time points per batch (default: 1024)")
    parser.add_argument("--seed", type=int, default=0, help="seed for --num-samples (default: 0)")
    parser.add_argument("--block-rank", action="append", default=[], metavar="BLOCK=K",
                        help="ing-block only: keep at most K singular values of BLOCK (default: the dimension of "
                             "its objective's label, full rank for time blocks); repeatable")
    parser.add_argument("--out", required=True, metavar="FILE.npz")
    add_common_options(parser)
    return parser


def run(args: argparse.Namespace) -> int:
    out = Path(args.out)
    if out.suffix.lower() != ".npz":
        raise ValueError(f"--out must end in .npz; got {args.out!r}")
    options = {}
    ranked = _RANKED_METHODS
    if args.block_rank:
        if args.method not in ranked:
            raise ValueError(f"--block-rank applies to --method {' or '.join(ranked)} only; got --method {args.method}")
        options["block_ranks"] = parse_block_ranks(args.block_rank)
    model = load_model(args.model)
    neural, _ = read_data(args.data, args.neural, lazy=True)
    amap = model.attribution_map(neural, method=args.method, session=args.session, num_samples=args.num_samples,
                                 lags=args.lags, batch_size=args.batch_size, random_state=args.seed, verbose=not args.quiet,
                                 **options)
    arrays = {
        "values": amap.values, "stderr": amap.stderr, "block_values": amap.block_values,
        "block_names": np.array(amap.block_names),
        "block_bounds": np.array([[s.start, s.stop] for _, s in amap.blocks]),
        "method": np.array(amap.method), "n_timepoints": np.array(amap.n_timepoints)}
    if amap.method in ranked:
        arrays["block_ranks"] = np.array([0 if r is None else r for r in amap.options["block_ranks"]])
    save_array_file(out, arrays)
    print(f"wrote {out}: {amap.method} map of shape {amap.values.shape} over {amap.n_timepoints} time points")
    return 0
