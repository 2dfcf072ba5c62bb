"""The worker body's messages to its coordinator: a worker that cannot run (here: a tokenizer
file missing on its host, as on a Ray node set up unlike the coordinator's) says why and ends,
instead of ending in silence (a Ray actor's thread would leave the run waiting for ever)."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

from benchbench.workers.body import WorkerBody
from tests.benchbench.workers.setups import worker_setup


def test_a_worker_that_cannot_run_says_why_and_ends(tmp_path: Path) -> None:
    sent: list[tuple[Any, ...]] = []
    body = WorkerBody(worker_setup(str(tmp_path / "missing" / "tokenizer.json")), sent.append)
    thread = threading.Thread(target=body.run, args=({"pid": 1},), daemon=True)
    thread.start()
    body.go(time.monotonic_ns())
    thread.join(30)
    assert not thread.is_alive()
    assert [m[0] for m in sent] == ["ready", "failed"]
    kind, worker, why = sent[-1]
    assert worker == 1 and "tokenizer" in why and len(why) <= 300
