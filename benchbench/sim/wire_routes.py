"""The simulator's routes for the APIs beyond OpenAI chat/completions: OpenAI Responses
(/v1/responses), Anthropic Messages (/v1/messages), llama.cpp (/completion), TGI
(/generate_stream, /info) and Ollama (/api/chat, /api/generate, /api/tags).

Each request body is translated to the chat/completions body the simulator already
validates (benchbench.sim.parse), so every API shares one engine, one output RNG and one
error sequence; only the wire format differs (benchbench.sim.wire_formats)."""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from typing import Any, Protocol

import orjson

from benchbench.sim import formats
from benchbench.sim.config import SimConfig
from benchbench.sim.engine import Engine, Seq
from benchbench.sim.http import HttpConnection, HttpRequest
from benchbench.sim.parse import RequestError, parse_generation, parse_json_object
from benchbench.sim.tokenizer import output_length, output_rng, output_word_ids
from benchbench.sim.wire_formats import (
    LlamaCppFormat,
    MessagesFormat,
    OllamaFormat,
    ResponsesFormat,
    TgiFormat,
)


class SimApp(Protocol):
    """What these routes use of the simulator's app (benchbench.sim.server.SimApp)."""

    config: SimConfig
    engine: Engine
    requests_total: int
    _error_rng: random.Random  # the app's one error sequence, shared by every route


# POST path -> (protocol, chat-shaped?)
GENERATION = {
    "/v1/responses": ("responses", True),
    "/v1/messages": ("messages", True),
    "/completion": ("llamacpp", False),
    "/generate_stream": ("tgi", False),
    "/api/chat": ("ollama", True),
    "/api/generate": ("ollama", False),
}
INFO = ("/info", "/api/tags", "/api/version")
ROUTES = frozenset(GENERATION) | frozenset(INFO)


class _WireSink:
    """Writes a sequence's tokens in one protocol's framing as the engine produces them."""

    __slots__ = ("_conn", "_format")

    def __init__(self, conn: HttpConnection, fmt: Any) -> None:
        self._conn, self._format = conn, fmt

    @property
    def paused(self) -> bool:
        return self._conn.paused

    def on_tokens(self, seq: Seq, start: int, stop: int) -> None:
        text = b"".join([formats.WORD_BYTES[i] for i in seq.word_ids[start:stop]]).decode()
        self._conn.write_raw(self._format.tokens(text))

    def on_done(self, seq: Seq) -> None:
        end = self._format.end(seq.prompt_tokens, seq.length, seq.finish_reason, seq.cached_tokens)
        self._conn.write_raw(end)
        self._conn.end_stream()


def serve(app: SimApp, request: HttpRequest, path: str, conn: HttpConnection) -> None:
    """Answer one request on a route of ROUTES, errors in the protocol's own shape."""
    protocol = GENERATION[path][0] if path in GENERATION else "info"
    try:
        if path in INFO:
            _require(request.method, "GET")
            conn.respond(200, _info(app, path))
            return
        _require(request.method, "POST")
        _check_auth(app, request)
        _generate(app, request, path, conn)
    except RequestError as exc:
        conn.respond(exc.status, error_body(protocol, exc))


def _generate(app: SimApp, request: HttpRequest, path: str, conn: HttpConnection) -> None:
    config = app.config
    app.requests_total += 1
    protocol, chat = GENERATION[path]
    # Drawn for every generation request, valid or not, from the app's one error sequence,
    # so the failures depend only on the seed and the request order, whatever the API.
    fail = config.error_rate > 0 and app._error_rng.random() < config.error_rate
    data = parse_json_object(request.body)
    openai, stream = _TRANSLATE[protocol](data, chat, config.model)
    req = parse_generation(orjson.dumps(openai), chat, config)
    if fail:
        raise RequestError(config.error_status, f"simulated error (error_rate={config.error_rate})")
    if not stream:
        raise RequestError(400, 'the simulator streams this API only: send "stream": true')
    rng = output_rng(config.seed, req.prompt_key, req.max_tokens)
    eos_prob = 0.0 if req.ignore_eos else config.eos_prob
    length, finish_reason = output_length(rng, req.max_tokens, req.min_tokens, eos_prob)
    fmt = _format(protocol, chat, f"sim-{app.requests_total}", config.model, req.prompt_tokens)
    conn.start_stream(fmt.content_type)
    conn.write_raw(fmt.start())
    sink = _WireSink(conn, fmt)
    seq = Seq(req.prompt_tokens, output_word_ids(rng, length), finish_reason, sink, req.prompt_key)
    engine = app.engine
    conn.on_lost = lambda: engine.cancel(seq)
    conn.on_resume = engine.notify
    engine.submit(seq)


def _format(protocol: str, chat: bool, request_id: str, model: str, prompt_tokens: int) -> Any:
    now = time.monotonic_ns()
    if protocol == "responses":
        return ResponsesFormat(f"resp_{request_id}", model)
    if protocol == "messages":
        return MessagesFormat(f"msg_{request_id}", model, prompt_tokens)
    if protocol == "llamacpp":
        return LlamaCppFormat(model, now)
    if protocol == "tgi":
        return TgiFormat()
    return OllamaFormat(model, chat, now)


def _responses(data: dict[str, Any], chat: bool, model: str) -> tuple[dict[str, Any], bool]:
    items = data.get("input")
    if isinstance(items, str):
        items = [{"role": "user", "content": items}]
    if isinstance(items, list):
        items = [_input_item(i, item) for i, item in enumerate(items)]
    if isinstance(data.get("instructions"), str) and isinstance(items, list):
        items = [{"role": "system", "content": data["instructions"]}, *items]
    body = _common(data, messages=items)
    body["max_tokens"] = data.get("max_output_tokens")
    return body, data.get("stream") is True


def _input_item(i: int, item: object) -> object:
    """A Responses input message; its input_text parts become chat text parts."""
    if not isinstance(item, dict) or not isinstance(item.get("content"), list):
        return item
    parts = []
    for part in item["content"]:
        if isinstance(part, dict) and part.get("type") in ("input_text", "output_text"):
            part = {"type": "text", "text": part.get("text")}
        parts.append(part)
    return {**item, "content": parts}


def _messages(data: dict[str, Any], chat: bool, model: str) -> tuple[dict[str, Any], bool]:
    if data.get("max_tokens") is None:
        raise RequestError(400, "max_tokens: field required")
    messages = data.get("messages")
    system = data.get("system")
    if isinstance(system, list):
        system = " ".join(b.get("text", "") for b in system if isinstance(b, dict))
    if isinstance(system, str) and system and isinstance(messages, list):
        messages = [{"role": "system", "content": system}, *messages]
    body = _common(data, messages=messages)
    body["max_tokens"] = data.get("max_tokens")
    return body, data.get("stream") is True


def _llamacpp(data: dict[str, Any], chat: bool, model: str) -> tuple[dict[str, Any], bool]:
    body = _common(data, prompt=data.get("prompt"))
    n_predict = data.get("n_predict")
    body["max_tokens"] = None if n_predict in (None, -1) else n_predict
    return body, data.get("stream") is True


def _tgi(data: dict[str, Any], chat: bool, model: str) -> tuple[dict[str, Any], bool]:
    parameters = data.get("parameters") or {}
    if not isinstance(parameters, dict):
        raise RequestError(422, "parameters must be an object")
    body = {"prompt": data.get("inputs"), "max_tokens": parameters.get("max_new_tokens")}
    return body, True  # /generate_stream always streams


def _ollama(data: dict[str, Any], chat: bool, model: str) -> tuple[dict[str, Any], bool]:
    if data.get("model") != model:
        raise RequestError(404, f"model {data.get('model')!r} not found, try pulling it first")
    options = data.get("options") or {}
    if not isinstance(options, dict):
        raise RequestError(400, "options must be an object")
    if chat:
        body: dict[str, Any] = {"messages": data.get("messages")}
    else:
        body = {"prompt": data.get("prompt")}
    num_predict = options.get("num_predict")
    body["max_tokens"] = None if num_predict in (None, -1) else num_predict
    return body, data.get("stream", True) is True  # Ollama streams unless told not to


def _common(data: dict[str, Any], **fields: Any) -> dict[str, Any]:
    """The fields every OpenAI-style body shares with the simulator's chat parser."""
    body = {k: data[k] for k in ("model", "ignore_eos", "min_tokens") if k in data}
    body.update(fields)
    return body


_TRANSLATE: dict[str, Callable[[dict[str, Any], bool, str], tuple[dict[str, Any], bool]]] = {
    "responses": _responses,
    "messages": _messages,
    "llamacpp": _llamacpp,
    "tgi": _tgi,
    "ollama": _ollama,
}


def error_body(protocol: str, exc: RequestError) -> bytes:
    """An error in the shape each API's clients expect."""
    if protocol == "messages":
        kind = "authentication_error" if exc.status == 401 else exc.error_type
        return orjson.dumps({"type": "error", "error": {"type": kind, "message": exc.message}})
    if protocol == "tgi":
        return orjson.dumps({"error": exc.message, "error_type": exc.error_type})
    if protocol == "ollama":
        return orjson.dumps({"error": exc.message})
    return formats.error_body(exc.message, exc.status, exc.error_type)


def _info(app: SimApp, path: str) -> bytes:
    model = app.config.model
    if path == "/api/tags":
        return orjson.dumps({"models": [{"name": model, "model": model, "size": 0}]})
    if path == "/api/version":
        return b'{"version":"0.0.0-benchbench-sim"}'
    return orjson.dumps(
        {"model_id": model, "max_input_tokens": 1_000_000, "router": "benchbench-sim"}
    )


def _check_auth(app: SimApp, request: HttpRequest) -> None:
    key = app.config.api_key
    if key is None:
        return
    headers = request.headers
    if headers.get("authorization") != f"Bearer {key}" and headers.get("x-api-key") != key:
        raise RequestError(
            401,
            "missing or wrong API key: send 'x-api-key' or 'Authorization: Bearer'",
            "authentication_error",
        )


def _require(method: str, allowed: str) -> None:
    if method != allowed:
        raise RequestError(405, f"method {method} not allowed; use {allowed}")
