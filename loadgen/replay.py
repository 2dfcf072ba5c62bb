"""Trace replay: which trace records are sent, when, and with what synthesised prompt.

Order of the time transforms (each optional): window [start_s, start_s + duration_s) of trace
time, re-zeroed at start_s -> rate_scale -> speedup -> offset_s -> limit (first N of the result).

``rate_scale`` changes the request rate while keeping the window's duration and the time scale
of its rate profile (bursts stay where they were), unlike ``speedup``, which compresses time
(IAT rescaling: the exact IAT shape, a shorter run). How:

- below 1, independent thinning: each request is kept with probability rate_scale. The rate
  profile keeps its shape; the IAT coefficient of variation moves towards 1 as the factor
  falls (for a renewal trace CV² becomes p·CV² + 1 - p), negligibly for near-Poisson traces
  such as Azure conv.
- above 1, superposition of time-shifted copies: floor(rate_scale) full copies plus one copy
  thinned to the fraction, each shifted circularly within the window by a seeded uniform
  offset. Each copy keeps its exact inter-arrival sequence (bar one wrap point) and the
  windowed count dispersion (IDC) is unchanged; the merged IAT CV drifts towards 1 for large
  factors (Palm-Khintchine). Copies get their own prompt salt, so a copy is a new "tenant" with
  the same prefix-sharing structure instead of a 100% cache hit on the original's prompts.
When the exact IAT shape matters more than the duration, use ``speedup``.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

from loadgen.prompts import prefix_blocks_text, synth_text
from loadgen.spec import RequestSpec
from loadgen.traces.record import TraceRecord

_COPY_SALT_STRIDE = 1_000_003  # prompt salt of copy j = seed + j * stride


@dataclass(frozen=True, slots=True)
class ReplayOptions:
    start_s: float = 0.0  # window start, in trace time
    duration_s: float | None = None  # window length in trace time; None = to the end
    offset_s: float = 0.0  # added to every send time: run time before the first request
    speedup: float = 1.0  # trace time / run time (10 -> offsets / 10)
    rate_scale: float | None = None  # thinning (< 1) or shifted-copy superposition (> 1)
    limit: int | None = None  # at most this many requests, the earliest
    seed: int = 0  # for thinning and copy shifts

    def __post_init__(self) -> None:
        if not self.start_s >= 0:
            raise ValueError(f"replay start must be >= 0 s, got {self.start_s}")
        if self.duration_s is not None and not self.duration_s > 0:
            raise ValueError(f"replay duration must be > 0 s, got {self.duration_s}")
        if not self.offset_s >= 0:
            raise ValueError(f"replay offset must be >= 0 s, got {self.offset_s}")
        if not (self.speedup > 0 and math.isfinite(self.speedup)):
            raise ValueError(f"replay speedup must be > 0, got {self.speedup}")
        if self.rate_scale is not None and not (
            self.rate_scale > 0 and math.isfinite(self.rate_scale)
        ):
            raise ValueError(f"replay rate scale must be > 0, got {self.rate_scale}")
        if self.limit is not None and self.limit < 0:
            raise ValueError(f"replay limit must be >= 0, got {self.limit}")

    @property
    def shapes_time(self) -> bool:
        """True when an option needs arrival times (a length-only trace cannot honour it)."""
        return (
            self.start_s != 0
            or self.duration_s is not None
            or self.speedup != 1
            or self.rate_scale not in (None, 1)
        )


@dataclass(frozen=True, slots=True)
class ScheduledRecord:
    """One request of the replay: its send time in run seconds (None: no arrival times)."""

    t_s: float | None
    record: TraceRecord
    copy: int  # 0 = the trace itself, j > 0 = j-th superposed copy


def schedule(records: Sequence[TraceRecord], options: ReplayOptions) -> list[ScheduledRecord]:
    """The records to send, in send order, with their send time in run seconds (or None)."""
    timed = [r.t_arrival_s is not None for r in records]
    if not all(timed):
        if any(timed):
            raise ValueError("trace mixes records with and without arrival times")
        if options.shapes_time:
            raise ValueError(
                "trace has no arrival times: window, speedup and rate_scale need them "
                "(attach an arrival process instead)"
            )
        chosen = records if options.limit is None else records[: options.limit]
        return [ScheduledRecord(None, r, 0) for r in chosen]

    t = np.array([r.t_arrival_s for r in records], dtype=np.float64)
    order = np.argsort(t, kind="stable")
    t = t[order] - options.start_s
    end = math.inf if options.duration_s is None else options.duration_s
    keep = (t >= 0) & (t < end)
    idx, t = order[keep], t[keep]
    copies = np.zeros(len(idx), dtype=np.int64)

    if options.rate_scale is not None and options.rate_scale != 1 and len(idx):
        rng = np.random.default_rng(options.seed)
        idx, t, copies = _rescale(idx, t, options.rate_scale, _window_s(t, options), rng)

    t = t / options.speedup + options.offset_s
    if options.limit is not None:
        idx, t, copies = idx[: options.limit], t[: options.limit], copies[: options.limit]
    return [
        ScheduledRecord(float(ti), records[i], int(c))
        for ti, i, c in zip(t.tolist(), idx.tolist(), copies.tolist(), strict=True)
    ]


def _window_s(t: np.ndarray, options: ReplayOptions) -> float:
    """Span the copies wrap around in: the window, or the trace extended by one mean gap so
    the wrap-around gap is a typical one."""
    if options.duration_s is not None:
        return options.duration_s
    n, last = len(t), float(t[-1])
    return last + last / (n - 1) if n > 1 else 0.0


def _rescale(
    idx: np.ndarray, t: np.ndarray, scale: float, window_s: float, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    if scale < 1:
        keep = rng.random(len(idx)) < scale
        return idx[keep], t[keep], np.zeros(int(keep.sum()), dtype=np.int64)
    full = int(scale)
    fraction = scale - full
    parts_i, parts_t, parts_c = [idx], [t], [np.zeros(len(idx), dtype=np.int64)]
    n_copies = full - 1 + (1 if fraction > 1e-12 else 0)
    for j in range(1, n_copies + 1):
        shift = rng.uniform(0.0, window_s) if window_s > 0 else 0.0
        ci, ct = idx, t
        if j == full:  # the fractional copy
            keep = rng.random(len(idx)) < fraction
            ci, ct = idx[keep], t[keep]
        ct = (ct + shift) % window_s if window_s > 0 else ct
        parts_i.append(ci)
        parts_t.append(ct)
        parts_c.append(np.full(len(ci), j, dtype=np.int64))
    all_t = np.concatenate(parts_t)
    order = np.argsort(all_t, kind="stable")
    return np.concatenate(parts_i)[order], all_t[order], np.concatenate(parts_c)[order]


def replay_specs(
    planned: Sequence[ScheduledRecord],
    *,
    api: Literal["chat", "completions"],
    seed: int,
    ignore_eos: bool = True,
) -> Iterator[RequestSpec]:
    """The spec of each scheduled record, built only when asked for: a whole Mooncake
    trace's prompts take ~18 s and ~0.9 GB up front, the first of them a millisecond.

    Prompts are synthesised to each record's input length: from its hash_ids when it has
    them (equal ids give identical text blocks, so the trace's prefix sharing is reproduced),
    otherwise seeded filler text. ``max_tokens`` is the record's output length (>= 1), forced
    with ignore_eos/min_tokens unless ``ignore_eos`` is False.
    """
    if api not in ("chat", "completions"):
        raise ValueError(f"api must be 'chat' or 'completions', got {api!r}")
    return _specs(planned, api, seed, ignore_eos)


def _specs(
    planned: Sequence[ScheduledRecord], api: str, seed: int, ignore_eos: bool
) -> Iterator[RequestSpec]:
    rng = np.random.default_rng(seed)  # filler text: drawn in send order, so lazy == eager
    seen: set[tuple[int, int]] = set()  # (copy, hash id): copies are salted apart
    for index, p in enumerate(planned):
        r = p.record
        n_in = max(1, r.input_tokens)
        cached: int | None = None
        if r.hash_ids and r.block_size:
            salt = seed + p.copy * _COPY_SALT_STRIDE
            text = prefix_blocks_text(r.hash_ids, r.block_size, n_in, salt=salt)
            cached = _cached_blocks(r.hash_ids, p.copy, seen) * r.block_size
            cached = min(cached, n_in)
        else:
            text = synth_text(n_in, rng)
        max_tokens = max(1, r.output_tokens)
        yield RequestSpec(
            index=index,
            prompt=text if api == "completions" else None,
            messages=({"role": "user", "content": text},) if api == "chat" else None,
            max_tokens=max_tokens,
            input_tokens_expected=n_in,
            output_tokens_expected=max_tokens,
            session_id=r.session_id,
            turn=r.turn,
            extra_body={"ignore_eos": True, "min_tokens": max_tokens} if ignore_eos else None,
            cached_input_tokens_expected=cached,
        )


def _cached_blocks(hash_ids: Sequence[int], copy: int, seen: set[tuple[int, int]]) -> int:
    """Leading blocks of a request a perfect prefix cache already holds, in send order (the
    ideal-hit rule of loadgen.prefix: prefix-chained, so the run of seen blocks from block 0
    is what can be reused); then its blocks are cached too."""
    reused = 0
    for h in hash_ids:
        if (copy, h) not in seen:
            break
        reused += 1
    seen.update((copy, h) for h in hash_ids)
    return reused


def replay_offsets_ns(planned: Sequence[ScheduledRecord]) -> list[int] | None:
    """Intended send offsets (ns from run start), or None when the trace has no arrival
    times. Cheap (8 bytes a request), so computed up front unlike the prompts."""
    if planned and planned[0].t_s is None:
        return None
    return [round(p.t_s * 1e9) for p in planned if p.t_s is not None]


def iter_replay(
    records: Sequence[TraceRecord],
    options: ReplayOptions,
    *,
    api: Literal["chat", "completions"],
    seed: int,
    ignore_eos: bool = True,
) -> tuple[Iterator[RequestSpec], Iterator[int] | None, int]:
    """The replay as the runner takes it: specs built lazily, the intended send offsets
    (ns; None when the trace has no arrival times) and how many requests there are."""
    planned = schedule(records, options)
    specs = replay_specs(planned, api=api, seed=seed, ignore_eos=ignore_eos)
    offsets = replay_offsets_ns(planned)
    return specs, None if offsets is None else iter(offsets), len(planned)


def plan_replay(
    records: Sequence[TraceRecord],
    options: ReplayOptions,
    *,
    api: Literal["chat", "completions"],
    seed: int,
    ignore_eos: bool = True,
) -> tuple[list[RequestSpec], list[int] | None]:
    """iter_replay with every prompt built up front (small traces, tests): the specs and
    the intended send offsets (ns from run start; None when the trace has no arrival times)."""
    specs, offsets, _ = iter_replay(records, options, api=api, seed=seed, ignore_eos=ignore_eos)
    return list(specs), None if offsets is None else list(offsets)
