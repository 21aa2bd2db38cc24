"""report.html in a real browser: headless Chromium (Debian's chromium + chromium-driver) via Selenium.

.ci/run installs the browser and sets TLGEOM_REQUIRE_BROWSER=1, so in CI a missing browser fails
instead of skipping.
"""

from __future__ import annotations

import base64
import os
import shutil
import struct
from pathlib import Path

import pytest

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-quic",
    "--no-first-run",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
]


def _need_browser():
    if CHROMIUM and CHROMEDRIVER:
        return
    why = "headless Chromium not installed (Debian packages chromium and chromium-driver)"
    if os.environ.get("TLGEOM_REQUIRE_BROWSER") == "1":
        pytest.fail(why)
    pytest.skip(why)


def open_in_browser(page: Path, profile: Path) -> tuple[list[dict], list[dict]]:
    """Load ``page`` in headless Chromium; return (its images' load state, the console log)."""
    os.environ.setdefault("SE_OFFLINE", "true")  # never let Selenium Manager reach for the network
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.support.ui import WebDriverWait

    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for flag in FLAGS + [f"--user-data-dir={profile}"]:
        opts.add_argument(flag)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=opts)
    try:
        driver.get(page.resolve().as_uri())
        WebDriverWait(driver, 30).until(lambda d: d.execute_script("return document.readyState") == "complete")
        images = driver.execute_script(
            "return Array.from(document.images).map(i => ({alt: i.alt, complete: i.complete, "
            "width: i.naturalWidth, height: i.naturalHeight}))"
        )
        console = driver.get_log("browser")
    finally:
        driver.quit()
    return images, console


def _png_size(path: Path) -> tuple[int, int]:
    head = path.read_bytes()[:24]
    assert head[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">II", head[16:24])


def test_report_in_headless_chromium(demo_report, tmp_path):
    _need_browser()
    out, _ = demo_report
    images, console = open_in_browser(out / "report.html", tmp_path / "profile")
    pngs = sorted(out.glob("*.png"))
    assert len(images) == len(pngs) == 5
    for img in images:
        assert img["complete"] and img["width"] > 0 and img["height"] > 0, img
    # each embedded image is the PNG written next to the report, decoded at its own size
    assert sorted((i["width"], i["height"]) for i in images) == sorted(_png_size(p) for p in pngs)
    errors = [e for e in console if e["level"] in ("SEVERE", "ERROR")]
    assert errors == [], errors


def test_browser_check_catches_a_broken_page(tmp_path):
    """The check above can fail: a broken image and a console error are both reported."""
    _need_browser()
    good = base64.b64encode((Path(__file__).parents[2] / "docs" / "landscape.png").read_bytes()).decode()
    page = tmp_path / "broken.html"
    page.write_text(
        "<!DOCTYPE html><html><head><meta charset='utf-8'><link rel='icon' href='data:,'></head><body>"
        f"<img alt='good' src='data:image/png;base64,{good}'>"
        "<img alt='bad' src='data:image/png;base64,bm90IGEgcG5n'>"
        "<script>console.error('tlgeom-test-error')</script></body></html>",
        encoding="utf-8",
    )
    images, console = open_in_browser(page, tmp_path / "profile")
    by_alt = {i["alt"]: i for i in images}
    assert by_alt["good"]["width"] > 0
    assert by_alt["bad"]["width"] == 0
    assert any("tlgeom-test-error" in e["message"] and e["level"] == "SEVERE" for e in console), console
