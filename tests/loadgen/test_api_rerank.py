"""`--api rerank`: one query and its documents per request; the reply is read in both
spellings (`results` of relevance_score, TEI's bare array of score), checked (a result per
document, or top_n of them, each with an index among the documents and a numeric score), and
input tokens follow the token-truth order. End to end against the built-in simulator."""

from __future__ import annotations

import asyncio
import time

import orjson
import pytest

from benchbench.sim import SimConfig, start_sim
from loadgen import errors
from loadgen.api_embeddings import CLIENT_COUNT_NOTE
from loadgen.api_rerank import RerankEndpoint
from loadgen.client import make_client
from loadgen.httpcommon import HttpSettings
from loadgen.lengths import parse_length
from loadgen.load import LoadPlan
from loadgen.pooling_workload import PoolingWorkload
from loadgen.runner import Runner
from loadgen.spec import RequestRecord, RequestSpec

SPEC = RequestSpec(index=0, prompt="which one", inputs=("first doc", "second", "third one"))


def _finish(doc: object, endpoint: RerankEndpoint | None = None, sent: int = 3):
    endpoint = endpoint or RerankEndpoint("m")
    endpoint.body(SPEC)
    record = RequestRecord(index=0, intended_ns=None, sent_ns=0, inputs=sent)
    endpoint.finish(record, [orjson.dumps(doc)], [10])
    return record


def _results(indices=(2, 0, 1), key: str = "relevance_score") -> list[dict]:
    return [{"index": i, key: 0.5 - i / 10} for i in indices]


def test_the_body_is_the_query_and_documents_the_rerankers_accept() -> None:
    body = orjson.loads(RerankEndpoint("m", extra_body={"top_n": 2}).body(SPEC))
    assert body == {
        "model": "m",
        "query": "which one",
        "documents": ["first doc", "second", "third one"],
        "top_n": 2,
    }


def test_llamacpp_and_vllm_replies_are_ok_with_the_servers_tokens() -> None:
    llamacpp = {"results": _results(), "usage": {"prompt_tokens": 20, "total_tokens": 20}}
    vllm = {"id": "x", "results": _results(), "usage": {"total_tokens": 21}}
    for doc, tokens in ((llamacpp, 20), (vllm, 21)):
        r = _finish(doc)
        assert r.error_kind is None, r.error_detail
        assert r.input_tokens == tokens and r.event_ns == []


def test_a_tei_bare_array_of_scores_is_read_too() -> None:
    r = _finish(_results(key="score"))
    assert r.error_kind is None, r.error_detail


def test_top_n_asked_means_top_n_results_owed() -> None:
    endpoint = RerankEndpoint("m", extra_body={"top_n": 2})
    assert _finish({"results": _results((2, 0))}, endpoint).error_kind is None
    short = _finish({"results": _results((2,))}, endpoint)
    assert short.error_detail == "1 results returned for 3 documents sent"


def test_the_client_tokenizer_counts_each_query_document_pair() -> None:
    endpoint = RerankEndpoint("m", count_input=lambda t: len(t.split()))
    r = _finish({"results": _results()}, endpoint)
    # (2 + 2) + (2 + 1) + (2 + 2): the query is scored with every document
    assert r.input_tokens == 11 and CLIENT_COUNT_NOTE in r.notes


@pytest.mark.parametrize(
    ("doc", "detail"),
    [
        ({"results": _results((0, 1))}, "2 results returned for 3 documents sent"),
        ({"results": _results((0, 1, 3))}, "results[2].index is 3, expected a document index"),
        ({"results": [{"index": 0, "relevance_score": "high"}]}, "relevance_score is string"),
        ({"results": [{"relevance_score": 1.0}]}, "results[0].index is null"),
        ({"results": {"0": 1}}, "results is object"),
        ({"usage": {"total_tokens": 3}}, "body has no results"),
        ("nope", "body is string"),
    ],
)
def test_a_wrong_reply_is_malformed_with_its_reason(doc, detail) -> None:
    r = _finish(doc)
    assert r.error_kind == errors.MALFORMED
    assert detail in (r.error_detail or "")


def test_an_error_object_is_the_servers_error() -> None:
    r = _finish({"error": {"message": "This server does not support reranking"}})
    assert r.error_kind == errors.STREAM_ERROR
    assert r.error_detail == "This server does not support reranking"


def _run(specs: list[RequestSpec], endpoint: RerankEndpoint) -> list[RequestRecord]:
    async def main() -> list[RequestRecord]:
        records: list[RequestRecord] = []
        async with await start_sim(SimConfig(fast=True)) as sim:
            client = make_client(HttpSettings(base_url=sim.base_url), time.monotonic_ns)
            runner = Runner(client, endpoint, time.monotonic_ns, records.append)
            plan = LoadPlan(concurrency=3, max_requests=len(specs))
            await asyncio.wait_for(runner.run(iter(specs), plan), timeout=60)
            await client.aclose()
        return records

    return asyncio.run(main())


@pytest.mark.parametrize(("documents", "top_n"), [(1, None), (6, None), (6, 4)])
def test_the_simulator_scores_every_document_and_counts_every_pair(documents, top_n) -> None:
    lengths = parse_length("uniform:min=3,max=30")
    wl = PoolingWorkload("rerank", lengths, documents=documents, seed=5)
    specs = [s for s, _ in zip(wl.specs(), range(9), strict=False)]
    extra = {"top_n": top_n} if top_n else None
    records = _run(specs, RerankEndpoint("sim-llm", extra_body=extra))
    assert len(records) == 9
    for r in records:
        assert r.error_kind is None, r.error_detail
        assert r.inputs == documents
        assert r.input_tokens == r.input_tokens_expected
