"""What is sent (RequestSpec) and what was seen (RequestRecord): the loadgen's two boundary types.

Times are integer nanoseconds on one monotonic clock (``time.monotonic_ns`` unless a clock is
injected), measured from the run's origin, so every stage and collector lines up.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class RequestSpec:
    """One request to send, fully decided before the run starts (no I/O at send time)."""

    index: int
    prompt: str | None = None  # completions API
    messages: tuple[dict[str, Any], ...] | None = None  # chat API
    max_tokens: int = 128
    input_tokens_expected: int | None = None  # what the workload aimed for
    output_tokens_expected: int | None = None
    session_id: str | None = None
    turn: int = 0
    # Extra request body fields (ignore_eos, min_tokens, ...); merged last by the adapter.
    extra_body: dict[str, Any] | None = None
    # The first salt_words words of the first message (or of the prompt) are the run's salt
    # (loadgen.prompts.new_salt): sent and counted, but not part of the workload, so the
    # fingerprint leaves them out.
    salt_words: int = 0
    # Embeddings: the inputs of one request (a batch); rerank: the documents of one query
    # (the query itself is `prompt`). None for generation APIs.
    inputs: tuple[str, ...] | None = None
    # Prompt tokens the workload expects the server to serve from its prefix cache (a shared
    # system prompt, an earlier turn of the same session, a trace's shared hash blocks).
    cached_input_tokens_expected: int | None = None


@dataclass(slots=True)
class RequestRecord:
    """Everything measured for one request. Failed requests are records too (error_kind set)."""

    index: int
    intended_ns: int | None  # open loop: when the schedule said to send; None in closed loop
    sent_ns: int  # just before the request bytes were handed to the transport
    first_token_ns: int | None = None  # first event carrying >= 1 output token
    last_token_ns: int | None = None  # last token-bearing event
    closed_ns: int | None = None  # stream closed (or failure observed)
    # Token-bearing events, in order: receive time, and tokens in the event where the
    # server says so (else None; never guessed from chunk counts).
    event_ns: list[int] = field(default_factory=list)
    event_tokens: list[int | None] = field(default_factory=list)
    input_tokens: int | None = None  # server usage
    # Prompt tokens the server served from its prompt (prefix) cache, where it says so
    # (usage.prompt_tokens_details.cached_tokens, cache_read_input_tokens, llama.cpp's
    # timings.cache_n); None = not reported.
    cached_input_tokens: int | None = None
    output_tokens: int | None = None  # server usage, or the client tokenizer (see below)
    # Where output_tokens came from: "usage" (the server), "client_tokenizer" (the server
    # gave no usage and a tokenizer was named), or None (unknown: never guessed from chunks).
    output_tokens_source: str | None = None
    input_tokens_expected: int | None = None
    output_tokens_expected: int | None = None
    http_status: int | None = None
    error_kind: str | None = None  # None = ok; see loadgen.errors.ErrorKind
    error_detail: str | None = None
    warmup: bool = False
    session_id: str | None = None
    turn: int = 0
    output_text_chars: int = 0
    server_timings: dict[str, float] | None = None  # e.g. llama.cpp "timings"
    # What the parser saw that is worth knowing but is not an error, one short line each:
    # "malformed_usage: completion_tokens=-5" (the count is then stored as unknown).
    notes: list[str] = field(default_factory=list)
    # The client worker that sent it (0 in a one-process run; see `bench run --workers`).
    worker: int = 0
    # First streamed event of any kind, even one with no text (a role-only chunk): some
    # peers' TTFT (vLLM's) starts here. None when nothing was streamed.
    first_event_ns: int | None = None
    # Kind of each token-bearing event, parallel to event_ns: "answer", "reasoning" or
    # "tool_call". None means every event is an answer event (the common case, kept cheap).
    event_kinds: list[str] | None = None
    # Reasoning tokens the server reported (completion_tokens_details.reasoning_tokens).
    reasoning_tokens: int | None = None
    cached_input_tokens_expected: int | None = None
    # Embeddings / rerank: inputs (or documents) in the request; None for generation.
    inputs: int | None = None
    # The answer text, kept only for a session's request: the next turn sends it back as the
    # assistant message, so the server can reuse the tokens it generated. Never stored.
    output_text: str | None = None
