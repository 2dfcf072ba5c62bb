"""The live view's running figures (benchbench/live.py): cheap per request at any run size,
and the TTFT median follows the recent completions."""

from __future__ import annotations

from benchbench.live import RECENT, LiveStats
from loadgen.spec import RequestRecord


def _ok(index: int, ttft_ms: float, tokens: int = 4) -> RequestRecord:
    sent = index * 1_000_000
    first = sent + int(ttft_ms * 1e6)
    return RequestRecord(
        index=index, intended_ns=None, sent_ns=sent, first_token_ns=first,
        last_token_ns=first + 1_000, output_tokens=tokens,
    )  # fmt: skip


def test_counts_completions_errors_and_skips_warmup() -> None:
    stats = LiveStats(total=3)
    stats.add(_ok(0, 10.0))
    stats.add(RequestRecord(index=1, intended_ns=None, sent_ns=0, error_kind="timeout"))
    stats.add(RequestRecord(index=2, intended_ns=None, sent_ns=0, warmup=True))
    assert (stats.done, stats.ok, stats.errors, stats.output_tokens) == (2, 1, 1, 4)
    assert stats.ttft_p50_ms() == 10.0


def test_the_ttft_median_is_of_the_recent_completions() -> None:
    stats = LiveStats(total=None)
    for i in range(RECENT):  # an early phase of slow first tokens ...
        stats.add(_ok(i, 500.0))
    assert stats.ttft_p50_ms() == 500.0
    for i in range(RECENT, 2 * RECENT):  # ... then a fast one: the live figure follows it
        stats.add(_ok(i, 20.0))
    assert stats.ttft_p50_ms() == 20.0


def test_no_ttft_before_the_first_success() -> None:
    assert LiveStats(total=None).ttft_p50_ms() is None
