"""report.html in a real browser: headless Chromium opens it from disk with no network at all,
logs no console message (a blocked request or a script error would be one), and its screenshot
shows the verdict and the figures (checked by pixels, not by a file existing).

CI installs Debian's chromium and sets NCCLDOCTOR_REQUIRE_BROWSER=1 (.ci/run), which turns a
missing browser into a failure instead of a skip.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
from PIL import Image

from nccldoctor.reports.figures.canvas import FAIL, SERIES
from nccldoctor.reports.html import render
from nccldoctor.reports.json_report import load

FIXTURES = Path(__file__).parent / "fixtures" / "reports"
BROWSERS = ("chromium", "chromium-browser", "google-chrome")
PASS_GREEN = (0x2E, 0x7D, 0x32)  # the verdict badge (reports/html.css --pass)
FAIL_RED = tuple(int(FAIL[i : i + 2], 16) for i in (1, 3, 5))
FIRST_SERIES = tuple(int(SERIES[0][i : i + 2], 16) for i in (1, 3, 5))  # the first probe's curve


def chromium() -> str:
    found = next((shutil.which(name) for name in BROWSERS if shutil.which(name)), None)
    if found is None:
        if os.environ.get("NCCLDOCTOR_REQUIRE_BROWSER") == "1":
            pytest.fail("no chromium on PATH, and NCCLDOCTOR_REQUIRE_BROWSER=1 (CI installs Debian's)")
        pytest.skip("no chromium on PATH (apt-get install chromium)")
    return found


def offline_prefix() -> list[str]:
    """A new network namespace with no interface but a down loopback when we may make one (root):
    the browser cannot reach anything, whatever the page asked for."""
    unshare = shutil.which("unshare")
    if unshare and os.geteuid() == 0:
        return [unshare, "--net", "--"]
    return []


def screenshot(page: Path, png: Path, height: int) -> list[str]:
    """Open `page` headless with no network, save a 1280 x `height` screenshot, and return the
    console messages the page caused."""
    command = [
        *offline_prefix(),
        chromium(),
        "--headless=new",
        "--no-sandbox",  # CI runs as root
        "--disable-gpu",
        "--no-first-run",
        "--disable-extensions",
        "--disable-background-networking",
        "--host-resolver-rules=MAP * ~NOTFOUND",  # no name resolves, even outside a namespace
        f"--user-data-dir={png.parent / 'profile'}",
        "--enable-logging=stderr",
        "--v=0",
        "--hide-scrollbars",
        f"--window-size=1280,{height}",
        f"--screenshot={png}",
        page.as_uri(),
    ]
    run = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert png.exists(), f"no screenshot (exit {run.returncode}): {run.stderr[-2000:]}"
    # Chromium's own pages (chrome://...) log too; only what our page caused counts.
    return [
        line for line in run.stderr.splitlines() if ":CONSOLE" in line and f"source: {page.as_uri()}" in line
    ]


def pixels_near(
    image: Image.Image, color: tuple[int, ...], box: tuple[int, int, int, int], tolerance: int = 12
) -> int:
    region = image.convert("RGB").crop(box)
    return sum(
        count
        for count, pixel in region.getcolors(maxcolors=1 << 20)
        if all(abs(a - b) <= tolerance for a, b in zip(pixel, color, strict=True))
    )


def test_healthy_page_renders_offline_with_the_verdict_and_a_plot(tmp_path):
    page = tmp_path / "report.html"
    page.write_text(render(load(FIXTURES / "two_nodes.json"), "two_nodes.json"))
    console = screenshot(page, tmp_path / "page.png", height=1800)
    assert console == []
    image = Image.open(tmp_path / "page.png")
    assert pixels_near(image, PASS_GREEN, (0, 0, 400, 160)) > 5_000  # the PASS badge, top left
    # The first figure (all_reduce's curves) sits below the job table: its line is drawn.
    assert pixels_near(image, FIRST_SERIES, (0, 600, 1280, 1800)) > 300
    assert pixels_near(image, FAIL_RED, (0, 0, 1280, 1800)) < 50  # nothing failed, nothing red


def test_failed_page_shows_red_verdict_and_the_straggler_in_red(tmp_path):
    # A real run: 3 emulated nodes, node 2 at a quarter of a core (tests/cluster/make_html_fixtures.py)
    page = tmp_path / "report.html"
    page.write_text(render(load(FIXTURES / "straggler_cluster.json"), "straggler_cluster.json"))
    console = screenshot(page, tmp_path / "page.png", height=7000)
    assert console == []
    image = Image.open(tmp_path / "page.png")
    assert pixels_near(image, FAIL_RED, (0, 0, 400, 160)) > 5_000  # the FAIL badge
    # Below the findings and the job: the throttled rank's red score and step bars.
    assert pixels_near(image, FAIL_RED, (0, 1100, 1280, 7000)) > 5_000


def test_the_console_check_sees_a_blocked_request(tmp_path):
    """The control: a page that asks for a remote image logs a console message, so an empty
    console above means the page asked for nothing."""
    page = tmp_path / "bad.html"
    report_page = render(load(FIXTURES / "rank_crashed.json"), "x")
    page.write_text(report_page.replace("<main>", '<main><img src="https://example.invalid/x.png">', 1))
    console = screenshot(page, tmp_path / "bad.png", height=400)
    assert any("example.invalid" in line for line in console)
