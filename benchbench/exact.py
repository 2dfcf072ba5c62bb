"""Exact prompt lengths: synthetic prompts that are exactly their target token count for the
benchmarked server's tokenizer.

Counting, in order of preference (``--exact-lengths auto``): the server's own tokenize
endpoint (llama.cpp and the simulator: ``POST /tokenize {"content"}``; vLLM and SGLang:
``POST /tokenize {"model", "prompt"}``), a local Hugging Face ``tokenizer.json``
(``--tokenizer``), or words (exact for the built-in simulator, an approximation elsewhere:
the prompt words are single tokens in the common vocabularies, see loadgen/prompts.py).

Method: count each prompt's parts in concurrent batches, then add or remove words at the end
of the last part until the count is the target (a few rounds). Chat templates and BOS add
tokens the content does not hold: with an endpoint, one real request per message layout
(``max_tokens=1``) measures usage.prompt_tokens minus the counted content, and that offset
is taken off the content. The first N requests are fitted exactly before the run (no I/O at
send time); later ones (duration runs) get the most common correction seen, per layout.
"""

from __future__ import annotations

import collections
import itertools
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

import httpx
import numpy as np

from loadgen.prompts import WORDS
from loadgen.spec import RequestSpec

__all__ = [
    "HFTokenizerCounter",
    "LengthFitter",
    "ServerTokenizeCounter",
    "TokenCounter",
    "WordCounter",
    "make_counter",
]

MAX_ROUNDS = 8


class TokenCounter(Protocol):
    name: str

    def count(self, texts: Sequence[str]) -> list[int]:
        """Token count of each text, without special tokens."""
        ...


class WordCounter:
    """Whitespace-separated words: the simulator's tokenizer."""

    name = "words"

    def count(self, texts: Sequence[str]) -> list[int]:
        return [len(t.split()) for t in texts]


class HFTokenizerCounter:
    """A Hugging Face ``tokenizer.json`` through the ``tokenizers`` library."""

    def __init__(self, path: str) -> None:
        from tokenizers import Tokenizer

        try:
            self._tok = Tokenizer.from_file(path)
        except Exception as exc:
            raise ValueError(f"--tokenizer {path}: cannot load a tokenizer.json ({exc})") from None
        self.name = f"tokenizer:{path}"

    def count(self, texts: Sequence[str]) -> list[int]:
        encoded = self._tok.encode_batch(list(texts), add_special_tokens=False)
        return [len(e.ids) for e in encoded]


class ServerTokenizeCounter:
    """The server's ``/tokenize``; requests go out concurrently on a few threads."""

    def __init__(
        self,
        root_url: str,
        model: str | None,
        headers: dict[str, str] | None = None,
        timeout_s: float = 30.0,
        workers: int = 8,
    ) -> None:
        self.root_url = root_url.rstrip("/")
        self.model = model
        self.name = f"server:{self.root_url}/tokenize"
        self._client = httpx.Client(headers=headers or {}, timeout=timeout_s)
        self._workers = workers
        self._style: str | None = None  # "content" (llama.cpp) or "prompt" (vLLM/SGLang)

    def close(self) -> None:
        self._client.close()

    def _body(self, text: str, style: str) -> dict[str, Any]:
        if style == "content":
            return {"content": text, "add_special": False}
        return {"model": self.model, "prompt": text, "add_special_tokens": False}

    def _one(self, text: str, style: str) -> int:
        r = self._client.post(f"{self.root_url}/tokenize", json=self._body(text, style))
        r.raise_for_status()
        data = r.json()
        if isinstance(data.get("tokens"), list):
            return len(data["tokens"])
        if isinstance(data.get("count"), int):
            return int(data["count"])
        raise ValueError(f"{self.root_url}/tokenize answered without 'tokens' or 'count'")

    def probe(self) -> bool:
        """True when the server tokenizes; picks the request style that works."""
        for style in ("content", "prompt"):
            try:
                self._one("hello world", style)
            except (httpx.HTTPError, ValueError):
                continue
            self._style = style
            return True
        return False

    def count(self, texts: Sequence[str]) -> list[int]:
        if self._style is None and not self.probe():
            raise ValueError(f"{self.root_url}/tokenize does not answer")
        style = self._style or "content"
        with ThreadPoolExecutor(self._workers) as pool:
            return list(pool.map(lambda t: self._one(t, style), texts))


def make_counter(
    method: str,
    endpoint: str | None,
    model: str | None,
    headers: dict[str, str] | None,
    tokenizer: str | None,
) -> TokenCounter | None:
    """The counter for ``--exact-lengths``; None when lengths are left as drawn (off, or the
    built-in simulator, for which words are already exact)."""
    if method == "off":
        return None
    if method == "tokenizer":
        if not tokenizer:
            raise ValueError("--exact-lengths tokenizer needs --tokenizer PATH/tokenizer.json")
        return HFTokenizerCounter(tokenizer)
    if endpoint is None:
        return None  # the built-in simulator: one token per word, exact by construction
    root = endpoint.removesuffix("/v1")
    server = ServerTokenizeCounter(root, model, headers)
    if server.probe():
        return server
    server.close()
    if method == "server":
        raise ValueError(
            f"--exact-lengths server: {root}/tokenize does not answer; "
            "use --exact-lengths tokenizer --tokenizer PATH, or auto"
        )
    if tokenizer:
        return HFTokenizerCounter(tokenizer)
    return None


def _parts(spec: RequestSpec) -> list[str]:
    if spec.prompt is not None:
        return [spec.prompt]
    return [str(m.get("content", "")) for m in spec.messages or ()]


def _layout(spec: RequestSpec) -> tuple[str, ...]:
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

    def fit(self, specs: Sequence[RequestSpec]) -> list[RequestSpec]:
        """Every spec with a target, adjusted so its count (plus offset) equals the target."""
        rng = np.random.default_rng([self.seed, 21])
        out = list(specs)
        # Token count the last part must have: target - other parts - template offset.
        todo: dict[int, int] = {}
        heads = [(i, p) for i, s in enumerate(out) for p in _parts(s)[:-1]]
        head_counts = self._count_cached([p for _, p in heads])
        fixed = collections.Counter[int]()
        for (i, _), c in zip(heads, head_counts, strict=True):
            fixed[i] += c
        for i, s in enumerate(out):
            if s.input_tokens_expected is None or not _parts(s):
                continue
            need = s.input_tokens_expected - fixed[i] - self.offsets.get(_layout(s), 0)
            if need < 1:
                self.stats["unfit"] += 1
                continue
            todo[i] = need
        initial = {i: len(_parts(out[i])[-1].split()) for i in todo}
        for _round in range(MAX_ROUNDS):
            if not todo:
                break
            self.stats["rounds"] += 1
            ids = list(todo)
            counts = self.counter.count([_parts(out[i])[-1] for i in ids])
            for i, have in zip(ids, counts, strict=True):
                diff = todo[i] - have
                if diff == 0:
                    del todo[i]
                    continue
                out[i] = _with_last(out[i], _adjust(_parts(out[i])[-1], have, diff, rng))
        self.stats["unfit"] += len(todo)
        for i, words0 in initial.items():
            if i in todo:
                continue
            delta = len(_parts(out[i])[-1].split()) - words0
            self.stats["fitted"] += 1
            self.stats["adjusted"] += delta != 0
            self._deltas.setdefault(_layout(out[i]), collections.Counter())[delta] += 1
        return out

    def _count_cached(self, texts: list[str]) -> list[int]:
        # System prompts and history repeat: count each distinct text once.
        unique = list(dict.fromkeys(texts))
        counts = dict(zip(unique, self.counter.count(unique), strict=True)) if unique else {}
        return [counts[t] for t in texts]

    def apply_learned(self, spec: RequestSpec) -> RequestSpec:
        """No I/O: the most common correction seen for this layout (exact when the counter's
        error is a constant, as for template offsets)."""
        seen = self._deltas.get(_layout(spec))
        if spec.input_tokens_expected is None or not seen or not _parts(spec):
            return spec
        delta = seen.most_common(1)[0][0]
        if delta == 0:
            return spec
        words = _parts(spec)[-1].split()
        if delta > 0:
            words += [WORDS[(spec.index + k) % len(WORDS)] for k in range(delta)]
        else:
            words = words[: max(1, len(words) + delta)]
        return _with_last(spec, " ".join(words))

    def stream(self, specs: Iterator[RequestSpec], n_exact: int) -> Iterator[RequestSpec]:
        """The first ``n_exact`` specs fitted now; the rest corrected lazily as learned."""
        head = self.fit(list(itertools.islice(specs, n_exact)))
        return itertools.chain(head, map(self.apply_learned, specs))


def measure_offsets(
    specs: Sequence[RequestSpec],
    counter: TokenCounter,
    base_url: str,
    model: str,
    headers: dict[str, str],
    timeout_s: float = 60.0,
) -> dict[tuple[str, ...], int]:
    """Tokens the server adds to the counted content (chat template, BOS), per message layout:
    one real request each (``max_tokens=1``), usage.prompt_tokens minus the content count."""
    first: dict[tuple[str, ...], RequestSpec] = {}
    for s in specs:
        first.setdefault(_layout(s), s)
    offsets: dict[tuple[str, ...], int] = {}
    with httpx.Client(headers=headers, timeout=timeout_s) as client:
        for layout, spec in first.items():
            body: dict[str, Any] = {"model": model, "max_tokens": 1, "stream": False}
            if spec.prompt is not None:
                body["prompt"] = spec.prompt
                path = "/completions"
            else:
                body["messages"] = list(spec.messages or ())
                path = "/chat/completions"
            r = client.post(base_url.rstrip("/") + path, json=body)
            r.raise_for_status()
            usage = r.json().get("usage") or {}
            if not isinstance(usage.get("prompt_tokens"), int):
                continue  # no usage: leave the offset at 0 (stated in the run's description)
            offsets[layout] = usage["prompt_tokens"] - sum(counter.count(_parts(spec)))
    return offsets
