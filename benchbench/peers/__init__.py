"""Every peer tool's metrics under its own names (`bench show RUN --as TOOL`): vLLM, AIPerf,
GuideLLM, inference-perf and MLPerf Endpoints, each computed by that tool's definition from
the stored events, each beside the benchbench name and a one-line difference."""

from __future__ import annotations

from benchbench.peers.base import PeerMetric, PeerReport, PeerRow, PeerView, compute_view
from benchbench.peers.show import peer_report, peer_table
from benchbench.peers.table import PEERS

__all__ = [
    "PEERS",
    "PeerMetric",
    "PeerReport",
    "PeerRow",
    "PeerView",
    "compute_view",
    "peer_report",
    "peer_table",
]
