"""The coordinator's end of a worker process (benchbench/workers/process.py)."""

from __future__ import annotations

from benchbench.workers.body import WorkerSetup
from benchbench.workers.plan import Share
from benchbench.workers.process import ProcessLink
from loadgen.httpcommon import HttpSettings


def _setup() -> WorkerSetup:
    return WorkerSetup(
        share=Share(worker=1, concurrency=None, max_requests=2, warmup=0, in_flight_limit=2),
        workers=2, settings=HttpSettings(base_url="http://127.0.0.1:9/v1"), api="chat",
        model="m", stream=True, tokenizer=None, event_loop="asyncio", open_loop=True,
        sessions=False, duration_s=None, drain_timeout_s=None, max_rate=None,
    )  # fmt: skip


def test_closing_a_link_whose_process_never_started_is_quiet() -> None:
    # When starting an earlier worker fails, the run's cleanup closes every link: one never
    # started must not raise over the error that says what went wrong.
    link = ProcessLink(_setup())
    link.close(timeout_s=1.0)
    assert link.pid is None
