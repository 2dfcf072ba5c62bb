"""NVIDIA AIPerf's names and definitions.

Source: ai-dynamo/aiperf aiperf/metrics/types/ (ttft_metric.py: first response with content,
reasoning included; ttst_metric.py: second minus first; time_to_first_output_token: the
first non-reasoning content; inter_token_latency_metric.py: (request_latency - TTFT) /
(output_sequence_length - 1); inter_chunk_latency: gaps between responses;
output_token_throughput_per_user: 1 / ITL) and docs/metrics_reference.md."""

from __future__ import annotations

from benchbench.peers.base import E2E, TOKEN_GAPS, TPOT, TTFA, TTFT_ANY, PeerMetric, PeerView

_TTST = "(second_token_ns - first_token_ns) / 1e6"
_PER_USER = (
    "CASE WHEN output_tokens > 1 AND last_token_ns > first_token_ns "
    "THEN (output_tokens - 1) / ((last_token_ns - first_token_ns) / 1e9) END"
)

VIEW = PeerView(
    tool="aiperf",
    title="NVIDIA AIPerf",
    source="ai-dynamo/aiperf: aiperf/metrics/types/*_metric.py, docs/metrics_reference.md",
    metrics=(
        PeerMetric("Time to First Token", "ms", "request", TTFT_ANY, "ttft_ms",
                   "the same: first content of any kind, reasoning included"),
        PeerMetric("Time to Second Token", "ms", "request", _TTST, "-",
                   "first -> second token-bearing event; no benchbench equivalent"),
        PeerMetric("Time to First Output Token", "ms", "request", TTFA, "ttfa_ms",
                   "the same as our TTFA: the first non-reasoning fragment"),
        PeerMetric("Inter Token Latency", "ms", "request", TPOT, "tpot_ms",
                   "AIPerf's ITL is our TPOT (per request, first to last token)"),
        PeerMetric("Inter Chunk Latency", "ms", "gaps", TOKEN_GAPS, "chunk_gap_ms",
                   "the same: gaps between token-bearing events"),
        PeerMetric("Output Token Throughput Per User", "tok/s", "request", _PER_USER,
                   "1000 / tpot_ms", "1 / ITL per request"),
        PeerMetric("Request Latency", "ms", "request", E2E, "e2e_ms",
                   "to the last response, which may be the usage chunk; ours the last token"),
        PeerMetric("Output Sequence Length", "tokens", "request", "output_tokens",
                   "output_tokens", "server count, reasoning tokens included"),
        PeerMetric("Reasoning Token Count", "tokens", "request", "reasoning_tokens",
                   "reasoning_tokens", "the server's completion_tokens_details count"),
        PeerMetric("Output Token Throughput", "tok/s", "rate", "output_tokens",
                   "output_tok_s", "AIPerf's profiling duration; ours the window"),
    ),
)  # fmt: skip
