"""Image scraper for the gallery: xcebra's figures are returned, not registered with pyplot.

:mod:`xcebra.plotting` builds every figure with the object-oriented API (``matplotlib.figure.Figure``),
so sphinx-gallery's default scraper, which asks ``pyplot`` for its open figures, would see none of
them. This scraper looks instead at the example's global variables after each code block and saves
every :class:`~matplotlib.figure.Figure` that a variable holds and that no earlier block of the same
example has shown. sphinx-gallery finds it by name (``image_scrapers: ("xcebra_figures",)`` in
``conf.py``) through :func:`_get_sg_image_scraper`.
"""

from __future__ import annotations

import weakref
from pathlib import PurePosixPath
from typing import Any


class FigureScraper:
    """Save the Figures held by the example's globals that have not been shown yet."""

    def __init__(self) -> None:
        self._shown: dict[str, weakref.WeakSet] = {}

    def __repr__(self) -> str:  # a stable repr: sphinx-gallery hashes its configuration
        return "FigureScraper()"

    def __call__(self, block: Any, block_vars: dict[str, Any], gallery_conf: dict[str, Any]) -> str:
        from matplotlib.figure import Figure
        from sphinx_gallery.scrapers import figure_rst

        source = str(block_vars.get("src_file", ""))
        shown = self._shown.setdefault(source, weakref.WeakSet())
        figures = []
        for value in block_vars["example_globals"].values():
            if isinstance(value, Figure) and value not in shown:
                shown.add(value)
                figures.append(value)
        paths = []
        for figure, path in zip(figures, block_vars["image_path_iterator"]):
            path = PurePosixPath(path)
            figure.savefig(path, dpi=100)
            paths.append(path)
        return figure_rst(paths, gallery_conf["src_dir"]) if paths else ""


_SCRAPER = FigureScraper()


def _get_sg_image_scraper() -> FigureScraper:
    return _SCRAPER
