"""/metrics: Prometheus text that prometheus_client parses, gauges and counters that move."""

from __future__ import annotations

import asyncio

import httpx
from prometheus_client.parser import text_string_to_metric_families

from benchbench.sim import SimConfig, SimServer
from tests.benchbench.sim.helpers import with_sim


async def _scrape(client: httpx.AsyncClient, sim: SimServer) -> dict[str, float]:
    response = await client.get(f"{sim.root_url}/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    return {
        sample.name: sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def test_gauges_show_the_queue_and_counters_count_tokens_and_requests() -> None:
    config = SimConfig(max_batch=1, decode_base_ms=5.0, prefill_base_ms=0.0)

    async def body(sim: SimServer, client: httpx.AsyncClient):
        before = await _scrape(client, sim)
        url = f"{sim.base_url}/completions"
        payload = {"prompt": "a b c", "max_tokens": 20}
        calls = [asyncio.create_task(client.post(url, json=payload)) for _ in range(3)]
        during = None
        for _ in range(200):  # at most ~2 s
            sample = await _scrape(client, sim)
            if sample["sim:num_requests_waiting"] == 2:
                during = sample
                break
            await asyncio.sleep(0.01)
        await asyncio.gather(*calls)
        return before, during, await _scrape(client, sim)

    before, during, after = with_sim(config, body)
    assert before == {
        "sim:num_requests_running": 0,
        "sim:num_requests_waiting": 0,
        "sim:prompt_tokens_total": 0,
        "sim:generation_tokens_total": 0,
        "sim:requests_total": 0,
        "sim:prefix_cache_queries_total": 0,
        "sim:prefix_cache_hits_total": 0,
    }
    assert during is not None and during["sim:num_requests_running"] == 1
    assert after["sim:prompt_tokens_total"] == 9
    # "a b c" has no full 16-token block: looked up, never served.
    assert (after["sim:prefix_cache_queries_total"], after["sim:prefix_cache_hits_total"]) == (9, 0)
    assert after["sim:generation_tokens_total"] == 60
    assert after["sim:requests_total"] == 3
    assert after["sim:num_requests_running"] == after["sim:num_requests_waiting"] == 0
