"""The fault server: raw asyncio, so every byte it writes is the fault's own choice. Generation
requests go to the faults of a FaultMix in turn; every other route answers correctly."""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from dataclasses import dataclass
from typing import Any

import orjson

from benchbench.sim.address import ServedAt
from benchbench.sim.fault_handlers import MAX_TOKENS
from benchbench.sim.fault_wire import FaultRequest, Reply
from benchbench.sim.faults import FaultMix, parse_faults
from benchbench.sim.tokenizer import token_ids


@dataclass(frozen=True, slots=True)
class _Request:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes


async def _read_request(reader: asyncio.StreamReader) -> _Request | None:
    """The next request on the connection; None when the client left or sent garbage."""
    try:
        head = await reader.readuntil(b"\r\n\r\n")
        lines = head[:-4].decode("latin-1").split("\r\n")
        method, target, _ = lines[0].split(" ", 2)
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        length = int(headers.get("content-length", "0"))
        body = await reader.readexactly(length) if length > 0 else b""
    except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError, ConnectionError):
        return None
    return _Request(method, target.split("?", 1)[0], headers, body)


def _generation(body: bytes, chat: bool) -> FaultRequest | None:
    """The few fields a fault needs; None when the body is not a JSON object."""
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(data, dict):
        return None
    if chat:
        messages = data.get("messages") if isinstance(data.get("messages"), list) else []
        text = " ".join(str(m.get("content", "")) for m in messages if isinstance(m, dict))
        asked = data.get("max_completion_tokens", data.get("max_tokens"))
    else:
        text = str(data.get("prompt", ""))
        asked = data.get("max_tokens")
    options = data.get("stream_options")
    usage = isinstance(options, dict) and bool(options.get("include_usage"))
    max_tokens = asked if isinstance(asked, int) and asked > 0 else 16
    return FaultRequest(
        chat=chat,
        stream=data.get("stream") is True,
        max_tokens=min(max_tokens, MAX_TOKENS),
        include_usage=usage,
        prompt_tokens=len(text.split()),
    )


class FaultServer(ServedAt):
    """A running fault server. `await stop()` ends it and every connection it holds."""

    def __init__(self, mix: FaultMix, host: str, model: str, seed: int = 0) -> None:
        self.mix = mix
        self.host = host
        self.model = model
        self.port = 0
        self.served: Counter[str] = Counter()  # generation requests answered, per fault
        self._pick = mix.picker(seed)
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._stopped = asyncio.Event()
        self._number = 0

    async def _start(self, port: int) -> None:
        self._server = await asyncio.start_server(self._connection, self.host, port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def serve_forever(self) -> None:
        await self._stopped.wait()

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=5)
        self._stopped.set()

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            while (request := await _read_request(reader)) is not None:
                keep = await self._answer(request, reader, writer)
                if not keep or request.headers.get("connection", "").lower() == "close":
                    break
        except (ConnectionError, asyncio.CancelledError):
            # Cancelled by stop(): end quietly, the connection dies with the server.
            writer.transport.abort()
        finally:
            with contextlib.suppress(Exception):
                writer.close()
            self._tasks.discard(task)

    async def _answer(
        self, request: _Request, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> bool:
        path, method = request.path, request.method
        if path in ("/v1/chat/completions", "/v1/completions") and method == "POST":
            req = _generation(request.body, path.endswith("chat/completions"))
            if req is None:
                return await _plain(writer, 400, {"error": {"message": "body must be JSON"}})
            fault = self._pick()
            self.served[fault.name] += 1
            self._number += 1
            return await fault.respond(Reply(req, reader, writer, self.model, self._number))
        if path == "/health" and method == "GET":
            return await _plain(writer, 200, {"status": "ok"})
        if path == "/v1/models" and method == "GET":
            model = {"id": self.model, "object": "model", "owned_by": "benchbench-faults"}
            return await _plain(writer, 200, {"object": "list", "data": [model]})
        if path in ("/tokenize", "/v1/tokenize") and method == "POST":
            try:
                data = orjson.loads(request.body)
                text = data.get("content", data.get("prompt"))
            except (orjson.JSONDecodeError, AttributeError):
                text = None
            if not isinstance(text, str):
                return await _plain(writer, 400, {"error": {"message": "need 'content'"}})
            ids = token_ids(text)
            return await _plain(writer, 200, {"tokens": ids, "count": len(ids)})
        return await _plain(writer, 404, {"error": {"message": f"no route {method} {path}"}})


async def _plain(writer: asyncio.StreamWriter, status: int, obj: dict) -> bool:
    body = orjson.dumps(obj)
    head = f"HTTP/1.1 {status} {'OK' if status == 200 else 'Error'}\r\n"
    head += f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    writer.write(head.encode() + body)
    await writer.drain()
    return True


async def start_faults(
    spec: str | FaultMix, host: str = "127.0.0.1", port: int = 0, *, model: str, seed: int = 0
) -> FaultServer:
    """Start a fault server in the running event loop; port 0 picks a free port."""
    mix = parse_faults(spec) if isinstance(spec, str) else spec
    server = FaultServer(mix, host, model, seed)
    await server._start(port)
    return server
