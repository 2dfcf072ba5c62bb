"""The coordinator's end of a worker process (benchbench/workers/process.py)."""

from __future__ import annotations

from benchbench.workers.process import ProcessLink
from tests.benchbench.workers.setups import worker_setup


def test_closing_a_link_whose_process_never_started_is_quiet() -> None:
    # When starting an earlier worker fails, the run's cleanup closes every link: one never
    # started must not raise over the error that says what went wrong.
    link = ProcessLink(worker_setup())
    link.close(timeout_s=1.0)
    assert link.pid is None
