"""The report's section for an embeddings or rerank run: its figures (inputs/s, input tok/s,
req/s, inputs per request, where the input tokens were counted), the latency distribution and
inputs/s over time. Empty for a generation run (no pooling figures)."""

from __future__ import annotations

from typing import Any

from reports import charts
from reports.fmt import esc, num
from reports.html import Page, kv_table
from reports.model import RunReport, Timeline

__all__ = ["pooling_section", "rates_figure"]


def pooling_section(page: Page, run: RunReport) -> str:
    """The section's HTML ("" for a run without pooling figures)."""
    p = run.pooling
    if not p:
        return ""
    facts = {
        "inputs/s": num(p.get("inputs_per_s"), 1),
        "input tokens/s": num(p.get("input_tok_s"), 1),
        "requests/s": num(p.get("requests_s"), 2),
        "inputs per request": num(p.get("inputs_per_request"), 1),
        "input tokens counted by": (
            f"server {p.get('tokens_from_server', 0)}, client tokenizer "
            f"{p.get('tokens_from_client', 0)}, unknown {p.get('tokens_unknown', 0)}"
        ),
    }
    out = ["<h3>Embeddings / rerank</h3>", kv_table(facts), '<div class="grid">']
    if run.pooling_latency is not None:
        cdf = run.pooling_latency
        how = "every value" if cdf.exact else f"{len(cdf.values):,} quantiles"
        note = f"{cdf.n:,} values ({cdf.population}), send to close; drawn from {how}"
        out.append(page.chart("Latency CDF", charts.cdf_figure(cdf), note))
    if run.pooling_rates is not None:
        t = run.pooling_rates
        note = f"Buckets of {t.bucket_s:.3g} s, each ok request counted when it closed."
        out.append(page.chart("Inputs/s over time", rates_figure(t, run.window_s), note))
    out.append("</div>")
    return "\n".join(out)


def rates_figure(t: Timeline, window_s: tuple[float, float] | None) -> dict[str, Any]:
    """Two panels on one time axis: inputs/s and requests/s; latency p50 and p99 (ms)."""
    mid = [ti + t.bucket_s / 2 for ti in t.t_s]
    panels = (("per second", ("inputs/s", "requests/s")), ("latency (ms)",
              ("latency p50 ms", "latency p99 ms")))  # fmt: skip
    data: list[dict[str, Any]] = []
    layout: dict[str, Any] = {
        "height": 420, "margin": {"l": 64, "r": 24, "t": 16, "b": 48},
        "paper_bgcolor": "#ffffff", "plot_bgcolor": "#ffffff", "hovermode": "closest",
        "legend": {"orientation": "h", "y": -0.15},
        "xaxis": {"title": {"text": "time since run start (s)"}, "anchor": "y2"},
    }  # fmt: skip
    for i, (title, names) in enumerate(panels):
        axis = "" if i == 0 else "2"
        domain = [0.55, 1.0] if i == 0 else [0.0, 0.45]
        layout[f"yaxis{axis}"] = {"title": {"text": esc(title)}, "domain": domain,
                                  "rangemode": "tozero", "gridcolor": "#e5e7eb"}  # fmt: skip
        for j, name in enumerate(names):
            data.append(
                {"type": "scatter", "mode": "lines+markers", "name": esc(name), "x": mid,
                 "y": list(t.series.get(name, ())), "yaxis": f"y{axis}", "connectgaps": False,
                 "line": {"color": charts.COLORS[(i * 2 + j) % len(charts.COLORS)]},
                 "marker": {"size": 3}}
            )  # fmt: skip
    if window_s is not None:
        layout["shapes"] = [
            {"type": "rect", "xref": "x", "yref": "paper", "x0": window_s[0], "x1": window_s[1],
             "y0": 0, "y1": 1, "fillcolor": "rgba(37, 99, 235, 0.07)", "line": {"width": 0},
             "layer": "below"}
        ]  # fmt: skip
    return {"data": data, "layout": layout}
