"""The explorer notebook served by Voila and driven in the system Chromium with Playwright.

Voila runs on 127.0.0.1 as a subprocess; Playwright's Python API drives Debian's ``chromium`` (never a downloaded
browser) with networking features off. The test changes the text and the engine, checks the token spans the page
shows against the tokenizers' own ids, checks that the page fetched nothing from anywhere but the local server,
and keeps a screenshot in ``tests/artifacts/voila_explorer.png``. Skipped only where ``/usr/bin/chromium`` is
absent.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

CHROMIUM = Path("/usr/bin/chromium")
ROOT = Path(__file__).resolve().parents[2]
NOTEBOOK = ROOT / "notebooks" / "explorer.ipynb"
ARTIFACTS = ROOT / "tests" / "artifacts"
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--disable-default-apps", "--disable-extensions"]
NEW_TEXT = "Distillation across tokenizers: 12345 naïve tokens"
VOILA_TEMPLATE_CDN = "https://cdn.jsdelivr.net/npm/@fortawesome/fontawesome-free@"

pytestmark = [pytest.mark.browser, pytest.mark.skipif(not CHROMIUM.exists(), reason="no system Chromium at "
                                                                                    "/usr/bin/chromium")]


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _listening(port: int) -> bool:
    # a connection, not a page request: every GET of the page would start a kernel and run the notebook
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=2):
            return True
    except OSError:
        return False


@pytest.fixture
def voila_url(tmp_path):
    port = _free_port()
    env = dict(os.environ, HF_HUB_OFFLINE="1", TOKENIZERS_PARALLELISM="false",
               JUPYTER_RUNTIME_DIR=str(tmp_path / "runtime"))
    log = open(tmp_path / "voila.log", "wb")  # noqa: SIM115  (closed below, after the server)
    server = subprocess.Popen([sys.executable, "-m", "voila", str(NOTEBOOK), "--no-browser", f"--port={port}",
                               "--Voila.ip=127.0.0.1", "--show_tracebacks=True"],
                              cwd=str(NOTEBOOK.parent), env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/"
    try:
        deadline = time.monotonic() + 120
        while not _listening(port):
            if server.poll() is not None:
                pytest.fail(f"voila exited with {server.returncode}:\n{(tmp_path / 'voila.log').read_text()[-3000:]}")
            if time.monotonic() > deadline:
                pytest.fail(f"voila did not answer on {url}:\n{(tmp_path / 'voila.log').read_text()[-3000:]}")
            time.sleep(0.5)
        yield url
    finally:
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
        log.close()


def _ribbon_ids(page, side: str) -> list[int]:
    """The vocabulary ids of one side's ribbon, in cell order (a byte cluster's ids in order)."""
    values = page.eval_on_selector_all(f".ctkd-view .ctkd-ribbon[data-side='{side}'] span.tok",
                                       "cells => cells.map(cell => cell.dataset.ids)")
    return [int(i) for value in values for i in value.split()]


def test_voila_explorer_in_chromium(voila_url, tmp_path, tok):
    from playwright.sync_api import sync_playwright

    llama3, gemma2 = tok("llama3"), tok("gemma2")
    requests: list[str] = []
    with sync_playwright() as playwright:
        # a fresh profile folder (Playwright passes it as --user-data-dir)
        browser = playwright.chromium.launch_persistent_context(
            str(tmp_path / "profile"), executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_FLAGS,
            viewport={"width": 1280, "height": 1500})
        try:
            page = browser.new_page()
            page.on("request", lambda request: requests.append(request.url))
            page.goto(voila_url, wait_until="domcontentloaded", timeout=120_000)

            # the first alignment: llama3 → gemma2 on the notebook's text
            page.wait_for_selector(".ctkd-view span.tok", timeout=240_000)
            first = "The café costs 3.50€ 🦙 — naïve\tcode: x+=1"
            assert _ribbon_ids(page, "teacher") == llama3(first)["input_ids"]
            assert _ribbon_ids(page, "student") == gemma2(first)["input_ids"]
            title = page.get_attribute(".ctkd-view .ctkd-ribbon[data-side='teacher'] span.tok[data-tokens='1']",
                                       "title")
            assert "id 791" in title and "span 0–3" in title and "bytes 54 68 65" in title and "group 0" in title

            # a new text: the ribbons follow, cell for cell
            page.fill(".ctkd-text textarea", NEW_TEXT)
            page.wait_for_function(
                "expected => [...document.querySelectorAll(\".ctkd-view .ctkd-ribbon[data-side='student'] span.tok\")]"
                ".map(cell => cell.dataset.ids).join(' ') === expected",
                arg=" ".join(map(str, gemma2(NEW_TEXT)["input_ids"])), timeout=120_000)
            assert _ribbon_ids(page, "teacher") == llama3(NEW_TEXT)["input_ids"]
            cells = page.eval_on_selector_all(
                ".ctkd-view .ctkd-ribbon span.tok",
                "cells => cells.map(c => [c.dataset.start, c.dataset.end, c.dataset.status, c.textContent])")
            for start, end, status, label in cells:
                if status != "special":  # the cell shows its characters with whitespace made visible
                    assert label.replace("␣", " ").split("×")[0] == NEW_TEXT[int(start):int(end)]

            # another engine: the view is redrawn by the MinED engine (DTW path groups)
            page.select_option(".ctkd-engine select", "mined")
            page.wait_for_selector(".ctkd-view .ctkd-alignment[data-engine='mined'] span.tok", timeout=120_000)
            assert _ribbon_ids(page, "student") == gemma2(NEW_TEXT)["input_ids"]
            metrics = page.inner_text(".ctkd-metrics")
            assert "alignment rate" in metrics and "engine mined" in metrics
            assert page.inner_text(".ctkd-error") == ""

            # an engine that needs models, without them: a message in the widget, no traceback
            page.select_option(".ctkd-engine select", "cdm")
            page.wait_for_selector(".ctkd-error .ctkd-error", timeout=120_000)
            assert "entropy" in page.inner_text(".ctkd-error")
            assert "Traceback" not in page.content()
            page.select_option(".ctkd-engine select", "mined")
            page.wait_for_selector(".ctkd-view .ctkd-alignment[data-engine='mined'] span.tok", timeout=120_000)

            page_icons = page.locator(".ctkd-explorer i.fa").count()  # icons would need the CDN's font
            ARTIFACTS.mkdir(parents=True, exist_ok=True)
            shot = ARTIFACTS / "voila_explorer.png"
            page.screenshot(path=str(shot), full_page=True)
            assert shot.stat().st_size > 10_000
        finally:
            browser.close()
    # Voila's own lab template links FontAwesome from a CDN (for widget icons); the explorer uses no icon, so the
    # page needs nothing from it. Everything else must come from the local server.
    foreign = [url for url in requests if not url.startswith((voila_url, voila_url.replace("http", "ws"), "data:"))
               and not url.startswith(VOILA_TEMPLATE_CDN)]
    assert not foreign, f"the page fetched from elsewhere than the local server: {foreign[:5]}"
    assert page_icons == 0
