"""Paired ablations of the demo: the same model seeds with one thing changed, scored against the default runs."""

from __future__ import annotations

import numpy as np

COLUMNS = ("linear R2", "kNN R2", "ing AUC", "ing-block AUC", "jacobian AUC")


def behaviour_row(summary: dict) -> list[float]:
    """A demo ``summary.json`` -> the behaviour block's held-out decoding of position and hypothesis AUCs (COLUMNS)."""
    def auc(method):
        return next(r["block_auc"] for r in summary["auc"] if r["method"] == method)

    return [summary["decoding"]["behavior"]["linear_r2"], summary["decoding"]["behavior"]["knn_r2"],
            auc("ing"), auc("ing-block"), auc("jacobian")]


def paired_table(columns: tuple[str, ...], seeds: list[int], variant: dict, baseline: dict, arm: str,
                 variant_name: str, baseline_name: str) -> list[str]:
    """Markdown rows: both arms per seed, their medians, the mean paired difference (baseline - variant),
    sign counts (differences within 5e-4 count as equal) and a two-sided Wilcoxon signed-rank p per column.

    ``variant`` and ``baseline``: {seed: list of len(columns) scores}; ``arm`` heads the column naming the arm.
    """
    lines = [f"| seed | {arm} | " + " | ".join(columns) + " |", "|---|---" + "|---" * len(columns) + "|"]
    for seed in seeds:
        lines.append(f"| {seed} | {variant_name} | " + " | ".join(f"{v:.3f}" for v in variant[seed]) + " |")
        lines.append(f"| {seed} | {baseline_name} | " + " | ".join(f"{v:.3f}" for v in baseline[seed]) + " |")
    a, b = np.array([variant[s] for s in seeds]), np.array([baseline[s] for s in seeds])
    lines += [f"| median | {variant_name} | " + " | ".join(f"{v:.3f}" for v in np.median(a, 0)) + " |",
              f"| median | {baseline_name} | " + " | ".join(f"{v:.3f}" for v in np.median(b, 0)) + " |",
              f"| mean paired difference ({baseline_name} - {variant_name}) | | "
              + " | ".join(f"{v:+.4f}" for v in (b - a).mean(0)) + " |",
              f"| seeds where {baseline_name} scores higher / equal / lower | | "
              + " | ".join(f"{int((d > 5e-4).sum())} / {int((abs(d) <= 5e-4).sum())} / {int((d < -5e-4).sum())}"
                           for d in (b - a).T) + " |"]
    if len(seeds) >= 2:
        from scipy.stats import wilcoxon

        p = [wilcoxon(b[:, j], a[:, j]).pvalue if np.any(b[:, j] != a[:, j]) else 1.0 for j in range(a.shape[1])]
        lines.append("| Wilcoxon signed-rank, two-sided p | | " + " | ".join(f"{v:.3f}" for v in p) + " |")
    return lines
