"""The simulator's tokenizer: one token per whitespace-separated word.

Trivial on purpose, so a client can build prompts of an exact length ("w w w" is
three tokens) and count generated tokens by counting words: every generated token
is one vocabulary word sent as " word" (a leading space, no other whitespace).
"""

from __future__ import annotations

import random
import zlib
from collections.abc import Iterable

# Small, fixed vocabulary for generated text; plain ASCII so JSON needs no escaping.
VOCABULARY: tuple[str, ...] = (
    "the", "of", "and", "to", "in", "is", "that", "for", "it", "as",
    "was", "with", "be", "by", "on", "not", "he", "this", "are", "or",
    "his", "from", "at", "which", "but", "have", "an", "had", "they", "you",
    "were", "their", "one", "all", "we", "can", "her", "has", "there", "been",
    "model", "token", "server", "latency", "batch", "power", "energy", "cost", "queue", "step",
    "river", "stone", "light", "window", "garden", "paper", "signal", "orange", "engine", "cloud",
    "quiet", "rapid", "green", "small", "large", "early", "later", "north", "south", "simple",
)  # fmt: skip

_VOCAB_SIZE = 50_000


def count_tokens(text: str) -> int:
    """Number of tokens in `text`: its whitespace-separated words."""
    return len(text.split())


def token_ids(text: str) -> list[int]:
    """Stable integer id per word (crc32 of the word, folded into a 50k vocabulary)."""
    return [zlib.crc32(word.encode()) % _VOCAB_SIZE for word in text.split()]


def count_message_tokens(contents: Iterable[str]) -> int:
    """Prompt tokens of a chat request: the sum over its message texts."""
    return sum(count_tokens(text) for text in contents)


def output_rng(seed: int, prompt_key: str, max_tokens: int) -> random.Random:
    """RNG for one request's output, independent of arrival order: same seed and
    same request -> same words and same early stop, however requests interleave."""
    digest = zlib.crc32(prompt_key.encode(), zlib.crc32(f"{seed}:{max_tokens}".encode()))
    return random.Random(digest)


def output_length(
    rng: random.Random, max_tokens: int, min_tokens: int, eos_prob: float
) -> tuple[int, str]:
    """(tokens to generate, finish_reason). Each token at or past `min_tokens` may
    end the sequence with probability `eos_prob`; otherwise it runs to max_tokens."""
    if eos_prob > 0.0:
        for produced in range(max(1, min_tokens), max_tokens + 1):
            if rng.random() < eos_prob:
                return produced, "stop"
    return max_tokens, "length"


def output_word_ids(rng: random.Random, length: int) -> list[int]:
    """Indices into VOCABULARY for `length` generated tokens."""
    n = len(VOCABULARY)
    return [int(rng.random() * n) for _ in range(length)]
