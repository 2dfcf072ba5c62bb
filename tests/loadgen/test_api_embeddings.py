"""`--api embeddings`: the request carries the batch; the reply is checked (an embedding per
input sent, each an array), input tokens follow the token-truth order (usage.prompt_tokens,
usage.total_tokens, the named client tokenizer, else unknown), and every problem is a request
error with its reason, never an exception. End to end against the built-in simulator."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence

import orjson
import pytest

from benchbench.sim import SimConfig, start_sim
from loadgen import errors
from loadgen.api_embeddings import CLIENT_COUNT_NOTE, EmbeddingsEndpoint
from loadgen.client import make_client
from loadgen.httpcommon import HttpSettings
from loadgen.lengths import Fixed, parse_length
from loadgen.load import LoadPlan
from loadgen.pooling_workload import PoolingWorkload
from loadgen.runner import Runner
from loadgen.spec import RequestRecord, RequestSpec

SPEC = RequestSpec(index=0, inputs=("alpha beta", "gamma"))


def _finish(doc: object, endpoint: EmbeddingsEndpoint | None = None, sent: int = 2):
    endpoint = endpoint or EmbeddingsEndpoint("m")
    endpoint.body(SPEC)
    record = RequestRecord(index=0, intended_ns=None, sent_ns=0, inputs=sent)
    body = doc if isinstance(doc, bytes) else orjson.dumps(doc)
    endpoint.finish(record, [body], [10])
    return record


def _reply(n: int = 2, usage: object = None) -> dict:
    doc: dict = {"data": [{"index": i, "embedding": [0.1, 0.2]} for i in range(n)]}
    if usage is not None:
        doc["usage"] = usage
    return doc


def test_the_body_sends_every_input_of_the_batch_with_the_model() -> None:
    body = orjson.loads(EmbeddingsEndpoint("m", extra_body={"dimensions": 8}).body(SPEC))
    assert body == {"model": "m", "input": ["alpha beta", "gamma"], "dimensions": 8}


def test_a_good_reply_is_ok_with_the_servers_prompt_tokens_and_no_token_events() -> None:
    r = _finish(_reply(usage={"prompt_tokens": 7, "total_tokens": 7}))
    assert r.error_kind is None, r.error_detail
    assert r.input_tokens == 7 and r.output_tokens is None
    assert r.event_ns == [] and r.first_token_ns is None  # no TTFT for a pooling request


def test_total_tokens_counts_when_the_server_gives_no_prompt_tokens() -> None:
    assert _finish(_reply(usage={"total_tokens": 9})).input_tokens == 9


def test_without_usage_the_client_tokenizer_counts_the_inputs_and_says_so() -> None:
    r = _finish(_reply(), EmbeddingsEndpoint("m", count_input=lambda t: len(t.split())))
    assert r.error_kind is None
    assert r.input_tokens == 3 and CLIENT_COUNT_NOTE in r.notes


def test_without_usage_or_tokenizer_input_tokens_stay_unknown() -> None:
    r = _finish(_reply())
    assert r.error_kind is None and r.input_tokens is None and r.notes == []


@pytest.mark.parametrize(
    ("doc", "kind", "detail"),
    [
        (_reply(n=1), errors.MALFORMED, "1 embeddings returned for 2 inputs sent"),
        (_reply(n=3), errors.MALFORMED, "3 embeddings returned for 2 inputs sent"),
        ({"data": "x"}, errors.MALFORMED, "data is string"),
        ({"data": [{"embedding": None}, {}]}, errors.MALFORMED, "data[0].embedding is null"),
        ({"data": [1, 2]}, errors.MALFORMED, "data[0] is number"),
        ({"object": "list"}, errors.MALFORMED, "body has no data"),
        (b"<html>oops", errors.MALFORMED, "body is not JSON: <html>oops"),
        ([1], errors.MALFORMED, "body is array"),
        ({"error": {"message": "model is loading"}}, errors.STREAM_ERROR, "model is loading"),
    ],
)
def test_a_wrong_reply_is_a_request_error_with_its_reason(doc, kind, detail) -> None:
    r = _finish(doc)
    assert r.error_kind == kind
    assert detail in (r.error_detail or "")


def test_a_bad_usage_count_is_kept_as_unknown_with_a_note() -> None:
    r = _finish(_reply(usage={"prompt_tokens": -1, "total_tokens": "many"}))
    assert r.error_kind is None and r.input_tokens is None
    assert any(n.startswith("malformed_usage: prompt_tokens") for n in r.notes)


def _run(specs: Sequence[RequestSpec], endpoint, config: SimConfig, n: int) -> list:
    """Send n specs at concurrency 4 to a fresh simulator over loopback; the records."""

    async def main() -> list[RequestRecord]:
        records: list[RequestRecord] = []
        async with await start_sim(config) as sim:
            client = make_client(HttpSettings(base_url=sim.base_url), time.monotonic_ns)
            runner = Runner(client, endpoint, time.monotonic_ns, records.append)
            plan = LoadPlan(concurrency=4, max_requests=n)
            await asyncio.wait_for(runner.run(iter(specs), plan), timeout=60)
            await client.aclose()
        return records

    return asyncio.run(main())


@pytest.mark.parametrize("batch", [1, 5])
def test_the_simulator_serves_batches_and_counts_every_input_token(batch: int) -> None:
    lengths = parse_length("uniform:min=4,max=40")
    wl = PoolingWorkload("embeddings", lengths, batch_size=batch, seed=3)
    specs = [s for s, _ in zip(wl.specs(), range(12), strict=False)]
    records = _run(specs, EmbeddingsEndpoint("sim-llm"), SimConfig(fast=True), 12)
    assert len(records) == 12
    for r in records:
        assert r.error_kind is None, r.error_detail
        assert r.inputs == batch
        assert r.input_tokens == r.input_tokens_expected
        assert r.closed_ns is not None and r.closed_ns >= r.sent_ns


def test_a_server_error_status_is_recorded_as_data() -> None:
    wl = PoolingWorkload("embeddings", Fixed(8), batch_size=2)
    specs = [s for s, _ in zip(wl.specs(), range(6), strict=False)]
    config = SimConfig(fast=True, error_rate=1.0, error_status=503)
    records = _run(specs, EmbeddingsEndpoint("sim-llm"), config, 6)
    assert [r.error_kind for r in records] == [errors.HTTP_SERVER] * 6
    assert all(r.http_status == 503 and r.inputs == 2 for r in records)


def test_a_bad_request_is_a_4xx_with_the_servers_reason() -> None:
    empty = RequestSpec(index=0, inputs=())
    records = _run([empty], EmbeddingsEndpoint("sim-llm"), SimConfig(fast=True), 1)
    assert records[0].error_kind == errors.HTTP_CLIENT
    assert "input" in (records[0].error_detail or "")
