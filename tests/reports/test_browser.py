"""The report in a real headless browser: every chart drawn, no console errors, no injected
script run, and a screenshot that a person can look at."""

from __future__ import annotations

from pathlib import Path

import pytest

from reports import chart_count, render_html
from tests.reports import browser
from tests.reports.sample import report

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def page(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    browser.require_chromium()
    out = tmp_path_factory.mktemp("report") / "report.html"
    html = render_html(report(runs=2))
    out.write_text(html, encoding="utf-8")
    return out, html


def test_every_chart_renders_without_console_errors(page: tuple[Path, str], tmp_path: Path) -> None:
    path, html = page
    dom, log = browser.dump_dom(path, tmp_path / "profile")
    assert f'data-charts-rendered="{chart_count(html)}"' in dom
    assert browser.chart_divs_without_svg(dom) == []
    assert browser.page_errors(dom) is None
    assert browser.console_errors(log) == []


def test_an_injected_script_in_store_text_does_not_run(
    page: tuple[Path, str], tmp_path: Path
) -> None:
    # Without the CSP, so that escaping alone is what is tested.
    path, html = page
    probe = path.with_name("probe.html")
    probe.write_text(browser.without_csp_with_probe(html), encoding="utf-8")
    dom, _ = browser.dump_dom(probe, tmp_path / "profile")
    assert 'data-pwned="no"' in dom
    assert "&lt;script&gt;window.__pwned=1&lt;/script&gt;" in dom  # shown as text


def test_screenshot(page: tuple[Path, str], tmp_path: Path) -> None:
    png = browser.screenshot(page[0], tmp_path / "profile", tmp_path / "report.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert png.stat().st_size > 50_000  # drawn, not blank
