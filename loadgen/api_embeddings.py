"""`--api embeddings`: OpenAI-style POST {base}/embeddings, not streamed.

One request carries a batch of inputs (RequestSpec.inputs; `--batch-size`). Measured per
request: the latency (send to close, in the record's sent/closed times), the inputs sent and
the input tokens. Input tokens follow the token-truth order of every adapter: the server's
`usage.prompt_tokens`, else its `usage.total_tokens` (an embedding has no output tokens, so
the two are the same count), else the client tokenizer (`--tokenizer`, noted on the record
as `input_tokens_source: client_tokenizer`), else unknown; never guessed.

The body is checked as strictly as a stream: an error object, a body that is not JSON, a
`data` that is not an array of objects with an `embedding`, or a number of embeddings other
than the number of inputs sent is a `malformed` (or `stream_error`) request with the detail
saying which, never an exception. Served by OpenAI, vLLM, llama.cpp (`--embeddings`), TEI's
OpenAI route, Ollama's /v1 and the built-in simulator."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import orjson

from loadgen.api_common import encode_body
from loadgen.responsefields import (
    MAX_COUNT,
    add_note,
    json_kind,
    malformed,
    parser_failed,
    snippet,
    take_error,
    take_usage,
)
from loadgen.spec import RequestRecord, RequestSpec

if TYPE_CHECKING:
    from loadgen.apis import AdapterOptions

__all__ = ["EmbeddingsEndpoint", "from_options", "read_body", "take_input_tokens"]

CLIENT_COUNT_NOTE = "input_tokens_source: client_tokenizer"


@dataclass(frozen=True, slots=True)
class EmbeddingsEndpoint:
    model: str
    extra_body: dict[str, Any] | None = None
    # The client tokenizer (`--tokenizer`), used only when the server reports no usage.
    count_input: Callable[[str], int] | None = None
    # With a client tokenizer: the texts of each request in flight, by index, so `finish`
    # (which sees the record, not the spec) can count what was sent. Empty otherwise.
    _sent: dict[int, tuple[str, ...]] = field(default_factory=dict, repr=False, compare=False)

    path: str = "/embeddings"

    def body(self, spec: RequestSpec) -> bytes:
        texts = embedding_inputs(spec)
        if self.count_input is not None:
            self._sent[spec.index] = texts
        body: dict[str, Any] = {"model": self.model, "input": list(texts)}
        return encode_body(body, spec.extra_body, self.extra_body)

    def finish(
        self, record: RequestRecord, pieces: Sequence[bytes], times_ns: Sequence[int]
    ) -> None:
        texts = self._sent.pop(record.index, None)
        try:
            obj = read_body(record, b"".join(pieces))
            if obj is None:
                return
            _check_data(record, obj.get("data"))
            take_input_tokens(record, obj.get("usage"), texts, self.count_input)
        except Exception as exc:  # the net under the checks: a parser bug costs one request
            parser_failed(record, exc)


def from_options(options: AdapterOptions) -> EmbeddingsEndpoint:
    """The registry's factory (loadgen.apis): `--tokenizer` counts inputs here."""
    return EmbeddingsEndpoint(options.model, options.extra_body, options.count_output)


def embedding_inputs(spec: RequestSpec) -> tuple[str, ...]:
    """The texts of one embeddings request: the spec's batch, else its one prompt (a chat
    or completions workload sent to an embedding server)."""
    if spec.inputs is not None:
        return spec.inputs
    if spec.prompt is not None:
        return (spec.prompt,)
    return tuple(str(m.get("content", "")) for m in spec.messages or ())


def read_body(
    record: RequestRecord, body: bytes, array_key: str | None = None
) -> dict[str, Any] | None:
    """The response as a JSON object, or None with the record's error set (not JSON, not an
    object, or an error object). With `array_key`, a bare array is read as that field of an
    object (Hugging Face TEI answers /rerank with the results alone)."""
    try:
        obj = orjson.loads(body)
    except orjson.JSONDecodeError:
        malformed(record, f"body is not JSON: {snippet(body) or 'empty body'}")
        return None
    if array_key is not None and type(obj) is list:
        return {array_key: obj}
    if type(obj) is not dict:
        malformed(record, f"body is {json_kind(obj)}, expected object")
        return None
    error = obj.get("error")
    if error is not None:
        take_error(record, error)
        return None
    return obj


def _check_data(record: RequestRecord, data: object) -> None:
    """`data`: one object with an `embedding` (an array of numbers, or a base64 string)
    per input sent."""
    if data is None:
        malformed(record, "body has no data (the embeddings)")
        return
    if type(data) is not list:
        malformed(record, f"data is {json_kind(data)}, expected array")
        return
    for i, item in enumerate(data):
        if type(item) is not dict:
            malformed(record, f"data[{i}] is {json_kind(item)}, expected object")
            return
        vector = item.get("embedding")
        if type(vector) not in (list, str) or not vector:
            malformed(record, f"data[{i}].embedding is {json_kind(vector)}, expected array")
            return
    sent = record.inputs
    if sent is not None and len(data) != sent:
        malformed(record, f"{len(data)} embeddings returned for {sent} inputs sent")


def take_input_tokens(
    record: RequestRecord,
    usage: object,
    texts: Sequence[str] | None,
    count: Callable[[str], int] | None,
) -> None:
    """Input tokens: usage.prompt_tokens, else usage.total_tokens, else the client
    tokenizer over `texts` (noted), else unknown."""
    if usage is not None:
        take_usage(record, usage)  # prompt_tokens, validated (a bad count: a note)
        if type(usage) is dict and record.input_tokens is None:
            total = usage.get("total_tokens")
            if type(total) is int and 0 <= total <= MAX_COUNT:
                record.input_tokens = total
            elif total is not None:
                add_note(
                    record, f"malformed_usage: total_tokens={snippet(orjson.dumps(total), 40)}"
                )
    if record.input_tokens is not None or count is None or not texts:
        return
    try:
        n = sum(count(t) for t in texts)
    except Exception as exc:  # a user's tokenizer failing costs the count, not the request
        add_note(record, f"client_tokenizer_failed: {type(exc).__name__}")
        return
    if type(n) is int and 0 <= n <= MAX_COUNT:
        record.input_tokens = n
        add_note(record, CLIENT_COUNT_NOTE)
