"""The simulator's prefix (prompt) cache, modelled on vLLM's automatic prefix caching.

A prompt's tokens (the simulator's words) are cut into blocks of `block_tokens`; each full
block is named by a hash that chains its predecessor's, so a block matches only after the
same whole prefix (as vLLM's block hashes, and loadgen.prefix's ideal hit ratio). The cache
holds at most `capacity_blocks` blocks and evicts the least recently used. A request's
cached tokens are its longest leading run of cached blocks, never the whole prompt: like
vLLM, at least the last prompt token is prefilled (it yields the first output's logits), so
a fully cached prompt reports its last full block as computed.

Blocks enter the cache when their request is admitted, and the blocks its generated tokens
fill when it ends (so a session's next turn, sending the answer back, reuses it). Simplified,
said so that nobody reads more into the numbers: no chat template (messages are their words
back to back), a cancelled request's generated blocks are not kept, and a block a running
request still uses may be evicted (vLLM pins it until the request ends).
"""

from __future__ import annotations

from collections import OrderedDict

__all__ = ["PrefixCache", "prompt_words"]


def prompt_words(prompt_key: str, prompt_tokens: int) -> list[str]:
    """The prompt's tokens from the key the output RNG is seeded with (benchbench.sim.parse):
    its words, or, for a prompt sent as token ids (keyed as "1,2,3"), the ids. A key whose
    word count is not the prompt's token count can only be such an id list."""
    words = prompt_key.split()
    if len(words) != prompt_tokens:
        words = prompt_key.split(",")
    return words


class PrefixCache:
    """An LRU of chained block hashes; hits and queries counted in tokens (vLLM's units)."""

    __slots__ = ("block_tokens", "capacity_blocks", "_blocks", "hits_total", "queries_total")

    def __init__(self, block_tokens: int, capacity_blocks: int) -> None:
        if block_tokens < 1 or capacity_blocks < 1:
            raise ValueError("a prefix cache needs block_tokens >= 1 and capacity_blocks >= 1")
        self.block_tokens = block_tokens
        self.capacity_blocks = capacity_blocks
        # Insertion order is recency order: the first key is the least recently used.
        self._blocks: OrderedDict[int, None] = OrderedDict()
        self.hits_total = 0
        self.queries_total = 0

    def __len__(self) -> int:
        return len(self._blocks)

    def block_hashes(self, words: list[str], known: list[int] | None = None) -> list[int]:
        """The chained hash of each full block of `words` (a partial last block has none);
        `known`: the hashes of its first blocks, already computed (a prompt's, when its
        answer is added)."""
        size = self.block_tokens
        hashes = list(known or ())
        key = hashes[-1] if hashes else 0
        for start in range(len(hashes) * size, len(words) - size + 1, size):
            key = hash((key, tuple(words[start : start + size])))
            hashes.append(key)
        return hashes

    def admit(self, words: list[str], hashes: list[int]) -> int:
        """Look the prompt up, then remember its blocks (`hashes`: block_hashes(words));
        returns its cached tokens."""
        blocks = self._blocks
        # At most (n - 1) tokens can be served: the last one is always prefilled.
        usable = (len(words) - 1) // self.block_tokens if words else 0
        hit = 0
        for key in hashes[:usable]:
            if key not in blocks:
                break
            hit += 1
        self._remember(hashes)
        cached = hit * self.block_tokens
        self.hits_total += cached
        self.queries_total += len(words)
        return cached

    def finish(self, words: list[str], prompt_hashes: list[int]) -> None:
        """A sequence ended: remember the blocks of its prompt and generated tokens (`words`;
        `prompt_hashes`: its prompt's blocks), so a next turn that sends the answer back as
        it came reuses it too (vLLM caches the blocks decode fills, not only the prompt's)."""
        self._remember(self.block_hashes(words, prompt_hashes))

    def _remember(self, hashes: list[int]) -> None:
        blocks = self._blocks
        for key in hashes:
            if key in blocks:
                blocks.move_to_end(key)
            else:
                blocks[key] = None
                if len(blocks) > self.capacity_blocks:
                    blocks.popitem(last=False)
