"""The peers `bench show --as` knows, by their --as names."""

from __future__ import annotations

from benchbench.peers import aiperf, guidellm, inference_perf, mlperf, vllm
from benchbench.peers.base import PeerView

PEERS: dict[str, PeerView] = {
    view.tool: view
    for view in (vllm.VIEW, aiperf.VIEW, guidellm.VIEW, inference_perf.VIEW, mlperf.VIEW)
}
