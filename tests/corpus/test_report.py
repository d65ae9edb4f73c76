"""The HTML report, opened in headless Chromium (Debian's chromium, driven by Playwright's Python package): the
plots have a size, the tables have rows, clicking an example expands its two tokenizations in the page, nothing
is fetched from anywhere; the screenshot is kept in tests/artifacts/corpus_report.png."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import pytest
from click.testing import CliRunner

from ctkd_inspect.cli import main
from ctkd_inspect.corpus import load_summary
from ctkd_inspect.corpus.report import report_fragment, report_html

from .helpers import write_jsonl

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]


@pytest.fixture(scope="module")
def run(tmp_path_factory, corpus):
    folder = tmp_path_factory.mktemp("report")
    # real paragraphs and llama.cpp's tokenizer test strings (emoji, CJK, whitespace and digit runs)
    data = write_jsonl(folder / "data.jsonl", corpus[:250] + corpus[-49:])
    result = CliRunner().invoke(main, ["corpus", "llama3", "gemma2", str(data), "-o", str(folder / "run.parquet"),
                                       "--report", str(folder / "report.html"), "--summary",
                                       str(folder / "summary.json"), "--workers", "1"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return folder


def test_report_is_one_self_contained_file(run):
    page = (run / "report.html").read_text(encoding="utf-8")
    assert page.startswith("<!DOCTYPE html>")
    assert "http://" not in page and "https://" not in page and "<link" not in page
    assert page.count('src="data:image/png;base64,') == 4  # rate, shapes, length ratio, taxonomy
    summary = json.loads((run / "summary.json").read_text())
    for kind, examples in summary["failures"]["examples"].items():
        for number in range(len(examples)):
            assert f'id="ex-{kind}-{number}"' in page
    # the notebook view is the report's content
    loaded = load_summary(run / "summary.json", parquet=run / "run.parquet")
    fragment = loaded._repr_html_()
    assert fragment == report_fragment(loaded, parquet=run / "run.parquet")
    assert fragment in report_html(loaded, parquet=run / "run.parquet")


@pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium at /usr/bin/chromium")
def test_report_renders_in_headless_chromium(run):
    from playwright.sync_api import sync_playwright

    requests = []
    with tempfile.TemporaryDirectory() as profile, sync_playwright() as playwright:
        # a fresh profile folder (Playwright passes it as --user-data-dir)
        context = playwright.chromium.launch_persistent_context(
            profile, executable_path=str(CHROMIUM), headless=True, args=FLAGS, viewport={"width": 1280, "height": 900})
        try:
            page = context.new_page()
            page.on("request", lambda request: requests.append(request.url))
            page.goto((run / "report.html").as_uri())
            page.wait_for_load_state("load")
            sizes = page.evaluate("[...document.querySelectorAll('figure img, svg')].map("
                                  "e => e.tagName === 'IMG' ? [e.naturalWidth, e.naturalHeight] : "
                                  "[e.getBoundingClientRect().width, e.getBoundingClientRect().height])")
            assert len(sizes) >= 4 and all(w > 100 and h > 100 for w, h in sizes), sizes
            for selector in ("table.figures", "table.taxonomy", "table.worst"):
                assert page.locator(f"{selector} tr").count() > 2, selector
            assert page.locator("table.taxonomy tr[data-kind='byte-split']").count() == 1

            # clicking an example link opens it in the page: both ribbons with the group outlined
            link = page.locator("table.taxonomy tr[data-kind='byte-split'] a.example-link").first
            target = link.get_attribute("href")[1:]
            example = page.locator(f"details#{target}")
            assert example.evaluate("e => e.open") is False
            assert not example.locator(".tok").first.is_visible()
            link.click()
            page.wait_for_function(f"document.getElementById('{target}').open === true")
            assert example.locator(".ctkd-ribbon[data-side='teacher'] .tok").first.is_visible()
            assert example.locator(".ctkd-ribbon[data-side='student'] .tok").first.is_visible()
            assert example.locator(".context mark").is_visible()
            focus = example.locator(".tok[data-group]").evaluate_all(
                "cells => cells.filter(c => getComputedStyle(c).outlineStyle === 'solid').length")
            assert focus >= 2  # the example's group is outlined on both sides

            # a worst text expands by a click on its own summary line too
            worst = page.locator("details#worst-0")
            worst.locator("summary").click()
            assert worst.evaluate("e => e.open") is True
            assert worst.locator(".tok").first.is_visible()

            ARTIFACTS.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(ARTIFACTS / "corpus_report.png"), full_page=True)
        finally:
            context.close()
    assert all(url.startswith(("file:", "data:")) for url in requests), requests
    assert (ARTIFACTS / "corpus_report.png").stat().st_size > 50_000
