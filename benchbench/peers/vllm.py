"""vLLM's `vllm bench serve` names and definitions.

Source: vllm-project/vllm vllm/benchmarks/lib/endpoint_request_func.py (the stream reader:
TTFT is stamped at the first `data:` chunk whose `choices` is non-empty, so a role-only opening
chunk starts it; ITL is the gap between successive such chunks; latency ends at the last
chunk read) and vllm/benchmarks/serve.py (calculate_metrics: TPOT = (latency - TTFT) /
(output_len - 1), output_len = usage.completion_tokens; percentiles by numpy's linear rule;
throughput over the benchmark's duration)."""

from __future__ import annotations

from benchbench.peers.base import E2E_CLOSED, GAPS_FROM_FIRST_EVENT, PeerMetric, PeerView

_TTFT = "(coalesce(first_event_ns, first_token_ns) - sent_ns) / 1e6"
_TPOT = (
    "CASE WHEN output_tokens > 1 THEN (coalesce(closed_ns, last_token_ns) "
    "- coalesce(first_event_ns, first_token_ns)) / 1e6 / (output_tokens - 1) END"
)

VIEW = PeerView(
    tool="vllm",
    title="vLLM (vllm bench serve)",
    source="vllm-project/vllm: vllm/benchmarks/serve.py, "
    "vllm/benchmarks/lib/endpoint_request_func.py",
    metrics=(
        PeerMetric("TTFT", "ms", "request", _TTFT, "ttft_ms",
                   "starts at the first chunk of any kind, even a role-only one "
                   "(our first_event_ns); ours waits for the first text"),
        PeerMetric("TPOT", "ms", "request", _TPOT, "tpot_ms",
                   "(latency - TTFT) / (tokens - 1) from its TTFT to the stream's end; "
                   "ours runs first to last token"),
        PeerMetric("ITL", "ms", "gaps", GAPS_FROM_FIRST_EVENT, "chunk_gap_ms",
                   "gaps between chunks, including role chunk -> first token; "
                   "the finish-only chunk's gap is not stored"),
        PeerMetric("E2EL", "ms", "request", E2E_CLOSED, "e2e_ms",
                   "ends at the last chunk read (we use the stream's close); ours at the "
                   "last token"),
        PeerMetric("Output token throughput", "tok/s", "rate", "output_tokens",
                   "output_tok_s", "vLLM divides by first send -> last response; "
                   "ours by the measurement window"),
        PeerMetric("Request throughput", "req/s", "rate", "1", "requests_s",
                   "the same count over vLLM's duration; ours over the window"),
    ),
)  # fmt: skip
