"""``xcebra embed``: the embedding of every time point of a recording, by a fitted model."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import numpy as np

from ._common import add_common_options, add_data_arguments, load_model, read_data, save_array_file

__all__ = ["add_parser", "run", "EPILOG"]

EPILOG = """\
example:
  xcebra embed model.xcebra rec.npz --neural spikes --out embedding.npy
  xcebra embed model.xcebra rec.h5 --neural data/spikes --out embedding.npz   # + block names

HDF5 and NWB data are read in batches, so recordings larger than memory work."""


def add_parser(subparsers: Any, formatter: type) -> argparse.ArgumentParser:
    """Add the ``embed`` subcommand to ``subparsers``."""
    parser = subparsers.add_parser("embed", help="embed every time point of a recording with a fitted model",
                                   description="Write the embedding (time points x output_dim) of DATA.",
                                   epilog=EPILOG, formatter_class=formatter)
    parser.add_argument("model", metavar="MODEL", help="a model written by 'xcebra fit'")
    parser.add_argument("data", metavar="DATA")
    add_data_arguments(parser)
    parser.add_argument("--out", required=True, metavar="FILE", help=".npy (the array) or .npz (embedding + blocks)")
    parser.add_argument("--batch-size", type=int, default=50_000, help="time points per pass (default: 50000)")
    parser.add_argument("--session", type=int, metavar="I",
                        help="multi-session models: the session DATA comes from (0-based, as fitted)")
    add_common_options(parser)
    return parser


def run(args: argparse.Namespace) -> int:
    out = Path(args.out)
    if out.suffix.lower() not in (".npy", ".npz"):
        raise ValueError(f"--out must end in .npy or .npz; got {args.out!r}")
    model = load_model(args.model)
    neural, _ = read_data(args.data, args.neural, lazy=True)
    embedding = model.transform(neural, session=args.session, batch_size=args.batch_size)
    if out.suffix.lower() == ".npy":
        save_array_file(out, {"embedding": embedding}, single="embedding")
    else:
        save_array_file(out, {"embedding": embedding,
                               "block_names": np.array([name for name, _ in model.blocks_]),
                               "block_bounds": np.array([[s.start, s.stop] for _, s in model.blocks_])})
    print(f"wrote {out}: embedding of shape {embedding.shape}")
    return 0
