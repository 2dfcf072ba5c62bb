"""The report page: one self-contained HTML file. plotly.js is embedded once, the figures'
data sits in one JSON block, and every headline figure and table is plain HTML, readable
without JavaScript. A Content-Security-Policy allows only this page's own scripts (by hash)
and no network at all, so the file behaves the same on an air-gapped laptop years from now."""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Sequence
from typing import Any

from reports import charts
from reports.fmt import NOT_MEASURED, duration, esc, num, plain, script_json, usd
from reports.model import Comparison, ReportData, RunReport
from reports.safety import mask_secrets
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

_SKIP_KEYS = {"warnings", "notes", "unavailable"}
_COMPARE_HEAD = (
    "run",
    "load",
    "GPUs",
    "ok",
    "errored",
    "output tok/s",
    "per GPU",
    "TTFT p50",
    "TTFT p99",
) + ("TPOT p50", "TPOT p99", "E2E p99", "$/1M out", "J/out tok", "SLO")


class _Page:
    """Collects figures while the HTML is written; each gets a stable element id."""

    def __init__(self) -> None:
        self.figures: list[dict[str, Any]] = []

    def chart(self, title: str, figure: dict[str, Any], note: str = "", wide: bool = False) -> str:
        chart_id = f"chart-{len(self.figures) + 1}"
        self.figures.append({"id": chart_id, "figure": figure})
        cls = "chart wide" if wide else "chart"
        note_html = f'<p class="note">{esc(note)}</p>' if note else ""
        return (
            f'<figure class="{cls}"><figcaption>{esc(title)}</figcaption>'
            f'<div id="{chart_id}" class="plot" data-chart="1"></div>{note_html}</figure>'
        )


def render_html(data: ReportData, plotly_js: str | None = None) -> str:
    """The whole page. plotly_js: the plotly.js bundle (default: the installed plotly's)."""
    if plotly_js is None:
        from plotly.offline import get_plotlyjs

        plotly_js = get_plotlyjs()
    plotly_js = plotly_js.replace("</script", "<\\/script")
    page = _Page()
    body: list[str] = [
        f"<header><h1>{esc(data.title)}</h1><p class='meta'>generated {esc(data.generated_at)} "
        f"by {esc(data.generator)}</p></header>",
        "<noscript><p class='warn'>Charts need JavaScript; every headline figure is also "
        "in the tables below.</p></noscript>",
    ]
    if data.comparison is not None:
        body.append(_comparison(page, data.comparison, data.runs))
    for i, run in enumerate(data.runs):
        body.append(_run(page, run, full=i < data.full_runs))
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


# --- one run ------------------------------------------------------------------------------


def _run(page: _Page, run: RunReport, full: bool) -> str:
    out = [f'<section class="run" id="run-{run.run_id}">', _headline(run)]
    if run.warnings:
        items = "".join(f"<li>{esc(w)}</li>" for w in run.warnings)
        out.append(f'<div class="warn"><strong>Warnings</strong><ul>{items}</ul></div>')
    if full:
        out += [_latency(page, run), _over_time(page, run), _server(page, run)]
        out += [_energy(page, run)]
        out += [_cost(page, run), _errors(page, run)]
    out += [_config(run), _notes(run), "</section>"]
    return "\n".join(out)


def _headline(run: RunReport) -> str:
    h = run.headline
    energy_missing = str(run.energy.get("unavailable") or NOT_MEASURED)
    cost_missing = NOT_MEASURED if not run.cost.get("notes") else "; ".join(run.cost["notes"])

    def ms(a: float | None, b: float | None) -> str:
        return f"p50 {num(a, 1)} ms · p99 {num(b, 1)} ms"

    tiles = [
        ("Endpoint", h.endpoint or "–"),
        ("Model", h.model or "–"),
        ("GPUs", h.gpus or NOT_MEASURED),
        ("Load", h.load or "–"),
        ("Duration", duration(h.duration_s)),
        ("Requests", f"{h.ok:,} ok · {h.errored:,} errored · {h.cancelled:,} cancelled"),
        ("Output tokens/s", num(h.output_tok_s, 1)),
        ("TTFT", ms(h.ttft_p50_ms, h.ttft_p99_ms)),
        ("TPOT", ms(h.tpot_p50_ms, h.tpot_p99_ms)),
        ("$ per 1M output tokens", usd(h.usd_per_1m_output_tokens, NOT_MEASURED)),
        ("J per output token", _or(h.j_per_output_token, 3, " J")),
        ("Average power", _or(h.avg_w, 0, " W")),
    ]
    hints = {"$ per 1M output tokens": cost_missing, "J per output token": energy_missing,
             "Average power": energy_missing}  # fmt: skip
    cells = []
    for key, value in tiles:
        missing = value == NOT_MEASURED
        hint = f'<span class="hint">{esc(hints.get(key, ""))}</span>' if missing else ""
        cls = "tile missing" if missing else "tile"
        cells.append(
            f'<div class="{cls}"><span class="k">{esc(key)}</span>'
            f'<span class="v">{esc(value)}</span>{hint}</div>'
        )
    status = "" if run.status == "complete" else f' <span class="badge">{esc(run.status)}</span>'
    return (
        f"<h2>{esc(run.title)}{status}</h2><p class='meta'>created {esc(run.created or '–')}</p>"
        f'<div class="card tiles">{"".join(cells)}</div>'
    )


def _or(value: float | None, digits: int, unit: str) -> str:
    return NOT_MEASURED if value is None else num(value, digits) + unit


def _latency(page: _Page, run: RunReport) -> str:
    head = ["metric", "n", "mean", "p50", "p90", "p95", "p99", "max", "unit"]
    rows = [
        [label, d.get("n"), *(d.get(k) for k in ("mean", "p50", "p90", "p95", "p99", "max")),
         d.get("unit")]
        for label, d in run.distributions
    ]  # fmt: skip
    out = ["<h3>Latency and lengths</h3>", _table(head, rows, numeric=True)]
    out.append('<div class="grid">')
    for cdf in run.cdfs:
        how = "every value" if cdf.exact else f"{len(cdf.values):,} log-spaced bins"
        note = f"{cdf.n:,} values ({cdf.population}); drawn from {how}"
        out.append(page.chart(f"{cdf.label} CDF", charts.cdf_figure(cdf), note))
    for s in run.scatters:
        note = f"{len(s.x):,} of {s.total:,} requests" + (" (sampled)" if s.sampled else "")
        out.append(page.chart(f"{s.y_label} vs {s.x_label}", charts.scatter_figure(s), note))
    out.append("</div>")
    return "\n".join(out)


def _over_time(page: _Page, run: RunReport) -> str:
    if run.timeline is None:
        return "<h3>Over time</h3><p class='note'>No requests.</p>"
    note = (
        f"Buckets of {run.timeline.bucket_s:.3g} s; shaded: the measurement window. Tokens: every "
        "streamed token; latency: ok measured requests by send time; in flight: time-weighted mean."
    )
    fig = charts.timeline_figure(run.timeline, run.window_s)
    return "<h3>Throughput, concurrency and latency over time</h3>" + page.chart(
        "Over time", fig, note, wide=True
    )


def _server(page: _Page, run: RunReport) -> str:
    out = ["<h3>Server metrics</h3>"]
    if not run.servers:
        reason = run.server_note or "no server metrics were scraped"
        out.append(f"<p class='note'>{esc(NOT_MEASURED)}: {esc(reason)}</p>")
        return "\n".join(out)
    head = ("figure", "server", "client or workload", "server ÷ client")
    for view in run.servers:
        out.append(f"<h4>{esc(view.kind)} · {esc(view.url)}</h4>")
        out.append(_table(head, [list(r) for r in view.rows], numeric=True))
        if view.t_s:
            fig = charts.server_figure(view, run.window_s)
            note = "Scrapes averaged per bucket; shaded: the measurement window."
            out.append(page.chart("Requests running and waiting (server)", fig, note, wide=True))
        if view.notes:
            items = "".join(f"<li>{esc(n)}</li>" for n in view.notes)
            out.append(f"<ul class='notes'>{items}</ul>")
    return "\n".join(out)


def _energy(page: _Page, run: RunReport) -> str:
    out = ["<h3>Power and energy</h3>"]
    if not run.power:
        reason = run.energy.get("unavailable") or "no GPU power or energy samples in this run"
        out.append(f"<p class='note'>{esc(NOT_MEASURED)}: {esc(reason)}</p>")
    else:
        note = (
            "Blue shading: measurement window; grey shading: idle baseline; dashed line: idle "
            "power per GPU. Sources: "
            + ", ".join(f"{d.device} {d.source} {d.power_metric or 'energy counter'}"
                        for d in run.power)
        )  # fmt: skip
        fig = charts.power_figure(
            run.power, run.activity, run.window_s, run.idle_window_s, run.idle_w_per_gpu
        )
        out.append(page.chart("Power per GPU with requests in flight", fig, note, wide=True))
        if any(d.energy_t_s for d in run.power):
            fig = charts.energy_figure(run.power, run.window_s)
            out.append(page.chart("Cumulative energy per GPU", fig, "", wide=True))
    shown = {k: v for k, v in run.energy.items() if k not in _SKIP_KEYS}
    if shown:
        out.append(_kv_table(shown))
    return "\n".join(out)


def _cost(page: _Page, run: RunReport) -> str:
    out = ["<h3>Cost</h3>"]
    c = run.cost
    parts = [
        (label, float(c[key]))
        for label, key in (
            ("time (instance or API price)", "usd_per_1m_output_tokens"),
            ("energy (kWh × PUE × $/kWh)", "energy_usd_per_1m_output_tokens"),
        )
        if isinstance(c.get(key), int | float)
    ]
    out.append('<div class="grid">')
    if parts:
        note = "Energy cost is shown beside, never added to, a rental price that includes power."
        out.append(page.chart("Cost per 1M output tokens", charts.cost_figure(parts), note))
    else:
        out.append(f"<p class='note'>{esc(NOT_MEASURED)}: no prices were given for this run.</p>")
    out.append("<div>")
    for n in c.get("notes") or ():
        out.append(f"<p class='note'>{esc(n)}</p>")
    inputs = dict(run.price_inputs)
    for key in ("price_source", "source", "kwh_price_usd", "pue"):
        if c.get(key) is not None:
            inputs.setdefault(key, c[key])
    if inputs:
        out.append("<h4>Price inputs</h4>" + _kv_table(inputs))
    shown = {k: v for k, v in c.items() if k not in _SKIP_KEYS}
    if shown:
        out.append("<h4>Figures</h4>" + _kv_table(shown))
    out.append("</div></div>")
    return "\n".join(out)


def _errors(page: _Page, run: RunReport) -> str:
    if not run.error_kinds:
        return "<h3>Errors</h3><p class='note'>No errored requests.</p>"
    out = ["<h3>Errors</h3>"]
    out.append(_table(["kind", "requests", "example detail"], [list(r) for r in run.error_kinds]))
    if run.errors is not None:
        fig = charts.errors_figure(run.errors, run.window_s)
        out.append(page.chart("Errors by kind over time", fig))
    return "\n".join(out)


def _config(run: RunReport) -> str:
    out = ["<h3>Configuration and versions</h3>", '<div class="grid">']
    out.append(f"<div><h4>run configuration</h4>{_kv_table(mask_secrets(run.config))}</div>")
    for name, facts in run.facts.items():
        if facts:
            out.append(f"<div><h4>{esc(name)}</h4>{_kv_table(mask_secrets(facts))}</div>")
    out.append("</div>")
    return "\n".join(out)


def _notes(run: RunReport) -> str:
    items = [
        "Latency figures: ok requests after warm-up (benchbench metric definitions).",
        *run.notes,
    ]
    lis = "".join(f"<li>{esc(n)}</li>" for n in items)
    return f"<h3>How this page was drawn</h3><ul class='notes'>{lis}</ul>"


# --- several runs --------------------------------------------------------------------------


def _comparison(page: _Page, c: Comparison, runs: Sequence[RunReport]) -> str:
    out = ['<section class="comparison"><h2>Comparison</h2>']
    rows = [
        [f"run {r.run_id}", r.label, r.gpus, r.ok, r.errored, r.output_tok_s,
         r.output_tok_s_per_gpu, r.ttft_p50_ms, r.ttft_p99_ms, r.tpot_p50_ms, r.tpot_p99_ms,
         r.e2e_p99_ms, r.usd_per_1m_output_tokens, r.j_per_output_token,
         "–" if r.meets_slo is None else ("met" if r.meets_slo else "missed")]
        for r in c.rows
    ]  # fmt: skip
    out.append(_table(_COMPARE_HEAD, rows, numeric=True, highlight=c.cheapest_meeting_slo))
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


# --- tables --------------------------------------------------------------------------------


def _table(
    head: Sequence[str],
    rows: Sequence[Sequence[Any]],
    numeric: bool = False,
    highlight: int | None = None,
) -> str:
    th = "".join(f"<th>{esc(h)}</th>" for h in head)
    body = []
    for row in rows:
        cells = "".join(
            f'<td class="n">{esc(num(v, 2))}</td>'
            if numeric and isinstance(v, int | float) and not isinstance(v, bool)
            else f"<td>{esc(plain(v))}</td>"
            for v in row
        )
        mark = ' class="pick"' if highlight is not None and row[0] == f"run {highlight}" else ""
        body.append(f"<tr{mark}>{cells}</tr>")
    rows_html = "".join(body)
    return (
        f'<div class="tablewrap"><table><thead><tr>{th}</tr></thead>'
        f"<tbody>{rows_html}</tbody></table></div>"
    )


def _kv_table(d: dict[str, Any]) -> str:
    rows = "".join(
        f"<tr><th>{esc(str(k).replace('_', ' '))}</th><td>{esc(plain(v))}</td></tr>"
        for k, v in d.items()
    )
    return f'<table class="kv"><tbody>{rows}</tbody></table>'
