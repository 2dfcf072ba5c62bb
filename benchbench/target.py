"""The endpoint under test: checking it answers, learning its model name, and the bounded
one-off HTTP calls made around a run (/models, /tokenize, the template probe)."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

import httpx

from benchbench.errors import EndpointError
from benchbench.urls import redact_url

if TYPE_CHECKING:
    from benchbench.config import Target

T = TypeVar("T")


class DeadlineExceeded(httpx.TimeoutException):
    """A request that kept receiving bytes but did not finish within its total bound."""


@dataclass(frozen=True, slots=True)
class Bounds:
    """How long one call may wait: `silence_s` for any one byte (connect, write, read) and
    `total_s` from send to the last byte of the body. httpx's own timeouts bound single reads
    only, so a server that trickles a byte every half second would hold them for ever."""

    silence_s: float
    total_s: float
    connect_s: float | None = None

    def httpx_timeout(self) -> httpx.Timeout:
        silence = min(self.silence_s, self.total_s)
        connect = min(self.connect_s, silence) if self.connect_s else silence
        return httpx.Timeout(silence, connect=connect)


async def request_within(
    client: httpx.AsyncClient, method: str, url: str, bounds: Bounds, json: Any = None
) -> httpx.Response:
    """One request with its body read whole, cancelled once `bounds.total_s` has passed."""
    try:
        return await asyncio.wait_for(client.request(method, url, json=json), bounds.total_s)
    except TimeoutError:
        raise DeadlineExceeded(
            f"no complete answer within {bounds.total_s:g} s (--request-timeout)"
        ) from None


def run_sync(coro: Coroutine[Any, Any, T]) -> T:
    """Run `coro` to completion from synchronous code, on a helper thread when this thread is
    already running an event loop (asyncio.run refuses to nest)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    with ThreadPoolExecutor(1, thread_name_prefix="bench-http") as pool:
        return pool.submit(asyncio.run, coro).result()


def http_call(
    method: str, url: str, headers: dict[str, str], bounds: Bounds, json: Any = None
) -> httpx.Response:
    """One bounded request from synchronous code (see Bounds)."""

    async def call() -> httpx.Response:
        async with httpx.AsyncClient(headers=headers, timeout=bounds.httpx_timeout()) as client:
            return await request_within(client, method, url, bounds, json)

    return run_sync(call())


def auth_headers(api_key: str | None, headers: dict[str, str]) -> dict[str, str]:
    out = dict(headers)
    if api_key and not any(k.lower() == "authorization" for k in out):
        out["Authorization"] = f"Bearer {api_key}"
    return out


def discover_model(
    base_url: str,
    headers: dict[str, str],
    timeout_s: float = 10.0,
    request_timeout_s: float | None = None,
    *,
    connect_timeout_s: float | None = None,
) -> str:
    """The first model the server lists at GET /models; one clear line when that fails.
    `timeout_s` bounds silence, `request_timeout_s` (default: `timeout_s`) the whole call."""
    url = base_url.rstrip("/") + "/models"
    shown, shown_base = redact_url(url), redact_url(base_url)
    bounds = Bounds(timeout_s, request_timeout_s or timeout_s, connect_timeout_s)
    try:
        resp = http_call("GET", url, headers, bounds)
    except httpx.ConnectError:
        raise EndpointError(
            f"cannot connect to {shown_base}: is the server running? (check --endpoint)"
        ) from None
    except DeadlineExceeded:
        raise EndpointError(
            f"{shown} did not finish answering within {bounds.total_s:g} s "
            "(check --endpoint, or raise --request-timeout)"
        ) from None
    except httpx.TimeoutException:
        raise EndpointError(
            f"{shown} did not answer within {bounds.silence_s:g} s (check --endpoint)"
        ) from None
    except httpx.HTTPError as exc:
        reason = str(exc).splitlines()[0].replace(url, shown) if str(exc) else ""
        raise EndpointError(f"request to {shown} failed: {type(exc).__name__}: {reason}") from None
    if resp.status_code in (401, 403):
        raise EndpointError(
            f"{shown} answered {resp.status_code} (unauthorised): "
            "pass --api-key or set OPENAI_API_KEY"
        )
    if resp.status_code != 200:
        raise EndpointError(
            f"{shown} answered HTTP {resp.status_code}; "
            "pass --model NAME if the server has no /models"
        )
    try:
        data = resp.json()
        return str(data["data"][0]["id"])
    except (ValueError, KeyError, IndexError, TypeError):
        raise EndpointError(
            f"{shown} did not return an OpenAI model list; pass --model NAME (is this an "
            "OpenAI-compatible /v1 URL?)"
        ) from None


class TargetLink:
    """The endpoint as one run reaches it: base URL, headers with auth, the run's bounds, and
    the model name, asked of GET /models at most once per run (the prompt-length fit and the
    run itself share it)."""

    def __init__(self, target: Target, base_url: str) -> None:
        self.target = target
        self.base_url = base_url
        self.headers = auth_headers(target.api_key, target.headers)
        self._model = target.model

    def model(self) -> str:
        if self._model is None:
            t = self.target
            self._model = discover_model(
                self.base_url,
                self.headers,
                t.timeout_s,
                t.request_timeout_s,
                connect_timeout_s=t.connect_timeout_s,
            )
        return self._model
