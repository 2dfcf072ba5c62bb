"""MLPerf Endpoints (MLCommons) names and definitions.

Source: mlcommons/endpoints (its metrics definitions and the v1.0 submission rules): TTFT =
send -> the first non-empty streamed fragment of any kind, reasoning and tool calls included;
TPOT = (latency - TTFT) / (output tokens - 1); TPS per user = 1000 / TPOT; results are read
at p90. `bench export --format mlperf-endpoints` writes the submission file itself."""

from __future__ import annotations

from benchbench.peers.base import E2E, TPOT, TTFT_ANY, PeerMetric, PeerView

_TPS_PER_USER = (
    "CASE WHEN output_tokens > 1 AND last_token_ns > first_token_ns "
    "THEN (output_tokens - 1) / ((last_token_ns - first_token_ns) / 1e9) END"
)

VIEW = PeerView(
    tool="mlperf",
    title="MLPerf Endpoints",
    source="mlcommons/endpoints: metric definitions (TTFT, TPOT, TPS per user)",
    metrics=(
        PeerMetric("TTFT", "ms", "request", TTFT_ANY, "ttft_ms",
                   "the same: benchbench's TTFT follows this definition"),
        PeerMetric("TPOT", "ms", "request", TPOT, "tpot_ms", "the same"),
        PeerMetric("TPS per user", "tok/s", "request", _TPS_PER_USER, "1000 / tpot_ms",
                   "per request; the submission's tps_per_user is 1000 / TPOT p90 instead"),
        PeerMetric("Latency", "ms", "request", E2E, "e2e_ms", "the same: to the last token"),
        PeerMetric("Throughput", "tok/s", "rate", "output_tokens", "output_tok_s",
                   "the same tokens over our window"),
    ),
)  # fmt: skip
