"""The simulated OpenAI-compatible endpoint: routes, responses, and the in-loop server.

Routes: GET /health, GET /metrics, GET /v1/models, POST /v1/completions,
POST /v1/chat/completions, POST /tokenize (llama.cpp style; also /v1/tokenize).
"""

from __future__ import annotations

import asyncio
import random
import time
from types import TracebackType

import orjson

from benchbench.sim import formats, wire_routes
from benchbench.sim.address import ServedAt
from benchbench.sim.config import SimConfig
from benchbench.sim.engine import Engine, Seq
from benchbench.sim.http import HttpConnection, HttpRequest
from benchbench.sim.metrics import CONTENT_TYPE as METRICS_CONTENT_TYPE
from benchbench.sim.metrics import SimMetrics
from benchbench.sim.parse import (
    GenerationRequest,
    RequestError,
    parse_generation,
    parse_json_object,
)
from benchbench.sim.pooling import POOLING_ROUTES, PoolingServer
from benchbench.sim.tokenizer import output_length, output_rng, output_word_ids, token_ids

_GENERATION_ROUTES = {"/v1/completions": False, "/v1/chat/completions": True}


class _StreamSink:
    """Writes a sequence's tokens as SSE events as the engine produces them."""

    __slots__ = ("_conn", "_format", "_include_usage", "_prompt_tokens", "_write")

    def __init__(self, conn: HttpConnection, fmt: formats.StreamFormat, req: GenerationRequest):
        self._conn = conn
        self._format = fmt
        self._include_usage = req.include_usage
        self._prompt_tokens = req.prompt_tokens
        # The transport's own write: one call per event, no wrapper. A write after
        # the peer left is dropped by asyncio, and the engine cancels the sequence.
        self._write = conn.transport.write  # type: ignore[union-attr]

    @property
    def paused(self) -> bool:
        return self._conn.paused

    def on_tokens(self, seq: Seq, start: int, stop: int) -> None:
        if stop - start == 1:
            self._write(self._format.word_event(seq.word_ids[start]))
        else:
            words = formats.WORD_BYTES
            text = b"".join([words[i] for i in seq.word_ids[start:stop]])
            self._write(self._format.token_event(text))

    def on_done(self, seq: Seq) -> None:
        conn = self._conn
        conn.write_raw(self._format.finish_event(seq.finish_reason))
        if self._include_usage:
            conn.write_raw(
                self._format.usage_event(self._prompt_tokens, seq.length, seq.cached_tokens)
            )
        conn.write_raw(formats.DONE_CHUNK)
        conn.end_stream()


class _BufferSink:
    """Answers a non-streamed request with one JSON body when the sequence ends."""

    __slots__ = ("_conn", "_request_id", "_created", "_model", "_req")

    def __init__(
        self,
        conn: HttpConnection,
        request_id: str,
        created: int,
        model: str,
        req: GenerationRequest,
    ) -> None:
        self._conn = conn
        self._request_id = request_id
        self._created = created
        self._model = model
        self._req = req

    @property
    def paused(self) -> bool:
        return False

    def on_tokens(self, seq: Seq, start: int, stop: int) -> None:
        pass

    def on_done(self, seq: Seq) -> None:
        text = b"".join(formats.WORD_BYTES[i] for i in seq.word_ids).decode()
        body = formats.completion_body(
            self._request_id,
            self._created,
            self._model,
            self._req.chat,
            text,
            seq.finish_reason,
            self._req.prompt_tokens,
            seq.length,
            seq.cached_tokens,
        )
        self._conn.respond(200, body)


class SimApp:
    """Request handling for one simulator instance (one engine, one config)."""

    def __init__(self, config: SimConfig) -> None:
        self.config = config
        self.engine = Engine(config)
        self._error_rng = random.Random(config.seed)
        self.requests_total = 0
        self._metrics = SimMetrics(self.engine, lambda: self.requests_total)
        self.pooling = PoolingServer(config)  # /v1/embeddings, /v1/rerank
        self._auth = f"Bearer {config.api_key}" if config.api_key else None
        self._created = int(time.time())

    def handle(self, request: HttpRequest, conn: HttpConnection) -> None:
        path = request.path.split("?", 1)[0]
        try:
            self._route(request, path, conn)
        except RequestError as exc:
            conn.respond(exc.status, formats.error_body(exc.message, exc.status, exc.error_type))

    def _route(self, request: HttpRequest, path: str, conn: HttpConnection) -> None:
        method = request.method
        if path in _GENERATION_ROUTES:
            self._require(method, "POST")
            self._check_auth(request)
            self._generate(request, _GENERATION_ROUTES[path], conn)
        elif path in POOLING_ROUTES:
            self._require(method, "POST")
            self._check_auth(request)
            self.pooling.handle(path, request.body, conn)
        elif path == "/health":
            self._require(method, "GET")
            conn.respond(200, b'{"status":"ok"}')
        elif path == "/metrics":
            self._require(method, "GET")
            conn.respond(200, self._metrics.render(), METRICS_CONTENT_TYPE)
        elif path == "/v1/models":
            self._require(method, "GET")
            self._check_auth(request)
            conn.respond(200, self._models())
        elif path in ("/tokenize", "/v1/tokenize"):
            self._require(method, "POST")
            data = parse_json_object(request.body)
            text = data.get("content", data.get("prompt"))
            if not isinstance(text, str):
                raise RequestError(400, "tokenize needs a string field 'content'")
            ids = token_ids(text)
            conn.respond(200, orjson.dumps({"tokens": ids, "count": len(ids)}))
        elif path in wire_routes.ROUTES:  # Responses, Messages, llama.cpp, TGI, Ollama
            wire_routes.serve(self, request, path, conn)
        else:
            raise RequestError(404, f"no route {path}", "NotFoundError")

    def _generate(self, request: HttpRequest, chat: bool, conn: HttpConnection) -> None:
        config = self.config
        self.requests_total += 1
        number = self.requests_total
        # Drawn for every generation request, valid or not, so the error sequence
        # depends only on the seed and the request order.
        fail = config.error_rate > 0 and self._error_rng.random() < config.error_rate
        req = parse_generation(request.body, chat, config)
        if fail:
            raise RequestError(
                config.error_status,
                f"simulated error (error_rate={config.error_rate})",
                "rate_limit_error" if config.error_status == 429 else "server_error",
            )
        rng = output_rng(config.seed, req.prompt_key, req.max_tokens)
        eos_prob = 0.0 if req.ignore_eos else config.eos_prob
        length, finish_reason = output_length(rng, req.max_tokens, req.min_tokens, eos_prob)
        word_ids = output_word_ids(rng, length)
        request_id = f"{'chatcmpl' if chat else 'cmpl'}-sim-{number}"
        if req.stream:
            fmt = formats.stream_format(
                request_id, self._created, config.model, chat,
                config.reasoning_of(length), config.tool_calls,
            )  # fmt: skip
            sink: _StreamSink | _BufferSink = _StreamSink(conn, fmt, req)
            conn.start_stream()
            if chat:
                conn.write_raw(fmt.role_event())
        else:
            sink = _BufferSink(conn, request_id, self._created, config.model, req)
        seq = Seq(req.prompt_tokens, word_ids, finish_reason, sink, req.prompt_key)
        engine = self.engine
        conn.on_lost = lambda: engine.cancel(seq)
        conn.on_resume = engine.notify
        engine.submit(seq)

    def _check_auth(self, request: HttpRequest) -> None:
        if self._auth is not None and request.headers.get("authorization") != self._auth:
            raise RequestError(
                401,
                "missing or wrong API key: send 'Authorization: Bearer <key>'",
                "authentication_error",
            )

    def _models(self) -> bytes:
        model = {
            "id": self.config.model,
            "object": "model",
            "created": self._created,
            "owned_by": "benchbench-sim",
        }
        return orjson.dumps({"object": "list", "data": [model]})

    @staticmethod
    def _require(method: str, allowed: str) -> None:
        if method != allowed:
            raise RequestError(405, f"method {method} not allowed; use {allowed}")


class SimServer(ServedAt):
    """A running in-loop simulator. `await stop()` (or `async with`) to end it."""

    def __init__(self, config: SimConfig, host: str) -> None:
        self.config = config
        self.host = host
        self.port = 0
        self.app = SimApp(config)
        self._server: asyncio.Server | None = None
        self._engine_task: asyncio.Task[None] | None = None
        self._connections: set[HttpConnection] = set()

    async def _start(self, port: int) -> None:
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(self._new_connection, self.host, port)
        self.port = self._server.sockets[0].getsockname()[1]
        self._engine_task = asyncio.create_task(self.app.engine.run(), name="sim-engine")

    def _new_connection(self) -> HttpConnection:
        conn = HttpConnection(self.app.handle)
        conn.on_close = self._connections.discard
        self._connections.add(conn)
        return conn

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
        for conn in list(self._connections):
            conn.abort()
        if self._engine_task is not None:
            self._engine_task.cancel()
            # wait() rather than await: an engine that already failed must not raise here.
            await asyncio.wait([self._engine_task])
        if self._server is not None:
            await self._server.wait_closed()
            self._server = None

    async def serve_forever(self) -> None:
        """Wait until the engine stops (cancelled, or it failed)."""
        assert self._engine_task is not None
        await self._engine_task

    async def __aenter__(self) -> SimServer:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()


async def start_sim(
    config: SimConfig | None = None, host: str = "127.0.0.1", port: int = 0
) -> SimServer:
    """Start the simulator in the running event loop; port 0 picks a free port."""
    server = SimServer(config if config is not None else SimConfig(), host)
    await server._start(port)
    return server
