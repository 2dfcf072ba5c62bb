"""PrometheusCollector against real loopback pages: dcgm-exporter, vLLM, llama.cpp."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from collectors.prometheus import (
    AGGREGATE,
    DEFAULT_METRICS,
    NORMALIZE,
    PrometheusCollector,
    canonical_metric,
    parse_exposition,
)
from tests.collectors.fake_nvml import FakeClock, FakeGpu
from tests.collectors.pages import PageServer, dcgm_page

DCGM_PAGE = (Path(__file__).parent / "data" / "dcgm_exporter.txt").read_text()

VLLM_PAGE = """\
# HELP vllm:num_requests_running Number of requests in model execution batches.
# TYPE vllm:num_requests_running gauge
vllm:num_requests_running{engine="0",model_name="Llama-3.1-8B"} 12.0
# HELP vllm:num_requests_waiting Number of requests waiting to be processed.
# TYPE vllm:num_requests_waiting gauge
vllm:num_requests_waiting{engine="0",model_name="Llama-3.1-8B"} 3.0
# HELP vllm:kv_cache_usage_perc KV-cache usage. 1 means 100 percent usage.
# TYPE vllm:kv_cache_usage_perc gauge
vllm:kv_cache_usage_perc{engine="0",model_name="Llama-3.1-8B"} 0.42
# HELP vllm:prefix_cache_queries_total Prefix cache queries, in terms of number of queried tokens.
# TYPE vllm:prefix_cache_queries_total counter
vllm:prefix_cache_queries_total{engine="0",model_name="Llama-3.1-8B"} 20480.0
# HELP vllm:prefix_cache_hits_total Prefix cache hits, in terms of number of cached tokens.
# TYPE vllm:prefix_cache_hits_total counter
vllm:prefix_cache_hits_total{engine="0",model_name="Llama-3.1-8B"} 8192.0
# HELP vllm:prompt_tokens_total Number of prefill tokens processed.
# TYPE vllm:prompt_tokens_total counter
vllm:prompt_tokens_total{engine="0",model_name="Llama-3.1-8B"} 51200.0
# HELP vllm:generation_tokens_total Number of generation tokens processed.
# TYPE vllm:generation_tokens_total counter
vllm:generation_tokens_total{engine="0",model_name="Llama-3.1-8B"} 9600.0
# HELP vllm:time_to_first_token_seconds Histogram of time to first token in seconds.
# TYPE vllm:time_to_first_token_seconds histogram
vllm:time_to_first_token_seconds_bucket{engine="0",le="0.1",model_name="Llama-3.1-8B"} 40.0
vllm:time_to_first_token_seconds_bucket{engine="0",le="+Inf",model_name="Llama-3.1-8B"} 50.0
vllm:time_to_first_token_seconds_count{engine="0",model_name="Llama-3.1-8B"} 50.0
vllm:time_to_first_token_seconds_sum{engine="0",model_name="Llama-3.1-8B"} 4.2
"""

LLAMACPP_PAGE = """\
# HELP llamacpp:prompt_tokens_total Number of prompt tokens processed.
# TYPE llamacpp:prompt_tokens_total counter
llamacpp:prompt_tokens_total 3300
# HELP llamacpp:tokens_predicted_total Number of generation tokens processed.
# TYPE llamacpp:tokens_predicted_total counter
llamacpp:tokens_predicted_total 1280
# HELP llamacpp:kv_cache_usage_ratio KV-cache usage. 1 means 100 percent usage.
# TYPE llamacpp:kv_cache_usage_ratio gauge
llamacpp:kv_cache_usage_ratio 0.125
# HELP llamacpp:requests_processing Number of requests processing.
# TYPE llamacpp:requests_processing gauge
llamacpp:requests_processing 2
# HELP llamacpp:requests_deferred Number of requests deferred.
# TYPE llamacpp:requests_deferred gauge
llamacpp:requests_deferred 1
"""


def scrape(page: str, clock: FakeClock, **kw: object) -> tuple[PrometheusCollector, list]:
    with PageServer(page) as server:
        c = PrometheusCollector(server.url, **kw)
        c.attach(clock)
        assert c.poll_once(), c.degraded
        c.stop()
        return c, c.drain()


def test_dcgm_exporter_energy_and_power_per_gpu() -> None:
    c, samples = scrape(DCGM_PAGE, FakeClock(7_000))
    url = c.url
    got = {(s.device, s.metric): s.value for s in samples}
    assert got[(url + "#gpu=0", "DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION_total")] == 81234567890
    assert got[(url + "#gpu=1", "DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION_total")] == 79876543210
    assert got[(url + "#gpu=0", "DCGM_FI_DEV_POWER_USAGE")] == 512.3
    assert got[(url + "#gpu=1", "DCGM_FI_DEV_GPU_UTIL")] == 0
    assert not any("XID" in m or "MEM_CLOCK" in m for _, m in got)  # not kept by default
    assert {s.t_ns for s in samples} == {7_000} and {s.collector for s in samples} == {"prometheus"}
    info = c.info()
    assert info["servers"] == ["dcgm-exporter"]
    assert info["dcgm_gpus"]["1"]["uuid"] == "GPU-c84e20d9-51a6-4f3e-b2d7-7f19e3a0b462"
    assert info["dcgm_gpus"]["0"]["name"] == "NVIDIA H100 80GB HBM3"


def test_vllm_page_keeps_server_metrics_and_drops_histograms() -> None:
    c, samples = scrape(VLLM_PAGE, FakeClock())
    device = c.url + "#engine=0"
    got = {s.metric: s.value for s in samples if s.device == device}
    assert got == {
        "vllm:num_requests_running": 12.0,
        "vllm:num_requests_waiting": 3.0,
        "vllm:kv_cache_usage_perc": 0.42,
        "vllm:prefix_cache_queries_total": 20480.0,
        "vllm:prefix_cache_hits_total": 8192.0,
        "vllm:prompt_tokens_total": 51200.0,
        "vllm:generation_tokens_total": 9600.0,
    }
    assert c.info()["servers"] == ["vllm"]


def test_llamacpp_page_device_is_the_url() -> None:
    c, samples = scrape(LLAMACPP_PAGE, FakeClock())
    assert {s.device for s in samples} == {c.url}
    canon = {canonical_metric(s.metric): s.value for s in samples}
    assert canon == {
        "prompt_tokens": 3300,
        "generation_tokens": 1280,
        "kv_cache_usage": 0.125,
        "running": 2,
        "waiting": 1,
    }


def test_keep_all_keeps_every_family_with_labels_in_the_metric_name() -> None:
    samples = parse_exposition(VLLM_PAGE, "http://x/metrics", 0, keep=None)
    names = {s.metric for s in samples}
    assert 'vllm:time_to_first_token_seconds_bucket{le="+Inf"}' in names
    assert "vllm:time_to_first_token_seconds_sum" in names
    assert len(samples) == 11


def test_normalize_covers_every_server_for_the_questions_the_code_asks() -> None:
    for question in ("running", "waiting", "prompt_tokens", "generation_tokens"):
        servers = {name.split(":")[0].split("_")[0] for name in NORMALIZE[question]}
        assert {"vllm", "sglang", "tgi", "llamacpp", "sim"} <= servers, question
    assert canonical_metric("DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION_total") == "energy_mj"
    assert canonical_metric("DCGM_FI_DEV_POWER_USAGE") == "power_w"
    assert canonical_metric("sglang:cache_hit_rate") == "prefix_hit"
    assert set(AGGREGATE) == set(NORMALIZE)


def test_counter_advancing_between_scrapes() -> None:
    clock = FakeClock()
    with PageServer(LLAMACPP_PAGE) as server:
        c = PrometheusCollector(server.url)
        c.attach(clock)
        c.poll_once()
        server.body = LLAMACPP_PAGE.replace("1280", "1536")
        clock.advance_s(1.0)
        c.poll_once()
        c.stop()
    gen = [(s.t_ns, s.value) for s in c.drain() if s.metric == "llamacpp:tokens_predicted_total"]
    assert gen == [(0, 1280.0), (1_000_000_000, 1536.0)]


def test_scrape_timeout_and_http_error_degrade_without_raising() -> None:
    with PageServer(LLAMACPP_PAGE) as server:
        c = PrometheusCollector(server.url, timeout_s=0.2, max_failures=2)
        c.attach(FakeClock())
        assert c.poll_once()
        server.hold = True
        assert not c.poll_once()
        assert "Timeout" in (c.degraded or "")
        server.hold = False
        server.status = 500
        assert not c.poll_once()
        assert c.degraded == "stopped after 2 consecutive failures: RuntimeError: " + (
            f"{server.url} answered HTTP 500"
        )
        c.stop()
    assert len(c.drain()) == 5  # the first scrape's samples are kept


def test_refused_connection_degrades() -> None:
    with PageServer() as server:
        url = server.url
    c = PrometheusCollector(url, timeout_s=0.5)
    c.attach(FakeClock())
    assert not c.poll_once()
    assert "ConnectError" in (c.degraded or "")
    c.stop()


def test_bad_url_is_a_one_line_error() -> None:
    with pytest.raises(ValueError, match="must start with http"):
        PrometheusCollector("localhost:8000/metrics")


class TrickleServer:
    """A loopback server that answers every connection one byte per `gap_s` (status line and
    headers included) for up to `max_s`: never silent long enough for a read timeout."""

    def __init__(self, gap_s: float = 0.1, max_s: float = 20.0) -> None:
        self.gap_s, self.max_s = gap_s, max_s
        self.closing = threading.Event()
        self._sock = socket.create_server(("127.0.0.1", 0))
        self._thread = threading.Thread(target=self._serve, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._sock.getsockname()[1]}/metrics"

    def _serve(self) -> None:
        self._sock.settimeout(0.05)
        while not self.closing.is_set():
            try:
                conn, _ = self._sock.accept()
            except OSError:
                continue
            threading.Thread(target=self._trickle, args=(conn,), daemon=True).start()

    def _trickle(self, conn: socket.socket) -> None:
        page = b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n" + b"#" * 100_000
        end = time.monotonic() + self.max_s
        with conn:
            for i in range(len(page)):
                if self.closing.is_set() or time.monotonic() > end:
                    return
                try:
                    conn.sendall(page[i : i + 1])
                except OSError:
                    return  # the client gave up: the point of the test
                self.closing.wait(self.gap_s)

    def __enter__(self) -> TrickleServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.closing.set()
        self._thread.join(2)
        self._sock.close()


def test_a_trickling_page_costs_one_bounded_failed_scrape() -> None:
    with TrickleServer() as server:
        c = PrometheusCollector(server.url, timeout_s=0.5, total_timeout_s=1.0)
        c.attach(FakeClock())
        t0 = time.monotonic()
        assert not c.poll_once()
        assert time.monotonic() - t0 < 5.0  # bounded by the total, not by the trickle
        assert "no complete answer within 1 s" in (c.degraded or "")
        c.stop()


def test_a_scrape_from_a_thread_running_an_event_loop_is_bounded_too() -> None:
    """The run takes its first and last readings inside its event loop."""
    with TrickleServer() as server:
        c = PrometheusCollector(server.url, timeout_s=0.5, total_timeout_s=1.0)
        c.attach(FakeClock())

        async def inside_a_loop() -> bool:
            return c.poll_once()

        t0 = time.monotonic()
        assert asyncio.run(inside_a_loop()) is False
        assert time.monotonic() - t0 < 5.0
        c.stop()


def test_samples_and_info_carry_the_label_not_the_url() -> None:
    with PageServer(LLAMACPP_PAGE) as server:
        url = server.url + "?token=SECRETtok42"
        label = server.url + "?token=REDACTED"
        c = PrometheusCollector(url, label=label)
        c.attach(FakeClock())
        assert c.poll_once()
        samples = c.drain()
        c.stop()
    assert samples and {s.device for s in samples} == {label}
    assert c.info()["url"] == label


def test_only_the_lines_of_wanted_metrics_reach_the_parser() -> None:
    # A broken line in a family nobody asked for must not cost the energy samples: the page
    # is filtered by metric name before it is parsed (which also keeps a 200 kB page cheap).
    broken = VLLM_PAGE + "vllm:some_histogram_bucket{le=0.1 garbage\n" + DCGM_PAGE
    samples = parse_exposition(broken, "http://h/metrics", 0)
    names = {s.metric for s in samples}
    assert "vllm:num_requests_running" in names
    assert "DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION_total" in names
    # Same samples as parsing the whole page and filtering afterwards.
    whole = [
        (s.name, s.value)
        for page in (VLLM_PAGE, DCGM_PAGE)
        for f in text_string_to_metric_families(page)
        for s in f.samples
        if s.name in DEFAULT_METRICS
    ]
    assert sorted((s.metric, s.value) for s in samples) == sorted(whole)


def test_dcgm_mig_instance_rows_are_told_apart() -> None:
    page = dcgm_page([FakeGpu(), FakeGpu()], t_s=3.0, collect_interval_s=1.0, mig_rows=2)
    samples = parse_exposition(page, "http://h:9401/metrics", 0)
    devices = {s.device for s in samples if s.metric.startswith("DCGM_FI_DEV_TOTAL_ENERGY")}
    assert devices == {
        f"http://h:9401/metrics#gpu={g}#GPU_I_ID={i}" for g in (0, 1) for i in (1, 2)
    }
