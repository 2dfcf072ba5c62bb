"""Exact prompt lengths: synthetic prompts that are exactly their target token count for the
benchmarked server's tokenizer.

Counting (benchbench.token_counters), in order of preference (``--exact-lengths auto``): the
server's own tokenize endpoint, a local Hugging Face ``tokenizer.json`` (``--tokenizer``), or
words (exact for the built-in simulator, an approximation elsewhere: the prompt words are
single tokens in the common vocabularies, see loadgen/prompts.py).

Method: count each prompt's parts in concurrent batches, then add or remove words at the end
of the last part until the count is the target (a few rounds). Chat templates and BOS add
tokens the content does not hold: with an endpoint, one real request per message layout
(``max_tokens=1``) measures usage.prompt_tokens minus the counted content, and that offset
is taken off the content (benchbench.exact_probe). That probe sends text of its own (a fresh
nonce first), never a workload prompt, so it cannot prime the server's prefix cache for
request 0. Every call to the server is bounded by ``--timeout`` (silence) and
``--request-timeout`` (total). The first N requests are fitted exactly before the run (no I/O
at send time); later ones (duration runs) get the most common correction seen, per layout.
"""

from __future__ import annotations

import collections
import itertools
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

import numpy as np

from loadgen.prompts import WORDS
from loadgen.spec import RequestSpec

__all__ = ["LengthFitter", "TokenCounter", "TokenizeError", "message_layout", "prompt_parts"]

MAX_ROUNDS = 8


class TokenCounter(Protocol):
    name: str

    def count(self, texts: Sequence[str]) -> list[int]:
        """Token count of each text, without special tokens."""
        ...


class TokenizeError(ValueError):
    """The server's /tokenize failed or stalled; str() is one line without credentials."""


def json_answer(status: int, read_json: Callable[[], Any], shown_url: str) -> Any:
    """The JSON of a 200 answer from `shown_url` (credentials already removed), else a
    TokenizeError naming the status or the missing JSON."""
    if status != 200:
        raise TokenizeError(f"{shown_url} answered HTTP {status}")
    try:
        return read_json()
    except ValueError:
        raise TokenizeError(f"{shown_url} answered with no JSON") from None


def prompt_parts(spec: RequestSpec) -> list[str]:
    if spec.prompt is not None:
        return [spec.prompt]
    return [str(m.get("content", "")) for m in spec.messages or ()]


def message_layout(spec: RequestSpec) -> tuple[str, ...]:
    if spec.prompt is not None:
        return ("prompt",)
    return tuple(str(m.get("role")) for m in spec.messages or ())


def _with_last(spec: RequestSpec, text: str) -> RequestSpec:
    if spec.prompt is not None:
        return replace(spec, prompt=text)
    messages = list(spec.messages or ())
    messages[-1] = {**messages[-1], "content": text}
    return replace(spec, messages=tuple(messages))


# A one-letter word: one token in byte-level BPE and SentencePiece vocabularies alike, and
# split off by their pre-tokenizers, so it adds exactly one token where a dictionary word may
# add two or three.
FILLER = "a"


def _adjust(text: str, have: int, diff: int, rng: np.random.Generator) -> str:
    """One fitting step: move by whole words while far off (scaled by this text's tokens per
    word, stopping short), then by one-token fillers. Token counts are nearly additive over
    space-separated words, so this lands in two or three counts instead of oscillating."""
    words = text.split()
    per_word = max(have / max(len(words), 1), 1.0)
    if diff > 0:
        k = int(diff // per_word)
        if k >= 1 and diff > 2:
            words += [WORDS[j] for j in rng.integers(0, len(WORDS), k)]
        else:
            words += [FILLER] * diff
    else:
        k = max(1, int(np.ceil(-diff / per_word)))
        words = words[: max(1, len(words) - k)]
    return " ".join(words)


@dataclass
class LengthFitter:
    """Fits prompts to ``input_tokens_expected`` with ``counter``; ``offsets`` are the tokens a
    server adds per message layout (chat template, BOS), measured or 0."""

    counter: TokenCounter
    seed: int = 0
    offsets: dict[tuple[str, ...], int] = field(default_factory=dict)
    stats: dict[str, int] = field(
        default_factory=lambda: {"fitted": 0, "adjusted": 0, "unfit": 0, "rounds": 0}
    )
    _deltas: dict[tuple[str, ...], collections.Counter[int]] = field(default_factory=dict)
    # The most common delta per layout, once asked: apply_learned runs once per request of the
    # run, during the load, and only fit() changes the deltas.
    _best: dict[tuple[str, ...], int] = field(default_factory=dict)

    def fit(self, specs: Sequence[RequestSpec]) -> list[RequestSpec]:
        """Every spec with a target, adjusted so its count (plus offset) equals the target."""
        self._best.clear()
        rng = np.random.default_rng([self.seed, 21])
        out = list(specs)
        # Token count the last part must have: target - other parts - template offset.
        todo: dict[int, int] = {}
        heads = [(i, p) for i, s in enumerate(out) for p in prompt_parts(s)[:-1]]
        head_counts = self._count_cached([p for _, p in heads])
        fixed = collections.Counter[int]()
        for (i, _), c in zip(heads, head_counts, strict=True):
            fixed[i] += c
        for i, s in enumerate(out):
            if s.input_tokens_expected is None or not prompt_parts(s):
                continue
            need = s.input_tokens_expected - fixed[i] - self.offsets.get(message_layout(s), 0)
            if need < 1:
                self.stats["unfit"] += 1
                continue
            todo[i] = need
        initial = {i: len(prompt_parts(out[i])[-1].split()) for i in todo}
        for _round in range(MAX_ROUNDS):
            if not todo:
                break
            self.stats["rounds"] += 1
            ids = list(todo)
            counts = self.counter.count([prompt_parts(out[i])[-1] for i in ids])
            for i, have in zip(ids, counts, strict=True):
                diff = todo[i] - have
                if diff == 0:
                    del todo[i]
                    continue
                out[i] = _with_last(out[i], _adjust(prompt_parts(out[i])[-1], have, diff, rng))
        self.stats["unfit"] += len(todo)
        for i, words0 in initial.items():
            if i in todo:
                continue
            delta = len(prompt_parts(out[i])[-1].split()) - words0
            self.stats["fitted"] += 1
            self.stats["adjusted"] += delta != 0
            self._deltas.setdefault(message_layout(out[i]), collections.Counter())[delta] += 1
        return out

    def _count_cached(self, texts: list[str]) -> list[int]:
        # System prompts and history repeat: count each distinct text once.
        unique = list(dict.fromkeys(texts))
        counts = dict(zip(unique, self.counter.count(unique), strict=True)) if unique else {}
        return [counts[t] for t in texts]

    def apply_learned(self, spec: RequestSpec) -> RequestSpec:
        """No I/O: the most common correction seen for this layout (exact when the counter's
        error is a constant, as for template offsets)."""
        layout = message_layout(spec)
        seen = self._deltas.get(layout)
        if spec.input_tokens_expected is None or not seen or not prompt_parts(spec):
            return spec
        delta = self._best.get(layout)
        if delta is None:
            delta = self._best[layout] = seen.most_common(1)[0][0]
        if delta == 0:
            return spec
        words = prompt_parts(spec)[-1].split()
        if delta > 0:
            words += [WORDS[(spec.index + k) % len(WORDS)] for k in range(delta)]
        else:
            words = words[: max(1, len(words) + delta)]
        return _with_last(spec, " ".join(words))

    def stream(self, specs: Iterator[RequestSpec], n_exact: int) -> Iterator[RequestSpec]:
        """The first ``n_exact`` specs fitted now; the rest corrected lazily as learned."""
        head = self.fit(list(itertools.islice(specs, n_exact)))
        return itertools.chain(head, map(self.apply_learned, specs))
