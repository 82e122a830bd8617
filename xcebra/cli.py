"""The ``xcebra`` command: ``demo``, ``fit``, ``fit-many``, ``embed``, ``attribute`` and ``report``.

Every subcommand's ``--help`` ends with an example. Data files are ``.npz``, ``.npy``, ``.h5`` /
``.hdf5`` or ``.nwb`` (see :mod:`xcebra.datasets.io`); arrays are named by ``--neural KEY`` and
``--label NAME=KEY``. A problem with the input ends in one line on stderr, ``xcebra: error: ...``,
and exit status 1 (2 for wrong command-line usage); ``--debug`` shows the traceback instead.
Logging goes to stderr (warnings by default, ``-v`` for progress messages); progress bars follow
``--quiet``.

This is the only module that prints.
"""

from __future__ import annotations

import argparse
import io
import json
import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["main", "build_parser", "load_config", "config_from_table", "load_manifest", "config_parameters",
           "objective_fields", "parse_param_options"]

logger = logging.getLogger("xcebra")

#: TOML has no null: a parameter that takes None is written as this string
NONE_IN_CONFIG = "none"


def config_parameters() -> tuple[str, ...]:
    """XCEBRA parameters a config file (or ``--param``) may set besides ``objectives``: all of ``get_params()``.

    Derived from the estimator's signature, so a new hyper-parameter is settable without touching this module.
    """
    from .estimator import XCEBRA

    return tuple(name for name in XCEBRA._get_param_names() if name != "objectives")


def objective_fields() -> tuple[str, ...]:
    """The keys of an ``[[objectives]]`` table: the fields of :class:`xcebra.Objective`."""
    import dataclasses

    from .objectives import Objective

    return tuple(field.name for field in dataclasses.fields(Objective))


_EXAMPLE_CONFIG = """\
# model.toml: XCEBRA parameters, then one [[objectives]] table per objective
model = "offset10"
output_dim = 14
batch_size = 2500
max_steps = 1000
learning_rate = 3e-4
regularizer_weight = 0.1
regularizer_ramp = [250, 500]

[[objectives]]
name = "behavior"
dims = [0, 4]
distribution = "time_delta"
label = "position"

[[objectives]]
name = "time"
dims = [0, 14]
distribution = "time"
time_offset = 10
"""

_EXAMPLE_MANIFEST = """\
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

_EPILOGS = {
    "main": """\
examples:
  xcebra demo --quick --out demo_out
  xcebra fit rec.npz --neural spikes --label position=pos --out model.xcebra
  xcebra fit-many sessions.toml --slurm cores=4 memory=16GB --jobs 8
  xcebra embed model.xcebra rec.npz --neural spikes --out embedding.npy
  xcebra attribute model.xcebra rec.npz --neural spikes --method ing --out map.npz
  xcebra report model.xcebra rec.npz --neural spikes --label position=pos --cell-types types \\
      --hypothesis behavior=grid,place --out report_dir

Run 'xcebra COMMAND --help' for the options of a command.""",
    "demo": """\
example:
  xcebra demo --quick --out demo_out     # about 2 minutes on 2 cores
  xcebra demo --out demo_out             # the seed's configuration, under 10 minutes
  xcebra demo --steps 2000 --out demo_2k  # twice the training (regularizer ramp scaled)

Writes DIR/report.html (all figures embedded), one PNG per figure, DIR/summary.json and
DIR/model.xcebra, and prints a summary table.""",
    "fit": f"""\
example:
  xcebra fit rec.npz --neural spikes --label position=pos --out model.xcebra
  xcebra fit rec.h5 --neural data/spikes --label position=behavior/xy --config model.toml \\
      --max-steps 2000 --seed 1 --checkpoint-dir ck/ --out model.xcebra

Without --config the seed's layout is used: a behaviour objective on dims 0-3 following the one
label (time_delta positives) and a time objective on all dims (offset 10); without a label, only
the time objective. Command-line options override the config file. A config file may set every
XCEBRA parameter (as may --param NAME=VALUE); TOML has no null, so write "none" for None. A config file:

{_EXAMPLE_CONFIG}""",
    "fit-many": f"""\
example:
  xcebra fit-many sessions.toml                           # a local cluster, one worker per core
  xcebra fit-many sessions.toml --scheduler tcp://10.0.0.5:8786
  xcebra fit-many sessions.toml --slurm cores=4 memory=16GB walltime=02:00:00 --jobs 8

Fits one model per [[fit]] table of the manifest, as parallel Dask tasks, and writes each to the
output directory as it finishes (named by a hash of its data and parameters; DIR/index.json says
which is which). A rerun skips the fits whose model is already there. --slurm starts workers as
SLURM jobs (dask-jobqueue's SLURMCluster; KEY=VALUE are its arguments). Paths in the manifest are
relative to it. A manifest:

{_EXAMPLE_MANIFEST}""",
    "embed": """\
example:
  xcebra embed model.xcebra rec.npz --neural spikes --out embedding.npy
  xcebra embed model.xcebra rec.h5 --neural data/spikes --out embedding.npz   # + block names

HDF5 and NWB data are read in batches, so recordings larger than memory work.""",
    "attribute": """\
example:
  xcebra attribute model.xcebra rec.npz --neural spikes --method ing --out map.npz
  xcebra attribute model.xcebra rec.h5 --neural data/spikes --method jacobian --num-samples 5000 --out jac.npz
  xcebra attribute model.xcebra rec.npz --neural spikes --method ing-block --block-rank behavior=2 --out ingb.npz

map.npz holds values (output_dim, N), stderr, block_values (n_blocks, N), block_names,
block_bounds (n_blocks, 2), method and n_timepoints (and block_ranks for ing-block: 0 = full rank).""",
    "report": """\
example:
  xcebra report model.xcebra rec.npz --neural spikes --label position=pos --out report_dir
  xcebra report model.xcebra rec.npz --neural spikes --label position=pos --cell-types types \\
      --hypothesis behavior=grid,place --method ing --method jacobian --out report_dir

--cell-types is a key in DATA (strings, one per neuron) or a .txt/.csv file with one cell type per
line (or comma separated). Writes DIR/report.html, one PNG per figure and DIR/summary.json.""",
}


class _Parser(argparse.ArgumentParser):
    """argparse with the error line as ``xcebra: error: ...`` (after the usage), exit status 2."""

    def error(self, message: str):  # noqa: D102 - argparse API
        self.print_usage(sys.stderr)
        self.exit(2, f"xcebra: error: {message}\n")


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress messages (INFO)")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    parser.add_argument("--debug", action="store_true", help="show the full traceback on errors")


def _data_arguments(parser: argparse.ArgumentParser, labels: bool = False) -> None:
    parser.add_argument("--neural", required=True, metavar="KEY",
                        help="array of neural activity (time points x neurons) in DATA, e.g. spikes or group/data")
    if labels:
        parser.add_argument("--label", action="append", default=[], metavar="NAME=KEY",
                            help="a label array in DATA (time points [x dims]) passed to fit as NAME; repeatable; "
                                 "NAME alone means NAME=NAME")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``xcebra`` command."""
    formatter = argparse.RawDescriptionHelpFormatter
    parser = _Parser(prog="xcebra", formatter_class=formatter, epilog=_EPILOGS["main"],
                     description="xCEBRA: regularized multi-objective contrastive learning and identifiable "
                                 "attribution maps for neural time series.")
    from . import __version__
    parser.add_argument("--version", action="version", version=f"xcebra {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True

    demo = sub.add_parser("demo", help="the seed pipeline end to end on simulated RatInABox data",
                          description="Simulate RatInABox data, fit xCEBRA, compute ING, per-block ING and Jacobian "
                                      "attribution maps, test the cell-type hypothesis per block and write a report.",
                          epilog=_EPILOGS["demo"], formatter_class=formatter)
    demo.add_argument("--quick", action="store_true", help="short run: 600 s of data, 120 steps (< 2 min)")
    demo.add_argument("--out", default="xcebra_demo", metavar="DIR", help="output directory (default: xcebra_demo)")
    demo.add_argument("--seed", type=int, default=0, help="random_state of the model (default: 0)")
    demo.add_argument("--steps", type=int, metavar="N",
                      help="training steps (default: the seed's 1000, --quick 120); the regularizer ramp scales with them")
    demo.add_argument("--precision", choices=("auto", "fp32", "bf16"), default="auto",
                      help="training arithmetic; auto: bf16 on CPUs with native bf16 units, else fp32 (default: auto)")
    _common(demo)

    fit = sub.add_parser("fit", help="fit xCEBRA to a recording and save the model",
                         description="Fit an XCEBRA model to neural data and labels read from DATA.",
                         epilog=_EPILOGS["fit"], formatter_class=formatter)
    fit.add_argument("data", metavar="DATA", help=".npz, .npy, .h5/.hdf5 or .nwb file")
    _data_arguments(fit, labels=True)
    fit.add_argument("--config", metavar="FILE.toml", help="XCEBRA parameters and [[objectives]] (see below)")
    fit.add_argument("--out", required=True, metavar="MODEL", help="where to write the model (e.g. model.xcebra)")
    fit.add_argument("--max-steps", type=int, help="training steps")
    fit.add_argument("--batch-size", type=int, help="references per step")
    fit.add_argument("--learning-rate", type=float, help="Adam learning rate")
    fit.add_argument("--output-dim", type=int, help="embedding dimensions")
    fit.add_argument("--hidden-units", type=int, help="hidden units of the encoder")
    fit.add_argument("--model", help="encoder: offset1, offset5, offset10 or offset36")
    fit.add_argument("--regularizer-weight", type=float, help="final weight of the Jacobian regularizer")
    fit.add_argument("--seed", type=int, help="random_state: the same seed gives the same weights")
    fit.add_argument("--device", help="auto, cpu or cuda")
    fit.add_argument("--num-threads", type=int, help="torch threads")
    fit.add_argument("--param", action="append", default=[], metavar="NAME=VALUE",
                     help="any XCEBRA parameter, VALUE in TOML syntax (e.g. lipschitz=4.0, precision='\"bf16\"', "
                          "regularizer_ramp=[250,500], lipschitz='\"none\"'); overrides --config and the options above")
    fit.add_argument("--checkpoint-dir", metavar="DIR", help="save checkpoints there and resume from them")
    fit.add_argument("--checkpoint-every", type=int, default=100, metavar="STEPS", help="default: 100")
    _common(fit)

    many = sub.add_parser("fit-many", help="fit one model per recording of a manifest, in parallel (Dask)",
                          description="Fit XCEBRA models to many recordings as parallel tasks on a Dask cluster: "
                                      "local, an existing scheduler, or SLURM jobs.",
                          epilog=_EPILOGS["fit-many"], formatter_class=formatter)
    many.add_argument("manifest", metavar="MANIFEST.toml", help="out_dir, the model, and one [[fit]] per recording")
    where = many.add_mutually_exclusive_group()
    where.add_argument("--scheduler", metavar="ADDRESS", help="a running Dask scheduler, e.g. tcp://host:8786")
    where.add_argument("--slurm", nargs="+", metavar="KEY=VALUE",
                       help="start workers as SLURM jobs: dask_jobqueue.SLURMCluster(KEY=VALUE, ...)")
    many.add_argument("--jobs", type=int, metavar="N", help="with --slurm: SLURM jobs to start (default: one per fit)")
    many.add_argument("--workers", type=int, metavar="N", help="local cluster: worker processes (default: one per core)")
    many.add_argument("--out", metavar="DIR", help="output directory (overrides out_dir of the manifest)")
    _common(many)

    embed = sub.add_parser("embed", help="embed every time point of a recording with a fitted model",
                           description="Write the embedding (time points x output_dim) of DATA.",
                           epilog=_EPILOGS["embed"], formatter_class=formatter)
    embed.add_argument("model", metavar="MODEL", help="a model written by 'xcebra fit'")
    embed.add_argument("data", metavar="DATA")
    _data_arguments(embed)
    embed.add_argument("--out", required=True, metavar="FILE", help=".npy (the array) or .npz (embedding + blocks)")
    embed.add_argument("--batch-size", type=int, default=50_000, help="time points per pass (default: 50000)")
    _common(embed)

    from .attribution import METHODS
    attribute = sub.add_parser("attribute", help="attribution map: which neurons drive which embedding dimension",
                               description="Compute an attribution map of a fitted model on DATA.",
                               epilog=_EPILOGS["attribute"], formatter_class=formatter)
    attribute.add_argument("model", metavar="MODEL")
    attribute.add_argument("data", metavar="DATA")
    _data_arguments(attribute)
    attribute.add_argument("--method", default="ing", choices=METHODS, help="default: ing")
    attribute.add_argument("--num-samples", type=int, metavar="N", help="attribute N random time points (default: all)")
    attribute.add_argument("--lags", default="sum", choices=("sum", "abs"), help="default: sum")
    attribute.add_argument("--batch-size", type=int, default=1024, help="time points per batch (default: 1024)")
    attribute.add_argument("--seed", type=int, default=0, help="seed for --num-samples (default: 0)")
    attribute.add_argument("--block-rank", action="append", default=[], metavar="BLOCK=K",
                           help="ing-block only: keep at most K singular values of BLOCK (default: the dimension of "
                                "its objective's label, full rank for time blocks); repeatable")
    attribute.add_argument("--out", required=True, metavar="FILE.npz")
    _common(attribute)

    report = sub.add_parser("report", help="HTML report for a fitted model on a recording",
                            description="Embed, decode labels, compute attribution maps, optionally test a "
                                        "cell-type hypothesis, and write an HTML report with figures.",
                            epilog=_EPILOGS["report"], formatter_class=formatter)
    report.add_argument("model", metavar="MODEL")
    report.add_argument("data", metavar="DATA")
    _data_arguments(report, labels=True)
    report.add_argument("--cell-types", metavar="KEY|FILE", help="cell type per neuron: key in DATA or a text file")
    report.add_argument("--hypothesis", action="append", default=[], metavar="BLOCK=TYPE,TYPE",
                        help="cell types that drive a block, e.g. behavior=grid,place; repeatable")
    report.add_argument("--method", action="append", choices=METHODS, metavar="METHOD",
                        help=f"attribution method, repeatable (default: ing); one of {', '.join(METHODS)}")
    report.add_argument("--num-samples", type=int, metavar="N", help="attribute N random time points (default: all)")
    report.add_argument("--out", default="xcebra_report", metavar="DIR",
                        help="output directory (default: xcebra_report)")
    _common(report)
    return parser


# ----------------------------------------------------------------------------------------------
# Helpers


def _parse_block_ranks(items: Sequence[str]) -> dict[str, int]:
    ranks: dict[str, int] = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not name or not value.isdigit() or int(value) < 1:
            raise ValueError(f"--block-rank needs BLOCK=K with K an integer >= 1, e.g. behavior=2; got {item!r}")
        if name in ranks:
            raise ValueError(f"--block-rank gives block {name!r} twice")
        ranks[name] = int(value)
    return ranks


def _parse_labels(items: Sequence[str]) -> dict[str, str]:
    labels: dict[str, str] = {}
    for item in items:
        name, sep, key = item.partition("=")
        name, key = name.strip(), (key.strip() if sep else name.strip())
        if not name or not key:
            raise ValueError(f"--label must be NAME=KEY (e.g. position=pos); got {item!r}")
        if not name.isidentifier():
            raise ValueError(f"--label name must be a Python identifier (letters, digits, _); got {name!r}")
        if name in ("neural", "checkpoint_dir", "checkpoint_every"):
            raise ValueError(f"--label name {name!r} is reserved; choose another name")
        if name in labels:
            raise ValueError(f"--label {name!r} is given twice")
        labels[name] = key
    return labels


def _parse_hypothesis(items: Sequence[str]) -> dict[str, list[str]] | None:
    if not items:
        return None
    hypothesis: dict[str, list[str]] = {}
    for item in items:
        block, sep, types = item.partition("=")
        members = [t.strip() for t in types.split(",") if t.strip()]
        if not sep or not block.strip() or not members:
            raise ValueError(f"--hypothesis must be BLOCK=TYPE[,TYPE...] (e.g. behavior=grid,place); got {item!r}")
        hypothesis.setdefault(block.strip(), []).extend(members)
    return hypothesis


def load_config(path: str | Path) -> dict[str, Any]:
    """Read a TOML config: XCEBRA parameters and an ``[[objectives]]`` array; returns XCEBRA keyword arguments.

    Raises ValueError (one line, naming the file) for unreadable TOML, unknown keys or bad objectives.
    """
    return config_from_table(_read_toml(path, "config"), f"config {str(path)!r}")


def _toml_module(what: str):
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        try:
            import tomli as tomllib  # type: ignore[no-redef]
        except ModuleNotFoundError as error:
            raise ImportError(f"reading {what} on Python 3.10 needs tomli: pip install tomli") from error
    return tomllib


def _read_toml(path: str | Path, what: str) -> dict[str, Any]:
    tomllib = _toml_module(f"a {what} file")
    path = Path(path)
    try:
        with open(path, "rb") as handle:
            return tomllib.load(handle)
    except OSError as error:
        raise ValueError(f"cannot read {what} {str(path)!r}: {error.strerror or error}") from None
    except tomllib.TOMLDecodeError as error:
        raise ValueError(f"{what} {str(path)!r} is not valid TOML: {error}") from None


def parse_param_options(items: Sequence[str]) -> dict[str, Any]:
    """``--param NAME=VALUE`` options -> XCEBRA keyword arguments; VALUE is read as a TOML value.

    A bare word that is not a TOML value (``precision=bf16``) is taken as a string; ``"none"`` is None.
    """
    tomllib = _toml_module("a --param option")
    raw: dict[str, Any] = {}
    for item in items:
        name, sep, text = item.partition("=")
        name = name.strip()
        if not sep or not name:
            raise ValueError(f"--param needs NAME=VALUE; got {item!r}")
        try:
            raw[name] = tomllib.loads(f"value = {text.strip()}")["value"]
        except tomllib.TOMLDecodeError:
            raw[name] = text.strip()
    if "objectives" in raw:
        raise ValueError("--param cannot set objectives; give them in --config FILE.toml as [[objectives]] tables")
    return config_from_table(raw, "--param")


def config_from_table(raw: dict[str, Any], where: str) -> dict[str, Any]:
    """XCEBRA keyword arguments from a parsed config table (``where`` names it in error messages)."""
    from .objectives import Objective

    if "xcebra" in raw and isinstance(raw["xcebra"], dict):  # also accept everything under an [xcebra] table
        raw = {**raw["xcebra"], **{k: v for k, v in raw.items() if k != "xcebra"}}
    allowed = config_parameters()
    unknown = sorted(set(raw) - set(allowed) - {"objectives"})
    if unknown:
        raise ValueError(f"{where} has unknown key(s) {', '.join(unknown)}; allowed: "
                         f"{', '.join(allowed)}, objectives")
    params = {k: None if isinstance(v, str) and v.lower() == NONE_IN_CONFIG else v
              for k, v in raw.items() if k != "objectives"}
    if isinstance(params.get("regularizer_ramp"), list):
        params["regularizer_ramp"] = tuple(params["regularizer_ramp"])
    if "objectives" in raw:
        tables = raw["objectives"]
        if not isinstance(tables, list) or not tables or not all(isinstance(t, dict) for t in tables):
            raise ValueError(f"{where}: objectives must be an array of tables ([[objectives]]), "
                             "one per objective")
        objectives = []
        for i, table in enumerate(tables):
            fields = objective_fields()
            bad = sorted(set(table) - set(fields))
            if bad:
                raise ValueError(f"{where}: objectives[{i}] has unknown key(s) {', '.join(bad)}; "
                                 f"allowed: {', '.join(fields)}")
            table = {k: None if isinstance(v, str) and v.lower() == NONE_IN_CONFIG and k != "name" else v
                     for k, v in table.items()}
            missing = [k for k in ("name", "dims", "distribution") if k not in table]
            if missing:
                raise ValueError(f"{where}: objectives[{i}] needs {', '.join(missing)}")
            try:
                objectives.append(Objective(**{**table, "dims": tuple(table["dims"])
                                               if isinstance(table["dims"], list) else table["dims"]}))
            except (TypeError, ValueError) as error:
                raise ValueError(f"{where}: objectives[{i}]: {error}") from None
        params["objectives"] = objectives
    return params


def _default_objectives(labels: Sequence[str], output_dim: int) -> list:
    from .objectives import Objective

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


def _read_data(path: str, neural_key: str, labels: dict[str, str] | None = None, *,
               lazy: bool = False) -> tuple[Any, dict[str, np.ndarray]]:
    from .datasets.io import load_arrays

    keys = {"neural": neural_key, **{name: key for name, key in (labels or {}).items()}}
    arrays = load_arrays(path, keys, lazy=lazy)
    neural = arrays.pop("neural")
    if len(neural.shape) != 2:
        raise ValueError(f"{path!r}: --neural {neural_key!r} must be a 2-D array (time points x neurons); "
                         f"got shape {tuple(neural.shape)}")
    for name, values in arrays.items():
        if values.shape[0] != neural.shape[0]:
            raise ValueError(f"{path!r}: label {name!r} ({labels[name]!r}) has {values.shape[0]} time points but "
                             f"neural ({neural_key!r}) has {neural.shape[0]}; they must match")
    return neural, {name: np.asarray(values) for name, values in arrays.items()}


def _load_model(path: str):
    from .estimator import XCEBRA

    return XCEBRA.load(path)


def _save_array_file(path: Path, arrays: dict[str, np.ndarray], single: str | None = None) -> None:
    from ._files import atomic_write_bytes

    buffer = io.BytesIO()
    if single is not None:
        np.save(buffer, arrays[single], allow_pickle=False)
    else:
        np.savez(buffer, **arrays)
    atomic_write_bytes(path, buffer.getvalue())


def _read_cell_types(spec: str, data_path: str, n_neurons: int) -> list[str]:
    candidate = Path(spec)
    if candidate.suffix.lower() in (".txt", ".csv", ".tsv") and candidate.is_file():
        try:
            text = candidate.read_text()
        except (OSError, UnicodeDecodeError) as error:
            raise ValueError(f"cannot read cell types from {spec!r}: {error}") from None
        entries = [t.strip() for line in text.splitlines() for t in line.replace("\t", ",").split(",") if t.strip()]
    else:
        from .datasets.io import load_arrays

        values = load_arrays(data_path, {"cell types": spec})["cell types"]
        values = np.asarray(values)
        if values.ndim != 1:
            raise ValueError(f"--cell-types {spec!r} must be a 1-D array of names; got shape {values.shape}")
        entries = [v.decode() if isinstance(v, bytes) else str(v) for v in values.tolist()]
    if len(entries) != n_neurons:
        raise ValueError(f"--cell-types {spec!r} has {len(entries)} entries but the data have {n_neurons} neurons; "
                         "they must match")
    return entries


# ----------------------------------------------------------------------------------------------
# Commands


def _cmd_demo(args) -> int:
    from .demo import format_summary, run_demo

    summary = run_demo(args.out, quick=args.quick, verbose=not args.quiet, seed=args.seed, precision=args.precision,
                       steps=args.steps)
    print(format_summary(summary))
    print(f"\nwrote {Path(args.out) / 'report.html'}, {Path(args.out) / 'summary.json'}, "
          f"{len(summary['files']['figures'])} figures and {Path(args.out) / 'model.xcebra'}")
    return 0


def _cmd_fit(args) -> int:
    from .estimator import XCEBRA

    labels = _parse_labels(args.label)
    params = load_config(args.config) if args.config else {}
    overrides = {"max_steps": args.max_steps, "batch_size": args.batch_size, "learning_rate": args.learning_rate,
                 "output_dim": args.output_dim, "hidden_units": args.hidden_units, "model": args.model,
                 "regularizer_weight": args.regularizer_weight, "random_state": args.seed, "device": args.device,
                 "num_threads": args.num_threads}
    params.update({k: v for k, v in overrides.items() if v is not None})
    params.update(parse_param_options(args.param))
    if "objectives" not in params:
        params["objectives"] = _default_objectives(list(labels), params.get("output_dim", 14))
    params["verbose"] = not args.quiet
    neural, label_arrays = _read_data(args.data, args.neural, labels)
    model = XCEBRA(**params)
    model.fit(neural, checkpoint_dir=args.checkpoint_dir, checkpoint_every=args.checkpoint_every, **label_arrays)
    model.save(args.out)
    final = ", ".join(f"{k} {float(v[-1]):.4g}" for k, v in model.log_.items() if k.startswith("loss") and len(v))
    blocks = ", ".join(f"{name} {s.start}:{s.stop}" for name, s in model.blocks_)
    print(f"wrote {args.out}: {neural.shape[0]} time points x {neural.shape[1]} neurons, {model.max_steps} steps, "
          f"blocks {blocks}; final {final or 'loss n/a'}")
    return 0


_MANIFEST_KEYS = ("out_dir", "retries", "config", "model", "fit")
_FIT_KEYS = ("data", "neural", "labels")


def load_manifest(path: str | Path) -> tuple[dict[str, Any], list[dict[str, Any]], dict[str, Any]]:
    """Read a fit-many manifest: (XCEBRA keyword arguments, jobs for :func:`xcebra.parallel.fit_many`, settings).

    Paths in it are relative to the manifest's folder. Raises ValueError (one line, naming the file
    and the entry) for unknown keys, a missing ``[[fit]]`` array or entries without ``data`` / ``neural``.
    """
    path = Path(path)
    raw = _read_toml(path, "manifest")
    where = f"manifest {str(path)!r}"
    unknown = sorted(set(raw) - set(_MANIFEST_KEYS))
    if unknown:
        raise ValueError(f"{where} has unknown key(s) {', '.join(unknown)}; allowed: {', '.join(_MANIFEST_KEYS)}")
    if "config" in raw and "model" in raw:
        raise ValueError(f"{where}: give the model either as config = FILE or as a [model] table, not both")
    base = path.parent
    if "config" in raw:
        params = load_config(base / raw["config"])
    elif isinstance(raw.get("model"), dict):
        params = config_from_table(raw["model"], f"{where} [model]")
    else:
        raise ValueError(f"{where} has no model: add config = \"model.toml\" or a [model] table with the XCEBRA "
                         "parameters and [[model.objectives]]")
    if "objectives" not in params:
        raise ValueError(f"{where}: the model needs its objectives ([[objectives]] tables, see 'xcebra fit --help')")
    fits = raw.get("fit")
    if not isinstance(fits, list) or not fits or not all(isinstance(f, dict) for f in fits):
        raise ValueError(f"{where} needs one [[fit]] table per recording, each with data and neural")
    jobs = []
    for i, entry in enumerate(fits):
        bad = sorted(set(entry) - set(_FIT_KEYS))
        if bad:
            raise ValueError(f"{where}: fit[{i}] has unknown key(s) {', '.join(bad)}; allowed: {', '.join(_FIT_KEYS)}")
        missing = [k for k in ("data", "neural") if k not in entry]
        if missing:
            raise ValueError(f"{where}: fit[{i}] needs {' and '.join(missing)}")
        labels = entry.get("labels", {})
        if not isinstance(labels, dict) or not all(isinstance(v, str) for v in labels.values()):
            raise ValueError(f"{where}: fit[{i}].labels must be a table of NAME = \"KEY\", e.g. {{ position = \"pos\" }}")
        data = str((base / entry["data"]).resolve())
        try:
            _parse_labels([f"{name}={key}" for name, key in labels.items()])  # the same rules as --label
        except ValueError as error:
            raise ValueError(f"{where}: fit[{i}].labels: {str(error).replace('--label name ', 'name ')}") from None
        jobs.append({"neural": (data, entry["neural"]), **{name: (data, key) for name, key in labels.items()}})
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


def _cmd_fit_many(args) -> int:
    import contextlib

    from . import parallel
    from .estimator import XCEBRA

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
        outcomes = parallel._fit_many(estimator, jobs, client, out_dir, settings["retries"], not args.quiet)
    for i, (job, outcome) in enumerate(zip(jobs, outcomes)):
        what = "read (already fitted)" if outcome.skipped else f"fitted in {outcome.seconds:.1f} s"
        print(f"fit {i}: {job['neural'][0]} -> {outcome.path} ({what})")
    print(f"{len(outcomes)} models in {out_dir} (index: {Path(out_dir) / parallel.INDEX_NAME})")
    return 0


def _cmd_embed(args) -> int:
    out = Path(args.out)
    if out.suffix.lower() not in (".npy", ".npz"):
        raise ValueError(f"--out must end in .npy or .npz; got {args.out!r}")
    model = _load_model(args.model)
    neural, _ = _read_data(args.data, args.neural, lazy=True)
    embedding = model.transform(neural, batch_size=args.batch_size)
    if out.suffix.lower() == ".npy":
        _save_array_file(out, {"embedding": embedding}, single="embedding")
    else:
        _save_array_file(out, {"embedding": embedding,
                               "block_names": np.array([name for name, _ in model.blocks_]),
                               "block_bounds": np.array([[s.start, s.stop] for _, s in model.blocks_])})
    print(f"wrote {out}: embedding of shape {embedding.shape}")
    return 0


def _cmd_attribute(args) -> int:
    out = Path(args.out)
    if out.suffix.lower() != ".npz":
        raise ValueError(f"--out must end in .npz; got {args.out!r}")
    options = {}
    if args.block_rank:
        if args.method != "ing-block":
            raise ValueError(f"--block-rank applies to --method ing-block only; got --method {args.method}")
        options["block_ranks"] = _parse_block_ranks(args.block_rank)
    model = _load_model(args.model)
    neural, _ = _read_data(args.data, args.neural, lazy=True)
    amap = model.attribution_map(neural, method=args.method, num_samples=args.num_samples, lags=args.lags,
                                 batch_size=args.batch_size, random_state=args.seed, verbose=not args.quiet,
                                 **options)
    arrays = {
        "values": amap.values, "stderr": amap.stderr, "block_values": amap.block_values,
        "block_names": np.array(amap.block_names),
        "block_bounds": np.array([[s.start, s.stop] for _, s in amap.blocks]),
        "method": np.array(amap.method), "n_timepoints": np.array(amap.n_timepoints)}
    if amap.method == "ing-block":
        arrays["block_ranks"] = np.array([0 if r is None else r for r in amap.options["block_ranks"]])
    _save_array_file(out, arrays)
    print(f"wrote {out}: {amap.method} map of shape {amap.values.shape} over {amap.n_timepoints} time points")
    return 0


def _cmd_report(args) -> int:
    from .demo import _jsonable, analyze_model, save_outputs, write_json

    labels = _parse_labels(args.label)
    hypothesis = _parse_hypothesis(args.hypothesis)
    model = _load_model(args.model)
    neural, label_arrays = _read_data(args.data, args.neural, labels, lazy=True)
    cell_types = _read_cell_types(args.cell_types, args.data, neural.shape[1]) if args.cell_types else None
    if hypothesis is not None and cell_types is None:
        raise ValueError("--hypothesis needs --cell-types (one cell type per neuron)")
    methods = list(dict.fromkeys(args.method or ["ing"]))
    results, figures, sections = analyze_model(model, neural, labels=label_arrays, cell_types=cell_types,
                                               hypothesis=hypothesis, methods=methods, num_samples=args.num_samples,
                                               verbose=not args.quiet)
    out = Path(args.out)
    written = save_outputs(out, figures, sections, title=f"xCEBRA report: {Path(args.data).name}",
                           verbose=not args.quiet)
    summary = {
        "model": str(args.model), "data": str(args.data), "blocks": [[n, s.start, s.stop] for n, s in model.blocks_],
        "decoding": results["decoding"], "per_type": results["per_type"],
        "hypothesis": {m: r.to_dict() for m, r in results["hypothesis"].items()},
        "attribution": {m: {"n_timepoints": a.n_timepoints} for m, a in results["attribution"].items()},
        "files": {"report": written["report"].name, "figures": [p.name for p in written["figures"]]},
    }
    write_json(out / "summary.json", _jsonable(summary))
    for label, blocks in results["decoding"].items():
        for block, s in blocks.items():
            print(f"{label} from {block}: R2 held-out {s['linear_r2']:.3f}, kNN R2 {s['knn_r2']:.3f}")
    for method, result in results["hypothesis"].items():
        print(f"{method}: block AUC {result.block_auc:.3f}, entry AUC {result.entry_auc:.3f}")
    print(f"wrote {written['report']} and {len(written['figures'])} figures")
    return 0


_COMMANDS = {"demo": _cmd_demo, "fit": _cmd_fit, "fit-many": _cmd_fit_many, "embed": _cmd_embed, "attribute": _cmd_attribute,
             "report": _cmd_report}
_handler: logging.Handler | None = None


def _configure_logging(verbose: bool) -> None:
    global _handler
    if _handler is not None:
        logger.removeHandler(_handler)
    _handler = logging.StreamHandler(sys.stderr)
    _handler.setFormatter(logging.Formatter("xcebra: %(message)s"))
    logger.addHandler(_handler)
    logger.setLevel(logging.INFO if verbose else logging.WARNING)


def _error_line(error: BaseException) -> str:
    if isinstance(error, KeyError) and error.args and type(error) is KeyError:
        text = str(error.args[0])
    else:
        text = str(error)
    text = " ".join(text.split())
    return text or type(error).__name__


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``xcebra`` command; returns the exit status."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit_:  # argparse: --help, --version (0) and usage errors (2)
        return int(exit_.code or 0) if isinstance(exit_.code, int) or exit_.code is None else 2
    _configure_logging(args.verbose)
    from sklearn.exceptions import NotFittedError

    from .parallel import FitManyError

    try:
        return _COMMANDS[args.command](args)
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
        print(f"xcebra: error: {_error_line(error)}", file=sys.stderr)
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
