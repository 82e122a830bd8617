"""The demo report opens in a real headless browser with every figure rendered.

Needs Chromium on PATH (Debian: ``apt-get install -y chromium``); skipped otherwise. The page is
loaded from a copy of ``report.html`` with a small script appended that lists, after the page has
loaded, whether each <img> decoded and its natural size; Chromium's ``--dump-dom`` prints the DOM
with that list. A broken image in a second copy checks that the check can fail.
"""

from __future__ import annotations

import dataclasses
import re
import shutil
import subprocess

import pytest

pytest.importorskip("ratinabox")

from xcebra import demo  # noqa: E402

CHROMIUM = next((shutil.which(name) for name in ("chromium", "chromium-browser", "google-chrome")
                 if shutil.which(name)), None)
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="needs Chromium on PATH (apt-get install -y chromium)")

_CHECK_SCRIPT = """<script>
window.addEventListener('load', function () {
  var out = [];
  for (var i = 0; i < document.images.length; i++) {
    var im = document.images[i];
    out.push((im.complete ? 1 : 0) + ':' + im.naturalWidth + 'x' + im.naturalHeight);
  }
  var pre = document.createElement('pre');
  pre.id = 'xcebra-image-check';
  pre.textContent = out.join(';');
  document.body.appendChild(pre);
});
</script>"""


def _chromium(args: list[str], profile) -> subprocess.CompletedProcess:
    command = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
               "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-dev-shm-usage",
               f"--user-data-dir={profile}", *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=180)


def _rendered_images(html_path, profile) -> list[tuple[int, int, int]]:
    """(complete, naturalWidth, naturalHeight) of every <img> after the page has loaded in Chromium."""
    checked = html_path.with_name(html_path.stem + "_check.html")
    checked.write_text(html_path.read_text().replace("</body>", _CHECK_SCRIPT + "</body>"))
    result = _chromium(["--virtual-time-budget=10000", "--run-all-compositor-stages-before-draw", "--dump-dom",
                        checked.as_uri()], profile)
    assert result.returncode == 0, result.stderr[-2000:]
    match = re.search(r'<pre id="xcebra-image-check">([^<]*)</pre>', result.stdout)
    assert match, "the check script did not run: " + result.stdout[-500:]
    if not match.group(1):
        return []
    return [tuple(int(v) for v in re.split("[:x]", entry)) for entry in match.group(1).split(";")]


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    root = tmp_path_factory.mktemp("browser")
    config = dataclasses.replace(demo.PRESETS["tiny"], cache=str(root / "cache"))
    demo.run_demo(root / "out", verbose=False, _config=config)
    return root / "out" / "report.html"


def test_every_figure_renders_in_headless_chromium(report, tmp_path):
    images = _rendered_images(report, tmp_path / "profile")
    n_figures = len(list(report.parent.glob("*.png")))
    assert len(images) == n_figures == report.read_text().count("<img ")
    for i, (complete, width, height) in enumerate(images):
        assert complete == 1 and width > 100 and height > 100, f"image {i} did not render: {(complete, width, height)}"


def test_the_check_detects_a_broken_image(report, tmp_path):
    broken = tmp_path / "broken.html"
    broken.write_text(report.read_text().replace('src="data:image/png;base64,', 'src="data:image/png;base64,AAAA', 1))
    images = _rendered_images(broken, tmp_path / "profile")
    assert images[0][1:] == (0, 0) and all(w > 0 for _, w, _ in images[1:])


def test_screenshot_of_the_report(report, tmp_path):
    shot = tmp_path / "report.png"
    result = _chromium([f"--screenshot={shot}", "--window-size=1200,3000", "--virtual-time-budget=10000",
                        report.as_uri()], tmp_path / "profile")
    assert result.returncode == 0, result.stderr[-2000:]
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 50_000
