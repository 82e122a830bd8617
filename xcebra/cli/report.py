"""``xcebra report``: analyse a fitted model on a recording (:func:`xcebra.pipeline.analyze`) and write an
HTML report with its figures (:mod:`xcebra.viz.analysis`) and ``summary.json``."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.base import clone

from .._files import write_json
from ..attribution import METHODS
from ..parallel import local_client
from ..pipeline import analyze, block_consistency
from ..significance import significance
from ..viz.analysis import analysis_figures, analysis_sections, significance_report
from ..viz.report import save_outputs
from ..viz.sessions import consistency_report
from ._common import (add_common_options, add_data_arguments, load_model, parse_hypothesis, parse_labels, read_cell_types,
                      read_data)
from .sessions import is_sessions_manifest, load_sessions_manifest, neural_or_manifest, read_sessions

__all__ = ["add_parser", "usage_problem", "run", "EPILOG"]

EPILOG = """\
example:
  xcebra report model.xcebra rec.npz --neural spikes --label position=pos --out report_dir
  xcebra report model.xcebra rec.npz --neural spikes --label position=pos --cell-types types \\
      --hypothesis behavior=grid,place --method ing --method jacobian --out report_dir

--cell-types is a key in DATA (strings, one per neuron) or a .txt/.csv file with one cell type per
line (or comma separated). Writes DIR/report.html, one PNG per figure and DIR/summary.json.
--significance-seeds M adds a section on which neurons significantly drive each block: M fits of the
model's configuration with shadow neurons (as 'xcebra significance'; DIR/significance/ holds its table).

For a multi-session model, DATA is the sessions manifest it was fitted on (see 'xcebra fit --help'; a
session's cell_types entry names its cell types): the report has each session's sections and the
consistency matrix of the sessions' label-driven blocks, one per label.
  xcebra report model.xcebra sessions.toml --hypothesis behavior=grid,place --out report_dir"""


def add_parser(subparsers: Any, formatter: type) -> argparse.ArgumentParser:
    """Add the ``report`` subcommand to ``subparsers``."""
    parser = subparsers.add_parser("report", help="HTML report for a fitted model on a recording",
                                   description="Embed, decode labels, compute attribution maps, optionally test a "
                                               "cell-type hypothesis, and write an HTML report with figures.",
                                   epilog=EPILOG, formatter_class=formatter)
    parser.add_argument("model", metavar="MODEL")
    parser.add_argument("data", metavar="DATA", help="a recording, or a sessions manifest (.toml) for a multi-session "
                                                     "model")
    add_data_arguments(parser, labels=True, required=False)
    parser.add_argument("--cell-types", metavar="KEY|FILE", help="cell type per neuron: key in DATA or a text file")
    parser.add_argument("--hypothesis", action="append", default=[], metavar="BLOCK=TYPE,TYPE",
                        help="cell types that drive a block, e.g. behavior=grid,place; repeatable")
    parser.add_argument("--method", action="append", choices=METHODS, metavar="METHOD",
                        help=f"attribution method, repeatable (default: ing); one of {', '.join(METHODS)}")
    parser.add_argument("--num-samples", type=int, metavar="N", help="attribute N random time points (default: all)")
    parser.add_argument("--significance-seeds", type=int, default=0, metavar="M",
                        help="add the significance section: M fits of the model's configuration with shadow neurons "
                             "(default: 0, no section)")
    parser.add_argument("--fdr", type=float, default=0.05, help="false discovery rate of that section (default: 0.05)")
    parser.add_argument("--out", default="xcebra_report", metavar="DIR",
                        help="output directory (default: xcebra_report)")
    add_common_options(parser)
    return parser


#: what is wrong with the command line that argparse cannot check, or None (called by the app)
usage_problem = neural_or_manifest


def run(args: argparse.Namespace) -> int:
    if is_sessions_manifest(args.data):
        return _run_sessions(args)
    labels = parse_labels(args.label)
    hypothesis = parse_hypothesis(args.hypothesis)
    model = load_model(args.model)
    neural, label_arrays = read_data(args.data, args.neural, labels, lazy=True)
    cell_types = read_cell_types(args.cell_types, args.data, neural.shape[1]) if args.cell_types else None
    if hypothesis is not None and cell_types is None:
        raise ValueError("--hypothesis needs --cell-types (one cell type per neuron)")
    methods = list(dict.fromkeys(args.method or ["ing"]))
    analysis = analyze(model, neural, labels=label_arrays, cell_types=cell_types, hypothesis=hypothesis,
                       methods=methods, num_samples=args.num_samples, verbose=not args.quiet)
    figures = analysis_figures(model, neural, analysis, labels=label_arrays, cell_types=cell_types)
    sections = analysis_sections(model, analysis, figures)
    out = Path(args.out)
    selected = None
    if args.significance_seeds:
        # the fitted model's parameters are the configuration; its weights play no part
        with local_client() as client:
            result = significance(clone(model), np.asarray(neural), n_seeds=args.significance_seeds, fdr=args.fdr,
                                  client=client, out_dir=out / "significance" / "fits", verbose=not args.quiet,
                                  **{k: np.asarray(v) for k, v in label_arrays.items()})
        result.save(out / "significance", cell_types=cell_types)
        extra, section = significance_report(result, cell_types)
        figures = {**figures, **extra}
        sections.append(section)
        selected = {block: neurons.tolist() for block, neurons in result.selected().items()}
    written = save_outputs(out, figures, sections,
                           title=f"xCEBRA report: {Path(args.data).name}", verbose=not args.quiet)
    write_json(out / "summary.json", {
        "model": str(args.model), "data": str(args.data), "blocks": [[n, s.start, s.stop] for n, s in model.blocks_],
        "decoding": analysis.decoding, "per_type": analysis.per_type,
        "hypothesis": {m: r.to_dict() for m, r in analysis.hypothesis.items()},
        "attribution": {m: {"n_timepoints": a.n_timepoints} for m, a in analysis.attribution.items()},
        "significance": selected,
        "files": {"report": written["report"].name, "figures": [p.name for p in written["figures"]]},
    })
    for label, blocks in analysis.decoding.items():
        for block, s in blocks.items():
            print(f"{label} from {block}: R2 held-out {s['linear_r2']:.3f}, kNN R2 {s['knn_r2']:.3f}")
    for method, result in analysis.hypothesis.items():
        print(f"{method}: block AUC {result.block_auc:.3f}, entry AUC {result.entry_auc:.3f}")
    print(f"wrote {written['report']} and {len(written['figures'])} figures")
    return 0


def _run_sessions(args: argparse.Namespace) -> int:
    """``xcebra report model sessions.toml``: every session's sections and the consistency across sessions."""
    if args.neural is not None or args.label or args.cell_types or args.significance_seeds:
        raise ValueError(f"{args.data!r} is a sessions manifest: it names each session's arrays and cell types, so "
                         "drop --neural, --label and --cell-types; --significance-seeds is for one recording")
    model = load_model(args.model)
    if getattr(model, "n_sessions_", None) is None:
        raise ValueError(f"{args.model!r} was fitted on one recording; a sessions manifest needs a multi-session model")
    _, sessions = load_sessions_manifest(args.data)
    if len(sessions) > model.n_sessions_:
        raise ValueError(f"{args.data!r} lists {len(sessions)} sessions but {args.model!r} has {model.n_sessions_}")
    hypothesis = parse_hypothesis(args.hypothesis)
    neural, labels = read_sessions(sessions)
    methods = list(dict.fromkeys(args.method or ["ing"]))
    figures, sections, summary = {}, [], []
    for s, (entry, x) in enumerate(zip(sessions, neural)):
        session_labels = {name: values[s] for name, values in labels.items()}
        cell_types = read_cell_types(entry["cell_types"], entry["data"], x.shape[1]) if entry["cell_types"] else None
        analysis = analyze(model, x, labels=session_labels, cell_types=cell_types,
                           hypothesis=hypothesis if cell_types is not None else None, methods=methods,
                           num_samples=args.num_samples, verbose=not args.quiet, session=s)
        found = analysis_figures(model, x, analysis, labels=session_labels, cell_types=cell_types)
        figures.update({f"session{s}_{name}": value for name, value in found.items()})
        for section in analysis_sections(model, analysis, found):
            sections.append({**section, "heading": f"Session {s} ({Path(entry['data']).name}): {section['heading']}"})
        summary.append({"data": entry["data"], "decoding": analysis.decoding,
                        "hypothesis": {m: r.to_dict() for m, r in analysis.hypothesis.items()}})
    matrices = {}
    if len(neural) > 1:
        for name, values in labels.items():
            if any(o.label == name and o.distribution != "time" for o in model.objectives):
                matrices[name] = block_consistency(model, neural, values, label_name=name)
    if matrices:
        extra, section = consistency_report(matrices, [f"session {s}" for s in range(len(neural))])
        figures.update(extra)
        sections.insert(0, section)
    out = Path(args.out)
    written = save_outputs(out, figures, sections, title=f"xCEBRA report: {Path(args.data).name}",
                           verbose=not args.quiet)
    write_json(out / "summary.json", {
        "model": str(args.model), "sessions": summary, "blocks": [[n, s.start, s.stop] for n, s in model.blocks_],
        "consistency": {name: matrix.tolist() for name, matrix in matrices.items()},
        "files": {"report": written["report"].name, "figures": [p.name for p in written["figures"]]}})
    for name, matrix in matrices.items():
        off = matrix[~np.eye(len(matrix), dtype=bool)]
        print(f"consistency by {name}: mean off-diagonal R2 {np.nanmean(off):.3f}")
    print(f"wrote {written['report']} and {len(written['figures'])} figures")
    return 0
