"""The Responses, Messages and native /completion adapters against a real llama-server: every
request succeeds, the output tokens are the server's own counters, and where the server
reports its timings (llama.cpp's `timings` on /completion and /v1/responses), the client's
TTFT is the server's prefill time plus a small overhead (the bound of test_bench_run.py).

The requests go through the real client and runner (the seam `bench run` uses); the server
is the cached build of tests/realserver/build.py."""

from __future__ import annotations

import asyncio
import statistics
import time

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from benchbench.target import server_root
from loadgen.apis import AdapterOptions, lookup, make_endpoint
from loadgen.client import HttpSettings, make_client
from loadgen.load import LoadPlan
from loadgen.runner import Runner
from loadgen.spec import RequestRecord, RequestSpec
from tests.realserver.server import LlamaServer

pytestmark = pytest.mark.llamacpp

APIS = ["responses", "messages", "llamacpp"]
OUTPUT = 16
TINY_OVERHEAD_MS = 10.0  # as in test_bench_run.py: measured 1-3 ms on 2 cores


def _specs(api: str, n: int) -> list[RequestSpec]:
    extra = {"ignore_eos": True, "min_tokens": OUTPUT}
    out = []
    for i in range(n):
        text = f"request {i}: " + "tell me about rivers and stones " * 4
        if lookup(api).shape == "chat":
            messages = (
                {"role": "system", "content": "be brief"},
                {"role": "user", "content": text},
            )
            out.append(RequestSpec(i, messages=messages, max_tokens=OUTPUT, extra_body=extra))
        else:
            out.append(RequestSpec(i, prompt=text, max_tokens=OUTPUT, extra_body=extra))
    return out


def _run(server: LlamaServer, api: str, n: int) -> list[RequestRecord]:
    async def go() -> list[RequestRecord]:
        info = lookup(api)
        base = server_root(server.base_url) if info.at_root else server.base_url
        client = make_client(
            HttpSettings(base_url=base, headers=dict(info.headers)), time.monotonic_ns
        )
        records: list[RequestRecord] = []
        endpoint = make_endpoint(api, AdapterOptions(model=server.model_name))
        runner = Runner(client, endpoint, time.monotonic_ns, records.append)
        try:
            plan = LoadPlan(concurrency=2, max_requests=n)
            await asyncio.wait_for(runner.run(iter(_specs(api, n)), plan), timeout=120)
        finally:
            await client.aclose()
        return records

    return asyncio.run(go())


def _counters(server: LlamaServer) -> dict[str, float]:
    text = httpx.get(
        server.root_url + "/metrics", headers={"Connection": "close"}, timeout=10.0
    ).text
    return {s.name: s.value for fam in text_string_to_metric_families(text) for s in fam.samples}


@pytest.mark.parametrize("api", APIS)
def test_each_api_matches_the_servers_own_token_counters(llama_tiny: LlamaServer, api: str) -> None:
    before = _counters(llama_tiny)
    records = _run(llama_tiny, api, 8)
    after = _counters(llama_tiny)
    assert len(records) == 8
    assert [(r.error_kind, r.error_detail) for r in records] == [(None, None)] * 8
    assert all(r.output_tokens_source == "usage" for r in records)
    predicted = "llamacpp:tokens_predicted_total"
    assert after[predicted] - before[predicted] == sum(r.output_tokens or 0 for r in records)
    assert all(r.output_tokens == OUTPUT for r in records)  # ignore_eos reached the server
    assert all(r.input_tokens and r.input_tokens > 10 for r in records)
    # A random model's token may be half a UTF-8 character (no text): never more events.
    assert all(0 < len(r.event_ns) <= OUTPUT for r in records)


@pytest.mark.parametrize("api", ["llamacpp", "responses"])
def test_ttft_is_the_servers_prefill_plus_a_small_overhead(
    llama_tiny: LlamaServer, api: str
) -> None:
    records = _run(llama_tiny, api, 8)
    overheads = []
    for r in records:
        assert r.server_timings is not None, "llama.cpp reports its timings on this route"
        assert r.server_timings["predicted_n"] == r.output_tokens
        assert r.first_token_ns is not None
        ttft_ms = (r.first_token_ns - r.sent_ns) / 1e6
        overheads.append(ttft_ms - r.server_timings["prompt_ms"])
    assert min(overheads) >= 0, overheads
    assert statistics.median(overheads) <= TINY_OVERHEAD_MS, overheads


def test_messages_reports_the_prompt_the_way_anthropic_counts_it(llama_tiny: LlamaServer) -> None:
    (first,) = _run(llama_tiny, "messages", 1)
    (again,) = _run(llama_tiny, "messages", 1)  # the same prompt: served from the slot cache
    assert first.error_kind is None and again.error_kind is None
    # Whatever part was cached, the prompt's size is the same: input + cache reads.
    assert again.input_tokens == first.input_tokens
    assert again.cached_input_tokens is not None
