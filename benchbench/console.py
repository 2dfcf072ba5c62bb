"""Rendering for people: the live line during a run and the summary table after it."""

from __future__ import annotations

from typing import Any

from rich.console import Console, Group
from rich.table import Table
from rich.text import Text

from benchbench.catalogue import DISTRIBUTION_METRICS, INTENDED_METRICS, METRICS
from benchbench.energy_per_request import text_lines
from benchbench.live import LiveStats
from benchbench.metrics import RunSummary
from benchbench.pooling_summary import pooling_lines
from benchbench.reasoning import reasoning_lines
from benchbench.request_metrics import ERROR_ADJUSTED, Distribution
from benchbench.results import Cost, Energy, ServerView
from benchbench.workers.view import worker_lines


def live_line(stats: LiveStats, now_ns: int) -> Text:
    total = f"/{stats.total}" if stats.total else ""
    ttft = stats.ttft_p50_ms()
    ttft_s = f"{ttft:.1f} ms" if ttft is not None else "-"
    return Text.assemble(
        ("done ", "dim"),
        f"{stats.done}{total}",
        ("  tokens/s ", "dim"),
        f"{stats.tokens_per_s(now_ns):,.0f}",
        ("  TTFT p50 ", "dim"),
        ttft_s,
        ("  errors ", "dim"),
        (str(stats.errors), "red" if stats.errors else ""),
    )


def _fmt(v: float | None, digits: int = 1) -> str:
    if v is None:
        return "-"
    if v == float("inf"):  # an error-adjusted percentile past the failures
        return "∞"
    if abs(v) >= 1000:  # four significant digits are enough; keeps 80-column tables whole
        digits = 0
    return f"{v:,.{digits}f}"


def summary_renderable(s: RunSummary, header: dict[str, Any] | None = None) -> Group:
    legend = "latencies: ok requests after warm-up"
    if s.open_loop:
        legend += "; (intended): from the planned send time; schedule lag: every sent request"
    if s.errored:
        legend += "; (failed=∞): with each failed request counted as +inf"
    return Group(_head(s, header), _latency_table(s), Text(legend, style="dim"))


def _head(s: RunSummary, header: dict[str, Any] | None) -> Table:
    """The run's facts, one row each: the books, window, rates, then the typed results."""
    head = Table.grid(padding=(0, 2))
    head.add_column(style="dim")
    head.add_column()
    for key, value in (header or {}).items():
        head.add_row(key, str(value))
    status = s.status if s.status in _QUIET_STATUS else f"[bold red]{s.status}[/]"
    head.add_row("run", f"{s.run_id} ({status})")
    head.add_row(
        "requests",
        f"sent {s.sent} = ok {s.ok} + errored {s.errored} + cancelled {s.cancelled}"
        + (f"  (+{s.warmup} warm-up, excluded)" if s.warmup else ""),
    )
    books = books_line(s)
    if books is not None:
        head.add_row("books", books)
    if s.errors_by_kind:
        head.add_row("errors", ", ".join(f"{k} {v}" for k, v in s.errors_by_kind.items()))
    head.add_row("window", window_line(s))
    head.add_row(
        "throughput",
        f"{_fmt(s.output_tok_s)} output tok/s, {_fmt(s.total_tok_s)} total tok/s, "
        f"{_fmt(s.requests_s, 2)} req/s",
    )
    rate = f"achieved send rate {_fmt(s.achieved_rate, 2)}/s"
    if s.requested_rate:
        rate += f" vs requested {s.requested_rate:g}/s"
    head.add_row("rate", rate + f", mean concurrency {_fmt(s.mean_concurrency, 1)}")
    head.add_row("token truth", _token_truth_line(s.token_truth))
    for label, line in pooling_lines(s.pooling) if s.pooling else ():  # embeddings, rerank
        head.add_row(label, Text(line))
    if s.prompt_cache:
        head.add_row("prompt cache", Text(prompt_cache_line(s.prompt_cache)))
        if s.prompt_cache.get("reuse_warning"):
            head.add_row("[yellow]warning[/]", Text(s.prompt_cache["reuse_warning"]))
    if s.reasoning is not None:
        for label, line in reasoning_lines(s.reasoning):
            head.add_row(label, Text(line))
    if s.results.energy is not None:
        for label, line in energy_lines(s.results.energy):
            head.add_row(label, Text(line))
    if s.energy_per_request is not None:
        for label, line in text_lines(s.energy_per_request):
            head.add_row(label, Text(line))
    if s.results.cost is not None:
        head.add_row("cost", cost_line(s.results.cost))
        for note in s.results.cost.notes:
            head.add_row("cost note", Text(note))
    for label, line in server_lines(s.results.server):
        head.add_row(label, Text(line))
    for label, line in worker_lines(s.results.workers):  # `bench run --workers N` only
        head.add_row(label, Text(line))
    if s.goodput:
        g = s.goodput
        head.add_row(
            "goodput",
            f"{_fmt(g['goodput_rps'], 2)} req/s ({g['good_requests']}/{g['requests']} met every "
            f"SLO); SLOs {'met' if g['all_met'] else 'NOT met'}",
        )
    for w in s.warnings:
        head.add_row("[yellow]warning[/]", Text(str(w)))
    return head


def _token_truth_line(tt: dict[str, Any]) -> str:
    return (
        f"{tt['method']}: {tt['with_usage']}/{tt['requests']} with usage"
        + (
            f", {tt['client_tokenizer']} counted by the client tokenizer"
            if tt.get("client_tokenizer")
            else ""
        )
        + f", {tt['output_mismatch']} output and {tt['input_mismatch']} input length mismatches"
        + (
            f", {tt['malformed_usage']} with malformed usage (stored as unknown)"
            if tt.get("malformed_usage")
            else ""
        )
    )


def _latency_table(s: RunSummary) -> Table:
    table = Table(title="latency (ms) and lengths (tokens)", title_justify="left")
    table.add_column("metric", no_wrap=True)
    for col in ("n", "mean", "p50", "p90", "p95", "p99", "max"):
        table.add_column(col, justify="right")
    for key in DISTRIBUTION_METRICS:
        d: Distribution | None = s.distributions.get(key)
        if d is None or d.n == 0 or (key in INTENDED_METRICS and not s.open_loop):
            continue
        if key in ERROR_ADJUSTED and not s.errored:  # the same as the ok-only row then
            continue
        if key in ERROR_ADJUSTED and s.pooling:  # embeddings, rerank: no tokens to time
            continue
        label = METRICS[key].label
        digits = 0 if key.endswith("tokens") else 2
        table.add_row(
            label,
            str(d.n),
            *(_fmt(d.get(stat), digits) for stat in ("mean", "p50", "p90", "p95", "p99", "max")),
        )
    return table


_QUIET_STATUS = ("complete", "interrupted", "running")


def books_line(s: RunSummary) -> Text | None:
    """The runner's count of sent requests beside the rows the store holds (warm-up
    included): red when they differ, or when the runner's count was never written."""
    stored = s.sent + s.warmup
    counts = s.results.books or s.results.outcome
    sent = counts.sent if counts is not None else None
    if not isinstance(sent, int):
        if s.status == "abandoned":
            return Text(
                f"runner count never written (abandoned); the store holds {stored} requests",
                style="bold red",
            )
        return None
    if sent != stored:
        gap = f"{sent - stored} missing" if sent > stored else f"{stored - sent} more than sent"
        return Text(
            f"LOST RECORDS: the client sent {sent} requests, the store holds {stored} ({gap})",
            style="bold red",
        )
    return Text(f"the client sent {sent} requests, the store holds {stored}")


def window_line(s: RunSummary) -> str:
    """The window's length and definition; the drain tail when it is a noticeable part."""
    line = f"{s.window_s:.2f} s ({s.window_definition})"
    if s.drain_s and s.window_s and s.drain_s >= 0.05 * s.window_s:
        line += f", of which {s.drain_s:.2f} s drain after the last send"
    return line


def prompt_cache_line(pc: dict[str, Any]) -> str:
    """What the server served from its prompt cache beside what the workload itself reuses
    (a share far above that is an earlier run's cache), and whether the prompts were salted."""
    salted = pc.get("salted")
    salt = None if salted is None else ("salted" if salted else "unsalted (--no-salt)")
    share = pc.get("share")
    if share is None:
        return "; ".join(p for p in ("not reported by the server", salt) if p)
    prompt = pc.get("prompt_tokens")
    of = f"of {prompt:,.0f} prompt tokens" if prompt is not None else "of the prompt tokens"
    parts = [f"served {share:.1%} {of} ({pc.get('source') or '?'})"]
    expected = pc.get("expected_share")
    if expected is not None:  # prefix-cache truth (benchbench.cache.expected_cache)
        parts.append(f"expected {expected:.1%} ({pc.get('expected_requests', 0)} requests)")
    ideal = pc.get("ideal_prefix_hit")
    if ideal is not None:
        parts.append(f"the workload's own reuse {ideal:.1%} (ideal prefix hit)")
    if salt:
        parts.append(salt)
    return "; ".join(parts)


def energy_line(e: Energy) -> str:
    if e.unavailable:
        return e.unavailable
    status = (e.verdict or {}).get("status")
    if status in ("partial", "invalid"):
        prefix = f"{status.upper()} (see the energy verdict): "
    else:
        prefix = "PARTIAL (samples do not cover the window): " if e.partial else ""
    return prefix + (
        f"{_fmt(e.j_per_output_token, 3)} J/output token, "
        f"{_fmt(e.avg_power_w, 0)} W avg, {_fmt(e.gross_j, 0)} J gross ({e.source or '?'})"
    )


def verdict_line(verdict: dict[str, Any]) -> str:
    """'ok', or 'partial: reason; reason' (benchbench.energy.Verdict as stored)."""
    reasons = "; ".join(str(r) for r in verdict.get("reasons") or ())
    return f"{verdict.get('status', '?')}: {reasons}" if reasons else str(verdict.get("status"))


def energy_lines(e: Energy) -> list[tuple[str, str]]:
    """The energy figure, its verdict (like the token truth line), which GPUs were measured
    and why, its notes, and the idle baseline's verdict when that is not ok."""
    out = [("energy", energy_line(e))]
    if e.verdict is not None and not e.unavailable:
        out.append(("energy verdict", verdict_line(e.verdict)))
    for note in e.source_notes:
        # Unavailable energy already says why; the same reason twice is noise.
        if not (e.unavailable and note.split(": ", 1)[-1] in e.unavailable):
            out.append(("energy source", note))
    out += [("energy note", note) for note in e.notes]
    if e.idle_verdict is not None and e.idle_verdict.get("status") != "ok":
        out.append(("idle baseline", verdict_line(e.idle_verdict)))
    return out


def cost_line(c: Cost) -> str:
    if c.unavailable:
        return c.unavailable
    return (
        f"${_fmt(c.usd_per_1m_output_tokens, 3)} per 1M output tokens, "
        f"${_fmt(c.usd_per_1m_total_tokens, 3)} per 1M total ({c.price_source or '?'})"
    )


def server_lines(d: ServerView | None) -> list[tuple[str, str]]:
    """Two compact lines per scraped server: its token counts and throughput beside the
    client's, then its queue, KV cache and prefix-cache hits (beside the workload's ideal)."""
    if d is None:
        return []
    if d.unavailable:
        return [("server", d.unavailable)]
    ideal = d.ideal_prefix_hit
    out = []
    for v in d.servers:
        name = f"{v.get('server', '?')} {v.get('url', '')}"
        if v.get("generation_tokens") is None:
            tokens = "token counters not exposed"
        else:
            tokens = (
                f"{_fmt(v.get('generation_tok_s'), 0)} gen tok/s; tokens vs client: "
                f"prompt {_times(v, 'prompt_tokens')}, generation {_times(v, 'generation_tokens')}"
            )
        out.append(("server", f"{name}: {tokens}"))
        parts = [
            f"{label} {_fmt(v.get(key + '_mean'), 1)} mean / {_fmt(v.get(key + '_max'), 0)} max"
            for key, label in (("running", "running"), ("waiting", "waiting"))
        ]
        if v.get("kv_cache_usage_mean") is not None:
            parts.append(
                f"KV cache {_pct(v.get('kv_cache_usage_mean'))} mean / "
                f"{_pct(v.get('kv_cache_usage_max'))} max"
            )
        hit = v.get("prefix_hit")
        prefix = f"prefix hit {_pct(hit) if hit is not None else v.get('prefix_hit_source')}"
        if ideal is not None:
            prefix += f" (workload ideal {_pct(ideal)})"
        parts.append(prefix)
        out.append(("server load", ", ".join(parts)))
    return out


def _times(v: dict[str, Any], key: str) -> str:
    """'x0.998'; a ratio off 1 that the window's edges explain says so, one they don't too."""
    ratio = v.get(f"{key}_ratio")
    if ratio is None:
        return "-"
    consistent = v.get(f"{key}_consistent")
    if consistent is False:
        return f"x{ratio:.3f} (MISMATCH)"
    if consistent and abs(ratio - 1) > 0.02:
        return f"x{ratio:.3f} (window edges)"
    return f"x{ratio:.3f}"


def _pct(v: float | None) -> str:
    return "-" if v is None else f"{v:.1%}"


def print_summary(console: Console, s: RunSummary, header: dict[str, Any] | None = None) -> None:
    console.print(summary_renderable(s, header))
