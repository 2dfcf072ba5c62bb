"""The simulated continuous-batching engine.

One loop steps on an absolute schedule (each step's end time is the previous end
plus the step's duration, so sleep overshoot never accumulates). Each step admits
waiting requests FIFO up to `max_batch` running sequences (their prefill time is
added to that step), then decodes: every running sequence gets one token at the
step's end. A lone request therefore sees its first token after
prefill + one decode step, and its n-th after prefill + n decode steps.

With the prefix cache on (SimConfig.prefix_cache_blocks), admission looks each prompt up
in it: only the uncached tokens cost prefill time, and the sequence carries its cached
count for the reply's usage (`Seq.cached_tokens`).
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from typing import Protocol

from benchbench.sim.config import SimConfig
from benchbench.sim.prefix_cache import PrefixCache, prompt_words
from benchbench.sim.tokenizer import VOCABULARY

# When the server falls further behind its schedule than this (CPU starved), it
# drops the debt instead of bursting tokens to catch up, as a real engine would.
MAX_SCHEDULE_LAG_NS = 20_000_000


class SeqSink(Protocol):
    """Where a sequence's tokens go (a streaming or a buffering response)."""

    @property
    def paused(self) -> bool: ...

    def on_tokens(self, seq: Seq, start: int, stop: int) -> None: ...

    def on_done(self, seq: Seq) -> None: ...


class Seq:
    """One request inside the engine."""

    __slots__ = (
        "prompt_tokens",
        "length",
        "finish_reason",
        "word_ids",
        "produced",
        "sink",
        "prompt_key",
        "cached_tokens",
        "prompt_words",
        "prompt_hashes",
    )

    def __init__(
        self,
        prompt_tokens: int,
        word_ids: list[int],
        finish_reason: str,
        sink: SeqSink,
        prompt_key: str = "",
    ) -> None:
        self.prompt_tokens = prompt_tokens
        # The prompt as parse.py keys it (its words, or "1,2,3" for token ids); "" = not
        # looked up in the prefix cache.
        self.prompt_key = prompt_key
        # Prompt tokens served from the prefix cache, known once admitted.
        self.cached_tokens = 0
        # The prompt's tokens, kept from admission to the end when the cache is on.
        self.prompt_words: list[str] | None = None
        self.prompt_hashes: list[int] = []
        self.word_ids = word_ids
        self.length = len(word_ids)
        self.finish_reason = finish_reason
        self.produced = 0
        self.sink = sink


class Engine:
    def __init__(self, config: SimConfig) -> None:
        self._config = config
        self.waiting: deque[Seq] = deque()
        self.running: list[Seq] = []
        self._cancelled: set[Seq] = set()
        self._wake = asyncio.Event()
        self.prompt_tokens_total = 0
        self.generation_tokens_total = 0
        self.prefix_cache: PrefixCache | None = None
        if config.prefix_cache_blocks > 0:
            self.prefix_cache = PrefixCache(config.prefix_block, config.prefix_cache_blocks)

    def submit(self, seq: Seq) -> None:
        self.waiting.append(seq)
        self._wake.set()

    def cancel(self, seq: Seq) -> None:
        """The client went away: free its slot at the next step."""
        if seq in self.waiting:
            self.waiting.remove(seq)
        elif seq in self.running:
            self._cancelled.add(seq)
            self._wake.set()

    def notify(self) -> None:
        """A paused stream became writable again (fast mode waits for that)."""
        self._wake.set()

    async def run(self) -> None:
        config = self._config
        clock = time.monotonic_ns
        next_ns = clock()
        while True:
            if not self.waiting and not self.running:
                self._wake.clear()
                await self._wake.wait()
                next_ns = clock()
            admitted_tokens, admitted = self._admit()
            step_ns = config.decode_ns(len(self.running))
            if admitted:
                step_ns += config.prefill_ns(admitted_tokens)
            if step_ns > 0:
                next_ns += step_ns
                now = clock()
                if now - next_ns > MAX_SCHEDULE_LAG_NS:
                    next_ns = now
                delay_ns = next_ns - now
                await asyncio.sleep(delay_ns / 1e9 if delay_ns > 0 else 0)
                self._decode(skip_paused=False)
            else:
                progressed = self._decode(skip_paused=True)
                if self.running and not progressed:
                    # Fast mode and every stream's socket buffer is full: wait for a
                    # reader rather than spin.
                    self._wake.clear()
                    await self._wake.wait()
                else:
                    await asyncio.sleep(0)

    def _admit(self) -> tuple[int, int]:
        """Admit waiting sequences; returns (prompt tokens to prefill, sequences admitted)."""
        if self._cancelled:
            self.running = [s for s in self.running if s not in self._cancelled]
            self._cancelled.clear()
        tokens = 0
        admitted = 0
        max_batch = self._config.max_batch
        cache = self.prefix_cache
        while self.waiting and len(self.running) < max_batch:
            seq = self.waiting.popleft()
            self.running.append(seq)
            if cache is not None and seq.prompt_key:
                words = prompt_words(seq.prompt_key, seq.prompt_tokens)
                seq.prompt_hashes = cache.block_hashes(words)
                seq.cached_tokens = cache.admit(words, seq.prompt_hashes)
                seq.prompt_words = words
            self.prompt_tokens_total += seq.prompt_tokens
            # A cached prefix is not prefilled again: only the rest costs time.
            tokens += seq.prompt_tokens - seq.cached_tokens
            admitted += 1
        return tokens, admitted

    def _decode(self, skip_paused: bool) -> int:
        """Give each running sequence one token; returns how many progressed."""
        per_chunk = self._config.tokens_per_chunk
        cancelled = self._cancelled
        still_running = []
        progressed = 0
        for seq in self.running:
            if seq in cancelled:
                continue
            sink = seq.sink
            if skip_paused and sink.paused:
                still_running.append(seq)
                continue
            produced = seq.produced + 1
            seq.produced = produced
            progressed += 1
            if produced == seq.length:
                start = produced - ((produced - 1) % per_chunk + 1)
                sink.on_tokens(seq, start, produced)
                sink.on_done(seq)
                if seq.prompt_words is not None:
                    self._cache_output(seq)
                continue
            if produced % per_chunk == 0:
                sink.on_tokens(seq, produced - per_chunk, produced)
            still_running.append(seq)
        self.running = still_running
        cancelled.clear()
        self.generation_tokens_total += progressed
        return progressed

    def _cache_output(self, seq: Seq) -> None:
        """Remember the blocks a finished sequence's prompt and answer fill."""
        assert self.prefix_cache is not None and seq.prompt_words is not None
        answer = [VOCABULARY[i] for i in seq.word_ids]
        self.prefix_cache.finish(seq.prompt_words + answer, seq.prompt_hashes)
        seq.prompt_words, seq.prompt_hashes = None, []
