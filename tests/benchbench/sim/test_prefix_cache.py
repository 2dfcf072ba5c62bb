"""The simulator's prefix cache: chained blocks of prompt tokens in an LRU, as vLLM's
automatic prefix caching. A prompt that starts like an earlier one is served its longest
leading run of cached full blocks (never its last token), prefills only the rest, and says
so in each API's own spelling; /metrics counts hits and queries in tokens."""

from __future__ import annotations

import time

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from benchbench.sim import SimConfig, SimServer
from benchbench.sim.config import SimConfigError
from benchbench.sim.prefix_cache import PrefixCache, prompt_words
from loadgen.spec import RequestSpec
from tests.benchbench.sim.helpers import FAST, stream_events, with_sim
from tests.benchbench.sim.test_wire_apis import run_api


def _admit(cache: PrefixCache, words: list[str]) -> int:
    return cache.admit(words, cache.block_hashes(words))


def _words(tag: str, n: int) -> list[str]:
    return [f"{tag}{i}" for i in range(n)]


def test_a_prompt_is_served_its_leading_run_of_cached_blocks() -> None:
    cache = PrefixCache(block_tokens=4, capacity_blocks=100)
    first = _words("a", 10)
    assert _admit(cache, first) == 0  # cold
    # Same first 9 words: blocks 0 and 1 (8 tokens) match; the partial block never does.
    assert _admit(cache, [*first[:9], "x", "y", "z"]) == 8
    # Block 0 differs: block 1's words match but its chain does not, so nothing is served.
    assert _admit(cache, ["q", *first[1:]]) == 0
    assert (cache.hits_total, cache.queries_total) == (8, 10 + 12 + 10)


def test_a_whole_cached_prompt_still_prefills_its_last_token() -> None:
    cache = PrefixCache(block_tokens=4, capacity_blocks=100)
    prompt = _words("w", 12)  # three full blocks
    _admit(cache, prompt)
    # Like vLLM, the last token is always computed (it gives the first output's logits).
    assert _admit(cache, prompt) == 8
    assert _admit(cache, [*prompt, "more"]) == 12


def test_a_finished_answer_continues_its_prompts_chain() -> None:
    cache = PrefixCache(block_tokens=4, capacity_blocks=100)
    prompt = _words("p", 10)  # two full blocks and two words
    whole = [*prompt, *_words("a", 7)]  # the answer fills blocks 2 and 3
    prompt_hashes = cache.block_hashes(prompt)
    assert cache.block_hashes(whole, prompt_hashes) == cache.block_hashes(whole)
    cache.finish(whole, prompt_hashes)
    assert _admit(cache, [*whole, "next"]) == 16


def test_an_answer_sent_back_as_it_came_is_reused_by_the_next_turn() -> None:
    words = _words("u", 30)

    async def body(sim: SimServer, client: httpx.AsyncClient) -> int:
        url = f"{sim.base_url}/chat/completions"
        first = [{"role": "user", "content": " ".join(words)}]
        reply = (await client.post(url, json={"messages": first, "max_tokens": 10})).json()
        answer = reply["choices"][0]["message"]
        turn = [*first, answer, {"role": "user", "content": "and then"}]
        second = (await client.post(url, json={"messages": turn, "max_tokens": 2})).json()
        return second["usage"]["prompt_tokens_details"]["cached_tokens"]

    # 30 prompt words + 10 answer words: two full blocks, the answer's end included; the
    # prompt alone filled only one.
    assert with_sim(FAST, body) == 32


def test_the_least_recently_used_blocks_go_first() -> None:
    cache = PrefixCache(block_tokens=2, capacity_blocks=4)
    a, b = _words("a", 5), _words("b", 5)  # two full blocks each
    _admit(cache, a)
    _admit(cache, b)
    assert len(cache) == 4
    assert _admit(cache, a) == 4  # a used again: b is now the oldest
    _admit(cache, _words("c", 5))  # two new blocks evict b's two
    assert len(cache) == 4
    assert _admit(cache, b) == 0
    assert _admit(cache, _words("c", 5)) == 4


def test_a_prompt_of_token_ids_is_cached_by_its_ids() -> None:
    assert prompt_words("1,2,3", 3) == ["1", "2", "3"]
    assert prompt_words("5", 1) == ["5"]
    # A text prompt is its words, commas and all.
    assert prompt_words("hello, world", 2) == ["hello,", "world"]


@pytest.mark.parametrize(("field", "value"), [("prefix_block", 0), ("prefix_cache_blocks", -1)])
def test_a_bad_cache_size_is_refused_with_its_name(field: str, value: int) -> None:
    with pytest.raises(SimConfigError, match=field):
        SimConfig(**{field: value})  # type: ignore[arg-type]


def _metrics(text: str) -> dict[str, float]:
    families = text_string_to_metric_families(text)
    return {s.name: s.value for f in families for s in f.samples}


def _chat(words: list[str], stream: bool) -> dict[str, object]:
    payload: dict[str, object] = {
        "messages": [{"role": "system", "content": " ".join(words[:40])},
                     {"role": "user", "content": " ".join(words[40:])}],
        "max_tokens": 3,
        "stream": stream,
    }  # fmt: skip
    if stream:
        payload["stream_options"] = {"include_usage": True}
    return payload


def test_chat_replies_say_the_cached_tokens_and_metrics_count_them() -> None:
    shared = _words("s", 40)

    async def body(sim: SimServer, client: httpx.AsyncClient):
        url = f"{sim.base_url}/chat/completions"
        cold = (await client.post(url, json=_chat([*shared, *_words("u", 10)], False))).json()
        events = await stream_events(client, url, _chat([*shared, *_words("v", 10)], True))
        scraped = _metrics((await client.get(f"{sim.root_url}/metrics")).text)
        return cold, events, scraped

    cold, events, scraped = with_sim(FAST, body)
    assert cold["usage"]["prompt_tokens_details"] == {"cached_tokens": 0}
    (usage,) = [e["usage"] for _, e in events if isinstance(e, dict) and e.get("usage")]
    # The 40 shared words, the system message: two full 16-token blocks.
    assert usage["prompt_tokens"] == 50 and usage["prompt_tokens_details"]["cached_tokens"] == 32
    assert scraped["sim:prefix_cache_hits_total"] == 32
    assert scraped["sim:prefix_cache_queries_total"] == 100


def test_a_cache_hit_prefills_only_the_uncached_tokens() -> None:
    # 2 ms per prompt token: 160 cold tokens cost 320 ms, 16 uncached ones 32 ms.
    config = SimConfig(prefill_base_ms=0.0, prefill_ms_per_token=2.0, decode_base_ms=1.0)
    prompt = " ".join(_words("p", 160))

    async def body(sim: SimServer, client: httpx.AsyncClient) -> list[float]:
        url = f"{sim.base_url}/completions"
        ttfts = []
        for _ in range(2):
            start = time.monotonic_ns()
            events = await stream_events(client, url, {"prompt": prompt, "max_tokens": 2,
                                                       "stream": True})  # fmt: skip
            ttfts.append((events[0][0] - start) / 1e6)
        return ttfts

    cold_ms, warm_ms = with_sim(config, body)
    assert cold_ms >= 320
    assert warm_ms < cold_ms - 150  # 288 ms less prefill; wide slack for a busy machine


def test_with_the_cache_off_every_reply_says_zero_and_metrics_have_no_cache() -> None:
    config = SimConfig(fast=True, prefix_cache_blocks=0)
    payload = _chat(_words("s", 60), False)

    async def body(sim: SimServer, client: httpx.AsyncClient):
        url = f"{sim.base_url}/chat/completions"
        replies = [(await client.post(url, json=payload)).json() for _ in range(2)]
        return replies, _metrics((await client.get(f"{sim.root_url}/metrics")).text)

    replies, scraped = with_sim(config, body)
    assert [r["usage"]["prompt_tokens_details"]["cached_tokens"] for r in replies] == [0, 0]
    assert not any("prefix_cache" in name for name in scraped)


@pytest.mark.parametrize("api", ["responses", "messages", "llamacpp"])
def test_each_api_reports_the_cached_tokens_in_its_own_spelling(api: str) -> None:
    prompt = " ".join(_words("t", 37))
    if api == "llamacpp":
        specs = [RequestSpec(i, prompt=prompt, max_tokens=2) for i in range(2)]
    else:
        messages = ({"role": "user", "content": prompt},)
        specs = [RequestSpec(i, messages=messages, max_tokens=2) for i in range(2)]
    records = run_api(api, specs)
    assert [r.error_kind for r in records] == [None, None]
    # Two identical prompts: whichever the engine admitted first filled the cache.
    assert sorted(r.cached_input_tokens for r in records)  # type: ignore[type-var] == [0, 32]
    assert {r.input_tokens for r in records} == {37}  # the prompt's size, cached or not
