"""A small worker setup for tests that drive one worker body or link directly."""

from __future__ import annotations

from benchbench.workers.body import WorkerSetup
from benchbench.workers.plan import Share
from loadgen.httpcommon import HttpSettings


def worker_setup(tokenizer: str | None = None) -> WorkerSetup:
    """Worker 1 of 2, open loop, two requests to a port nothing listens on."""
    return WorkerSetup(
        share=Share(worker=1, concurrency=None, max_requests=2, warmup=0, in_flight_limit=2),
        workers=2, settings=HttpSettings(base_url="http://127.0.0.1:9/v1"), api="chat",
        model="m", stream=True, tokenizer=tokenizer, event_loop="asyncio", open_loop=True,
        sessions=False, duration_s=None, drain_timeout_s=None, max_rate=None,
    )  # fmt: skip
