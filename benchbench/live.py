"""Running figures for the live view, fed by the runner's sink (cheap: a few adds per request)."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

from loadgen.spec import RequestRecord

RECENT = 4096  # completions the live figures look back over


@dataclass
class LiveStats:
    total: int | None
    done: int = 0
    ok: int = 0
    errors: int = 0
    output_tokens: int = 0
    # (time, output tokens) of recent completions, for a sliding-window tokens/s.
    _recent: deque[tuple[int, int]] = field(default_factory=lambda: deque(maxlen=RECENT))
    # TTFT of the recent completions: the live median follows the run as it goes. (A sorted
    # list of every TTFT cost an O(n) insert per request: ~20 us each near 100k requests.)
    _ttft: deque[float] = field(default_factory=lambda: deque(maxlen=RECENT))

    def add(self, r: RequestRecord) -> None:
        if r.warmup:
            return
        self.done += 1
        if r.error_kind is None:
            self.ok += 1
            out = r.output_tokens if r.output_tokens is not None else len(r.event_ns)
            self.output_tokens += out
            end = r.last_token_ns or r.sent_ns
            self._recent.append((end, out))
            if r.first_token_ns is not None:
                self._ttft.append((r.first_token_ns - r.sent_ns) / 1e6)
        else:
            self.errors += 1

    def tokens_per_s(self, now_ns: int, window_ns: int = 5_000_000_000) -> float:
        cutoff = now_ns - window_ns
        toks = sum(n for t, n in self._recent if t >= cutoff)
        first = next((t for t, _ in self._recent if t >= cutoff), None)
        if first is None:
            return 0.0
        span = max(now_ns - first, 1_000_000_000 if toks else 1)
        return toks / (span / 1e9)

    def ttft_p50_ms(self) -> float | None:
        """The median TTFT of the last RECENT completions (the live view asks 4 times a second)."""
        if not self._ttft:
            return None
        return sorted(self._ttft)[len(self._ttft) // 2]
