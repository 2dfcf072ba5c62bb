"""Token counters for exact prompt lengths (benchbench.exact), in order of preference under
``--exact-lengths auto``: the server's own tokenize endpoint (llama.cpp and the simulator:
``POST /tokenize {"content"}``; vLLM and SGLang: ``POST /tokenize {"model", "prompt"}``), a
local Hugging Face ``tokenizer.json`` (``--tokenizer``), or words. Every call to the server is
bounded by ``--timeout`` (silence) and ``--request-timeout`` (total)."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any

import httpx

from benchbench.exact import TokenCounter, TokenizeError, json_answer
from benchbench.target import Bounds, DeadlineExceeded, request_within, run_sync
from benchbench.urls import redact_url

__all__ = [
    "FallbackCounter",
    "HFTokenizerCounter",
    "ServerTokenizeCounter",
    "WordCounter",
    "make_counter",
]


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
        data = json_answer(r.status_code, r.json, self.shown_url)
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
