"""Every streaming --api against the built-in simulator speaking that API, over loopback
HTTP through the real client and runner: each request is ok, its output tokens are the
server's own count, its token events are the words the simulator sent, and the server's
timings are kept beside the client's."""

from __future__ import annotations

import asyncio
import time

import httpx
import orjson
import pytest

from benchbench.sim import SimConfig, start_sim
from benchbench.target import server_root
from loadgen.apis import AdapterOptions, lookup, make_endpoint
from loadgen.client import HttpSettings, make_client
from loadgen.load import LoadPlan
from loadgen.runner import Runner
from loadgen.spec import RequestRecord, RequestSpec

STREAMING = ["responses", "messages", "llamacpp", "tgi", "ollama-chat", "ollama-generate"]
SIM = SimConfig(prefill_base_ms=1.0, prefill_ms_per_token=0.0, decode_base_ms=1.0)


def _specs(api: str, n: int, max_tokens: int, ignore_eos: bool = True) -> list[RequestSpec]:
    extra = {"ignore_eos": True, "min_tokens": max_tokens} if ignore_eos else None
    out = []
    for i in range(n):
        words = " ".join(["word"] * (5 + i))
        if lookup(api).shape == "chat":
            messages = (
                {"role": "system", "content": "be brief"},
                {"role": "user", "content": words},
            )
            out.append(RequestSpec(i, messages=messages, max_tokens=max_tokens, extra_body=extra))
        else:
            out.append(RequestSpec(i, prompt=words, max_tokens=max_tokens, extra_body=extra))
    return out


def run_api(
    api: str,
    specs: list[RequestSpec],
    config: SimConfig = SIM,
    transport: str = "raw",
    headers: dict[str, str] | None = None,
) -> list[RequestRecord]:
    """Send `specs` with `--api api` to a fresh simulator; the records, by index."""

    async def go() -> list[RequestRecord]:
        sim = await start_sim(config)
        info = lookup(api)
        base = server_root(sim.base_url) if info.at_root else sim.base_url
        settings = HttpSettings(
            base_url=base,
            headers={**info.headers, **(headers or {})},
            transport=transport,  # type: ignore[arg-type]
            read_timeout_s=10.0,
        )
        client = make_client(settings, time.monotonic_ns)
        records: list[RequestRecord] = []
        endpoint = make_endpoint(api, AdapterOptions(model=config.model))
        runner = Runner(client, endpoint, time.monotonic_ns, records.append)
        try:
            plan = LoadPlan(concurrency=4, max_requests=len(specs))
            await asyncio.wait_for(runner.run(iter(specs), plan), timeout=30)
        finally:
            await client.aclose()
            await sim.stop()
        return sorted(records, key=lambda r: r.index)

    return asyncio.run(go())


@pytest.mark.parametrize("api", STREAMING)
def test_each_api_streams_every_token_with_the_servers_counts(api: str) -> None:
    specs = _specs(api, 6, max_tokens=9)
    records = run_api(api, specs)
    assert len(records) == 6
    for spec, r in zip(specs, records, strict=True):
        assert r.error_kind is None, (r.error_kind, r.error_detail)
        assert (r.output_tokens, r.output_tokens_source) == (9, "usage")
        # The simulator's prompt is the words of the request (plus the system message).
        assert r.input_tokens == (5 + spec.index) + (2 if lookup(api).shape == "chat" else 0)
        # One streamed event per token (tokens_per_chunk=1), each one word of output.
        assert len(r.event_ns) == 9 and r.event_tokens == [None] * 9
        assert r.output_text_chars > 9
        assert r.first_event_ns is not None and r.first_event_ns <= r.first_token_ns
        assert r.event_ns == sorted(r.event_ns)
        assert r.event_kinds is None  # every event is answer text


def test_native_apis_keep_the_servers_own_timings() -> None:
    (llama,) = run_api("llamacpp", _specs("llamacpp", 1, 5))
    assert llama.server_timings is not None
    assert llama.server_timings["predicted_n"] == 5 and llama.server_timings["prompt_ms"] >= 0
    assert llama.cached_input_tokens == 0
    (ollama,) = run_api("ollama-chat", _specs("ollama-chat", 1, 5))
    assert ollama.server_timings is not None
    assert set(ollama.server_timings) >= {"eval_duration", "prompt_eval_duration"}
    (tgi,) = run_api("tgi", _specs("tgi", 1, 5))
    assert tgi.server_timings is not None and tgi.server_timings["generated_tokens"] == 5


@pytest.mark.parametrize("api", ["messages", "ollama-generate"])
@pytest.mark.parametrize("transport", ["httpx", "aiohttp"])
def test_every_transport_reads_sse_and_ndjson_alike(api: str, transport: str) -> None:
    records = run_api(api, _specs(api, 3, 4), transport=transport)
    assert [(r.error_kind, r.output_tokens, len(r.event_ns)) for r in records] == [(None, 4, 4)] * 3


@pytest.mark.parametrize("api", ["responses", "messages", "tgi", "ollama-chat"])
def test_an_early_end_of_sequence_is_a_complete_answer(api: str) -> None:
    config = SimConfig(decode_base_ms=0.5, eos_prob=0.3, seed=3)
    records = run_api(api, _specs(api, 8, 30, ignore_eos=False), config)
    assert all(r.error_kind is None for r in records), [r.error_detail for r in records]
    assert any(r.output_tokens is not None and r.output_tokens < 30 for r in records)
    # A special end-of-sequence token (TGI) is counted by the server, not streamed as text.
    assert all(len(r.event_ns) <= (r.output_tokens or 0) for r in records)


@pytest.mark.parametrize("api", STREAMING)
def test_a_failing_server_is_recorded_as_an_error_kind(api: str) -> None:
    config = SimConfig(decode_base_ms=0.5, error_rate=1.0, error_status=503)
    records = run_api(api, _specs(api, 2, 3), config)
    assert [(r.error_kind, r.http_status) for r in records] == [("http_5xx", 503)] * 2


def test_the_api_key_goes_where_each_api_reads_it() -> None:
    config = SimConfig(decode_base_ms=0.5, api_key="sekret")
    ok = run_api("messages", _specs("messages", 1, 2), config, headers={"x-api-key": "sekret"})
    assert ok[0].error_kind is None
    bad = run_api("messages", _specs("messages", 1, 2), config, headers={"x-api-key": "nope"})
    assert (bad[0].error_kind, bad[0].http_status) == ("auth", 401)


def test_the_simulator_names_its_model_the_native_way() -> None:
    async def go() -> tuple[dict, dict]:
        sim = await start_sim(SIM)
        try:
            async with httpx.AsyncClient(timeout=5.0) as client:
                tags = (await client.get(sim.root_url + "/api/tags")).json()
                info = (await client.get(sim.root_url + "/info")).json()
                return tags, info
        finally:
            await sim.stop()

    tags, info = asyncio.run(go())
    assert tags["models"][0]["name"] == SIM.model and info["model_id"] == SIM.model


def test_a_bad_request_gets_the_apis_own_error_shape() -> None:
    async def go() -> list[tuple[int, object]]:
        sim = await start_sim(SIM)
        out = []
        try:
            async with httpx.AsyncClient(timeout=5.0) as client:
                for url, body in (
                    ("/v1/messages", {"model": SIM.model, "messages": []}),
                    ("/api/chat", {"model": "other", "messages": []}),
                    ("/generate_stream", {"inputs": 5}),
                ):
                    resp = await client.post(sim.root_url + url, content=orjson.dumps(body))
                    out.append((resp.status_code, resp.json()))
        finally:
            await sim.stop()
        return out

    (m_status, m), (o_status, o), (t_status, t) = asyncio.run(go())
    assert m_status == 400 and m["type"] == "error" and "max_tokens" in m["error"]["message"]
    assert o_status == 404 and "not found" in o["error"]
    assert t_status == 400 and "prompt" in t["error"]
