"""Former home of the HTML report, now :mod:`xcebra.viz.report`; ``xcebra.report.write_report`` keeps working."""

from .viz.report import save_figures, write_report

__all__ = ["write_report", "save_figures"]
