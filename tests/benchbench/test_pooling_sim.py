"""The simulator's /v1/embeddings and /v1/rerank: the wire formats real servers answer with,
token counts in the simulator's words (rerank: every query + document pair), bad bodies a 400
with the reason, and a latency that grows with the input tokens of a request."""

from __future__ import annotations

import asyncio
import time

import httpx
import pytest

from benchbench.sim import SimConfig, start_sim


def _post(config: SimConfig, calls: list[tuple[str, object]]) -> list[tuple[httpx.Response, float]]:
    """POST each (path, json) in turn to a fresh simulator; (response, seconds taken)."""

    async def main() -> list[tuple[httpx.Response, float]]:
        out = []
        async with await start_sim(config) as sim:
            async with httpx.AsyncClient(base_url=sim.root_url, timeout=30) as client:
                for path, body in calls:
                    t0 = time.perf_counter()
                    response = await client.post(path, json=body)
                    out.append((response, time.perf_counter() - t0))
        return out

    return asyncio.run(main())


FAST = SimConfig(fast=True)


def test_embeddings_answer_one_vector_per_input_and_count_its_words() -> None:
    [(r, _)] = _post(FAST, [("/v1/embeddings", {"model": "m", "input": ["a b c", "d e"]})])
    body = r.json()
    assert r.status_code == 200
    assert [d["index"] for d in body["data"]] == [0, 1]
    assert all(len(d["embedding"]) > 0 for d in body["data"])
    assert body["usage"] == {"prompt_tokens": 5, "total_tokens": 5}


def test_a_single_string_input_is_one_embedding() -> None:
    [(r, _)] = _post(FAST, [("/v1/embeddings", {"input": "one two"})])
    assert len(r.json()["data"]) == 1 and r.json()["usage"]["prompt_tokens"] == 2


def test_rerank_scores_every_document_best_first_and_counts_every_pair() -> None:
    body = {"query": "q w", "documents": ["a", "b c", "d e f"]}
    [(r, _)] = _post(FAST, [("/v1/rerank", body)])
    doc = r.json()
    scores = [x["relevance_score"] for x in doc["results"]]
    assert sorted(x["index"] for x in doc["results"]) == [0, 1, 2]
    assert scores == sorted(scores, reverse=True)
    assert doc["usage"]["prompt_tokens"] == (2 + 1) + (2 + 2) + (2 + 3)


def test_rerank_honours_top_n_and_answers_tei_spelling_as_tei() -> None:
    calls = [
        ("/rerank", {"query": "q", "documents": ["a", "b", "c"], "top_n": 2}),
        ("/rerank", {"query": "q", "texts": ["a", "b"]}),
    ]
    (top, _), (tei, _) = _post(FAST, calls)
    assert len(top.json()["results"]) == 2
    assert isinstance(tei.json(), list) and {"index", "score"} <= set(tei.json()[0])


@pytest.mark.parametrize(
    ("path", "body", "reason"),
    [
        ("/v1/embeddings", {"input": []}, "'input'"),
        ("/v1/embeddings", {"input": [1, 2]}, "'input'"),
        ("/v1/rerank", {"documents": ["a"]}, "'query'"),
        ("/v1/rerank", {"query": "q", "documents": "a"}, None),
        ("/v1/rerank", {"query": "q", "documents": ["a"], "top_n": 0}, "'top_n'"),
    ],
)
def test_a_bad_body_is_a_400_with_the_reason(path: str, body: dict, reason: str | None) -> None:
    [(r, _)] = _post(FAST, [(path, body)])
    if reason is None:  # a lone string is one document: accepted
        assert r.status_code == 200
        return
    assert r.status_code == 400 and reason in r.json()["error"]["message"]


def test_latency_grows_with_the_input_tokens_of_the_request() -> None:
    # prefill 5 ms + 0.1 ms per token: 50 tokens ~10 ms, 2,000 tokens ~205 ms
    config = SimConfig(prefill_base_ms=5.0, prefill_ms_per_token=0.1)
    short = {"input": ["w " * 50]}
    long = {"input": ["w " * 500] * 4}
    (_, t_short), (_, t_long) = _post(config, [("/v1/embeddings", short), ("/v1/embeddings", long)])
    assert t_short >= 0.010 and t_long >= 0.205  # lower bounds hold by construction
    assert t_long > t_short


def test_error_rate_and_auth_apply_to_pooling_routes() -> None:
    [(r, _)] = _post(SimConfig(fast=True, error_rate=1.0, error_status=429), [
        ("/v1/embeddings", {"input": "x"})
    ])  # fmt: skip
    assert r.status_code == 429
    [(r, _)] = _post(SimConfig(fast=True, api_key="k"), [("/v1/rerank", {"query": "q"})])
    assert r.status_code == 401
