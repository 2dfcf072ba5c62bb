"""GuideLLM's names and definitions.

Source: vllm-project/guidellm src/guidellm/benchmark/schemas/generative/metrics.py and the
request stats (GenerativeRequestStats: time_to_first_token_ms = first token - request start;
time_per_output_token_ms = (last token - request start) / output_tokens, "includes the time to
generate the first token"; inter_token_latency_ms = (last - first token) / (output_tokens - 1);
request_latency = end - start)."""

from __future__ import annotations

from benchbench.peers.base import E2E_CLOSED, NTPOT, TPOT, TTFT_ANY, PeerMetric, PeerView

VIEW = PeerView(
    tool="guidellm",
    title="GuideLLM",
    source="vllm-project/guidellm: src/guidellm/benchmark/schemas/generative/metrics.py",
    metrics=(
        PeerMetric("TTFT", "ms", "request", TTFT_ANY, "ttft_ms",
                   "the same: the first token (reasoning included in recent versions)"),
        PeerMetric("ITL", "ms", "request", TPOT, "tpot_ms",
                   "GuideLLM's ITL is our TPOT (first to last token over tokens - 1)"),
        PeerMetric("TPOT", "ms", "request", NTPOT, "ntpot_ms",
                   "GuideLLM's TPOT is our NTPOT: send -> last token over all tokens, "
                   "TTFT included"),
        PeerMetric("Request Latency", "ms", "request", E2E_CLOSED, "e2e_ms",
                   "ends at the request's end (stream close); ours at the last token"),
        PeerMetric("Output Tokens/s", "tok/s", "rate", "output_tokens", "output_tok_s",
                   "over GuideLLM's benchmark duration; ours over the window"),
        PeerMetric("Requests/s", "req/s", "rate", "1", "requests_s",
                   "over GuideLLM's benchmark duration; ours over the window"),
    ),
)  # fmt: skip
