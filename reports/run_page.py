"""One run's part of the page: the headline tiles with the run's marks (warm cache, energy
verdict), latency, throughput over time, the server's view, power and energy, cost, errors,
configuration and how the page was drawn. Each section is plain HTML; charts go through the
page's collector."""

from __future__ import annotations

from reports import charts, per_request
from reports.fmt import NOT_MEASURED, duration, esc, num, usd
from reports.html import Page, kv_table, note_list, table
from reports.model import RunReport, Verdict
from reports.pooling_charts import pooling_section
from reports.safety import mask_secrets

_SKIP_KEYS = {"warnings", "notes", "unavailable", "verdict"}


def run_section(page: Page, run: RunReport, full: bool) -> str:
    """The run's section; `full`: with its charts (else headline, config and notes only)."""
    out = [f'<section class="run" id="run-{run.run_id}">', _headline(run)]
    out.append(note_list("Warnings", run.warnings))
    out.append(note_list("Prompt cache", run.cache.notes if run.cache else ()))
    if full:
        out += [_latency(page, run), _over_time(page, run), _server(page, run)]
        out += [_energy(page, run), _cost(page, run), _errors(page, run)]
        out.append(per_request.section(run.adjusted, run.energy_per_request))
        out.append(pooling_section(page, run))  # embeddings, rerank; "" otherwise
    out += [_config(run), _notes(run), "</section>"]
    return "\n".join(out)


def _headline(run: RunReport) -> str:
    h = run.headline

    def ms(a: float | None, b: float | None) -> str:
        return f"p50 {num(a, 1)} ms · p99 {num(b, 1)} ms"

    tiles = [
        ("Endpoint", h.endpoint or "–", ""),
        ("Model", h.model or "–", ""),
        ("GPUs", h.gpus or NOT_MEASURED, ""),
        ("Load", h.load or "–", ""),
        ("Duration", duration(h.duration_s), ""),
        ("Requests", f"{h.ok:,} ok · {h.errored:,} errored · {h.cancelled:,} cancelled", ""),
        ("Output tokens/s", num(h.output_tok_s, 1), ""),
        ("TTFT", ms(h.ttft_p50_ms, h.ttft_p99_ms), ""),
        ("TPOT", ms(h.tpot_p50_ms, h.tpot_p99_ms), ""),
        ("$ per 1M output tokens", usd(h.usd_per_1m_output_tokens, NOT_MEASURED),
         NOT_MEASURED if not run.cost.get("notes") else "; ".join(run.cost["notes"])),
        *_energy_tiles(run),
        _cache_tile(run),
    ]  # fmt: skip
    cells = [_tile(*t) for t in tiles]
    badges = "" if run.status == "complete" else f' <span class="badge">{esc(run.status)}</span>'
    badges += "".join(f' <span class="badge mark">{esc(m)}</span>' for m in run.marks)
    return (
        f"<h2>{esc(run.title)}{badges}</h2><p class='meta'>created {esc(run.created or '–')}</p>"
        f'<div class="card tiles">{"".join(cells)}</div>'
    )


def _tile(key: str, value: str, hint: str, cls: str = "") -> str:
    """A headline tile; a value not measured is shown in grey with its hint (why not)."""
    if value == NOT_MEASURED:
        cls = "missing"
    hint_html = f'<span class="hint">{esc(hint)}</span>' if hint and cls else ""
    return (
        f'<div class="tile {cls}"><span class="k">{esc(key)}</span>'
        f'<span class="v">{esc(value)}</span>{hint_html}</div>'
    )


def _energy_tiles(run: RunReport) -> list[tuple[str, str, str, str]]:
    """J per output token flagged by the energy verdict (greyed and struck when invalid: do
    not compare it), and average power."""
    h, v = run.headline, run.energy_verdict
    missing = str(run.energy.get("unavailable") or NOT_MEASURED)
    j_tok = _or(h.j_per_output_token, 3, " J")
    cls, hint = "", missing
    if v is not None and v.status != "ok" and j_tok != NOT_MEASURED:
        cls = "invalid" if v.status == "invalid" else "partial"
        hint = _verdict_text(v)
    return [
        ("J per output token", j_tok, hint, cls),
        ("Average power", _or(h.avg_w, 0, " W"), missing, ""),
    ]


def _cache_tile(run: RunReport) -> tuple[str, str, str, str]:
    """The share of prompt tokens the server served from its cache, beside the workload's
    own reuse and whether the run was salted; marked when the cache was warm."""
    c = run.cache
    if c is None:
        return ("Prompt cache served", NOT_MEASURED, "this run predates the measure", "")
    salted = {True: "salted", False: "not salted (--no-salt)"}.get(c.salted, "salting unknown")
    if c.share is None:
        hint = f"the server reported no cached prompt tokens (per request or scraped); {salted}"
        return ("Prompt cache served", "not reported", hint, "missing")
    hint = f"from {c.source}; the workload implies {c.ideal:.1%}; {salted}"
    return ("Prompt cache served", f"{c.share:.1%}", hint, "partial" if c.warm else "note")


def _verdict_text(v: Verdict) -> str:
    reasons = "; ".join(v.reasons)
    return f"energy verdict {v.status}" + (f": {reasons}" if reasons else "")


def _or(value: float | None, digits: int, unit: str) -> str:
    return NOT_MEASURED if value is None else num(value, digits) + unit


def _latency(page: Page, run: RunReport) -> str:
    head = ["metric", "n", "mean", "p50", "p90", "p95", "p99", "max", "unit"]
    rows = [
        [label, d.get("n"), *(d.get(k) for k in ("mean", "p50", "p90", "p95", "p99", "max")),
         d.get("unit")]
        for label, d in run.distributions
    ]  # fmt: skip
    out = ["<h3>Latency and lengths</h3>", table(head, rows, numeric=True)]
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


def _over_time(page: Page, run: RunReport) -> str:
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


def _server(page: Page, run: RunReport) -> str:
    out = ["<h3>Server metrics</h3>"]
    if not run.servers:
        reason = run.server_note or "no server metrics were scraped"
        out.append(f"<p class='note'>{esc(NOT_MEASURED)}: {esc(reason)}</p>")
        return "\n".join(out)
    head = ("figure", "server", "client or workload", "server ÷ client")
    for view in run.servers:
        out.append(f"<h4>{esc(view.kind)} · {esc(view.url)}</h4>")
        out.append(table(head, [list(r) for r in view.rows], numeric=True))
        if view.t_s:
            fig = charts.server_figure(view, run.window_s)
            note = "Scrapes averaged per bucket; shaded: the measurement window."
            out.append(page.chart("Requests running and waiting (server)", fig, note, wide=True))
        if view.notes:
            items = "".join(f"<li>{esc(n)}</li>" for n in view.notes)
            out.append(f"<ul class='notes'>{items}</ul>")
    return "\n".join(out)


def _energy(page: Page, run: RunReport) -> str:
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
    v = run.energy_verdict
    if v is not None:
        reasons = "".join(f"<li>{esc(r)}</li>" for r in v.reasons)
        out.append(
            f'<div class="verdict {esc(v.status)}"><strong>Energy verdict: {esc(v.status)}'
            f"</strong> ({esc(_VERDICT_MEANING[v.status])})<ul>{reasons}</ul></div>"
        )
    shown = {k: v for k, v in run.energy.items() if k not in _SKIP_KEYS}
    if shown:
        out.append(kv_table(shown))
    return "\n".join(out)


_VERDICT_MEANING = {
    "ok": "the figures can be compared",
    "partial": "a usable estimate with a stated weakness",
    "invalid": "do not compare these figures",
}


def _cost(page: Page, run: RunReport) -> str:
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
        out.append("<h4>Price inputs</h4>" + kv_table(inputs))
    shown = {k: v for k, v in c.items() if k not in _SKIP_KEYS}
    if shown:
        out.append("<h4>Figures</h4>" + kv_table(shown))
    out.append("</div></div>")
    return "\n".join(out)


def _errors(page: Page, run: RunReport) -> str:
    if not run.error_kinds:
        return "<h3>Errors</h3><p class='note'>No errored requests.</p>"
    out = ["<h3>Errors</h3>"]
    out.append(table(["kind", "requests", "example detail"], [list(r) for r in run.error_kinds]))
    if run.errors is not None:
        fig = charts.errors_figure(run.errors, run.window_s)
        out.append(page.chart("Errors by kind over time", fig))
    return "\n".join(out)


def _config(run: RunReport) -> str:
    out = ["<h3>Configuration and versions</h3>", '<div class="grid">']
    out.append(f"<div><h4>run configuration</h4>{kv_table(mask_secrets(run.config))}</div>")
    for name, facts in run.facts.items():
        if facts:
            out.append(f"<div><h4>{esc(name)}</h4>{kv_table(mask_secrets(facts))}</div>")
    out.append("</div>")
    return "\n".join(out)


def _notes(run: RunReport) -> str:
    items = [
        "Latency figures: ok requests after warm-up (benchbench metric definitions).",
        *run.notes,
    ]
    lis = "".join(f"<li>{esc(n)}</li>" for n in items)
    return f"<h3>How this page was drawn</h3><ul class='notes'>{lis}</ul>"
