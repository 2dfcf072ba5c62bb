"""Plotly figures as plain dicts ({"data": [...], "layout": {...}}), drawn by plotly.js in the
page. Text that plotly renders (trace names, hover text) is HTML-escaped first: plotly reads
a subset of HTML in labels, and a device or model name from the store is not markup."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from reports.fmt import esc
from reports.model import Cdf, Comparison, DevicePower, Scatter, ServerView, Timeline

Figure = dict[str, Any]

COLORS = ("#2563eb", "#dc2626", "#059669", "#d97706", "#7c3aed", "#0891b2", "#db2777", "#4b5563")
_FONT = {"family": "system-ui, -apple-system, Segoe UI, Roboto, sans-serif", "size": 12}
_WINDOW_FILL = "rgba(37, 99, 235, 0.07)"
_IDLE_FILL = "rgba(107, 114, 128, 0.12)"


def _layout(x_title: str, y_title: str, height: int = 340, **extra: Any) -> dict[str, Any]:
    layout: dict[str, Any] = {
        "height": height,
        "margin": {"l": 64, "r": 24, "t": 16, "b": 48},
        "font": _FONT,
        "paper_bgcolor": "#ffffff",
        "plot_bgcolor": "#ffffff",
        "hovermode": "closest",
        "legend": {"orientation": "h", "y": -0.22},
        "xaxis": {"title": {"text": esc(x_title)}, "gridcolor": "#e5e7eb", "zeroline": False},
        "yaxis": {"title": {"text": esc(y_title)}, "gridcolor": "#e5e7eb", "zeroline": False},
    }
    layout.update(extra)
    return layout


def cdf_figure(cdf: Cdf) -> Figure:
    """The CDF as a line, with its percentiles marked and labelled."""
    data: list[dict[str, Any]] = [
        {
            "type": "scatter",
            "mode": "lines",
            "name": esc(cdf.label),
            "x": list(cdf.values),
            "y": list(cdf.probs),
            "line": {"color": COLORS[0], "shape": "hv" if cdf.exact else "linear"},
            "hovertemplate": "%{x:.3f} " + esc(cdf.unit) + "<br>P(X ≤ x) = %{y:.4f}<extra></extra>",
        }
    ]
    marks = [(k, v) for k, v in cdf.markers.items() if v is not None]
    if marks:
        probs = {"max": 1.0} | {k: int(k[1:]) / 100 for k, _ in marks if k.startswith("p")}
        data.append(
            {
                "type": "scatter",
                "mode": "markers+text",
                "name": "percentiles",
                "x": [v for _, v in marks],
                "y": [probs[k] for k, _ in marks],
                "text": [k if k in ("p50", "p99") else "" for k, _ in marks],
                "textposition": "middle left",
                "marker": {"color": COLORS[1], "size": 7},
                "hovertemplate": "%{text}: %{x:.3f} " + esc(cdf.unit) + "<extra></extra>",
            }
        )
    layout = _layout(f"{cdf.label} ({cdf.unit})", "fraction ≤ x", showlegend=False)
    layout["yaxis"]["range"] = [0, 1.03]
    return {"data": data, "layout": layout}


def scatter_figure(s: Scatter) -> Figure:
    return {
        "data": [
            {
                "type": "scatter",  # SVG: WebGL may be missing where the file is opened
                "mode": "markers",
                "name": "requests",
                "x": list(s.x),
                "y": list(s.y),
                "marker": {"color": COLORS[0], "size": 4, "opacity": 0.5},
                "hovertemplate": "%{x} tokens, %{y:.1f} ms<extra></extra>",
            }
        ],
        "layout": _layout(s.x_label, s.y_label, showlegend=False),
    }


def _spans(
    window_s: tuple[float, float] | None, idle_s: tuple[float, float] | None
) -> list[dict[str, Any]]:
    """Shaded rectangles for the measurement window and the idle baseline."""
    shapes = []
    for span, fill in ((idle_s, _IDLE_FILL), (window_s, _WINDOW_FILL)):
        if span is not None:
            shapes.append(
                {"type": "rect", "xref": "x", "yref": "paper", "x0": span[0], "x1": span[1],
                 "y0": 0, "y1": 1, "fillcolor": fill, "line": {"width": 0}, "layer": "below"}
            )  # fmt: skip
    return shapes


def timeline_figure(t: Timeline, window_s: tuple[float, float] | None) -> Figure:
    """Four stacked panels on one time axis: throughput, in flight, TTFT, TPOT."""
    panels = (
        ("output tokens/s", ("output tok/s",)),
        ("requests", ("in flight", "sends/s")),
        ("TTFT (ms)", ("TTFT p50 ms", "TTFT p99 ms")),
        ("TPOT (ms)", ("TPOT p50 ms", "TPOT p99 ms")),
    )
    data: list[dict[str, Any]] = []
    layout = _layout("time since run start (s)", "", height=640)
    gap, height = 0.04, (1 - 0.04 * 3) / 4
    mid = [ti + t.bucket_s / 2 for ti in t.t_s]
    for i, (title, names) in enumerate(panels):
        axis = "" if i == 0 else str(i + 1)
        top = 1 - i * (height + gap)
        layout[f"yaxis{axis}"] = {
            "title": {"text": esc(title)}, "domain": [top - height, top], "gridcolor": "#e5e7eb",
            "rangemode": "tozero",
        }  # fmt: skip
        for j, name in enumerate(names):
            if name not in t.series:
                continue
            data.append(
                {"type": "scatter", "mode": "lines+markers", "name": esc(name), "x": mid,
                 "y": list(t.series[name]), "yaxis": f"y{axis}", "connectgaps": False,
                 "line": {"color": COLORS[(i * 2 + j) % len(COLORS)], "width": 1.5},
                 "marker": {"size": 3}}
            )  # fmt: skip
    layout["xaxis"]["anchor"] = "y4"
    layout["shapes"] = _spans(window_s, None)
    layout["legend"] = {"orientation": "h", "y": -0.1}
    return {"data": data, "layout": layout}


def power_figure(
    devices: Sequence[DevicePower],
    activity: Timeline | None,
    window_s: tuple[float, float] | None,
    idle_s: tuple[float, float] | None,
    idle_w_per_gpu: float | None,
) -> Figure:
    """Power per GPU, requests in flight on the right axis, idle baseline and windows marked."""
    data: list[dict[str, Any]] = []
    for i, d in enumerate(devices):
        data.append(
            {"type": "scatter", "mode": "lines", "name": esc(f"{d.device} power"),
             "x": list(d.power_t_s), "y": list(d.power_w),
             "line": {"color": COLORS[i % len(COLORS)], "width": 1.5}}
        )  # fmt: skip
    layout = _layout("time since run start (s)", "power per GPU (W)", height=380)
    if activity is not None:
        data.append(
            {"type": "scatter", "mode": "lines", "name": "requests in flight", "yaxis": "y2",
             "x": [ti + activity.bucket_s / 2 for ti in activity.t_s],
             "y": list(activity.series["in flight"]), "fill": "tozeroy",
             "line": {"color": "rgba(107,114,128,0.6)", "width": 1},
             "fillcolor": "rgba(107,114,128,0.12)"}
        )  # fmt: skip
        layout["yaxis2"] = {"title": {"text": "requests in flight"}, "overlaying": "y",
                            "side": "right", "showgrid": False, "rangemode": "tozero"}  # fmt: skip
        layout["margin"]["r"] = 64
    shapes = _spans(window_s, idle_s)
    if idle_w_per_gpu is not None:
        shapes.append(
            {"type": "line", "xref": "paper", "yref": "y", "x0": 0, "x1": 1,
             "y0": idle_w_per_gpu, "y1": idle_w_per_gpu,
             "line": {"color": "#6b7280", "dash": "dash", "width": 1}}
        )  # fmt: skip
        layout["annotations"] = [
            {"xref": "paper", "yref": "y", "x": 0, "y": idle_w_per_gpu, "xanchor": "left",
             "yanchor": "bottom", "showarrow": False, "font": {"size": 11, "color": "#4b5563"},
             "text": f"idle {idle_w_per_gpu:.0f} W per GPU"}
        ]  # fmt: skip
    layout["shapes"] = shapes
    return {"data": data, "layout": layout}


def server_figure(view: ServerView, window_s: tuple[float, float] | None) -> Figure:
    """The server's requests running and waiting over time; KV-cache usage (%) on the right."""
    data: list[dict[str, Any]] = []
    layout = _layout("time since run start (s)", "requests (server)", height=340)
    for i, (name, values) in enumerate(view.series.items()):
        trace = {
            "type": "scatter",
            "mode": "lines",
            "name": esc(name),
            "x": list(view.t_s),
            "y": list(values),
            "line": {"color": COLORS[i % len(COLORS)], "width": 1.5},
        }
        if name.endswith("%"):
            trace["yaxis"] = "y2"
            trace["line"]["dash"] = "dot"
            layout["yaxis2"] = {
                "title": {"text": "KV cache usage (%)"},
                "overlaying": "y",
                "side": "right",
                "showgrid": False,
                "range": [0, 100],
            }
            layout["margin"]["r"] = 64
        data.append(trace)
    layout["yaxis"]["rangemode"] = "tozero"
    layout["shapes"] = _spans(window_s, None)
    return {"data": data, "layout": layout}


def energy_figure(devices: Sequence[DevicePower], window_s: tuple[float, float] | None) -> Figure:
    data = [
        {"type": "scatter", "mode": "lines", "name": esc(f"{d.device} energy"),
         "x": list(d.energy_t_s), "y": list(d.energy_j),
         "line": {"color": COLORS[i % len(COLORS)], "width": 1.5}}
        for i, d in enumerate(devices) if d.energy_t_s
    ]  # fmt: skip
    layout = _layout("time since run start (s)", "energy since first sample (J)")
    layout["shapes"] = _spans(window_s, None)
    return {"data": data, "layout": layout}


def cost_figure(parts: Sequence[tuple[str, float]]) -> Figure:
    """$ per 1M output tokens, one bar per part (time, energy), side by side: energy cost is
    not added to a rental price that already includes power."""
    return {
        "data": [
            {
                "type": "bar",
                "x": [esc(k) for k, _ in parts],
                "y": [v for _, v in parts],
                "marker": {"color": [COLORS[i] for i in range(len(parts))]},
                "text": [f"${v:.4g}" for _, v in parts],
                "textposition": "auto",
                "hovertemplate": "%{x}: $%{y:.4g} per 1M output tokens<extra></extra>",
            }
        ],  # fmt: skip
        "layout": _layout("", "$ per 1M output tokens", height=300, showlegend=False),
    }


def errors_figure(t: Timeline, window_s: tuple[float, float] | None) -> Figure:
    data = [
        {"type": "bar", "name": esc(kind), "x": [ti + t.bucket_s / 2 for ti in t.t_s],
         "y": list(values), "marker": {"color": COLORS[(i + 1) % len(COLORS)]}}
        for i, (kind, values) in enumerate(sorted(t.series.items()))
    ]  # fmt: skip
    layout = _layout("time since run start (s), by send time", "errored requests", barmode="stack")
    layout["shapes"] = _spans(window_s, None)
    return {"data": data, "layout": layout}


def overlay_cdf_figure(cdfs: Sequence[tuple[str, Cdf]], unit_label: str) -> Figure:
    data = [
        {"type": "scatter", "mode": "lines", "name": esc(label), "x": list(c.values),
         "y": list(c.probs), "line": {"color": COLORS[i % len(COLORS)], "width": 1.5}}
        for i, (label, c) in enumerate(cdfs)
    ]  # fmt: skip
    return {"data": data, "layout": _layout(unit_label, "fraction ≤ x", height=380)}


def overlay_timeline_figure(lines: Sequence[tuple[str, Timeline]], series: str) -> Figure:
    data = [
        {"type": "scatter", "mode": "lines", "name": esc(label),
         "x": [ti + t.bucket_s / 2 for ti in t.t_s], "y": list(t.series.get(series, ())),
         "line": {"color": COLORS[i % len(COLORS)], "width": 1.5}}
        for i, (label, t) in enumerate(lines)
    ]  # fmt: skip
    return {"data": data, "layout": _layout("time since run start (s)", series, height=380)}


def curve_figure(c: Comparison, metric: str, slo_key: str | None) -> Figure:
    """Throughput-latency curve: output tok/s per GPU (x) vs a latency's p50 and p99 (y),
    points labelled with their load; the SLO as a line; the picked run starred."""
    rows = [r for r in c.rows if (r.output_tok_s_per_gpu or r.output_tok_s) is not None]
    rows.sort(key=lambda r: r.load if r.load is not None else 0.0)
    x = [r.output_tok_s_per_gpu or r.output_tok_s for r in rows]
    data: list[dict[str, Any]] = []
    for i, stat in enumerate(("p50", "p99")):
        data.append(
            {"type": "scatter", "mode": "lines+markers+text", "name": f"{metric} {stat}",
             "x": x, "y": [getattr(r, f"{metric.lower()}_{stat}_ms") for r in rows],
             "text": [esc(r.label) if stat == "p99" else "" for r in rows],
             "textposition": "top center", "textfont": {"size": 10}, "cliponaxis": False,
             "line": {"color": COLORS[i], "width": 1.5}, "marker": {"size": 7}}
        )  # fmt: skip
    picked = [r for r in rows if r.run_id == c.cheapest_meeting_slo]
    if picked:
        p = picked[0]
        data.append(
            {"type": "scatter", "mode": "markers", "name": "picked (meets SLO)",
             "x": [p.output_tok_s_per_gpu or p.output_tok_s],
             "y": [getattr(p, f"{metric.lower()}_p99_ms")],
             "marker": {"symbol": "star", "size": 16, "color": COLORS[3]}}
        )  # fmt: skip
    per_gpu = all(r.output_tok_s_per_gpu is not None for r in rows)
    x_title = "output tokens/s per GPU" if per_gpu else "output tokens/s (GPU count unknown)"
    layout = _layout(x_title, f"{metric} (ms)", height=380)
    if slo_key and slo_key in c.slos:
        limit = c.slos[slo_key]
        layout["shapes"] = [
            {"type": "line", "xref": "paper", "yref": "y", "x0": 0, "x1": 1, "y0": limit,
             "y1": limit, "line": {"color": COLORS[1], "dash": "dot", "width": 1}}
        ]  # fmt: skip
        layout["annotations"] = [
            {"xref": "paper", "yref": "y", "x": 0, "y": limit, "xanchor": "left",
             "yanchor": "bottom", "showarrow": False, "text": esc(f"SLO {slo_key} = {limit:g}"),
             "font": {"size": 11, "color": COLORS[1]}}
        ]  # fmt: skip
    return {"data": data, "layout": layout}


def cost_vs_load_figure(c: Comparison) -> Figure:
    rows = sorted(
        (r for r in c.rows if r.load is not None and r.usd_per_1m_output_tokens is not None),
        key=lambda r: r.load or 0.0,
    )
    colors = [
        COLORS[2] if r.meets_slo else (COLORS[1] if r.meets_slo is False else COLORS[0])
        for r in rows
    ]
    data = [
        {"type": "scatter", "mode": "lines+markers", "name": "$ per 1M output tokens",
         "x": [r.load for r in rows], "y": [r.usd_per_1m_output_tokens for r in rows],
         "text": [f"run {r.run_id}" for r in rows], "marker": {"size": 9, "color": colors},
         "line": {"color": "#9ca3af", "width": 1},
         "hovertemplate": "%{text}: $%{y:.4g} at %{x}<extra></extra>"}
    ]  # fmt: skip
    picked = [r for r in rows if r.run_id == c.cheapest_meeting_slo]
    if picked:
        data.append(
            {"type": "scatter", "mode": "markers", "name": "cheapest meeting SLO",
             "x": [picked[0].load], "y": [picked[0].usd_per_1m_output_tokens],
             "marker": {"symbol": "star", "size": 16, "color": COLORS[3]}}
        )  # fmt: skip
    return {"data": data, "layout": _layout(c.load_label, "$ per 1M output tokens", height=380)}
