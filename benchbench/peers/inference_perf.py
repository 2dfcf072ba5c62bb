"""Kubernetes inference-perf's names and definitions.

Source: kubernetes-sigs/inference-perf inference_perf/reportgen/base.py (summarize_requests
and _per_request_latencies: time_to_first_token = first output token time - start;
time_per_output_token = (last - first token time) / (output_len - 1); inter_token_latency =
pairwise gaps of the output token times; normalized_time_per_output_token = (end - start) /
output_len; request_latency = end - start; throughput over max end - min start). output_len
is its client tokenizer's count unless use_server_output_tokens is set."""

from __future__ import annotations

from benchbench.peers.base import E2E_CLOSED, TOKEN_GAPS, TPOT, TTFT_ANY, PeerMetric, PeerView

_NTPOT = (
    "CASE WHEN output_tokens > 0 "
    "THEN (coalesce(closed_ns, last_token_ns) - sent_ns) / 1e6 / output_tokens END"
)

VIEW = PeerView(
    tool="inference-perf",
    title="inference-perf (kubernetes-sigs)",
    source="kubernetes-sigs/inference-perf: inference_perf/reportgen/base.py",
    metrics=(
        PeerMetric("time_to_first_token", "ms", "request", TTFT_ANY, "ttft_ms",
                   "the same: first output chunk"),
        PeerMetric("time_per_output_token", "ms", "request", TPOT, "tpot_ms",
                   "the same formula; it counts tokens with its own tokenizer by default, "
                   "we use the server's count"),
        PeerMetric("inter_token_latency", "ms", "gaps", TOKEN_GAPS, "chunk_gap_ms",
                   "the same: gaps between chunks (a chunk of k tokens is one gap)"),
        PeerMetric("normalized_time_per_output_token", "ms", "request", _NTPOT, "ntpot_ms",
                   "ends at the request's end (stream close); ours at the last token"),
        PeerMetric("request_latency", "ms", "request", E2E_CLOSED, "e2e_ms",
                   "ends at the request's end (stream close); ours at the last token"),
        PeerMetric("output_tokens_per_sec", "tok/s", "rate", "output_tokens", "output_tok_s",
                   "over max end - min start; ours over the window"),
    ),
)  # fmt: skip
