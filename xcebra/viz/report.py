"""A self-contained HTML report (figures embedded as PNG, tables, text) and PNG export of figures.

Both writers are atomic: the file appears complete under its final name or not at all (temporary
file in the same directory, then ``os.replace``). All text is HTML-escaped, so headings, captions,
table cells and paragraphs can hold any string.

Example
-------
>>> import tempfile, os
>>> from matplotlib.figure import Figure
>>> fig = Figure(figsize=(3, 2)); ax = fig.add_subplot(); _ = ax.plot([0, 1], [1, 0])
>>> out = write_report(os.path.join(tempfile.mkdtemp(), "report.html"), title="Demo",
...                    sections=[{"heading": "Fit", "text": "One line.", "figures": [("a line", fig)],
...                               "table": {"AUC": 0.93}}])
>>> out.name
'report.html'
"""

from __future__ import annotations

import base64
import html
import io
import numbers
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from matplotlib.figure import Figure
from tqdm.auto import tqdm

from .. import __version__
from .._files import atomic_write_bytes

__all__ = ["write_report", "save_figures", "save_outputs"]

_SECTION_KEYS = ("heading", "text", "figures", "table")
_REPORT_DPI = 110
_PNG_DPI = 120

_CSS = """
body { font-family: -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; margin: 2em auto; max-width: 1100px;
       padding: 0 1.5em; color: #222; line-height: 1.45; }
h1 { font-size: 1.7em; border-bottom: 2px solid #ddd; padding-bottom: 0.3em; }
h2 { font-size: 1.3em; margin-top: 2em; border-bottom: 1px solid #eee; padding-bottom: 0.2em; }
figure { margin: 1.2em 0; }
figure img { max-width: 100%; height: auto; border: 1px solid #eee; }
figcaption { font-size: 0.9em; color: #555; margin-top: 0.3em; }
table { border-collapse: collapse; margin: 1em 0; font-size: 0.92em; }
th, td { border: 1px solid #ddd; padding: 0.3em 0.7em; text-align: left; }
th { background: #f5f5f5; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
footer { margin-top: 3em; font-size: 0.8em; color: #888; }
"""


def _png_bytes(fig: Figure, dpi: int) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi, facecolor="white")
    return buffer.getvalue()


def _format_cell(value: Any) -> tuple[str, bool]:
    """Escaped text of a table cell and whether it is a number (right-aligned)."""
    if isinstance(value, bool) or value is None:
        return html.escape(str(value)), False
    if isinstance(value, numbers.Integral):
        return str(int(value)), True
    if isinstance(value, numbers.Real):
        return html.escape(f"{float(value):.4g}"), True
    return html.escape(str(value)), False


def _table_html(name: str, table: Any) -> str:
    if isinstance(table, Mapping):
        rows = [{"name": key, "value": value} for key, value in table.items()]
    elif isinstance(table, Sequence) and not isinstance(table, str):
        rows = list(table)
        for i, row in enumerate(rows):
            if not isinstance(row, Mapping):
                raise TypeError(f"{name}[{i}] must be a dict (one table row); got {type(row).__name__}")
    else:
        raise TypeError(f"{name} must be a dict or a list of dicts; got {type(table).__name__}")
    if not rows:
        return "<p><em>(empty table)</em></p>"
    columns = list(dict.fromkeys(str(key) for row in rows for key in row))
    head = "".join(f"<th>{html.escape(column)}</th>" for column in columns)
    body = []
    for row in rows:
        cells = {str(key): value for key, value in row.items()}
        parts = []
        for column in columns:
            text, numeric = _format_cell(cells.get(column, ""))
            parts.append(f'<td class="num">{text}</td>' if numeric else f"<td>{text}</td>")
        body.append("<tr>" + "".join(parts) + "</tr>")
    return f"<table>\n<thead><tr>{head}</tr></thead>\n<tbody>\n" + "\n".join(body) + "\n</tbody>\n</table>"


def _text_html(text: str) -> str:
    paragraphs = [p.strip() for p in str(text).replace("\r\n", "\n").split("\n\n") if p.strip()]
    return "\n".join("<p>" + html.escape(p).replace("\n", "<br>\n") + "</p>" for p in paragraphs)


def _figure_entries(name: str, figures: Any) -> list[tuple[str | None, Figure]]:
    if isinstance(figures, Figure):
        figures = [figures]
    if not isinstance(figures, Sequence) or isinstance(figures, str):
        raise TypeError(f"{name} must be a list of Figure or (caption, Figure); got {type(figures).__name__}")
    entries = []
    for i, entry in enumerate(figures):
        if isinstance(entry, Figure):
            entries.append((None, entry))
        elif (isinstance(entry, tuple) and len(entry) == 2 and isinstance(entry[0], str)
              and isinstance(entry[1], Figure)):
            entries.append((entry[0], entry[1]))
        else:
            raise TypeError(f"{name}[{i}] must be a matplotlib Figure or a (caption, Figure) tuple; "
                            f"got {type(entry).__name__}")
    return entries


def _section_html(index: int, section: Any) -> str:
    name = f"sections[{index}]"
    if not isinstance(section, Mapping):
        raise TypeError(f"{name} must be a dict with keys {', '.join(_SECTION_KEYS)}; got {type(section).__name__}")
    unknown = sorted(str(key) for key in section if key not in _SECTION_KEYS)
    if unknown:
        raise ValueError(f"{name} has unknown key(s) {unknown}; allowed keys are {list(_SECTION_KEYS)}")
    if "heading" not in section:
        raise ValueError(f"{name} is missing the key 'heading'")
    heading = str(section["heading"])
    parts = [f"<section>\n<h2>{html.escape(heading)}</h2>"]
    if section.get("text"):
        parts.append(_text_html(section["text"]))
    for number, (caption, fig) in enumerate(_figure_entries(f"{name}['figures']", section.get("figures", [])), 1):
        encoded = base64.b64encode(_png_bytes(fig, _REPORT_DPI)).decode("ascii")
        alt = caption or f"{heading}: figure {number}"
        figure_html = f'<figure>\n<img src="data:image/png;base64,{encoded}" alt="{html.escape(alt, quote=True)}">'
        if caption:
            figure_html += f"\n<figcaption>{html.escape(caption)}</figcaption>"
        parts.append(figure_html + "\n</figure>")
    if section.get("table") is not None:
        parts.append(_table_html(f"{name}['table']", section["table"]))
    return "\n".join(parts) + "\n</section>"


def write_report(path: str | os.PathLike, *, title: str, sections: Sequence[Mapping[str, Any]]) -> Path:
    """Write one self-contained HTML file: a title and sections of text, figures and tables.

    Parameters
    ----------
    path : str or path-like
        Output file; its directory is created if needed. Written atomically.
    title : str
        Page title and top heading.
    sections : list of dict
        Each with ``"heading"`` (str) and optionally ``"text"`` (str; blank lines separate
        paragraphs), ``"figures"`` (list of Figure or (caption, Figure); embedded as base64 PNG) and
        ``"table"`` (list of dicts, one per row, or a dict shown as name/value rows).

    Returns
    -------
    pathlib.Path
        ``path``.
    """
    if isinstance(sections, Mapping) or not isinstance(sections, Sequence) or isinstance(sections, str):
        raise TypeError(f"sections must be a list of dicts; got {type(sections).__name__}")
    body = [_section_html(i, section) for i, section in enumerate(sections)]
    escaped_title = html.escape(str(title))
    document = (
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
        "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
        f"<title>{escaped_title}</title>\n<style>{_CSS}</style>\n</head>\n<body>\n"
        f"<h1>{escaped_title}</h1>\n" + "\n".join(body) +
        f"\n<footer>Generated by xcebra {html.escape(__version__)}.</footer>\n</body>\n</html>\n"
    )
    path = Path(path)
    atomic_write_bytes(path, document.encode("utf-8"))
    return path


def save_figures(figures: Mapping[str, Figure], out_dir: str | os.PathLike) -> list[Path]:
    """Save each figure as ``<out_dir>/<name>.png`` (dpi 120), atomically; returns the paths in order.

    Names must be plain file names (no path separators, not starting with a dot).
    """
    if not isinstance(figures, Mapping):
        raise TypeError(f"figures must be a dict of name -> Figure; got {type(figures).__name__}")
    out_dir = Path(out_dir)
    checked = []
    for name, fig in figures.items():
        name = str(name)
        if not name or name.startswith(".") or any(sep in name for sep in ("/", "\\", "\0")):
            raise ValueError(f"figure name {name!r} must be a plain file name (no path separators, no leading dot)")
        if not isinstance(fig, Figure):
            raise TypeError(f"figures[{name!r}] must be a matplotlib Figure; got {type(fig).__name__}")
        checked.append((name, fig))
    paths = []
    for name, fig in checked:
        target = out_dir / (name if name.lower().endswith(".png") else f"{name}.png")
        atomic_write_bytes(target, _png_bytes(fig, _PNG_DPI))
        paths.append(target)
    return paths


def save_outputs(out_dir: str | os.PathLike, figures: Mapping[str, tuple[str, Figure]], sections: list[dict], *,
                 title: str, verbose: bool = True) -> dict[str, Any]:
    """One PNG per figure (with a progress bar) and ``report.html`` in ``out_dir``.

    Parameters
    ----------
    figures : dict of name -> (caption, Figure)
        Each saved as ``<out_dir>/<name>.png``.
    sections : list of dict
        The report's sections (see :func:`write_report`).

    Returns
    -------
    dict
        ``"report"``: the path of ``report.html``; ``"figures"``: the PNG paths, in order.
    """
    out_dir = Path(out_dir)
    paths = []
    for name, (_, fig) in tqdm(list(figures.items()), desc="saving figures", unit="fig", disable=not verbose,
                               dynamic_ncols=True):
        paths.extend(save_figures({name: fig}, out_dir))
    report = write_report(out_dir / "report.html", title=title, sections=sections)
    return {"report": report, "figures": paths}
