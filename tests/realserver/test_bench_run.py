"""`bench run` against a real llama.cpp `llama-server`: every request succeeds, the counts are
the server's own, and the client's timings agree with the server's per-request `timings`.

llama-server reports, in the last chunk of each stream, `prompt_ms` (prefill, from when a slot
takes the request to its first sampled token) and `predicted_ms` (first to last sampled token);
the client stores them in requests.server_timings. So, per request:

    client TTFT = prompt_ms + overhead (+ time queued for a slot)
    client E2E  = prompt_ms + predicted_ms + overhead (+ time queued)

where overhead is loopback HTTP, request parsing, tokenization and templating before the
prefill timer starts, and the SSE write/read. It is never negative for TTFT; for E2E it may be
by at most one decode step, because a last token whose text is an incomplete UTF-8 sequence
carries no text and so is not a token-bearing event for the client.

Tolerance, from measurement on the 2-core development machine: the median overhead is 1-3 ms
with the tiny model and 10-15 ms with the small one (the server's two threads busy-wait on both
cores, so the client waits for a core). Bounds: median within [0, 10] ms (tiny) and [0, 50] ms
(small): several times the measured overhead, far below a request queued behind another.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from benchbench.config import make_config
from benchbench.execute import RunResult, run_benchmark
from tests.realserver.server import LlamaServer

pytestmark = pytest.mark.llamacpp

TINY_OVERHEAD_MS = 10.0
SMALL_OVERHEAD_MS = 50.0


@dataclass(frozen=True, slots=True)
class Stored:
    """One stored request with the server's own timings."""

    ttft_ms: float
    e2e_ms: float
    output_tokens: int
    output_expected: int
    input_tokens: int
    n_events: int
    timings: dict[str, float]

    @property
    def ttft_gap_ms(self) -> float:
        return self.ttft_ms - self.timings["prompt_ms"]

    @property
    def e2e_gap_ms(self) -> float:
        return self.e2e_ms - self.timings["prompt_ms"] - self.timings["predicted_ms"]


def bench(server: LlamaServer, db: Path, **kw: Any) -> RunResult:
    cfg = make_config(
        endpoint=server.base_url,
        model=server.model_name,
        db=str(db),
        nvml=False,  # no GPU work here; keeps a GPU host's NVML out of these runs
        idle_seconds=0,
        **kw,
    )
    return run_benchmark(cfg)


def stored_requests(db: Path, result: RunResult) -> list[Stored]:
    """Every measured request; fails listing the errors if any request failed."""
    with duckdb.connect(str(db), read_only=True) as con:
        errors = con.execute(
            """SELECT idx, error_kind, error_detail, http_status FROM requests
               WHERE run_id = ? AND error_kind IS NOT NULL""",
            [result.run_id],
        ).fetchall()
        assert not errors, f"request errors (idx, kind, detail, status): {errors}"
        rows = con.execute(
            """SELECT (first_token_ns - sent_ns) / 1e6, (last_token_ns - sent_ns) / 1e6,
                      output_tokens, output_tokens_expected, input_tokens, n_events,
                      server_timings
               FROM requests WHERE run_id = ? AND NOT warmup ORDER BY idx""",
            [result.run_id],
        ).fetchall()
    return [Stored(*row[:6], timings=json.loads(row[6])) for row in rows]


def median(values: list[float]) -> float:
    return statistics.median(values)


def check_counts(reqs: list[Stored], max_tokens: int) -> None:
    for r in reqs:
        # EOS is suppressed in the generated models: exactly max_tokens, as the server says.
        assert r.output_tokens == r.output_expected == max_tokens == r.timings["predicted_n"]
        # usage.prompt_tokens = tokens prefilled now + tokens reused from the prompt cache.
        assert r.input_tokens == r.timings["prompt_n"] + r.timings["cache_n"] > 0
        # One token per chunk; a token that completes no UTF-8 character carries no text.
        assert 0.5 * max_tokens <= r.n_events <= max_tokens


def check_agreement(reqs: list[Stored], overhead_ms: float) -> tuple[float, float]:
    """Client vs server timings per request; returns the median (TTFT, E2E) gaps in ms."""
    for r in reqs:
        assert r.ttft_gap_ms >= -0.01, r  # the server's figures are rounded to 1 us
        step_ms = r.timings["predicted_per_token_ms"]
        assert r.e2e_gap_ms >= -1.5 * step_ms, r
    ttft_gap = median([r.ttft_gap_ms for r in reqs])
    e2e_gap = median([r.e2e_gap_ms for r in reqs])
    assert 0 <= ttft_gap <= overhead_ms
    assert 0 <= e2e_gap <= overhead_ms
    return ttft_gap, e2e_gap


def report(label: str, reqs: list[Stored], result: RunResult, t_s: float) -> None:
    """One line for the record (shown with `pytest -rP` or `-s`)."""
    print(
        f"{label}: server TTFT (prompt_ms) p50 {median([r.timings['prompt_ms'] for r in reqs]):.1f}"
        f" ms, client {median([r.ttft_ms for r in reqs]):.1f} ms,"
        f" gap {median([r.ttft_gap_ms for r in reqs]):.2f} ms;"
        " server E2E p50"
        f" {median([r.timings['prompt_ms'] + r.timings['predicted_ms'] for r in reqs]):.1f} ms,"
        f" client {median([r.e2e_ms for r in reqs]):.1f} ms,"
        f" gap {median([r.e2e_gap_ms for r in reqs]):.2f} ms;"
        f" {result.summary.output_tok_s:.0f} output tok/s; run {t_s:.1f} s"
    )


@pytest.mark.parametrize("api", ["completions", "chat"])
def test_streams_match_the_servers_usage_and_timings(
    llama_tiny: LlamaServer, tmp_path: Path, api: str
) -> None:
    db = tmp_path / "agree.duckdb"
    t = time.monotonic()
    result = bench(
        llama_tiny,
        db,
        api=api,
        concurrency=1,  # no queueing: the gaps are pure overhead
        requests=16,
        input_len="160",
        output_len="64",
        seed=11 if api == "chat" else 12,
    )
    s = result.summary
    assert s.sent == s.ok == 16 and s.errored == 0 and s.errors_by_kind == {}
    reqs = stored_requests(db, result)
    check_counts(reqs, 64)
    assert s.output_tokens == 16 * 64
    assert s.token_truth["output_mismatch"] == 0
    check_agreement(reqs, TINY_OVERHEAD_MS)
    report(f"tiny {api}", reqs, result, time.monotonic() - t)


def test_concurrency_above_the_slot_count_queues_in_ttft(
    llama_tiny: LlamaServer, tmp_path: Path
) -> None:
    """4 slots: at concurrency 8, half the requests wait for a slot to free up. The wait is in
    the client's TTFT but not in the server's prompt_ms, and the server reports it as deferred."""
    assert llama_tiny.slots == 4
    common = dict(api="completions", input_len="64", output_len="256")
    p90: dict[int, float] = {}
    queued_ms: dict[int, float] = {}
    for conc, n in ((1, 6), (4, 12), (8, 24)):
        db = tmp_path / f"c{conc}.duckdb"
        scrape = (f"{llama_tiny.root_url}/metrics",) if conc == 8 else ()
        result = bench(
            llama_tiny, db, concurrency=conc, requests=n, seed=100 + conc, scrape=scrape,
            scrape_interval_s=0.05, **common,
        )  # fmt: skip
        assert result.summary.sent == result.summary.ok == n
        reqs = stored_requests(db, result)
        check_counts(reqs, 256)
        ttft = result.summary.distributions["ttft_ms"]
        assert ttft.p90 is not None
        p90[conc] = ttft.p90
        queued_ms[conc] = median([r.ttft_gap_ms for r in reqs])
        if conc == 8:
            decode_ms = median([r.timings["predicted_ms"] for r in reqs])
            with duckdb.connect(str(db), read_only=True) as con:
                processing, deferred = con.execute(
                    """SELECT max(value) FILTER (WHERE metric = 'llamacpp:requests_processing'),
                              max(value) FILTER (WHERE metric = 'llamacpp:requests_deferred')
                       FROM samples WHERE run_id = ? AND collector = 'prometheus'""",
                    [result.run_id],
                ).fetchone()
    print(f"TTFT p90 by concurrency (ms): {p90}; median queued (TTFT - prompt_ms): {queued_ms}")
    # A queued request waits for a running one to finish: a sizeable part of a decode.
    assert p90[8] > 3 * max(p90[1], p90[4])
    assert p90[8] > 0.5 * decode_ms
    assert queued_ms[1] <= TINY_OVERHEAD_MS and queued_ms[4] <= 4 * TINY_OVERHEAD_MS
    assert queued_ms[8] > 0.25 * decode_ms
    assert processing == 4  # never more than the slots ...
    assert deferred is not None and deferred >= 1  # ... and the rest wait


def metric_values(url: str) -> dict[str, float]:
    text = httpx.get(url, headers={"Connection": "close"}, timeout=10.0).text
    return {s.name: s.value for fam in text_string_to_metric_families(text) for s in fam.samples}


def test_scraping_the_server_stores_its_counters_as_samples(
    llama_tiny: LlamaServer, tmp_path: Path
) -> None:
    url = f"{llama_tiny.root_url}/metrics"
    db = tmp_path / "scrape.duckdb"
    before = metric_values(url)
    result = bench(
        llama_tiny, db, api="completions", concurrency=4, requests=24, input_len="100",
        output_len="128", seed=21, scrape=(url,), scrape_interval_s=0.05,
        # Only the run's own requests may move the counters: fitting exact prompt lengths
        # would also send /tokenize calls and a 1-token probe of the prompt template.
        exact_lengths="off",
    )  # fmt: skip
    after = metric_values(url)
    reqs = stored_requests(db, result)
    # The server's own counters moved by exactly what the run's requests report.
    predicted = "llamacpp:tokens_predicted_total"
    prompt = "llamacpp:prompt_tokens_total"
    assert after[predicted] - before[predicted] == sum(r.output_tokens for r in reqs)
    assert after[prompt] - before[prompt] == sum(r.timings["prompt_n"] for r in reqs)
    with duckdb.connect(str(db), read_only=True) as con:
        samples = con.execute(
            """SELECT device, metric, t_ns, value FROM samples
               WHERE run_id = ? AND collector = 'prometheus' ORDER BY t_ns""",
            [result.run_id],
        ).fetchall()
        (ended_ns,) = con.execute(
            "SELECT ended_ns FROM runs WHERE run_id = ?", [result.run_id]
        ).fetchone()
    names = {m for _, m, _, _ in samples}
    assert {prompt, predicted, "llamacpp:requests_processing"} <= names
    assert {d for d, _, _, _ in samples} == {url}
    for counter in (prompt, predicted):
        series = [(t, v) for _, m, t, v in samples if m == counter]
        assert len(series) >= 3
        values = [v for _, v in series]
        assert values == sorted(values)  # a counter: never decreasing during the run
        assert before[counter] <= values[0] and values[-1] <= after[counter]
        assert all(0 <= t <= ended_ns + 100_000_000 for t, _ in series)


def test_bench_cli_runs_against_the_server(llama_tiny: LlamaServer, tmp_path: Path) -> None:
    command = [
        sys.executable, "-m", "benchbench.cli", "run",
        "--endpoint", llama_tiny.base_url, "--api", "completions",
        "--concurrency", "2", "--requests", "8", "--input-len", "64", "--output-len", "32",
        "--no-nvml", "--seed", "31", "--db", str(tmp_path / "cli.duckdb"), "--json",
    ]  # fmt: skip
    done = subprocess.run(
        command, capture_output=True, text=True, timeout=120, env={**os.environ, "COLUMNS": "200"}
    )
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    assert summary["sent"] == summary["ok"] == 8
    assert summary["output_tokens"] == 8 * 32
    assert summary["errors_by_kind"] == {}


@pytest.mark.slow
def test_small_model_timings_agree_with_the_server(
    llama_small: LlamaServer, tmp_path: Path
) -> None:
    """~220 M parameters on 2 threads: prefill ~2 ms/token, decode ~20-40 ms/token."""
    for api in ("completions", "chat"):
        db = tmp_path / f"small-{api}.duckdb"
        t = time.monotonic()
        result = bench(
            llama_small, db, api=api, concurrency=1, requests=3, input_len="200",
            output_len="24", seed=41,
        )  # fmt: skip
        assert result.summary.sent == result.summary.ok == 3
        reqs = stored_requests(db, result)
        check_counts(reqs, 24)
        check_agreement(reqs, SMALL_OVERHEAD_MS)
        report(f"small {api}", reqs, result, time.monotonic() - t)
