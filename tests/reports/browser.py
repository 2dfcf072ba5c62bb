"""Open a page in Debian's headless chromium: the rendered DOM, console output, screenshots.
Test-only; a test that needs it is marked `browser` and skips when chromium is missing."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
_FLAGS = (
    "--headless --no-sandbox --disable-gpu --disable-quic --no-first-run "
    "--disable-background-networking --disable-component-update --disable-sync "
    "--enable-logging=stderr --v=0 --virtual-time-budget=10000"
).split()


def require_chromium() -> str:
    if not Path(CHROMIUM).exists():
        pytest.skip("needs Debian's chromium at /usr/bin/chromium (apt-get install chromium)")
    return CHROMIUM


def _run(page: Path, profile: Path, extra: list[str]) -> subprocess.CompletedProcess[str]:
    cmd = [require_chromium(), *_FLAGS, f"--user-data-dir={profile}", *extra, page.as_uri()]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=90, check=False)


def dump_dom(page: Path, profile: Path) -> tuple[str, str]:
    """(the DOM after scripts ran, chromium's stderr log)."""
    proc = _run(page, profile, ["--dump-dom"])
    return proc.stdout, proc.stderr


def screenshot(page: Path, profile: Path, png: Path, size: str = "1400,4000") -> Path:
    _run(page, profile, [f"--screenshot={png}", f"--window-size={size}"])
    return png


def console_errors(log: str) -> list[str]:
    """Uncaught exceptions and console.error lines from chromium's log."""
    return [
        line
        for line in log.splitlines()
        if "Uncaught" in line or "ERROR:CONSOLE" in line or "Content Security Policy" in line
    ]


def chart_divs_without_svg(dom: str) -> list[str]:
    """Ids of chart elements in which plotly drew no SVG."""
    ids = re.findall(r'<div id="(chart-\d+)" class="plot[^"]*"', dom)
    missing = []
    for i, chart_id in enumerate(ids):
        start = dom.index(f'id="{chart_id}"')
        end = dom.index(f'id="{ids[i + 1]}"') if i + 1 < len(ids) else len(dom)
        if 'class="main-svg"' not in dom[start:end]:
            missing.append(chart_id)
    return missing


def without_csp_with_probe(html: str) -> str:
    """The page without its Content-Security-Policy and with a probe that records whether an
    injected script ran: checks that escaping alone, not the CSP, keeps a payload inert."""
    html = re.sub(r'<meta http-equiv="Content-Security-Policy"[^>]*>', "", html, count=1)
    probe = (
        "<script>document.documentElement.setAttribute('data-pwned', "
        "window.__pwned ? 'yes' : 'no');</script>"
    )
    return html.replace("</body>", probe + "</body>")


def page_errors(dom: str) -> str | None:
    """Errors the page's own handler recorded on <html data-js-errors="...">, if any."""
    m = re.search(r'<html[^>]*\sdata-js-errors="([^"]*)"', dom)
    return m.group(1) if m else None
