"""The simulated OpenAI endpoint over real loopback HTTP: formats, counts, errors."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from benchbench.sim import SimConfig, SimServer
from tests.benchbench.sim.helpers import FAST, stream_events, text_of, with_sim

CHAT = [{"role": "system", "content": "be brief"}, {"role": "user", "content": "one two three"}]


def test_streamed_completion_has_one_token_per_event_then_finish_usage_done() -> None:
    async def body(sim: SimServer, client: httpx.AsyncClient):
        payload = {
            "prompt": "a b c d",
            "max_tokens": 7,
            "stream": True,
            "stream_options": {"include_usage": True},
        }
        return await stream_events(client, f"{sim.base_url}/completions", payload)

    events = [e for _, e in with_sim(FAST, body)]
    assert events[-1] == "[DONE]"
    tokens, finish, usage = events[:7], events[7], events[8]
    assert all(e["object"] == "text_completion" for e in events[:-1])
    assert all(text_of(e).startswith(" ") and len(text_of(e).split()) == 1 for e in tokens)
    assert [e["choices"][0]["finish_reason"] for e in tokens] == [None] * 7
    assert finish["choices"][0] == {
        "index": 0,
        "text": "",
        "logprobs": None,
        "finish_reason": "length",
    }
    assert usage["choices"] == []
    assert usage["usage"] == {
        "prompt_tokens": 4,
        "completion_tokens": 7,
        "total_tokens": 11,
        "prompt_tokens_details": {"cached_tokens": 0},  # prefix cache: nothing to reuse
    }
    assert len(events) == 10


def test_streamed_chat_opens_with_a_role_only_chunk() -> None:
    async def body(sim: SimServer, client: httpx.AsyncClient):
        payload = {"messages": CHAT, "max_completion_tokens": 5, "stream": True}
        return await stream_events(client, f"{sim.base_url}/chat/completions", payload)

    events = [e for _, e in with_sim(FAST, body)]
    assert events[0]["choices"][0]["delta"] == {"role": "assistant"}
    assert all(e["object"] == "chat.completion.chunk" for e in events[:-1])
    content = "".join(text_of(e) for e in events[1:6])
    assert len(content.split()) == 5
    assert events[6]["choices"][0]["delta"] == {}
    assert events[6]["choices"][0]["finish_reason"] == "length"
    assert events[7] == "[DONE]"  # no usage chunk unless asked


def test_every_streamed_event_carries_a_monotonic_send_stamp_before_receipt() -> None:
    async def body(sim: SimServer, client: httpx.AsyncClient):
        payload = {
            "messages": CHAT,
            "max_tokens": 50,
            "stream": True,
            "stream_options": {"include_usage": True},
        }
        return await stream_events(client, f"{sim.base_url}/chat/completions", payload)

    events = [(t, e) for t, e in with_sim(SimConfig(decode_base_ms=1.0), body) if e != "[DONE]"]
    stamps = [e["bb_send_ns"] for _, e in events]
    assert stamps == sorted(stamps)
    assert all(isinstance(s, int) for s in stamps)
    # Same clock as ours: each event was sent before we received it.
    assert all(send <= received for send, (received, _) in zip(stamps, events, strict=True))


@pytest.mark.parametrize("chat", [False, True])
def test_non_streamed_response_is_one_json_with_usage(chat: bool) -> None:
    async def body(sim: SimServer, client: httpx.AsyncClient):
        if chat:
            payload = {"messages": CHAT, "max_tokens": 12}
            return await client.post(f"{sim.base_url}/chat/completions", json=payload)
        return await client.post(
            f"{sim.base_url}/completions", json={"prompt": "x y", "max_tokens": 12}
        )

    response = with_sim(FAST, body)
    assert response.status_code == 200
    data = response.json()
    choice = data["choices"][0]
    text = choice["message"]["content"] if chat else choice["text"]
    assert choice["message"]["role"] == "assistant" if chat else "text" in choice
    assert len(text.split()) == 12
    assert data["usage"] == {
        "prompt_tokens": 5 if chat else 2,
        "completion_tokens": 12,
        "total_tokens": 17 if chat else 14,
        "prompt_tokens_details": {"cached_tokens": 0},
    }
    assert choice["finish_reason"] == "length"


def test_same_seed_same_output_different_seed_different_output() -> None:
    async def body(sim: SimServer, client: httpx.AsyncClient):
        payload = {"prompt": "same prompt", "max_tokens": 30}
        r = await client.post(f"{sim.base_url}/completions", json=payload)
        return r.json()["choices"][0]["text"]

    assert with_sim(SimConfig(fast=True, seed=1), body) == with_sim(
        SimConfig(fast=True, seed=1), body
    )
    assert with_sim(SimConfig(fast=True, seed=1), body) != with_sim(
        SimConfig(fast=True, seed=2), body
    )


def test_eos_stops_early_but_not_before_min_tokens_and_ignore_eos_disables_it() -> None:
    async def body(sim: SimServer, client: httpx.AsyncClient):
        url = f"{sim.base_url}/completions"
        early = []
        for i in range(20):
            payload = {"prompt": f"p {i}", "max_tokens": 200, "min_tokens": 5}
            early.append((await client.post(url, json=payload)).json())
        full = await client.post(url, json={"prompt": "p", "max_tokens": 200, "ignore_eos": True})
        return early, full.json()

    early, full = with_sim(SimConfig(fast=True, eos_prob=0.2), body)
    counts = [r["usage"]["completion_tokens"] for r in early]
    assert min(counts) >= 5 and max(counts) < 200
    assert all(r["choices"][0]["finish_reason"] == "stop" for r in early)
    assert full["usage"]["completion_tokens"] == 200
    assert full["choices"][0]["finish_reason"] == "length"


def test_tokens_per_chunk_groups_tokens_into_fewer_events() -> None:
    async def body(sim: SimServer, client: httpx.AsyncClient):
        payload = {"prompt": "a", "max_tokens": 10, "stream": True}
        return await stream_events(client, f"{sim.base_url}/completions", payload)

    events = [e for _, e in with_sim(SimConfig(fast=True, tokens_per_chunk=4), body)]
    token_events = [e for e in events[:-1] if text_of(e)]
    assert [len(text_of(e).split()) for e in token_events] == [4, 4, 2]


def test_models_health_and_tokenize() -> None:
    async def body(sim: SimServer, client: httpx.AsyncClient):
        models = await client.get(f"{sim.base_url}/models")
        health = await client.get(f"{sim.root_url}/health")
        tokens = await client.post(f"{sim.root_url}/tokenize", json={"content": "a b  c"})
        return models, health, tokens

    models, health, tokens = with_sim(SimConfig(fast=True, model="my-model"), body)
    assert [m["id"] for m in models.json()["data"]] == ["my-model"]
    assert health.status_code == 200
    assert len(tokens.json()["tokens"]) == 3


def test_api_key_is_required_on_v1_when_set() -> None:
    async def body(sim: SimServer, client: httpx.AsyncClient):
        url = f"{sim.base_url}/completions"
        missing = await client.post(url, json={"prompt": "a", "max_tokens": 1})
        wrong = await client.get(f"{sim.base_url}/models", headers={"Authorization": "Bearer no"})
        good = await client.post(
            url, json={"prompt": "a", "max_tokens": 1}, headers={"Authorization": "Bearer sekrit"}
        )
        health = await client.get(f"{sim.root_url}/health")
        return missing, wrong, good, health

    missing, wrong, good, health = with_sim(SimConfig(fast=True, api_key="sekrit"), body)
    assert missing.status_code == wrong.status_code == 401
    assert missing.json()["error"]["type"] == "authentication_error"
    assert "sekrit" not in missing.text
    assert good.status_code == 200 and health.status_code == 200


@pytest.mark.parametrize("status", [500, 429])
def test_error_rate_fails_that_fraction_with_the_configured_status(status: int) -> None:
    async def body(sim: SimServer, client: httpx.AsyncClient):
        url = f"{sim.base_url}/completions"
        payload = {"prompt": "a", "max_tokens": 1}
        return [await client.post(url, json=payload) for _ in range(200)]

    config = SimConfig(fast=True, error_rate=0.25, error_status=status, seed=3)
    responses = with_sim(config, body)
    failed = [r for r in responses if r.status_code == status]
    assert 30 <= len(failed) <= 70
    assert all(r.status_code in (200, status) for r in responses)
    assert "error" in failed[0].json()
    again = with_sim(config, body)  # seeded: the same requests fail
    assert [r.status_code for r in again] == [r.status_code for r in responses]


@pytest.mark.parametrize(
    ("path", "content", "status", "words"),
    [
        ("/completions", b"{not json", 400, "not valid JSON"),
        ("/completions", b"[1, 2]", 400, "JSON object"),
        ("/completions", b'{"max_tokens": 3}', 400, "prompt must be"),
        ("/completions", b'{"prompt": "a", "max_tokens": 0}', 400, "max_tokens must be"),
        ("/completions", b'{"prompt": "a", "stream": "yes"}', 400, "stream must be"),
        ("/completions", b'{"prompt": "a", "max_tokens": 2, "min_tokens": 3}', 400, "min_tokens"),
        ("/completions", b'{"prompt": "a", "model": "gpt-9"}', 404, "does not exist"),
        ("/chat/completions", b'{"messages": []}', 400, "messages must be"),
        ("/chat/completions", b'{"messages": [{"content": "x"}]}', 400, "role"),
        ("/nowhere", b"{}", 404, "no route"),
    ],
)
def test_malformed_requests_get_an_error_json(path: str, content: bytes, status: int, words: str):
    async def body(sim: SimServer, client: httpx.AsyncClient):
        headers = {"Content-Type": "application/json"}
        return await client.post(f"{sim.base_url}{path}", content=content, headers=headers)

    response = with_sim(FAST, body)
    assert response.status_code == status
    assert words in response.json()["error"]["message"]


def test_keep_alive_connection_serves_many_requests_in_turn() -> None:
    async def body(sim: SimServer, client: httpx.AsyncClient):
        url = f"{sim.base_url}/completions"
        for _ in range(20):
            events = await stream_events(
                client, url, {"prompt": "a", "max_tokens": 3, "stream": True}
            )
            assert events[-1][1] == "[DONE]"
            r = await client.post(url, json={"prompt": "a", "max_tokens": 3})
            assert r.status_code == 200
        return True

    assert with_sim(FAST, body)


def test_a_client_that_disconnects_frees_its_batch_slot() -> None:
    async def body(sim: SimServer, client: httpx.AsyncClient):
        url = f"{sim.base_url}/completions"
        async with client.stream(
            "POST", url, json={"prompt": "a", "max_tokens": 10_000, "stream": True}
        ) as r:
            async for _ in r.aiter_raw():
                break
        # max_batch=1: the next request runs only if the abandoned one was dropped.
        done = await client.post(url, json={"prompt": "b", "max_tokens": 2})
        for _ in range(100):
            if not sim.app.engine.running:
                break
            await asyncio.sleep(0.01)
        return done.status_code, len(sim.app.engine.running)

    config = SimConfig(max_batch=1, decode_base_ms=1.0, prefill_base_ms=0.0)
    assert with_sim(config, body) == (200, 0)
