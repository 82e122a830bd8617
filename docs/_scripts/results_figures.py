"""Figures of the results pages, drawn at build time from the files the benchmarks committed.

Each function reads ``benchmarks/results/...`` (paths relative to the repository root, the plot
directive's working directory: ``plot_working_directory`` in ``conf.py``) and draws into the current
pyplot figure, which the directive saves. No benchmark is rerun here: these are pictures of the
committed tables, so a page's figure and its table always show the same numbers.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

RESULTS = Path("benchmarks/results")
_COLORS = {"xcebra": "#1f77b4", "reference": "#ff7f0e"}


def _rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def _strip(ax, x: float, values, color: str, label: str | None = None, width: float = 0.12) -> None:
    """One column of dots (jittered deterministically) with its median as a bar."""
    values = np.asarray(values, dtype=float)
    offsets = np.linspace(-width, width, len(values)) if len(values) > 1 else np.zeros(1)
    ax.scatter(x + offsets, values, s=22, color=color, alpha=0.8, label=label, zorder=3)
    ax.hlines(np.median(values), x - 1.8 * width, x + 1.8 * width, color=color, lw=2, zorder=4)


def quality_bounded_vs_unbounded() -> None:
    """ING block AUC per fit on the synthetic benchmark: the unbounded encoder (2,000 steps) against the
    Lipschitz-bounded one (6,000 steps, 5 seeds), regularizer 0.01 and 0, both noise models."""
    unbounded = [r for r in _rows(RESULTS / "quality_synthetic.csv") if r["precision"] == "fp32"]
    bounded = _rows(RESULTS / "quality_synthetic_lipschitz_5seeds" / "quality_synthetic.csv")
    fig, axes = plt.subplots(1, 2, figsize=(8, 3.4), sharey=True, layout="constrained")
    for ax, noise in zip(axes, ("gaussian", "poisson")):
        ticks = []
        for i, reg in enumerate(("0.01", "0.0")):
            for j, (name, rows, color) in enumerate((("unbounded, 2,000 steps", unbounded, "#999999"),
                                                     ("bounded (lipschitz=4), 6,000 steps", bounded, "#1f77b4"))):
                values = [float(r["block_auc"]) for r in rows
                          if r["noise"] == noise and r["method"] == "ing" and float(r["regularizer"]) == float(reg)]
                x = 2 * i + 0.7 * j
                _strip(ax, x, values, color, label=name if (ax is axes[0] and i == 0) else None)
            ticks.append((2 * i + 0.35, f"regularizer {float(reg):g}"))
        ax.set_xticks([t for t, _ in ticks], [label for _, label in ticks])
        ax.set_title(f"{noise} noise")
        ax.axhline(0.98, color="k", lw=0.8, ls=":")
        ax.grid(axis="y", alpha=0.3)
    axes[0].set_ylabel("ING block AUC (one dot per seed)")
    axes[0].legend(loc="lower left", fontsize=8, frameon=False)


def _demo_scores(directory: Path) -> dict[str, list[float]]:
    scores: dict[str, list[float]] = {"linear R2": [], "kNN R2": [], "ing-block": [], "ing": [], "jacobian": []}
    for path in sorted(directory.glob("summary_seed*.json")):
        summary = json.loads(path.read_text())
        behaviour = summary["decoding"]["behavior"]
        scores["linear R2"].append(behaviour["linear_r2"])
        scores["kNN R2"].append(behaviour["knn_r2"])
        for method in ("ing-block", "ing", "jacobian"):
            scores[method].append(summary["attribution"][method]["block_auc"])
    return scores


def _reference_scores(directory: Path) -> dict[str, list[float]]:
    scores: dict[str, list[float]] = {"linear R2": [], "kNN R2": [], "ing-block": [], "ing": [], "jacobian": []}
    for path in sorted(directory.glob("reference_*.json")):
        run = json.loads(path.read_text())
        decoding = run.get("decoding") or {}
        if "behavior" in decoding:
            scores["linear R2"].append(decoding["behavior"]["linear_r2"])
            scores["kNN R2"].append(decoding["behavior"]["knn_r2"])
        for method in ("ing-block", "ing", "jacobian"):
            value = run.get(method)
            if isinstance(value, dict):
                value = value.get("behavior_block_auc")
            if value is not None:
                scores[method].append(value)
    return scores


def demo_over_seeds() -> None:
    """The demo's hypothesis AUC within the behaviour block per map, over model seeds, at 1,000 and 2,000 steps."""
    runs = (("1,000 steps (8 seeds)", _demo_scores(RESULTS / "demo_seeds"), "#1f77b4"),
            ("2,000 steps (4 seeds)", _demo_scores(RESULTS / "demo_seeds_2000steps"), "#2ca02c"))
    fig, ax = plt.subplots(figsize=(6.5, 3.4), layout="constrained")
    methods = ("ing-block", "ing", "jacobian")
    for i, method in enumerate(methods):
        for j, (name, scores, color) in enumerate(runs):
            _strip(ax, 1.6 * i + 0.55 * j, scores[method], color, label=name if i == 0 else None, width=0.1)
    ax.set_xticks([1.6 * i + 0.275 for i in range(len(methods))], methods)
    ax.axhline(0.99, color="k", lw=0.8, ls=":")
    ax.set_ylabel("block AUC, behaviour <- grid, place")
    ax.grid(axis="y", alpha=0.3)
    ax.legend(loc="lower left", fontsize=8, frameon=False)


def side_by_side() -> None:
    """xcebra's demo (8 model seeds) against the reference package's fits (4 runs) on the same data."""
    ours = _demo_scores(RESULTS / "demo_seeds")
    theirs = _reference_scores(RESULTS / "demo_seeds")
    fig, axes = plt.subplots(1, 2, figsize=(8.5, 3.4), layout="constrained",
                             gridspec_kw={"width_ratios": [2, 3]})
    for ax, keys, ylabel in ((axes[0], ("linear R2", "kNN R2"), "position, held-out R2"),
                             (axes[1], ("ing-block", "ing", "jacobian"), "block AUC, behaviour <- grid, place")):
        for i, key in enumerate(keys):
            for j, (name, scores) in enumerate((("xcebra", ours), ("reference", theirs))):
                if scores[key]:
                    _strip(ax, 1.4 * i + 0.5 * j, scores[key], _COLORS[name],
                           label=("xcebra 0.1 (8 seeds)" if name == "xcebra" else "cebra 0.6.1 (4 runs)")
                           if (ax is axes[1] and i == 0) else None, width=0.08)
        ax.set_xticks([1.4 * i + 0.25 for i in range(len(keys))], keys)
        ax.set_ylabel(ylabel)
        ax.grid(axis="y", alpha=0.3)
    axes[1].legend(loc="lower left", fontsize=8, frameon=False)


def attribution_methods() -> None:
    """Block AUC per attribution method and training, one dot per fit (seed x noise model), from the CSV."""
    rows = _rows(RESULTS / "attribution_methods.csv")
    methods = list(dict.fromkeys(r["method"] for r in rows))
    trainings = (("contrastive+reg", "contrastive + regularizer (xCEBRA)", "#1f77b4"),
                 ("contrastive", "contrastive, no regularizer", "#999999"),
                 ("supervised", "supervised on the true latents", "#2ca02c"))
    fig, ax = plt.subplots(figsize=(9, 3.6), layout="constrained")
    for i, method in enumerate(methods):
        for j, (key, label, color) in enumerate(trainings):
            values = [float(r["block_auc"]) for r in rows if r["method"] == method and r["training"] == key]
            _strip(ax, 1.5 * i + 0.4 * j, values, color, label=label if i == 0 else None, width=0.06)
    ax.set_xticks([1.5 * i + 0.4 for i in range(len(methods))], methods, rotation=20, ha="right")
    ax.set_ylabel("block AUC (one dot per fit)")
    ax.grid(axis="y", alpha=0.3)
    ax.legend(loc="lower left", fontsize=8, frameon=False)


def multisession_consistency(run: str = "multisession_full_seed1") -> None:
    """Consistency of the behaviour blocks across the animals: one model on all of them against one model per
    animal (``benchmarks/results/<run>/multisession.json``)."""
    from xcebra.viz import plot_consistency_matrix

    result = json.loads((RESULTS / run / "multisession.json").read_text())
    fig, axes = plt.subplots(1, 2, figsize=(9, 4), layout="constrained")
    for ax, key, title in zip(axes, ("multi", "single"), ("one model, all animals", "one model per animal")):
        plot_consistency_matrix(np.array(result["consistency"][key], dtype=float), ax=ax, title=title,
                                session_names=[f"animal {i}" for i in range(len(result["neurons"]))])
