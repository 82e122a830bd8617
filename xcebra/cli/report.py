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
from ..pipeline import analyze
from ..significance import significance
from ..viz.analysis import analysis_figures, analysis_sections, significance_report
from ..viz.report import save_outputs
from ._common import (add_common_options, add_data_arguments, load_model, parse_hypothesis, parse_labels, read_cell_types,
                      read_data)

__all__ = ["add_parser", "run", "EPILOG"]

EPILOG = """\
example:
  xcebra report model.xcebra rec.npz --neural spikes --label position=pos --out report_dir
  xcebra report model.xcebra rec.npz --neural spikes --label position=pos --cell-types types \\
      --hypothesis behavior=grid,place --method ing --method jacobian --out report_dir

--cell-types is a key in DATA (strings, one per neuron) or a .txt/.csv file with one cell type per
line (or comma separated). Writes DIR/report.html, one PNG per figure and DIR/summary.json.
--significance-seeds M adds a section on which neurons significantly drive each block: M fits of the
model's configuration with shadow neurons (as 'xcebra significance'; DIR/significance/ holds its table)."""


def add_parser(subparsers: Any, formatter: type) -> argparse.ArgumentParser:
    """Add the ``report`` subcommand to ``subparsers``."""
    parser = subparsers.add_parser("report", help="HTML report for a fitted model on a recording",
                                   description="Embed, decode labels, compute attribution maps, optionally test a "
                                               "cell-type hypothesis, and write an HTML report with figures.",
                                   epilog=EPILOG, formatter_class=formatter)
    parser.add_argument("model", metavar="MODEL")
    parser.add_argument("data", metavar="DATA")
    add_data_arguments(parser, labels=True)
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


def run(args: argparse.Namespace) -> int:
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
