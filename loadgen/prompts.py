"""Prompt text of a requested token length.

Text is made of common English words joined by single spaces. For the built-in simulator
(one token per whitespace-separated word) the count is exact. For real tokenizers it is
close: every word below is one token, with and without its leading space, in the GPT-2,
Llama-2 (SentencePiece), Llama-3, Qwen2, Gemma and Phi-3 vocabularies (checked against
llama.cpp's vocab files), and BPE pre-tokenizers split on spaces, so n words are n tokens
before the chat template adds its own. No punctuation, so nothing merges across words.

Random text (``synth_text``) shares no prefix between requests, so a server's prefix cache
gets no accidental hits. Block text (``block_text``) is a pure function of a block id, so
trace replay can give equal ``hash_ids`` identical token blocks and the cache behaves as in
the traced production system.

A run's salt (``new_salt``) is a few words drawn afresh for every run, never from the seed.
Put at the very start of every prompt of the run, it keeps all the sharing within the run
(every prompt starts with the same salt) and removes every prefix an earlier run could have
left in the server's cache.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from functools import lru_cache

import numpy as np

__all__ = ["SALT_WORDS", "WORDS", "block_text", "new_salt", "prefix_blocks_text", "synth_text"]

WORDS: tuple[str, ...] = tuple(
    """
    the of and to in is that for it as was with be by on not he this are or his from at which
    but have an had they you were their one all we can her has there been if more when will
    would who so no time people year way day man thing woman life child world school state
    family student group country problem hand part place case week company system program
    question work government number night point home water room mother area money story fact
    month lot right study book eye job word business issue side kind head house service friend
    father power hour game line end member law car city community name team minute idea kid
    body information back parent face others level office door health person art war history
    party result change morning reason research moment air teacher force education good new
    first last long great little own other old big high different small large next early young
    important few public bad same able best better sure free true whole real full strong clear
    open short human local late hard major simple low certain say make go know take see come
    think look want give use find tell ask seem feel try leave call keep let begin help show
    hear play run move live believe hold bring happen write provide sit stand lose pay meet
    include continue set learn lead understand watch follow stop create speak read allow add
    spend grow offer remember love consider appear buy wait serve send expect build stay fall
    cut reach remain also just only very well even still how then now here where why about over
    after before under between through during without again never always often once together
    already almost light river field forest road bridge window table paper letter music picture
    color sound voice heart mind plan market price value cost energy model data food plant
    animal bird tree stone fire wind rain snow sun moon star sea town street station train ship
    plane
    """.split()
)

_WORD_ARRAY = np.array(WORDS, dtype=object)

# Words in a run's salt: 4 words of the ~400 above are ~2.6e10 salts, so two runs share
# their first salt word 1 time in ~400 (one cached token) and the whole salt practically
# never, while every prompt of the run pays only 4 tokens of in-run reuse for it.
SALT_WORDS = 4


def new_salt(n_words: int = SALT_WORDS) -> str:
    """A fresh salt of ``n_words`` prompt words from the OS's randomness (never the seed:
    two runs of the same seed must not share it). Each word is one token, as above."""
    if n_words < 1:
        raise ValueError(f"a salt needs at least 1 word, got {n_words}")
    return " ".join(WORDS[secrets.randbelow(len(WORDS))] for _ in range(n_words))


_MASK64 = np.uint64(0xFFFFFFFFFFFFFFFF)


def synth_text(n_tokens: int, rng: np.random.Generator) -> str:
    """Exactly ``n_tokens`` random words (space-separated), drawn from ``rng``."""
    if n_tokens < 1:
        raise ValueError(f"a prompt needs at least 1 token, got {n_tokens}")
    return " ".join(_WORD_ARRAY[rng.integers(0, len(WORDS), n_tokens)])


def _splitmix64(x: np.ndarray) -> np.ndarray:
    """SplitMix64's finaliser: a fixed, well-mixed hash of uint64s (wrapping arithmetic)."""
    x = x + np.uint64(0x9E3779B97F4A7C15)
    x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


@lru_cache(maxsize=4096)
def _block_words(block_id: int, block_size: int, salt: int) -> tuple[str, ...]:
    # A counter-mode hash rather than a seeded Generator per block: no generator set-up
    # cost, and the text does not depend on numpy's random streams.
    key = _splitmix64(np.array([block_id & 0xFFFFFFFFFFFFFFFF], dtype=np.uint64))
    key = _splitmix64(key ^ np.uint64(salt & 0xFFFFFFFFFFFFFFFF))
    counters = np.arange(block_size, dtype=np.uint64) + key
    idx = _splitmix64(counters) % np.uint64(len(WORDS))
    return tuple(_WORD_ARRAY[idx.astype(np.int64)])


@lru_cache(maxsize=4096)
def _block_text(block_id: int, block_size: int, salt: int) -> str:
    return " ".join(_block_words(block_id, block_size, salt))


def block_text(block_id: int, block_size: int, salt: int = 0) -> str:
    """Exactly ``block_size`` words that depend only on (block_id, block_size, salt)."""
    if block_size < 1:
        raise ValueError(f"block size must be >= 1 token, got {block_size}")
    return _block_text(int(block_id), int(block_size), int(salt))


def prefix_blocks_text(
    hash_ids: Sequence[int], block_size: int, total_tokens: int, salt: int = 0
) -> str:
    """The blocks for ``hash_ids`` in order, cut so the text is exactly ``total_tokens`` words.

    If the ids cover fewer than ``total_tokens`` words, the rest is filled with blocks
    derived from the last id and their position (so two requests with the same ids and
    length still get the same text, and different ones do not collide with real ids).
    """
    if total_tokens < 1:
        raise ValueError(f"a prompt needs at least 1 token, got {total_tokens}")
    if block_size < 1:
        raise ValueError(f"block size must be >= 1 token, got {block_size}")
    full, rest = divmod(total_tokens, block_size)
    ids = [int(h) for h in hash_ids]
    last = ids[-1] if ids else 0
    # Filler ids live under a different salt, so they cannot reproduce a real block's text.
    filler_salt = salt ^ 0x5EED_F111

    def key(k: int) -> tuple[int, int]:
        return (ids[k], salt) if k < len(ids) else (last * 1_000_003 + k, filler_salt)

    blocks = []
    for k in range(full):
        block_id, block_salt = key(k)
        blocks.append(_block_text(block_id, block_size, block_salt))
    if rest:
        block_id, block_salt = key(full)
        blocks.append(" ".join(_block_words(block_id, block_size, block_salt)[:rest]))
    return " ".join(blocks)
