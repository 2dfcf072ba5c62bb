"""`bench show --as TOOL`: one synthetic stream, stored through the writer, read through each
peer's view and checked against that tool's published definition, computed by hand.

The stream (ms after the send): a role-only chunk at 10, reasoning at 30 and 40, answer at 50,
60 and 80, the stream closed at 90; the server counts 9 output tokens, 3 of them reasoning
(chunks carry several tokens, so events are not tokens)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from benchbench.metrics import summarize
from benchbench.peers import PEERS, PeerReport, compute_view
from benchbench.store import open_store
from loadgen.spec import RequestRecord
from tests.benchbench.runs import write_run

MS = 1_000_000
SENT = 1_000 * MS
EVENTS_MS = [30, 40, 50, 60, 80]


def _stream() -> RequestRecord:
    times = [SENT + t * MS for t in EVENTS_MS]
    return RequestRecord(
        0, None, SENT, first_token_ns=times[0], last_token_ns=times[-1],
        closed_ns=SENT + 90 * MS, event_ns=times, event_tokens=[None] * 5,
        event_kinds=["reasoning", "reasoning", "answer", "answer", "answer"],
        first_event_ns=SENT + 10 * MS, input_tokens=100, output_tokens=9,
        output_tokens_source="usage", reasoning_tokens=3, http_status=200,
    )  # fmt: skip


@pytest.fixture(scope="module")
def db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("peers") / "p.duckdb"
    store = open_store(path)
    write_run(store, [_stream()])
    store.close()
    return path


def _view(db: Path, tool: str) -> tuple[dict[str, float | None], PeerReport]:
    store = open_store(db, read_only=True)
    try:
        report = compute_view(store.con, 1, PEERS[tool])
    finally:
        store.close()
    return {row.name: row.mean for row in report.rows}, report


def test_vllm_ttft_starts_at_the_role_chunk_and_tpot_runs_to_the_stream_end(db: Path) -> None:
    got, _ = _view(db, "vllm")
    assert got["TTFT"] == pytest.approx(10)  # the role-only chunk
    assert got["TPOT"] == pytest.approx((90 - 10) / (9 - 1))  # (latency - TTFT) / (n - 1)
    # ITL: role -> first token, then between tokens: 20, 10, 10, 10, 20.
    assert got["ITL"] == pytest.approx((20 + 10 + 10 + 10 + 20) / 5)
    assert got["E2EL"] == pytest.approx(90)


def test_aiperf_itl_is_our_tpot_and_ttfo_is_our_ttfa(db: Path) -> None:
    got, _ = _view(db, "aiperf")
    assert got["Time to First Token"] == pytest.approx(30)  # reasoning counts
    assert got["Time to Second Token"] == pytest.approx(10)
    assert got["Time to First Output Token"] == pytest.approx(50)
    assert got["Inter Token Latency"] == pytest.approx((80 - 30) / (9 - 1))
    assert got["Inter Chunk Latency"] == pytest.approx((10 + 10 + 10 + 20) / 4)
    assert got["Output Token Throughput Per User"] == pytest.approx(8 / 0.050)
    assert got["Request Latency"] == pytest.approx(80)
    assert (got["Output Sequence Length"], got["Reasoning Token Count"]) == (9, 3)


def test_guidellm_tpot_is_our_ntpot_and_its_itl_our_tpot(db: Path) -> None:
    got, _ = _view(db, "guidellm")
    assert got["TTFT"] == pytest.approx(30)
    assert got["ITL"] == pytest.approx((80 - 30) / (9 - 1))
    assert got["TPOT"] == pytest.approx(80 / 9)  # (last token - start) / output tokens
    assert got["Request Latency"] == pytest.approx(90)


def test_inference_perf_ntpot_ends_at_the_request_end(db: Path) -> None:
    got, _ = _view(db, "inference-perf")
    assert got["time_to_first_token"] == pytest.approx(30)
    assert got["time_per_output_token"] == pytest.approx((80 - 30) / (9 - 1))
    assert got["inter_token_latency"] == pytest.approx((10 + 10 + 10 + 20) / 4)
    assert got["normalized_time_per_output_token"] == pytest.approx(90 / 9)
    assert got["request_latency"] == pytest.approx(90)


def test_mlperf_ttft_is_the_first_fragment_of_any_kind(db: Path) -> None:
    got, _ = _view(db, "mlperf")
    assert got["TTFT"] == pytest.approx(30)
    assert got["TPOT"] == pytest.approx(50 / 8)
    assert got["TPS per user"] == pytest.approx(1000 / (50 / 8))
    assert got["Latency"] == pytest.approx(80)


def test_rates_divide_by_our_window_and_every_row_names_ours(db: Path) -> None:
    store = open_store(db, read_only=True)
    try:
        ours = summarize(store.con, 1)
    finally:
        store.close()
    for tool in PEERS:
        got, report = _view(db, tool)
        assert all(row.ours and row.note for row in report.rows), tool
        for row in report.rows:
            if row.unit == "tok/s" and row.ours == "output_tok_s":
                assert row.mean == pytest.approx(ours.output_tok_s)


BENCH = [sys.executable, "-c", "from benchbench.cli import main; main()"]


def _bench(db: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """The real `bench` entry point, so the one place that turns errors into lines runs."""
    env = {**os.environ, "COLUMNS": "200"}
    cmd = [*BENCH, "show", "1", "--db", str(db), *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=60, env=env)


def test_bench_show_as_prints_their_names_and_json(db: Path) -> None:
    out = _bench(db, "--as", "guidellm")
    assert out.returncode == 0, out.stderr
    assert "ITL (ms)" in out.stdout and "ntpot_ms" in out.stdout
    out = _bench(db, "--as", "vllm", "--json")
    rows = {r["name"]: r for r in json.loads(out.stdout)["rows"]}
    assert rows["TTFT"]["mean"] == pytest.approx(10)


def test_an_unknown_tool_is_one_line_naming_the_known_ones(db: Path) -> None:
    out = _bench(db, "--as", "llmperf")
    assert out.returncode == 2
    assert out.stderr.strip().splitlines() == [
        "error: --as 'llmperf' is not a known tool; use one of vllm, aiperf, guidellm, "
        "inference-perf, mlperf"
    ]


def test_the_report_shows_the_run_in_every_peers_names(db: Path) -> None:
    from benchbench.report_data.run import gather_run

    store = open_store(db, read_only=True)
    try:
        facts = gather_run(store.con, 1).facts
    finally:
        store.close()
    tables = {name: rows for name, rows in facts.items() if name.startswith("as ")}
    assert len(tables) == len(PEERS)
    vllm = tables[f"as {PEERS['vllm'].title}"]
    # The role-only chunk at 10 ms is vLLM's first token; ours waits for text.
    assert vllm["TTFT (ms)"].startswith("p50 10.00") and "(ours: ttft_ms)" in vllm["TTFT (ms)"]
