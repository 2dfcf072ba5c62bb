"""The simulator's knobs: one frozen dataclass, validated on construction.

Defaults model a small (~1-8B) model on one modern GPU: prefill costs 5 ms plus
0.02 ms per prompt token, each decode step 8 ms plus 0.1 ms per running sequence,
and at most 64 sequences decode together. A lone request with a 500-token prompt
and 100 output tokens therefore sees TTFT ~ 15 ms and ~8 ms between tokens; at 64
concurrent sequences a step takes 14.4 ms, so a rate sweep shows a knee near
64 / (max_tokens * 14.4 ms) requests per second.

A prefix cache is on by default (16-token blocks, 4096 of them, LRU; see prefix_cache.py):
a prompt that starts like an earlier one prefills only its uncached tokens and reports the
cached ones. Every benchbench run salts its prompts, so runs stay cold for each other.
"""

from __future__ import annotations

from dataclasses import dataclass

from benchbench.sim.faults import FaultSpecError, parse_faults

DEFAULT_MODEL = "sim-llm"


class SimConfigError(ValueError):
    """A SimConfig field holds a value the simulator cannot honour."""


@dataclass(frozen=True, slots=True)
class SimConfig:
    """Every knob of the simulated endpoint. Same seed -> same outputs and errors."""

    model: str = DEFAULT_MODEL
    seed: int = 0
    prefill_base_ms: float = 5.0
    prefill_ms_per_token: float = 0.02
    decode_base_ms: float = 8.0
    decode_ms_per_seq: float = 0.1
    max_batch: int = 64
    # Per generated token, the chance that the sequence stops early ("stop").
    eos_prob: float = 0.0
    # Generated tokens carried by each streamed chunk (vLLM's stream interval).
    tokens_per_chunk: int = 1
    # max_tokens when a request names none.
    default_max_tokens: int = 128
    # Fraction of completion requests answered with `error_status` instead.
    error_rate: float = 0.0
    error_status: int = 500
    # When set, /v1/* requires `Authorization: Bearer <api_key>`.
    api_key: str | None = None
    # All step times zero: every token is written as fast as the server can.
    fast: bool = False
    # A --faults spec (see faults.py): serve a hostile endpoint instead of the engine.
    faults: str | None = None
    # Chat streams reason first: this many of each response's tokens (at most all of them),
    # or this share of them, are sent as `delta.reasoning_content` and counted in
    # usage.completion_tokens_details.reasoning_tokens. 0 = no reasoning.
    reasoning_tokens: int = 0
    reasoning_ratio: float = 0.0
    # Chat streams answer with one streamed tool call (`delta.tool_calls`) instead of text.
    tool_calls: bool = False
    # The prefix cache: tokens per block, and blocks it holds (LRU); 0 blocks = no cache
    # (every reply then reports 0 cached tokens, as a server without prefix caching).
    prefix_block: int = 16
    prefix_cache_blocks: int = 4096

    def __post_init__(self) -> None:
        _check(bool(self.model), "model must be a non-empty string")
        for name in ("prefill_base_ms", "prefill_ms_per_token", "decode_base_ms"):
            _check(getattr(self, name) >= 0, f"{name} must be >= 0 (got {getattr(self, name)})")
        _check(self.decode_ms_per_seq >= 0, "decode_ms_per_seq must be >= 0")
        _check(self.max_batch >= 1, f"max_batch must be >= 1 (got {self.max_batch})")
        _check(0.0 <= self.eos_prob <= 1.0, f"eos_prob must be in [0, 1] (got {self.eos_prob})")
        _check(
            self.tokens_per_chunk >= 1,
            f"tokens_per_chunk must be >= 1 (got {self.tokens_per_chunk})",
        )
        _check(
            self.default_max_tokens >= 1,
            f"default_max_tokens must be >= 1 (got {self.default_max_tokens})",
        )
        _check(
            0.0 <= self.error_rate <= 1.0, f"error_rate must be in [0, 1] (got {self.error_rate})"
        )
        _check(
            400 <= self.error_status <= 599,
            f"error_status must be an HTTP error status 400..599 (got {self.error_status})",
        )
        _check(self.api_key is None or bool(self.api_key), "api_key must be non-empty when set")
        _check(self.reasoning_tokens >= 0, "reasoning_tokens must be >= 0")
        _check(0.0 <= self.reasoning_ratio <= 1.0, "reasoning_ratio must be in [0, 1]")
        _check(
            not (self.reasoning_tokens and self.reasoning_ratio),
            "give reasoning_tokens or reasoning_ratio, not both",
        )
        _check(self.prefix_block >= 1, f"prefix_block must be >= 1 (got {self.prefix_block})")
        _check(
            self.prefix_cache_blocks >= 0,
            f"prefix_cache_blocks must be >= 0, 0 = no cache (got {self.prefix_cache_blocks})",
        )
        if self.faults is not None:
            try:
                parse_faults(self.faults)
            except FaultSpecError as exc:
                raise SimConfigError(str(exc)) from None

    def reasoning_of(self, length: int) -> int:
        """How many of a response's `length` tokens are reasoning tokens."""
        if self.reasoning_ratio:
            return round(self.reasoning_ratio * length)
        return min(self.reasoning_tokens, length)

    def prefill_ns(self, prompt_tokens: int) -> int:
        """Time to admit (prefill) requests holding `prompt_tokens` prompt tokens in all."""
        if self.fast:
            return 0
        return round((self.prefill_base_ms + self.prefill_ms_per_token * prompt_tokens) * 1e6)

    def decode_ns(self, running_seqs: int) -> int:
        """Time of one decode step that gives each of `running_seqs` sequences one token."""
        if self.fast:
            return 0
        return round((self.decode_base_ms + self.decode_ms_per_seq * running_seqs) * 1e6)


def _check(ok: bool, message: str) -> None:
    if not ok:
        raise SimConfigError(message)
