"""The simulator's pooling routes: POST /v1/embeddings and POST /v1/rerank (also /rerank and
/v2/rerank, vLLM's aliases), answered as one JSON body each.

Latency model: one pooling lane that runs requests in batches, as embedding servers do. A
request waits while the lane is busy; when the lane is free it takes every waiting request
(up to `max_batch`) and answers them all after `prefill_ns(total input tokens)` of the batch
(the simulator's prefill cost: 5 ms + 0.02 ms per token by default). So latency grows with
the tokens sent, and a rising rate shows queueing, then throughput bounded by the per-token
cost. `fast` answers at once.

Tokens are the simulator's whitespace words. Embeddings count every input; rerank counts each
(query, document) pair, as llama.cpp and vLLM do, so a client's expected input tokens match.
Vectors and scores are pure functions of the texts (crc32), so runs are reproducible.
Rerank answers in the body's spelling: `documents` -> `{"results": [{index,
relevance_score}]}` (llama.cpp, vLLM, Jina, Cohere); `texts` -> a bare array of `{index,
score}` (Hugging Face TEI)."""

from __future__ import annotations

import asyncio
import math
import random
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import orjson

from benchbench.sim.config import SimConfig
from benchbench.sim.http import HttpConnection
from benchbench.sim.parse import RequestError, parse_json_object
from benchbench.sim.tokenizer import count_tokens

EMBEDDINGS_ROUTES = ("/v1/embeddings", "/embeddings")
RERANK_ROUTES = ("/v1/rerank", "/rerank", "/v2/rerank")
POOLING_ROUTES = EMBEDDINGS_ROUTES + RERANK_ROUTES
DIMENSIONS = 16  # short vectors: the wire cost of a real 1024-d one is not what is simulated


@dataclass(slots=True)
class _Job:
    tokens: int
    body: bytes
    conn: HttpConnection


class PoolingServer:
    """Embeddings and rerank for one simulator instance: parse, queue on the lane, answer."""

    def __init__(self, config: SimConfig) -> None:
        self.config = config
        self._waiting: list[_Job] = []
        self._busy = False
        self._error_rng = random.Random(config.seed + 1)  # apart from generation's draws
        self.requests = 0

    def handle(self, path: str, body: bytes, conn: HttpConnection) -> None:
        """Answer one pooling request (RequestError for a bad one: the caller answers 4xx)."""
        self.requests += 1
        config = self.config
        fail = config.error_rate > 0 and self._error_rng.random() < config.error_rate
        data = parse_json_object(body)
        build: Callable[[dict[str, Any]], tuple[int, bytes]]
        build = self._embeddings if path in EMBEDDINGS_ROUTES else self._rerank
        tokens, answer = build(data)
        if fail:
            raise RequestError(
                config.error_status,
                f"simulated error (error_rate={config.error_rate})",
                "rate_limit_error" if config.error_status == 429 else "server_error",
            )
        self._waiting.append(_Job(tokens, answer, conn))
        if not self._busy:
            self._next_batch()

    def _next_batch(self) -> None:
        """Take what waits (up to max_batch) and answer it after the batch's prefill time."""
        if not self._waiting:
            self._busy = False
            return
        batch = self._waiting[: self.config.max_batch]
        del self._waiting[: len(batch)]
        self._busy = True
        delay_s = self.config.prefill_ns(sum(job.tokens for job in batch)) / 1e9
        asyncio.get_running_loop().call_later(delay_s, self._answer, batch)

    def _answer(self, batch: list[_Job]) -> None:
        for job in batch:
            if not job.conn.closed:
                job.conn.respond(200, job.body)
        self._next_batch()

    def _embeddings(self, data: dict[str, Any]) -> tuple[int, bytes]:
        texts = _texts(data.get("input"), "input")
        items = [
            {"object": "embedding", "index": i, "embedding": _vector(t)}
            for i, t in enumerate(texts)
        ]
        tokens = sum(_tokens(t) for t in texts)
        return tokens, orjson.dumps(
            {
                "object": "list",
                "model": self.config.model,
                "data": items,
                "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
            }
        )

    def _rerank(self, data: dict[str, Any]) -> tuple[int, bytes]:
        query = data.get("query")
        if not isinstance(query, str) or not query:
            raise RequestError(400, "rerank needs a non-empty string field 'query'")
        tei = "documents" not in data and "texts" in data
        docs = _texts(data.get("texts" if tei else "documents"), "texts" if tei else "documents")
        q = count_tokens(query)
        tokens = sum(q + _tokens(d) for d in docs)
        scored = sorted(
            ((i, _score(query, d)) for i, d in enumerate(docs)), key=lambda p: (-p[1], p[0])
        )
        top_n = data.get("top_n")
        if top_n is not None:
            if type(top_n) is not int or top_n < 1:
                raise RequestError(400, "'top_n' must be an integer >= 1")
            scored = scored[:top_n]
        if tei:
            return tokens, orjson.dumps([{"index": i, "score": s} for i, s in scored])
        results = [{"index": i, "relevance_score": s} for i, s in scored]
        return tokens, orjson.dumps(
            {
                "id": f"rerank-sim-{self.requests}",
                "model": self.config.model,
                "results": results,
                "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
            }
        )


def _texts(value: object, field: str) -> list[str]:
    """A string, or a non-empty array of strings (Cohere's {"text": ...} objects too)."""
    if isinstance(value, str) and value:
        return [value]
    if isinstance(value, list) and value:
        out = []
        for item in value:
            if isinstance(item, dict):
                item = item.get("text")
            if not isinstance(item, str) or not item:
                break
            out.append(item)
        else:
            return out
    raise RequestError(400, f"'{field}' must be a non-empty string or array of strings")


def _tokens(text: str) -> int:
    return max(1, count_tokens(text))


def _vector(text: str) -> list[float]:
    """A unit vector that is a pure function of the text."""
    rng = random.Random(zlib.crc32(text.encode()))
    raw = [rng.gauss(0.0, 1.0) for _ in range(DIMENSIONS)]
    norm = math.sqrt(sum(x * x for x in raw)) or 1.0
    return [round(x / norm, 6) for x in raw]


def _score(query: str, document: str) -> float:
    """A relevance score in (0, 1) that is a pure function of the pair."""
    return round(zlib.crc32(document.encode(), zlib.crc32(query.encode())) / 2**32, 6)
