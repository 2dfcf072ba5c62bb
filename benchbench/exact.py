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
is taken off the content. That probe sends text of its own (a fresh nonce first), never a
workload prompt, so it cannot prime the server's prefix cache for request 0. Every call to
the server is bounded by ``--timeout`` (silence) and ``--request-timeout`` (total). The
first N requests are fitted exactly before the run (no I/O at send time); later ones
(duration runs) get the most common correction seen, per layout.
"""

from __future__ import annotations

import asyncio
import collections
import itertools
import secrets
import sys
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

import httpx
import numpy as np

from benchbench.target import Bounds, DeadlineExceeded, http_call, request_within, run_sync
from benchbench.urls import redact_url
from loadgen.prompts import WORDS
from loadgen.spec import RequestSpec

__all__ = [
    "FallbackCounter",
    "HFTokenizerCounter",
    "LengthFitter",
    "ServerTokenizeCounter",
    "TokenCounter",
    "TokenizeError",
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


class TokenizeError(ValueError):
    """The server's /tokenize failed or stalled; str() is one line without credentials."""


class ServerTokenizeCounter:
    """The server's ``/tokenize``; up to ``workers`` requests in flight at once.

    Every call is bounded twice: ``timeout_s`` of silence (the run's ``--timeout``) and
    ``request_timeout_s`` in total (``--request-timeout``), so a server that stalls or trickles
    bytes cannot hold the command before the run starts. A probe of two words gets the
    smaller of the two as its total."""

    def __init__(
        self,
        root_url: str,
        model: str | None,
        headers: dict[str, str] | None = None,
        timeout_s: float = 30.0,
        workers: int = 8,
        request_timeout_s: float | None = None,
        connect_timeout_s: float | None = None,
    ) -> None:
        self.root_url = root_url.rstrip("/")
        self.model = model
        self.url = f"{self.root_url}/tokenize"
        self.shown_url = redact_url(self.url)
        self.name = f"server:{self.shown_url}"
        self.bounds = Bounds(timeout_s, request_timeout_s or timeout_s, connect_timeout_s)
        self._headers = dict(headers or {})
        self._workers = workers
        self._style: str | None = None  # "content" (llama.cpp) or "prompt" (vLLM/SGLang)
        self.last_failure: str | None = None  # why the last probe failed, one line
        self.stalled = False  # the probe timed out (rather than being refused)

    def close(self) -> None:
        """Nothing held between calls (each count opens and closes its own client)."""

    def _body(self, text: str, style: str) -> dict[str, Any]:
        if style == "content":
            return {"content": text, "add_special": False}
        return {"model": self.model, "prompt": text, "add_special_tokens": False}

    async def _one(self, client: httpx.AsyncClient, text: str, style: str, bounds: Bounds) -> int:
        r = await request_within(client, "POST", self.url, bounds, self._body(text, style))
        if r.status_code != 200:
            raise TokenizeError(f"{self.shown_url} answered HTTP {r.status_code}")
        try:
            data = r.json()
        except ValueError:
            raise TokenizeError(f"{self.shown_url} answered with no JSON") from None
        if isinstance(data, dict) and isinstance(data.get("tokens"), list):
            return len(data["tokens"])
        if isinstance(data, dict) and isinstance(data.get("count"), int):
            return int(data["count"])
        raise TokenizeError(f"{self.shown_url} answered without 'tokens' or 'count'")

    def _client(self) -> httpx.AsyncClient:
        limits = httpx.Limits(max_connections=self._workers)
        return httpx.AsyncClient(
            headers=self._headers, timeout=self.bounds.httpx_timeout(), limits=limits
        )

    def _reason(self, exc: BaseException) -> str:
        if isinstance(exc, TokenizeError):
            return str(exc)
        if isinstance(exc, DeadlineExceeded):
            return f"{self.shown_url}: {exc}"
        if isinstance(exc, httpx.ConnectTimeout | httpx.PoolTimeout):
            return (
                f"{self.shown_url}: no connection within {self.bounds.httpx_timeout().connect:g} s"
            )
        if isinstance(exc, httpx.TimeoutException):
            return f"{self.shown_url}: silent for {self.bounds.silence_s:g} s (--timeout)"
        text = str(exc).splitlines()[0].replace(self.url, self.shown_url) if str(exc) else ""
        return f"{self.shown_url}: {type(exc).__name__}{': ' + text if text else ''}"

    def probe(self) -> bool:
        """True when the server tokenizes; picks the request style that works."""
        bounds = replace(self.bounds, total_s=min(self.bounds.silence_s, self.bounds.total_s))

        async def attempt(style: str) -> int:
            async with self._client() as client:
                return await self._one(client, "hello world", style, bounds)

        for style in ("content", "prompt"):
            try:
                run_sync(attempt(style))
            except (httpx.HTTPError, ValueError) as exc:
                self.last_failure = self._reason(exc)
                if isinstance(exc, httpx.TimeoutException):
                    self.stalled = True
                    return False  # a stalling server would stall the second style too
                continue
            self._style = style
            self.last_failure = None
            return True
        return False

    def count(self, texts: Sequence[str]) -> list[int]:
        if self._style is None and not self.probe():
            raise TokenizeError(f"{self.shown_url} does not answer ({self.last_failure})")
        style = self._style or "content"
        try:
            return run_sync(self._count(list(texts), style))
        except (httpx.HTTPError, ValueError) as exc:
            raise TokenizeError(self._reason(exc)) from None

    async def _count(self, texts: list[str], style: str) -> list[int]:
        gate = asyncio.Semaphore(self._workers)

        async def one(client: httpx.AsyncClient, text: str) -> int:
            async with gate:
                return await self._one(client, text, style, self.bounds)

        async with self._client() as client:
            try:
                # A TaskGroup cancels the other calls at the first failure: no waiting out
                # every remaining text against a server that has stopped answering.
                async with asyncio.TaskGroup() as group:
                    tasks = [group.create_task(one(client, t)) for t in texts]
            except BaseExceptionGroup as eg:
                raise eg.exceptions[0] from None
        return [t.result() for t in tasks]


class FallbackCounter:
    """``--exact-lengths auto``: the server's /tokenize while it answers; at its first failure
    one warning, then ``fallback`` (a --tokenizer, or words) for the rest of the fit."""

    def __init__(
        self, primary: TokenCounter, fallback: TokenCounter, warn: Callable[[str], None]
    ) -> None:
        self.primary = primary
        self.fallback = fallback
        self._warn = warn
        self.failure: str | None = None

    @property
    def name(self) -> str:
        if self.failure is None:
            return self.primary.name
        return f"{self.fallback.name} (after {self.primary.name} failed)"

    def count(self, texts: Sequence[str]) -> list[int]:
        if self.failure is None:
            try:
                return self.primary.count(texts)
            except TokenizeError as exc:
                self.failure = str(exc)
                self._warn(
                    f"--exact-lengths auto: {exc}; prompt lengths now counted by "
                    f"{self.fallback.name}"
                )
        return self.fallback.count(texts)


def _warn_on_stderr(message: str) -> None:
    print(f"warning: {message}", file=sys.stderr, flush=True)


def make_counter(
    method: str,
    endpoint: str | None,
    model: str | None,
    headers: dict[str, str] | None,
    tokenizer: str | None,
    *,
    timeout_s: float = 30.0,
    request_timeout_s: float | None = None,
    connect_timeout_s: float | None = None,
    warn: Callable[[str], None] = _warn_on_stderr,
) -> TokenCounter | None:
    """The counter for ``--exact-lengths``; None when lengths are left as drawn (off, or the
    built-in simulator, for which words are already exact). ``timeout_s`` (silence) and
    ``request_timeout_s`` (total) bound every /tokenize call; with ``auto`` a stalled or failing
    /tokenize falls back with one ``warn`` line, with ``server`` it is a one-line ValueError."""
    if method == "off":
        return None
    if method == "tokenizer":
        if not tokenizer:
            raise ValueError("--exact-lengths tokenizer needs --tokenizer PATH/tokenizer.json")
        return HFTokenizerCounter(tokenizer)
    if endpoint is None:
        return None  # the built-in simulator: one token per word, exact by construction
    root = endpoint.removesuffix("/v1")
    server = ServerTokenizeCounter(
        root,
        model,
        headers,
        timeout_s=timeout_s,
        request_timeout_s=request_timeout_s,
        connect_timeout_s=connect_timeout_s,
    )
    if server.probe():
        if method == "server":
            return server
        fallback = HFTokenizerCounter(tokenizer) if tokenizer else WordCounter()
        return FallbackCounter(server, fallback, warn)
    server.close()
    if method == "server":
        raise ValueError(
            f"--exact-lengths server: {server.shown_url} does not answer "
            f"({server.last_failure}); use --exact-lengths tokenizer --tokenizer PATH, or auto"
        )
    if server.stalled:
        warn(f"--exact-lengths auto: {server.last_failure}; not counting through /tokenize")
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


def probe_text(part: int) -> str:
    """Content for the template probe's messages: a fresh nonce word first, so the probe
    shares no prefix with any workload prompt (or an earlier run's probe) beyond the chat
    template itself, and the server's prefix cache is not primed with request 0. Lowercase
    letters only, like the workload's words, so the template's boundary tokenizes alike."""
    while True:
        nonce = "".join(secrets.choice("bcdfghjklmnpqrstvwxz") for _ in range(10))
        if nonce not in WORDS:
            return f"{nonce} calibration probe part {part} count these tokens only"


def _probe_spec(layout: tuple[str, ...]) -> RequestSpec:
    if layout == ("prompt",):
        return RequestSpec(index=-1, prompt=probe_text(0))
    messages = tuple({"role": role, "content": probe_text(i)} for i, role in enumerate(layout))
    return RequestSpec(index=-1, messages=messages)


def measure_offsets(
    specs: Sequence[RequestSpec],
    counter: TokenCounter,
    base_url: str,
    model: str,
    headers: dict[str, str],
    timeout_s: float = 60.0,
    request_timeout_s: float | None = None,
    *,
    connect_timeout_s: float | None = None,
) -> dict[tuple[str, ...], int]:
    """Tokens the server adds to the counted content (chat template, BOS), per message layout
    of `specs`: one real request each (``max_tokens=1``) with the same roles but probe text of
    its own (see probe_text), usage.prompt_tokens minus the content count. Each request is
    bounded by ``timeout_s`` (silence) and ``request_timeout_s`` (total)."""
    layouts = list(dict.fromkeys(_layout(s) for s in specs if _parts(s)))
    bounds = Bounds(timeout_s, request_timeout_s or timeout_s, connect_timeout_s)
    offsets: dict[tuple[str, ...], int] = {}
    for layout in layouts:
        probe = _probe_spec(layout)
        body: dict[str, Any] = {"model": model, "max_tokens": 1, "stream": False}
        if probe.prompt is not None:
            body["prompt"] = probe.prompt
            path = "/completions"
        else:
            body["messages"] = list(probe.messages or ())
            path = "/chat/completions"
        usage = _probe_usage(base_url.rstrip("/") + path, headers, bounds, body)
        if not isinstance(usage.get("prompt_tokens"), int):
            continue  # no usage: leave the offset at 0 (stated in the run's description)
        offsets[layout] = usage["prompt_tokens"] - sum(counter.count(_parts(probe)))
    return offsets


def _probe_usage(
    url: str, headers: dict[str, str], bounds: Bounds, body: dict[str, Any]
) -> dict[str, Any]:
    """The probe's usage object; failures as one line naming the URL without credentials."""
    shown = redact_url(url)
    try:
        r = http_call("POST", url, headers, bounds, body)
    except DeadlineExceeded as exc:
        raise TokenizeError(f"{shown}: {exc}") from None
    except httpx.TimeoutException:
        raise TokenizeError(f"{shown}: silent for {bounds.silence_s:g} s (--timeout)") from None
    except httpx.HTTPError as exc:
        raise TokenizeError(f"{shown}: {type(exc).__name__}") from None
    if r.status_code != 200:
        raise TokenizeError(f"{shown} answered HTTP {r.status_code}")
    try:
        data = r.json()
    except ValueError:
        raise TokenizeError(f"{shown} answered with no JSON") from None
    usage = data.get("usage") if isinstance(data, dict) else None
    return usage if isinstance(usage, dict) else {}
