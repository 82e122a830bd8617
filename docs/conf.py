"""Sphinx configuration of the xcebra documentation.

Build it with ``make docs`` (the full gallery) or ``make docs-quick`` (the gallery's examples with
shorter fits: ``XCEBRA_DOCS_QUICK=1``, what CI runs). Either writes ``docs/_build/html``; warnings
are errors.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

DOCS = Path(__file__).resolve().parent
ROOT = DOCS.parent
sys.path.insert(0, str(DOCS / "_scripts"))  # the gallery's figure scraper and the results pages' figures
sys.path.insert(0, str(ROOT))

import xcebra  # noqa: E402

project = "xcebra"
author = "the xcebra developers"
copyright = "the xcebra developers"
version = release = xcebra.__version__
QUICK = os.environ.get("XCEBRA_DOCS_QUICK") == "1"

extensions = [
    "myst_parser",
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.mathjax",
    "numpydoc",
    "sphinx_gallery.gen_gallery",
    "matplotlib.sphinxext.plot_directive",
]

source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
root_doc = "index"
templates_path = ["_templates"]
exclude_patterns = ["_build", "_scripts", "_templates", "auto_examples/*.ipynb", "auto_examples/*.py",
                    "auto_examples/*.zip", "auto_examples/*.json", "auto_examples/*.md5", "**/sg_execution_times.rst"]

# ---- MyST (Markdown pages)
myst_enable_extensions = ["colon_fence", "dollarmath", "substitution"]
myst_heading_anchors = 3


def _line_counts() -> dict[str, int]:
    """Lines of every module of the package, for the module map (developer/module-map.md)."""
    package = ROOT / "xcebra"
    counts = {path.relative_to(package).as_posix(): len(path.read_text().splitlines())
              for path in sorted(package.rglob("*.py"))}
    counts["total"] = sum(counts.values())
    return counts


myst_substitutions = {"lines": _line_counts()}

# ---- API reference: autosummary stubs from the docstrings, numpydoc sections
autosummary_generate = True
autosummary_ignore_module_all = False  # a module's __all__ decides what is public
# classes re-exported by ``xcebra`` are documented there once, not again on their module's page
autosummary_context = {"top_level": ["AttributionMap"]}
autodoc_default_options = {"member-order": "bysource"}
autodoc_typehints = "none"  # the numpydoc "Parameters" sections say the types
numpydoc_show_class_members = False
numpydoc_class_members_toctree = False
numpydoc_xref_param_type = False

# ---- gallery: examples/plot_*.py, executed at build time
# sphinx-gallery reruns an example only when its source changed; after a build in the other mode (quick or
# full) every example must run again, or a full build would show the quick fits.
_GALLERY_MODE = DOCS / "auto_examples" / ".xcebra-docs-mode"
_MODE = "quick" if QUICK else "full"
_MODE_CHANGED = not _GALLERY_MODE.exists() or _GALLERY_MODE.read_text() != _MODE

sphinx_gallery_conf = {
    "examples_dirs": str(ROOT / "examples"),
    "gallery_dirs": str(DOCS / "auto_examples"),
    "filename_pattern": r"/plot_",
    "within_subsection_order": "gallery_order.ExampleOrder",
    "image_scrapers": ("xcebra_figures",),
    "download_all_examples": False,
    "remove_config_comments": True,
    "show_memory": False,
    "min_reported_time": 0,
    "capture_repr": (),  # pages show what the examples print, not the value of a block's last expression
    "write_computation_times": True,
    "run_stale_examples": _MODE_CHANGED,
}

# ---- figures of the results pages (matplotlib's plot directive, drawn from benchmarks/results/ files)
plot_working_directory = str(ROOT)
plot_include_source = False
plot_html_show_source_link = False
plot_html_show_formats = False
plot_formats = [("png", 100)]
plot_rcparams = {"figure.autolayout": False}

# ---- HTML
html_theme = "pydata_sphinx_theme"
html_title = f"xcebra {release}"
html_show_sourcelink = False
html_theme_options = {
    "navbar_align": "left",
    "header_links_before_dropdown": 8,
    "show_toc_level": 2,
    "navigation_with_keys": False,
    "footer_start": ["copyright"],
    "footer_end": ["sphinx-version"],
}
html_context = {"default_mode": "light"}


def _record_gallery_mode(app, exception) -> None:
    if exception is None and _GALLERY_MODE.parent.is_dir():
        _GALLERY_MODE.write_text(_MODE)


def setup(app) -> None:
    app.connect("build-finished", _record_gallery_mode)
