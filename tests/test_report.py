"""Tests for xcebra.report: self-contained HTML with embedded PNGs, escaping, atomic writes, PNG export."""

from __future__ import annotations

import base64
import io
import os
import re

import matplotlib

matplotlib.use("Agg")

import matplotlib.image as mpimg  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from xcebra import report  # noqa: E402

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
IMG_TAG = re.compile(r"<img ([^>]*)>")


def small_figure(value: float = 1.0) -> Figure:
    fig = Figure(figsize=(2.0, 1.5))
    ax = fig.add_subplot()
    ax.plot([0, 1], [0, value])
    return fig


def decode_png(data: bytes) -> np.ndarray:
    assert data.startswith(PNG_SIGNATURE)
    return mpimg.imread(io.BytesIO(data), format="png")


def sections():
    return [
        {"heading": "Training <script>alert(1)</script>", "text": "First paragraph & more.\n\nSecond <b>one</b>.",
         "figures": [small_figure(), ("loss \"curve\" <1>", small_figure(2.0))],
         "table": [{"method": "ing", "auc": 0.93456789}, {"method": "<jacobian>", "auc": 0.7, "seed": 3}]},
        {"heading": "Scores", "table": {"block AUC": 0.91, "n_neurons": 90}},
    ]


def test_write_report_embeds_valid_pngs_with_alt_text(tmp_path):
    path = report.write_report(tmp_path / "out" / "report.html", title="xcebra & friends", sections=sections())
    assert path == tmp_path / "out" / "report.html" and path.exists()
    text = path.read_text(encoding="utf-8")
    assert text.startswith("<!DOCTYPE html>")
    tags = IMG_TAG.findall(text)
    assert len(tags) == 2
    for tag in tags:
        source = re.search(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', tag)
        assert source is not None
        image = decode_png(base64.b64decode(source.group(1), validate=True))
        assert image.ndim == 3 and image.shape[0] > 50 and image.shape[1] > 50
        alt = re.search(r'alt="([^"]*)"', tag)
        assert alt is not None and alt.group(1).strip()
    assert 'alt="loss &quot;curve&quot; &lt;1&gt;"' in text
    assert "<figcaption>loss &quot;curve&quot; &lt;1&gt;</figcaption>" in text


def test_write_report_escapes_text(tmp_path):
    text = report.write_report(tmp_path / "r.html", title="<title>", sections=sections()).read_text()
    assert "<script>" not in text
    assert "Training &lt;script&gt;alert(1)&lt;/script&gt;" in text
    assert "<h1>&lt;title&gt;</h1>" in text
    assert "<p>First paragraph &amp; more.</p>" in text
    assert "<p>Second &lt;b&gt;one&lt;/b&gt;.</p>" in text
    assert "<td>&lt;jacobian&gt;</td>" in text


def test_write_report_tables(tmp_path):
    text = report.write_report(tmp_path / "r.html", title="t", sections=sections()).read_text()
    tables = re.findall(r"<table>.*?</table>", text, flags=re.S)
    assert len(tables) == 2
    rows = re.findall(r"<tr>.*?</tr>", tables[0], flags=re.S)
    assert "<th>method</th><th>auc</th><th>seed</th>" in rows[0]
    assert '<td>ing</td><td class="num">0.9346</td><td></td>' in rows[1]
    assert '<td class="num">3</td>' in rows[2]
    assert '<td>block AUC</td><td class="num">0.91</td>' in tables[1]
    assert '<td>n_neurons</td><td class="num">90</td>' in tables[1]


def test_write_report_is_atomic_and_leaves_no_temp_files(tmp_path, monkeypatch):
    target = tmp_path / "report.html"
    report.write_report(target, title="first", sections=[{"heading": "a"}])
    assert sorted(os.listdir(tmp_path)) == ["report.html"]
    original = target.read_bytes()

    def failing_replace(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", failing_replace)
    with pytest.raises(OSError, match="disk full"):
        report.write_report(target, title="second", sections=[{"heading": "b"}])
    assert target.read_bytes() == original
    assert sorted(os.listdir(tmp_path)) == ["report.html"]


@pytest.mark.parametrize(
    "bad_sections, error, match",
    [
        ([{"text": "no heading"}], ValueError, r"sections\[0\] is missing the key 'heading'"),
        ([{"heading": "h", "figure": []}], ValueError, r"sections\[0\] has unknown key\(s\) \['figure'\]"),
        ([{"heading": "h", "figures": ["not a figure"]}], TypeError,
         r"sections\[0\]\['figures'\]\[0\] must be a matplotlib Figure or a \(caption, Figure\) tuple"),
        ([{"heading": "h", "table": 3}], TypeError, r"sections\[0\]\['table'\] must be a dict or a list of dicts"),
        ({"heading": "h"}, TypeError, r"sections must be a list of dicts"),
    ],
)
def test_write_report_rejects_malformed_sections(tmp_path, bad_sections, error, match):
    with pytest.raises(error, match=match):
        report.write_report(tmp_path / "r.html", title="t", sections=bad_sections)
    assert not (tmp_path / "r.html").exists()


def test_save_figures_writes_pngs_at_dpi_120(tmp_path):
    paths = report.save_figures({"map": small_figure(), "log.png": small_figure(3.0)}, tmp_path / "figs")
    assert [p.name for p in paths] == ["map.png", "log.png"]
    assert sorted(os.listdir(tmp_path / "figs")) == ["log.png", "map.png"]
    image = decode_png(paths[0].read_bytes())
    assert image.shape[:2] == (round(1.5 * 120), round(2.0 * 120))


@pytest.mark.parametrize("name", ["../escape", "a/b", ".hidden", ""])
def test_save_figures_rejects_unsafe_names(tmp_path, name):
    with pytest.raises(ValueError, match="must be a plain file name"):
        report.save_figures({name: small_figure()}, tmp_path)
    assert os.listdir(tmp_path) == []
