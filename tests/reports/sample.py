"""Hand-built report data for renderer tests, with hostile strings where the store's text goes."""

from __future__ import annotations

from dataclasses import replace

from reports.model import (
    Cdf,
    Comparison,
    ComparisonRow,
    DevicePower,
    Headline,
    PromptCache,
    ReportData,
    RunReport,
    Scatter,
    ServerView,
    Timeline,
    Verdict,
)

PAYLOAD = "<script>window.__pwned=1</script>"


def cdf(label: str, scale: float) -> Cdf:
    values = tuple(scale * (1 + i / 10) for i in range(50))
    probs = tuple((i + 1) / 50 for i in range(50))
    markers = {"p50": values[24], "p90": values[44], "p95": values[47], "p99": values[49],
               "max": values[49]}  # fmt: skip
    return Cdf(label, "ms", values, probs, 50, True, markers, "ok requests")


def timeline(n: int = 40) -> Timeline:
    t = tuple(i * 0.5 for i in range(n))
    return Timeline(
        t,
        0.5,
        {
            "output tok/s": tuple(100.0 + i for i in range(n)),
            "sends/s": tuple(4.0 for _ in range(n)),
            "TTFT p50 ms": tuple(30.0 if i % 3 else None for i in range(n)),
            "TTFT p99 ms": tuple(60.0 if i % 3 else None for i in range(n)),
            "TPOT p50 ms": tuple(10.0 for _ in range(n)),
            "TPOT p99 ms": tuple(12.0 for _ in range(n)),
            "in flight": tuple(float(i % 7) for i in range(n)),
        },
    )


def headline(*, energy: bool = True, cost: bool = True) -> Headline:
    return Headline(
        endpoint=f"http://host/{PAYLOAD}",
        model=f"model-{PAYLOAD}",
        gpus="1 x H100",
        load="open loop 4 req/s",
        duration_s=20.0,
        sent=80,
        ok=78,
        errored=2,
        cancelled=0,
        output_tok_s=1234.5,
        ttft_p50_ms=31.0,
        ttft_p99_ms=59.0,
        tpot_p50_ms=10.0,
        tpot_p99_ms=12.0,
        usd_per_1m_output_tokens=0.55 if cost else None,
        j_per_output_token=0.31 if energy else None,
        avg_w=320.0 if energy else None,
    )  # fmt: skip


def run_report(run_id: int = 1, *, energy: bool = True, cost: bool = True) -> RunReport:
    t = timeline()
    power = (
        DevicePower(f"GPU 0 {PAYLOAD}", "nvml", "power_instant_w", t.t_s,
                    tuple(300.0 + i for i in range(len(t.t_s))), t.t_s,
                    tuple(100.0 * i for i in range(len(t.t_s))), len(t.t_s)),
    ) if energy else ()  # fmt: skip
    return RunReport(
        run_id=run_id,
        title=f"run {run_id} ({PAYLOAD})",
        status="complete",
        created="2026-01-01 00:00:00",
        headline=headline(energy=energy, cost=cost),
        distributions=(("TTFT", {"n": 78, "mean": 33.0, "p50": 31.0, "p90": 50.0, "p95": 55.0,
                                 "p99": 59.0, "max": 61.0, "unit": "ms"}),),  # fmt: skip
        cdfs=(cdf("TTFT", 30), cdf("TPOT", 10), cdf("chunk gap", 9), cdf("E2E", 900)),
        scatters=(
            Scatter(
                "input tokens", "TTFT (ms)", (100.0, 200.0, 300.0), (20.0, 30.0, 45.0), 3, False
            ),
            Scatter("output tokens", "E2E (ms)", (10.0, 20.0), (200.0, 400.0), 9000, True),
        ),  # fmt: skip
        timeline=t,
        errors=Timeline(t.t_s, 0.5, {PAYLOAD: tuple(1.0 if i == 3 else 0.0 for i in range(40))}),
        error_kinds=((PAYLOAD, 2, f"detail {PAYLOAD}"),),
        power=power,
        activity=Timeline(t.t_s, 0.5, {"in flight": t.series["in flight"]}),
        window_s=(2.0, 18.0),
        idle_window_s=(0.0, 1.5),
        idle_w_per_gpu=70.0 if energy else None,
        energy={"source": "nvml_counter", "gross_j": 6400.0} if energy else {},
        cost={"usd_per_1m_output_tokens": 0.55, "energy_usd_per_1m_output_tokens": 0.01}
        if cost
        else {},
        price_inputs={"gpu_price": 2.5, "gpu_count": 1} if cost else {},
        config={"model": PAYLOAD, "api_key": "sk-live-SECRET", "headers": {"X-Auth": "tok-SECRET"}},
        facts={"versions": {"benchbench": "0.1.0"}, "client": {"cpu_util": 0.1}},
        warnings=(f"warning {PAYLOAD}",),
        notes=("timelines: 40 buckets of 500 ms",),
        gpu_count=1,
        load_mode="open",
        requested_rate=4.0,
        servers=(server_view(t),),
        cache=PromptCache(0.9, f"requests {PAYLOAD}", 0.1, False, True,
                          (f"served 90.0% of prompt tokens {PAYLOAD}",)),
        energy_verdict=Verdict("partial", (f"reason {PAYLOAD}",)) if energy else None,
        marks=("warm cache", "not salted", f"mark {PAYLOAD}"),
    )  # fmt: skip


def server_view(t: Timeline) -> ServerView:
    return ServerView(
        url=f"http://gpu:8000/metrics{PAYLOAD}",
        kind="vllm",
        rows=(
            ("prompt tokens", 10_240, 10_000, 1.024),
            ("prefix-cache hit % (client column: workload ideal)", 41.5, 60.0, None),
            ("requests running, mean / max", f"7.5 / 8 {PAYLOAD}", None, None),
        ),
        t_s=t.t_s,
        series={
            "running": tuple(float(i % 8) for i in range(len(t.t_s))),
            "waiting": tuple(float(i % 3) for i in range(len(t.t_s))),
            "KV cache usage %": tuple(50.0 for _ in t.t_s),
        },
        notes=(f"note {PAYLOAD}",),
    )


def report(runs: int = 1, **kw: bool) -> ReportData:
    rs = tuple(run_report(i + 1, **kw) for i in range(runs))
    comparison = None
    if runs > 1:
        rows = tuple(
            ComparisonRow(r.run_id, f"open {r.run_id} req/s", float(r.run_id), 1, 78, 2,
                          1000.0 * r.run_id, 1000.0 * r.run_id, 30.0 * r.run_id,
                          60.0 * r.run_id**2, 10.0, 12.0 * r.run_id, 900.0, 1.0 / r.run_id,
                          0.3, r.run_id < 3)
            for r in rs
        )  # fmt: skip
        rs = tuple(replace(r, slo_met=r.run_id < 3) for r in rs)
        comparison = Comparison(
            load_label="requested rate (req/s)",
            rows=rows,
            slos={"ttft_p99_ms": 300.0},
            cheapest_meeting_slo=2,
            pick_note="run 2: cheapest per 1M output tokens meeting the SLO",
            ttft_cdfs=tuple((f"run {r.run_id}", r.cdfs[0]) for r in rs),
            tpot_cdfs=tuple((f"run {r.run_id}", r.cdfs[1]) for r in rs),
            throughput=tuple((f"run {r.run_id}", r.timeline) for r in rs if r.timeline),
        )
    return ReportData(
        f"report {PAYLOAD}", "2026-01-01 00:00 UTC", "benchbench test", rs, comparison
    )
