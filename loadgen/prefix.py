"""Ideal (infinite-cache) prefix-hit ratios: how much of the input a prefix cache could skip.

The figure WORKLOADS.md §7 defines: requests in arrival order; each reuses its leading blocks
already seen (prefix-chained, so the run of seen blocks from block 0 is the reusable prefix);
hit = Σ min(reused_blocks · B, input_tokens) / Σ input_tokens. A cache that never evicts gives
this bound; a real server's hit ratio is at most this.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Protocol


class _HasHashes(Protocol):
    @property
    def hash_ids(self) -> tuple[int, ...]: ...

    @property
    def input_tokens(self) -> int: ...

    @property
    def block_size(self) -> int | None: ...


def ideal_prefix_hit_ratio(
    records: Iterable[_HasHashes] | Iterable[tuple[Sequence[int], int]],
    block_size: int | None = None,
) -> float:
    """Infinite-cache hit ratio of requests given as TraceRecords or (hash_ids, input_tokens).

    ``block_size`` defaults to each record's own ``block_size``; it is required for tuples.
    Returns 0.0 for no input tokens at all.
    """
    seen: set[int] = set()
    hit_tokens = 0
    total_tokens = 0
    for item in records:
        if isinstance(item, tuple):
            hash_ids, input_tokens = item
            block = block_size
        else:
            hash_ids, input_tokens = item.hash_ids, item.input_tokens
            block = block_size if block_size is not None else item.block_size
        if block is None or block < 1:
            raise ValueError("ideal_prefix_hit_ratio needs a block size >= 1 (records carry none)")
        reused = 0
        for h in hash_ids:
            if h not in seen:
                break
            reused += 1
        hit_tokens += min(reused * block, input_tokens)
        total_tokens += input_tokens
        seen.update(hash_ids)
    return hit_tokens / total_tokens if total_tokens else 0.0


def ideal_prefix_hit_ratio_texts(texts: Iterable[str], block_size: int = 16) -> float:
    """The same figure for prompts given as text: whitespace-separated words are the tokens
    (as the built-in simulator counts them), cut into blocks of ``block_size`` words.

    Only full blocks are cacheable (as in vLLM's prefix cache), so a partial last block never
    hits. Each block's key chains the previous block's key, so equal keys mean equal prefixes.
    """
    if block_size < 1:
        raise ValueError(f"block_size must be >= 1, got {block_size}")
    seen: set[int] = set()
    hit_tokens = 0
    total_tokens = 0
    for text in texts:
        words = text.split()
        keys = []
        key = 0
        for start in range(0, len(words) - block_size + 1, block_size):
            key = hash((key, tuple(words[start : start + block_size])))
            keys.append(key)
        reused = 0
        for k in keys:
            if k not in seen:
                break
            reused += 1
        hit_tokens += reused * block_size
        total_tokens += len(words)
        seen.update(keys)
    return hit_tokens / total_tokens if total_tokens else 0.0
