"""`--api rerank`: POST {base}/rerank, not streamed: one query scored against its documents.

The request is the body llama.cpp (`--reranking`: /v1/rerank), vLLM (/rerank, /v1/rerank),
Jina and Cohere all accept: `{"model", "query", "documents": [...]}`; `top_n` is left to the
server (every one of them then returns a score per document) unless `--extra-body` sets it.
The reply is read in either spelling: `results` of `{index, relevance_score}` (llama.cpp,
vLLM, Jina, Cohere) or a bare array of `{index, score}` (Hugging Face TEI's /rerank).

Input tokens as for embeddings (loadgen.api_embeddings.take_input_tokens): usage.prompt_tokens
(llama.cpp), else usage.total_tokens (vLLM reports only that), else the client tokenizer over
the pairs the server scores (query + document, once per document), else unknown.

Errors are data: an error object, a body that is not JSON, a result without a numeric score
or with an index outside the documents sent, or a number of results other than the documents
sent (or top_n) is a `malformed` / `stream_error` request with the reason."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from loadgen.api_common import encode_body
from loadgen.api_embeddings import read_body, take_input_tokens
from loadgen.responsefields import json_kind, malformed, parser_failed
from loadgen.spec import RequestRecord, RequestSpec

if TYPE_CHECKING:
    from loadgen.apis import AdapterOptions

__all__ = ["RerankEndpoint", "from_options"]


@dataclass(frozen=True, slots=True)
class RerankEndpoint:
    model: str
    extra_body: dict[str, Any] | None = None
    count_input: Callable[[str], int] | None = None  # the client tokenizer (fallback only)
    # With a client tokenizer: each request's scored pairs by index (see api_embeddings).
    _sent: dict[int, tuple[str, ...]] = field(default_factory=dict, repr=False, compare=False)

    path: str = "/rerank"

    def body(self, spec: RequestSpec) -> bytes:
        query, documents = rerank_parts(spec)
        if self.count_input is not None:
            self._sent[spec.index] = tuple(f"{query} {d}" for d in documents)
        body: dict[str, Any] = {"model": self.model, "query": query, "documents": list(documents)}
        return encode_body(body, spec.extra_body, self.extra_body)

    def finish(
        self, record: RequestRecord, pieces: Sequence[bytes], times_ns: Sequence[int]
    ) -> None:
        pairs = self._sent.pop(record.index, None)
        try:
            obj = read_body(record, b"".join(pieces), array_key="results")
            if obj is None:
                return
            self._check_results(record, obj.get("results"))
            take_input_tokens(record, obj.get("usage"), pairs, self.count_input)
        except Exception as exc:  # the net under the checks: a parser bug costs one request
            parser_failed(record, exc)

    def _check_results(self, record: RequestRecord, results: object) -> None:
        if results is None:
            malformed(record, "body has no results (the scores)")
            return
        if type(results) is not list:
            malformed(record, f"results is {json_kind(results)}, expected array")
            return
        sent = record.inputs
        for i, item in enumerate(results):
            problem = _result_problem(item, sent)
            if problem is not None:
                malformed(record, f"results[{i}]{problem}")
                return
        expected = self._expected_results(sent)
        if expected is not None and len(results) != expected:
            malformed(record, f"{len(results)} results returned for {sent} documents sent")

    def _expected_results(self, sent: int | None) -> int | None:
        """Results the server owes: one per document, or top_n of them when asked."""
        top_n = (self.extra_body or {}).get("top_n")
        if sent is None or type(top_n) is not int or top_n <= 0:
            return sent
        return min(sent, top_n)


def from_options(options: AdapterOptions) -> RerankEndpoint:
    """The registry's factory (loadgen.apis): `--tokenizer` counts the pairs here."""
    return RerankEndpoint(options.model, options.extra_body, options.count_output)


def rerank_parts(spec: RequestSpec) -> tuple[str, tuple[str, ...]]:
    """(query, documents) of a spec: the prompt and the inputs the rerank workload built."""
    query = spec.prompt
    if query is None:
        query = " ".join(str(m.get("content", "")) for m in spec.messages or ())
    return query, spec.inputs or ()


def _result_problem(item: object, sent: int | None) -> str | None:
    """What is wrong with one result (appended to `results[i]`), or None."""
    if type(item) is not dict:
        return f" is {json_kind(item)}, expected object"
    index = item.get("index")
    if type(index) is not int or index < 0 or (sent is not None and index >= sent):
        return f".index is {_shown(index)}, expected a document index below {sent}"
    score = item.get("relevance_score", item.get("score"))
    if type(score) not in (int, float):
        return f".relevance_score is {json_kind(score)}, expected number"
    return None


def _shown(value: object) -> str:
    return str(value) if type(value) is int else json_kind(value)
