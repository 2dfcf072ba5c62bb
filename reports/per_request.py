"""The per-request sections of a run: latency with failed requests counted as +inf beside
the ok-only figures, and the window's energy attributed to its requests (J per request and
per output token, prefill vs decode, by input and output length)."""

from __future__ import annotations

import math
from typing import Any

from reports.fmt import esc, num
from reports.html import kv_table, table

_STATS = ("mean", "p50", "p90", "p95", "p99", "max")


def section(adjusted: tuple[tuple[str, dict[str, Any]], ...], energy: dict[str, Any] | None) -> str:
    """Both sections as HTML; empty parts are left out."""
    return _adjusted(adjusted) + _energy(energy)


def _adjusted(rows: tuple[tuple[str, dict[str, Any]], ...]) -> str:
    if not rows:
        return ""
    head = ["metric", "n", "failed", *_STATS, "unit"]
    body = [
        [label, d.get("n"), d.get("failed"), *(_inf(d.get(k)) for k in _STATS), d.get("unit")]
        for label, d in rows
    ]
    return (
        "<h3>Latency with failures counted</h3><p class='note'>Each failed (errored) measured "
        "request counts as +∞, so a percentile is ∞ once the failures reach it (about when the "
        "error rate exceeds 1 − p); cancelled requests (stopped by the client) are left out. "
        "Compare with the ok-only latency table.</p>" + table(head, body, numeric=True)
    )


def _inf(v: Any) -> Any:
    return "∞" if isinstance(v, float) and math.isinf(v) else v


def _energy(e: dict[str, Any] | None) -> str:
    if not e:
        return ""
    dists = [
        ("J per request", e["j_per_request"]),
        ("J per output token", e["j_per_output_token"]),
        ("prefill J per request", e["prefill_j"]),
        ("decode J per request", e["decode_j"]),
    ]
    head = ["figure", "n", "mean", "p50", "p90", "p99"]
    rows = [[label, d["n"], *(d[k] for k in ("mean", "p50", "p90", "p99"))] for label, d in dists]
    out = ["<h3>Energy per request</h3>", f"<p class='note'>Rule: {esc(e['rule'])}.</p>"]
    out.append(table(head, rows, numeric=True))
    out.append(
        kv_table(
            {
                "window energy (J)": num(e["window_j"], 2),
                "attributed to requests (J)": num(e["attributed_j"], 2),
                "of which: nothing in flight, shared (J)": num(e["gap_j"], 2),
                "warm-up and failed requests (J)": num(e["other_j"], 2),
                "prefill share of the ok requests' energy": e["prefill_share"],
            }
        )  # fmt: skip
    )
    for title, key in (("By input length", "by_input"), ("By output length", "by_output")):
        buckets = e.get(key) or ()
        if buckets:
            head = ["tokens", "n", "J/request p50", "J/request p90", "J/out token p50",
                    "J/out token p90"]  # fmt: skip
            keys = ("j_per_request_p50", "j_per_request_p90", "j_per_output_token_p50",
                    "j_per_output_token_p90")  # fmt: skip
            rows = [[b["tokens"], b["n"], *(b[k] for k in keys)] for b in buckets]
            out += [f"<h4>{esc(title)}</h4>", table(head, rows, numeric=True)]
    for note in e.get("notes") or ():
        out.append(f"<p class='note'>{esc(note)}</p>")
    return "\n".join(out)
