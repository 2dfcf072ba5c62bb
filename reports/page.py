"""The report page: one self-contained HTML file. plotly.js is embedded once, the figures'
data sits in one JSON block, and every headline figure and table is plain HTML, readable
without JavaScript. A Content-Security-Policy allows only this page's own scripts (by hash)
and no network at all, so the file behaves the same on an air-gapped laptop years from now."""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Sequence

from reports import charts
from reports.fmt import NOT_MEASURED, esc, num, script_json
from reports.html import Page, table
from reports.model import Comparison, ComparisonRow, ReportData, RunReport
from reports.run_page import run_section
from reports.style import CSS

_ERRORS_JS = """window.__benchErrors = [];
window.addEventListener('error', function (e) {
  window.__benchErrors.push(String(e.message || e));
  document.documentElement.setAttribute('data-js-errors', window.__benchErrors.join(' | '));
});"""

_RENDER_JS = """(function () {
  var spec = JSON.parse(document.getElementById('bench-data').textContent);
  var config = {responsive: true, displaylogo: false, scrollZoom: false};
  var jobs = spec.charts.map(function (c) {
    return Plotly.newPlot(c.id, c.figure.data, c.figure.layout, config);
  });
  Promise.all(jobs).then(function () {
    document.body.setAttribute('data-charts-rendered', String(jobs.length));
  }, function (err) {
    document.documentElement.setAttribute('data-js-errors', String(err));
  });
})();"""

_COMPARE_HEAD = ("run", "load", "GPUs", "ok", "errored", "output tok/s", "per GPU", "TTFT p50",
                 "TTFT p99", "TPOT p50", "TPOT p99", "E2E p99", "$/1M out", "J/out tok", "SLO",
                 "marks")  # fmt: skip


def render_html(data: ReportData, plotly_js: str | None = None) -> str:
    """The whole page. plotly_js: the plotly.js bundle (default: the installed plotly's)."""
    if plotly_js is None:
        from plotly.offline import get_plotlyjs

        plotly_js = get_plotlyjs()
    plotly_js = plotly_js.replace("</script", "<\\/script")
    page = Page()
    body: list[str] = [
        f"<header><h1>{esc(data.title)}</h1><p class='meta'>generated {esc(data.generated_at)} "
        f"by {esc(data.generator)}</p></header>",
        "<noscript><p class='warn'>Charts need JavaScript; every headline figure is also "
        "in the tables below.</p></noscript>",
    ]
    if data.comparison is not None:
        body.append(_comparison(page, data.comparison, data.runs))
    for i, run in enumerate(data.runs):
        body.append(run_section(page, run, full=i < data.full_runs))
    if len(data.runs) > data.full_runs:
        body.append(
            f"<p class='note'>Charts are drawn for the first {data.full_runs} runs only; "
            "`bench report RUN` writes any one run's full report.</p>"
        )
    spec = script_json({"charts": page.figures})
    scripts = (_ERRORS_JS, plotly_js, _RENDER_JS)
    csp = "; ".join(
        (
            "default-src 'none'",
            "script-src " + " ".join(f"'{_sha256(s)}'" for s in scripts),
            "style-src 'unsafe-inline'",  # plotly.js injects its own styles
            "img-src data: blob:",
            "font-src data:",
        )
    )
    return "\n".join(
        [
            "<!DOCTYPE html>",
            '<html lang="en"><head><meta charset="utf-8">',
            f'<meta http-equiv="Content-Security-Policy" content="{csp}">',
            '<meta name="viewport" content="width=device-width, initial-scale=1">',
            f"<title>{esc(data.title)}</title>",
            f"<style>{CSS}</style>",
            f"<script>{_ERRORS_JS}</script>",
            "</head><body><main>",
            *body,
            "</main>",
            f'<script type="application/json" id="bench-data">{spec}</script>',
            f"<script>{plotly_js}</script>",
            f"<script>{_RENDER_JS}</script>",
            "</body></html>",
        ]
    )


def chart_count(html_text: str) -> int:
    """How many chart elements a rendered page holds (tests and callers check rendering)."""
    return html_text.count('data-chart="1"')


def _sha256(script: str) -> str:
    digest = hashlib.sha256(script.encode()).digest()
    return "sha256-" + base64.b64encode(digest).decode()


# --- several runs --------------------------------------------------------------------------


def _comparison(page: Page, c: Comparison, runs: Sequence[RunReport]) -> str:
    out = ['<section class="comparison"><h2>Comparison</h2>']
    rows = [
        [f"run {r.run_id}", r.label, r.gpus, r.ok, r.errored, r.output_tok_s,
         r.output_tok_s_per_gpu, r.ttft_p50_ms, r.ttft_p99_ms, r.tpot_p50_ms, r.tpot_p99_ms,
         r.e2e_p99_ms, r.usd_per_1m_output_tokens, _j_per_token(r),
         "–" if r.meets_slo is None else ("met" if r.meets_slo else "missed"),
         ", ".join(r.marks) or "–"]
        for r in c.rows
    ]  # fmt: skip
    out.append(table(_COMPARE_HEAD, rows, numeric=True, highlight=c.cheapest_meeting_slo))
    slo_text = ", ".join(f"{k} = {v:g}" for k, v in c.slos.items()) or "none"
    out.append(f"<p class='note'>Latencies in ms. SLO: {esc(slo_text)}. {esc(c.pick_note)}.</p>")
    out.append('<div class="grid">')
    for metric in ("TTFT", "TPOT"):
        key = next((k for k in c.slos if k.startswith(metric.lower() + "_")), None)
        fig = charts.curve_figure(c, metric, key)
        out.append(page.chart(f"Throughput vs {metric}", fig, "each point is a run"))
    if any(r.usd_per_1m_output_tokens is not None and r.load is not None for r in c.rows):
        note = "green: meets the SLO; red: misses it; star: the pick"
        out.append(page.chart("Cost per 1M output tokens vs load", charts.cost_vs_load_figure(c),
                              note))  # fmt: skip
    else:
        out.append(f"<p class='note'>Cost vs load: {esc(NOT_MEASURED)} (no prices).</p>")
    if c.ttft_cdfs:
        fig = charts.overlay_cdf_figure(c.ttft_cdfs, "TTFT (ms)")
        out.append(page.chart("TTFT CDF, all runs", fig))
    if c.tpot_cdfs:
        fig = charts.overlay_cdf_figure(c.tpot_cdfs, "TPOT (ms)")
        out.append(page.chart("TPOT CDF, all runs", fig))
    if c.throughput:
        fig = charts.overlay_timeline_figure(c.throughput, "output tok/s")
        out.append(page.chart("Output tokens/s over time, all runs", fig, wide=True))
    out.append("</div></section>")
    return "\n".join(out)


def _j_per_token(r: ComparisonRow) -> float | str | None:
    """J per output token, flagged where the run's energy verdict says not to compare it."""
    if r.j_per_output_token is None or r.energy_status != "invalid":
        return r.j_per_output_token
    return f"{num(r.j_per_output_token, 3)} (invalid)"
