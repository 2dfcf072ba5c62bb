"""The report page as a file: self-contained, escaped, secret-free, readable without
JavaScript, with one embedded data block that matches the chart elements."""

from __future__ import annotations

import json
import re

from reports import chart_count, render_html
from reports.fmt import script_json
from tests.reports.sample import PAYLOAD, report

FAKE_PLOTLY = "window.Plotly = {newPlot: function () { return Promise.resolve(); }};"


def _data_block(html: str) -> dict:
    m = re.search(r'<script type="application/json" id="bench-data">(.*?)</script>', html, re.S)
    assert m is not None
    return json.loads(m.group(1))


def _visible_text(html: str) -> str:
    """What a reader sees without JavaScript: the page minus scripts and tags."""
    html = re.sub(r"<script.*?</script>", "", html, flags=re.S)
    return re.sub(r"<[^>]+>", " ", html)


def test_strings_from_the_store_are_escaped_everywhere() -> None:
    html = render_html(report(runs=2), plotly_js=FAKE_PLOTLY)
    assert PAYLOAD not in html
    assert "window.__pwned" in html  # the text is there, inert
    assert "&lt;script&gt;window.__pwned=1&lt;/script&gt;" in html
    # Inside the JSON block too: no '</script>' can close it early.
    data = html.split('id="bench-data">', 1)[1].split("</script>", 1)[0]
    assert "<" not in data and ">" not in data


def test_script_json_cannot_close_its_script_element() -> None:
    text = script_json({"a": "</script><script>alert(1)</script>", "b": "<!-- x -->"})
    assert "</" not in text and "<!--" not in text
    assert json.loads(text)["a"] == "</script><script>alert(1)</script>"


def test_no_secret_reaches_the_page() -> None:
    html = render_html(report(), plotly_js=FAKE_PLOTLY)
    assert "sk-live-SECRET" not in html
    assert "tok-SECRET" not in html
    assert "***" in html


def test_self_contained_plotly_embedded_once_and_no_network() -> None:
    html = render_html(report(), plotly_js=FAKE_PLOTLY)
    assert html.count(FAKE_PLOTLY) == 1
    assert not re.search(r"<(script|link|img|iframe)[^>]+(src|href)=", html)
    csp = re.search(r'http-equiv="Content-Security-Policy" content="([^"]+)"', html)
    assert csp is not None and "default-src 'none'" in csp.group(1)


def test_the_real_plotly_bundle_is_embedded_by_default() -> None:
    html = render_html(report())
    assert len(html) > 3_000_000  # plotly.js itself
    assert html.count("<script>") == 3  # error catcher, plotly.js, renderer


def test_headline_and_tables_are_readable_without_javascript() -> None:
    text = _visible_text(render_html(report(), plotly_js=FAKE_PLOTLY))
    for expected in ("1,234.5", "p50 31.0 ms · p99 59.0 ms", "$0.550", "0.310 J", "320 W",
                     "78 ok · 2 errored", "1 x H100", "open loop 4 req/s"):  # fmt: skip
        assert expected in text, expected


def test_marks_cache_and_energy_verdict_are_readable_without_javascript() -> None:
    html = render_html(report(), plotly_js=FAKE_PLOTLY)
    text = _visible_text(html)
    for expected in ("warm cache", "not salted", "Prompt cache served", "90.0%",
                     "the workload implies 10.0%", "not salted (--no-salt)",
                     "Energy verdict: partial", "energy verdict partial: reason"):  # fmt: skip
        assert expected in text, expected
    assert '<div class="tile partial"><span class="k">J per output token</span>' in html


def test_missing_energy_and_cost_say_not_measured() -> None:
    text = _visible_text(render_html(report(energy=False, cost=False), plotly_js=FAKE_PLOTLY))
    assert text.count("not measured") >= 3  # $ per 1M, J per token, average W
    assert "Power per GPU" not in text


def test_every_chart_element_has_its_figure_in_the_data_block() -> None:
    html = render_html(report(runs=2), plotly_js=FAKE_PLOTLY)
    ids = re.findall(r'<div id="(chart-\d+)" class="plot"', html)
    charts = _data_block(html)["charts"]
    assert [c["id"] for c in charts] == ids
    assert chart_count(html) == len(ids) > 20
    assert all(c["figure"]["data"] for c in charts)


def test_comparison_marks_the_pick_and_the_slo() -> None:
    html = render_html(report(runs=3), plotly_js=FAKE_PLOTLY)
    assert '<tr class="pick"><td>run 2</td>' in html
    assert "ttft_p99_ms = 300" in html
    figures = [c["figure"] for c in _data_block(html)["charts"]]
    stars = [t for f in figures for t in f["data"] if t.get("marker", {}).get("symbol") == "star"]
    assert len(stars) == 3  # TTFT curve, TPOT curve, cost vs load
