"""The order of the gallery's examples: from a known ground truth to a hypothesis test on cell types."""

from __future__ import annotations

ORDER = ("plot_synthetic_ground_truth.py", "plot_ratinabox_demo.py", "plot_attribution_methods.py",
         "plot_cell_type_hypothesis.py", "plot_significance.py")


class ExampleOrder:
    """sphinx-gallery's ``within_subsection_order``: the examples in ``ORDER``, then any others by name."""

    def __init__(self, src_dir: str) -> None:
        self.src_dir = src_dir

    def __repr__(self) -> str:  # a stable repr: sphinx-gallery hashes its configuration
        return "ExampleOrder()"

    def __call__(self, filename: str) -> tuple[int, str]:
        return (ORDER.index(filename) if filename in ORDER else len(ORDER), filename)
