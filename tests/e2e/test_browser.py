"""The dashboard in a real browser: `leadflow dashboard` on a free port over a small generated
archive, every page opened in headless Chromium (Debian's `chromium`, driven by Playwright's
Python package through ``executable_path``: no browser download), its key elements checked
and a screenshot saved per page.

Screenshots go to the test's temporary directory, or to LEADFLOW_SCREENSHOTS_DIR when set
(``LEADFLOW_SCREENSHOTS_DIR=docs/screenshots pytest tests/e2e`` refreshes the README's).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from dashboard import generate
from streams.broker import free_port

CHROMIUM = os.environ.get("LEADFLOW_CHROMIUM") or shutil.which("chromium") or ""
# (screenshot name, url path, heading, texts that must show once the page has run): every
# page opened at its own URL, as a link or a bookmark would (the root is checked apart).
PAGES = (
    ("marketing", "marketing", "Marketing", ("Leads that crossed", "MQL volume per month",
                                "Disqualification rate by campaign")),
    ("revops", "revops", "RevOps", ("Lead id or email", "SLA compliance", "Open breaches now")),
    ("data-team", "data-team", "Data team", ("Model versions", "Threshold explorer",
                                "leadflow threshold apply")),
    ("pipeline", "pipeline", "Pipeline health", ("Events per second as they arrive",
                                                 "No worker answers",
                                                 "Dead letters by error code")),
)


def _playwright() -> object | None:
    try:
        from playwright import sync_api
    except ImportError:
        return None
    return sync_api


pytestmark = [
    pytest.mark.skipif(not CHROMIUM, reason="no Chromium: apt-get install chromium "
                       "(.ci/run does), or set LEADFLOW_CHROMIUM to its path"),
    pytest.mark.skipif(_playwright() is None, reason="Playwright's Python package is not "
                       "installed: pip install -e '.[test]'"),
]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    """(the dashboard's URL, the email of a routed lead in its archive)."""
    base = tmp_path_factory.mktemp("browser")
    frames = generate.generate(1500, seed=11, days=60)
    generate.write(base / "archive", frames)
    lead = frames["LeadRouted"]["lead_id"][0]
    captured = frames["LeadCaptured"]
    email = captured.filter(captured["lead_id"] == lead)["email"][0]
    port = free_port()
    env = {**os.environ, "LEADFLOW_ARCHIVE_DIR": str(base / "archive"),
           "LEADFLOW_DATA_DIR": str(base), "LEADFLOW_DASHBOARD_REFRESH_S": "0",
           "LEADFLOW_DASHBOARD_WORKER_URL": f"http://127.0.0.1:{free_port()}"}
    log = (base / "dashboard.log").open("wb")
    proc = subprocess.Popen([sys.executable, "-m", "streams.cli", "dashboard", "--port",
                             str(port)], env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            assert proc.poll() is None, (base / "dashboard.log").read_text()
            try:
                with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as answer:
                    if answer.status == 200:
                        break
            except OSError:
                pass
            time.sleep(0.3)
        else:
            pytest.fail("the dashboard did not answer within 60 s")
        yield url, email
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


@pytest.fixture(scope="module")
def shots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    where = os.environ.get("LEADFLOW_SCREENSHOTS_DIR")
    path = Path(where) if where else tmp_path_factory.mktemp("screenshots")
    path.mkdir(parents=True, exist_ok=True)
    return path


def test_every_page_in_chromium(server: tuple[str, str], shots: Path) -> None:
    from playwright.sync_api import expect, sync_playwright

    url, email = server
    with sync_playwright() as p:
        # --no-sandbox: CI runs as root, where Chromium's sandbox refuses to start.
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True,
                                    args=["--no-sandbox", "--disable-dev-shm-usage"])
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1500})
            for name, path, heading, texts in PAGES:
                page.goto(f"{url}/{path}", wait_until="domcontentloaded")
                expect(page.get_by_role("heading", name=heading, exact=True)).to_be_visible(
                    timeout=60_000)
                for text in texts:
                    expect(page.get_by_text(text).first).to_be_visible(timeout=60_000)
                # Charts drawn (Vega renders into a canvas or an svg) and the run finished.
                expect(page.locator("[data-testid='stVegaLiteChart']").first).to_be_visible(
                    timeout=60_000)
                if path == "revops":  # a lead's timeline, its email masked for this viewer
                    box = page.get_by_label("Lead id or email")
                    box.fill(email.upper())
                    box.press("Enter")
                    expect(page.get_by_text("Capture to first touch")).to_be_visible(
                        timeout=60_000)
                    expect(page.get_by_text("Personal data masked")).to_be_visible()
                expect(page.locator("[data-testid='stException']")).to_have_count(0)
                page.wait_for_load_state("networkidle")
                page.wait_for_timeout(1500)
                # Streamlit's dialog for a URL no page answers to (it then shows the first
                # page underneath), checked once the run is over and the page has settled.
                expect(page.get_by_text("Page not found")).to_have_count(0)
                expect(page).to_have_url(f"{url}/{path}")
                target = shots / f"{name}.png"
                page.screenshot(path=str(target), full_page=True)
                assert target.stat().st_size > 10_000
            # The root opens the first page, under that page's own URL.
            page.goto(f"{url}/", wait_until="domcontentloaded")
            expect(page.get_by_role("heading", name="Marketing", exact=True)).to_be_visible(
                timeout=60_000)
            expect(page).to_have_url(f"{url}/marketing", timeout=60_000)
            expect(page.get_by_text("Page not found")).to_have_count(0)
        finally:
            browser.close()
