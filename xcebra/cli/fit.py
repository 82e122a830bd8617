"""``xcebra fit``: fit XCEBRA to a recording read from a file, and save the model."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from typing import Any

from ..estimators import XCEBRA
from ..objectives import Objective
from ._common import add_common_options, add_data_arguments, parse_labels, read_data
from .config import EXAMPLE_CONFIG, load_config, parse_param_options
from .sessions import (EXAMPLE_SESSIONS, is_sessions_manifest, load_sessions_manifest, neural_or_manifest,
                       read_sessions)

__all__ = ["add_parser", "usage_problem", "run", "default_objectives", "add_estimator_options", "estimator_from_args",
           "EPILOG"]

EPILOG = f"""\
example:
  xcebra fit rec.npz --neural spikes --label position=pos --out model.xcebra
  xcebra fit rec.h5 --neural data/spikes --label position=behavior/xy --config model.toml \\
      --max-steps 2000 --seed 1 --checkpoint-dir ck/ --out model.xcebra
  xcebra fit sessions.toml --config model.toml --out model.xcebra     # one model on several sessions

Without --config the seed's layout is used: a behaviour objective on dims 0-3 following the one
label (time_delta positives) and a time objective on all dims (offset 10); without a label, only
the time objective. Command-line options override the config file. A config file may set every
XCEBRA parameter (as may --param NAME=VALUE); TOML has no null, so write "none" for None. A config file:

{EXAMPLE_CONFIG}
DATA may instead be a sessions manifest (a .toml file): one multi-session model is fitted on all its
recordings (each its own encoder, the label-driven blocks shared; --batch-size counts references
per session). Each session names its arrays there, so --neural and --label are not given. A manifest:

{EXAMPLE_SESSIONS}"""


def add_parser(subparsers: Any, formatter: type) -> argparse.ArgumentParser:
    """Add the ``fit`` subcommand to ``subparsers``."""
    parser = subparsers.add_parser("fit", help="fit xCEBRA to a recording and save the model",
                                   description="Fit an XCEBRA model to neural data and labels read from DATA.",
                                   epilog=EPILOG, formatter_class=formatter)
    parser.add_argument("data", metavar="DATA", help=".npz, .npy, .h5/.hdf5 or .nwb file, or a sessions manifest "
                                                     "(.toml, see below)")
    add_data_arguments(parser, labels=True, required=False)
    parser.add_argument("--out", required=True, metavar="MODEL", help="where to write the model (e.g. model.xcebra)")
    add_estimator_options(parser)
    parser.add_argument("--checkpoint-dir", metavar="DIR", help="save checkpoints there and resume from them")
    parser.add_argument("--checkpoint-every", type=int, default=100, metavar="STEPS", help="default: 100")
    add_common_options(parser)
    return parser


def add_estimator_options(parser: argparse.ArgumentParser) -> None:
    """The options that set XCEBRA's parameters (``fit`` and ``significance`` share them)."""
    parser.add_argument("--config", metavar="FILE.toml", help="XCEBRA parameters and [[objectives]] (see below)")
    parser.add_argument("--max-steps", type=int, help="training steps")
    parser.add_argument("--batch-size", type=int, help="references per step")
    parser.add_argument("--learning-rate", type=float, help="Adam learning rate")
    parser.add_argument("--output-dim", type=int, help="embedding dimensions")
    parser.add_argument("--hidden-units", type=int, help="hidden units of the encoder")
    parser.add_argument("--model", help="encoder: offset1, offset5, offset10 or offset36")
    parser.add_argument("--regularizer-weight", type=float, help="final weight of the Jacobian regularizer")
    parser.add_argument("--seed", type=int, help="random_state: the same seed gives the same weights")
    parser.add_argument("--device", help="auto, cpu or cuda")
    parser.add_argument("--num-threads", type=int, help="torch threads")
    parser.add_argument("--param", action="append", default=[], metavar="NAME=VALUE",
                        help="any XCEBRA parameter, VALUE in TOML syntax (e.g. lipschitz=4.0, precision='\"bf16\"', "
                             "regularizer_ramp=[250,500], lipschitz='\"none\"'); overrides --config and the options above")


def default_objectives(labels: Sequence[str], output_dim: int) -> list[Objective]:
    if len(labels) > 1:
        raise ValueError(f"with several labels ({', '.join(labels)}) give the objectives in --config FILE.toml; "
                         "see 'xcebra fit --help'")
    time = Objective("time", dims=(0, output_dim), distribution="time", time_offset=10)
    if not labels:
        return [time]
    behaviour_dims = min(4, output_dim - 1)
    if behaviour_dims < 1:
        raise ValueError(f"--output-dim must be >= 2 for a label objective and the time objective; got {output_dim}")
    return [Objective("behavior", dims=(0, behaviour_dims), distribution="time_delta", label=labels[0]), time]


def estimator_from_args(args: argparse.Namespace, labels: Sequence[str], base: dict | None = None) -> XCEBRA:
    """The XCEBRA that ``base`` (e.g. a sessions manifest's model), ``--config``, the options and ``--param``
    describe (later ones override earlier)."""
    params = dict(base or {})
    params.update(load_config(args.config) if args.config else {})
    overrides = {"max_steps": args.max_steps, "batch_size": args.batch_size, "learning_rate": args.learning_rate,
                 "output_dim": args.output_dim, "hidden_units": args.hidden_units, "model": args.model,
                 "regularizer_weight": args.regularizer_weight, "random_state": args.seed, "device": args.device,
                 "num_threads": args.num_threads}
    params.update({k: v for k, v in overrides.items() if v is not None})
    params.update(parse_param_options(args.param))
    if "objectives" not in params:
        params["objectives"] = default_objectives(list(labels), params.get("output_dim", 14))
    params["verbose"] = not args.quiet
    return XCEBRA(**params)


#: what is wrong with the command line that argparse cannot check, or None (called by the app)
usage_problem = neural_or_manifest


def run(args: argparse.Namespace) -> int:
    if is_sessions_manifest(args.data):
        return _run_sessions(args)
    labels = parse_labels(args.label)
    model = estimator_from_args(args, list(labels))
    neural, label_arrays = read_data(args.data, args.neural, labels)
    model.fit(neural, checkpoint_dir=args.checkpoint_dir, checkpoint_every=args.checkpoint_every, **label_arrays)
    model.save(args.out)
    final = ", ".join(f"{k} {float(v[-1]):.4g}" for k, v in model.log_.items() if k.startswith("loss") and len(v))
    blocks = ", ".join(f"{name} {s.start}:{s.stop}" for name, s in model.blocks_)
    print(f"wrote {args.out}: {neural.shape[0]} time points x {neural.shape[1]} neurons, {model.max_steps} steps, "
          f"blocks {blocks}; final {final or 'loss n/a'}")
    return 0


def _run_sessions(args: argparse.Namespace) -> int:
    """``xcebra fit sessions.toml``: one multi-session model on every session of the manifest."""
    if args.neural is not None or args.label:
        raise ValueError(f"{args.data!r} is a sessions manifest, which names each session's arrays; drop --neural and "
                         "--label")
    params, sessions = load_sessions_manifest(args.data)
    model = estimator_from_args(args, list(sessions[0]["labels"]), base=params)
    neural, labels = read_sessions(sessions)
    model.fit(neural, checkpoint_dir=args.checkpoint_dir, checkpoint_every=args.checkpoint_every, **labels)
    model.save(args.out)
    shapes = ", ".join(f"{x.shape[0]} x {x.shape[1]}" for x in neural)
    blocks = ", ".join(f"{name} {s.start}:{s.stop}" for name, s in model.blocks_)
    print(f"wrote {args.out}: {len(neural)} sessions ({shapes} time points x neurons), {model.max_steps} steps, "
          f"blocks {blocks}; final loss {float(model.log_['loss'][-1]):.4g}")
    return 0
