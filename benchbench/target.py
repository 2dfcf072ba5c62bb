"""The endpoint under test: checking it answers, learning its model name, and the bounded
one-off HTTP calls made around a run (/models, /tokenize, the template probe)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

import httpx

from benchbench.errors import ConfigError, EndpointError
from benchbench.urls import redact_url

if TYPE_CHECKING:
    from benchbench.config import Target
    from loadgen.endpoints import Endpoint

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
    the model name, asked of the server at most once per run (the prompt-length fit and the
    run itself share it).

    `given_url` is what the user gave (an OpenAI base such as http://host:8000/v1);
    `base_url` is what the API's paths are appended to: the same URL, or for a native API
    (llamacpp, tgi, ollama-*) the server root, a trailing /v1 dropped."""

    def __init__(self, target: Target, base_url: str) -> None:
        from loadgen.apis import BadAdapter, lookup

        self.target = target
        try:
            self.api = lookup(target.api)
        except BadAdapter as exc:
            raise ConfigError(str(exc)) from None
        self.given_url = base_url.rstrip("/")
        self.base_url = server_root(self.given_url) if self.api.at_root else self.given_url
        self.headers = api_headers(
            target.api_key, target.headers, self.api.auth, dict(self.api.headers)
        )
        self._model = target.model

    def model(self) -> str:
        if self._model is None:
            self._model = self._discover()
        return self._model

    def endpoint(self, stream: bool, count_output: Callable[[str], int] | None) -> Endpoint:
        """The run's Endpoint for --api (built in or a plugin), for this link's model."""
        from loadgen.apis import AdapterOptions, BadAdapter, make_endpoint

        options = AdapterOptions(model=self.model(), stream=stream, count_output=count_output)
        try:
            return make_endpoint(self.target.api, options)
        except BadAdapter as exc:  # a plugin that does not load: one line, not a traceback
            raise ConfigError(str(exc)) from None

    def _discover(self) -> str:
        t, how = self.target, self.api.models
        bounds = Bounds(t.timeout_s, t.request_timeout_s, t.connect_timeout_s)
        if how == "none":
            return "default"
        if how == "ollama":
            return discover_native(self.base_url + "/api/tags", self.headers, bounds, _ollama_name)
        if how == "tgi":
            return discover_native(self.base_url + "/info", self.headers, bounds, _tgi_name)
        base = self.given_url
        if self.api.at_root and not base.endswith("/v1"):
            base += "/v1"  # a native API given the root still lists models at /v1/models
        return discover_model(
            base,
            self.headers,
            t.timeout_s,
            t.request_timeout_s,
            connect_timeout_s=t.connect_timeout_s,
        )


def server_root(url: str) -> str:
    """The server root of an OpenAI base URL: a trailing /v1 dropped."""
    url = url.rstrip("/")
    return url[: -len("/v1")] if url.endswith("/v1") else url


def api_headers(
    api_key: str | None, headers: dict[str, str], auth: str, defaults: dict[str, str]
) -> dict[str, str]:
    """The headers of every request: the user's, the API key the way the API takes it
    (Authorization: Bearer, or x-api-key), and the API's own defaults (anthropic-version)
    unless the user gave them."""
    if auth == "bearer":
        out = auth_headers(api_key, headers)
    else:
        out = dict(headers)
        if api_key and not any(k.lower() == auth for k in out):
            out[auth] = api_key
    given = {k.lower() for k in out}
    out.update({k: v for k, v in defaults.items() if k.lower() not in given})
    return out


def discover_native(
    url: str, headers: dict[str, str], bounds: Bounds, name_of: Callable[[Any], str]
) -> str:
    """The model a native API names at `url` (Ollama /api/tags, TGI /info); one clear line
    when that fails."""
    shown = redact_url(url)
    try:
        resp = http_call("GET", url, headers, bounds)
    except httpx.ConnectError:
        raise EndpointError(
            f"cannot connect to {shown}: is the server running? (check --endpoint)"
        ) from None
    except httpx.HTTPError as exc:
        raise EndpointError(f"request to {shown} failed: {type(exc).__name__}") from None
    if resp.status_code != 200:
        raise EndpointError(
            f"{shown} answered HTTP {resp.status_code}; pass --model NAME (check --endpoint)"
        )
    try:
        return name_of(resp.json())
    except (ValueError, KeyError, IndexError, TypeError):
        raise EndpointError(f"{shown} did not name a model; pass --model NAME") from None


def _ollama_name(data: Any) -> str:
    return str(data["models"][0]["name"])


def _tgi_name(data: Any) -> str:
    return str(data["model_id"])
