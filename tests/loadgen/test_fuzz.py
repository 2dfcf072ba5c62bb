"""Seeded fuzz of response parsing: thousands of mutated streams and bodies (random bytes,
invalid UTF-8, wrong JSON types at every field, giant lines, broken SSE framing, CR/CRLF/LF,
random splits across reads, missing or repeated [DONE], error objects) must each become one
record, with no error or a known error kind, and every record must be storable.

Part one calls `finish()` directly (fast, thousands of cases); part two serves a few hundred
of the same cases over loopback HTTP through the Runner with every transport, into a real
store, and checks the books: records handed to the sink == sent == rows stored, no unhandled
exception anywhere, bounded time. A failing case prints its seed and mutations, so it can be
replayed with `_case(random.Random(seed))`."""

from __future__ import annotations

import asyncio
import copy
import gc
import random
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import pytest

from benchbench.store import BatchWriter, open_store
from loadgen import errors
from loadgen.client import HttpSettings, make_client
from loadgen.endpoints import OpenAIEndpoint
from loadgen.load import LoadPlan
from loadgen.responsefields import MAX_COUNT
from loadgen.runner import Runner
from loadgen.spec import RequestRecord, RequestSpec

SEED = 10_2026
PARSER_CASES = 2_400  # each through four endpoints (chat/completions x stream/JSON)
HTTP_CASES = 64  # per (api, stream) pair and transport: 256 requests per transport

RAW = "__RAW__"  # replaced in the serialised JSON by one of these (not valid for orjson.dumps)
RAW_VALUES = [b"1e999", b"-1e999", b"123456789012345678901234567890", b"-0", b"1E400", b"NaN"]
WRONG = [
    "x",
    "",
    5,
    -5,
    0,
    1.5,
    2**31,
    MAX_COUNT,
    2**63 - 1,
    -(2**63),
    True,
    False,
    None,
    [],
    [1],
    {},
    {"a": 1},
    [{"a": 1}],
    "\u0000",
    1e308,
    RAW,
]
# Paths into an event (chat: delta, completions: text) or a JSON body (message).
PATHS = [
    ("choices",),
    ("choices", 0),
    ("choices", 0, "delta"),
    ("choices", 0, "delta", "content"),
    ("choices", 0, "delta", "reasoning_content"),
    ("choices", 0, "message"),
    ("choices", 0, "message", "content"),
    ("choices", 0, "text"),
    ("choices", 0, "finish_reason"),
    ("usage",),
    ("usage", "prompt_tokens"),
    ("usage", "completion_tokens"),
    ("timings",),
    ("timings", "prompt_n"),
    ("error",),
    ("error", "message"),
]
BAD_UTF8 = [b"\xff", b"\xfe\xff", b"\xc3(", b"\xed\xa0\x80", b"\xf0\x28\x8c\x28", b"\x80\x80"]


@dataclass
class Case:
    seed: int
    stream: bool  # the body was built as an event stream (else as one JSON document)
    body: bytes
    how: list[str]  # the mutations applied, for the failure message
    api: str = ""
    tokens: int | None = None  # an unharmed response: the token events it must yield


def _text(rng: random.Random) -> str:
    return rng.choice([" the", " a", "é", "日本", " 🙂", "\n", "\\", '"', " x" * rng.randint(1, 5)])


def _chunk(api: str, text: Any, finish: Any = None) -> dict[str, Any]:
    if api == "chat":
        choice = {"index": 0, "delta": {"content": text}, "finish_reason": finish}
    else:
        choice = {"index": 0, "text": text, "finish_reason": finish}
    return {"id": "c", "object": "chunk", "choices": [choice]}


def _events(rng: random.Random, api: str) -> list[Any]:
    n = rng.randint(0, 8)
    out: list[Any] = []
    if api == "chat":
        out.append({"choices": [{"index": 0, "delta": {"role": "assistant"}}]})
    out += [_chunk(api, _text(rng)) for _ in range(n)]
    out.append(_chunk(api, "", "length"))
    usage = {"prompt_tokens": rng.randint(0, 9), "completion_tokens": n}
    last: dict[str, Any] = {"choices": [], "usage": usage}
    if rng.random() < 0.3:
        last["timings"] = {"prompt_n": 3, "prompt_ms": 1.5, "predicted_n": n}
    out.append(last)
    return out


def _doc(rng: random.Random, api: str) -> dict[str, Any]:
    text = "".join(_text(rng) for _ in range(rng.randint(0, 6)))
    choice: dict[str, Any] = {"index": 0, "finish_reason": "stop"}
    if api == "chat":
        choice["message"] = {"role": "assistant", "content": text}
    else:
        choice["text"] = text
    doc: dict[str, Any] = {"id": "x", "choices": [choice]}
    doc["usage"] = {"prompt_tokens": 4, "completion_tokens": rng.randint(0, 9)}
    return doc


def _wrong(rng: random.Random, *more: Any) -> Any:
    """A value of a wrong type, fresh (never shared between two places in one document)."""
    return copy.deepcopy(rng.choice([*WRONG, *more]))


def _set(obj: Any, path: tuple[Any, ...], value: Any) -> bool:
    """Put `value` at `path`, creating what is missing on the way (a list's only index is 0);
    False where the document's shape (already mutated) does not let the path through."""
    for key, after in zip(path, path[1:], strict=False):
        fresh: Any = [] if isinstance(after, int) else {}
        if isinstance(obj, dict) and isinstance(key, str):
            obj = obj.setdefault(key, fresh)
        elif isinstance(obj, list) and isinstance(key, int):
            if not obj:
                obj.append(fresh)
            obj = obj[0]
        else:
            return False
    last = path[-1]
    if isinstance(obj, dict) and isinstance(last, str):
        obj[last] = value
    elif isinstance(obj, list) and isinstance(last, int):
        obj[:1] = [value]
    else:
        return False
    return True


def _dumps(rng: random.Random, value: Any) -> bytes:
    out = orjson.dumps(value)
    while RAW.encode() in out:
        out = out.replace(b'"' + RAW.encode() + b'"', rng.choice(RAW_VALUES), 1)
    return out


def _wrong_types(rng: random.Random, objs: list[Any], how: list[str]) -> None:
    for _ in range(rng.randint(1, 3)):
        if not objs:
            return
        i = rng.randrange(len(objs))
        if rng.random() < 0.1:
            objs[i] = _wrong(rng)  # the whole event or document
            how.append(f"obj{i}={objs[i]!r}")
            continue
        path, value = rng.choice(PATHS), _wrong(rng)
        if _set(objs[i], path, value):
            how.append(f"obj{i}.{'.'.join(map(str, path))}={value!r}")


def _structure(rng: random.Random, events: list[Any], how: list[str]) -> None:
    roll = rng.random()
    if roll < 0.2 and events:
        events.insert(rng.randrange(len(events) + 1), {"error": _wrong(rng, "boom")})
        how.append("error object")
    elif roll < 0.3:
        rng.shuffle(events)
        how.append("shuffled")
    elif roll < 0.4 and events:
        events += rng.sample(events, k=rng.randint(1, len(events)))
        how.append("duplicated events")
    elif roll < 0.5 and events:
        big = "w" * rng.randint(100_000, 300_000)
        events.insert(rng.randrange(len(events) + 1), _chunk(rng.choice(["chat", "x"]), big))
        how.append("giant event")


def _frame(rng: random.Random, events: list[Any], how: list[str]) -> bytes:
    prefix = rng.choice([b"data: ", b"data: ", b"data:", b"data:  ", b""])
    end = rng.choice([b"\n\n", b"\n\n", b"\n", b"\n\n\n"])
    if prefix != b"data: " or end != b"\n\n":
        how.append(f"framing {prefix!r} {end!r}")
    out: list[bytes] = []
    for event in events:
        data = _dumps(rng, event)
        roll = rng.random()
        if roll < 0.05:
            cut = rng.randrange(len(data) + 1)
            data = data[:cut] + b"\ndata: " + data[cut:]  # one JSON over two data lines
        elif roll < 0.08:
            out.append(b": keep-alive\n\n" if rng.random() < 0.5 else b"event: message\n")
        elif roll < 0.1:
            out.append(b"id: 7\nretry: 10\n")
        out.append(prefix + data + end)
    done = rng.random()
    if done < 0.7:
        out.append(b"data: [DONE]\n\n")
    elif done < 0.8:
        out.append(b"data: [DONE]\n\ndata: [DONE]\n\n")
        how.append("[DONE] twice")
    elif done < 0.85 and out:
        out.insert(rng.randrange(len(out)), b"data: [DONE]\n\n")
        how.append("[DONE] inside")
    elif done < 0.9:
        out.append(rng.choice([b"data:[DONE]", b"data: [done]\n\n", b"data: [DONE]\r\n\r\n"]))
        how.append("odd [DONE]")
    else:
        how.append("no [DONE]")
    return b"".join(out)


def _bytes(rng: random.Random, body: bytes, how: list[str]) -> bytes:
    """Byte-level damage, after serialisation."""
    roll = rng.random()
    if roll < 0.15:
        body = body.replace(b"\n", rng.choice([b"\r\n", b"\r"]))
        how.append("CRLF/CR line ends")
    elif roll < 0.2:
        lines = body.split(b"\n")
        ends = [rng.choice([b"\n", b"\r\n", b"\r"]) for _ in lines[1:]]
        body = lines[0] + b"".join(e + line for e, line in zip(ends, lines[1:], strict=True))
        how.append("mixed line ends")
    roll = rng.random()
    if roll < 0.12 and body:
        at = rng.randrange(len(body))
        body = body[:at] + rng.choice(BAD_UTF8) + body[at:]
        how.append("invalid UTF-8")
    elif roll < 0.2 and body:
        body = body[: rng.randrange(len(body))]
        how.append("truncated")
    elif roll < 0.25 and body:
        data = bytearray(body)
        for _ in range(rng.randint(1, 8)):
            data[rng.randrange(len(data))] = rng.randrange(256)
        body = bytes(data)
        how.append("flipped bytes")
    elif roll < 0.28:
        body = b"data: " + b"z" * rng.randint(100_000, 400_000) + rng.choice([b"", b"\n\n"])
        how.append("giant line")
    return body


def _case(rng: random.Random, seed: int) -> Case:
    api = rng.choice(["chat", "completions"])
    how = [api]
    roll = rng.random()
    if roll < 0.04:
        return Case(seed, True, rng.randbytes(rng.randint(0, 2_000)), ["random bytes"])
    if roll < 0.06:
        return Case(seed, True, b"", ["empty body"])
    if roll < 0.2:
        return _clean(rng, seed, api)
    if roll < 0.7:
        events = _events(rng, api)
        if rng.random() < 0.6:
            _wrong_types(rng, events, how)
        _structure(rng, events, how)
        return Case(seed, True, _bytes(rng, _frame(rng, events, how), how), how)
    docs: list[Any] = [_doc(rng, api)]
    if rng.random() < 0.2:
        docs[0]["error"] = _wrong(rng, {"message": "overloaded"})
        how.append("error field")
    if rng.random() < 0.8:
        _wrong_types(rng, docs, how)
    if rng.random() < 0.05:
        big = "v" * rng.randint(100_000, 300_000)
        docs = [{"choices": [{"text": big, "message": {"content": big}}]}]
        how.append("giant body")
    return Case(seed, False, _bytes(rng, _dumps(rng, docs[0]), how), how)


def _clean(rng: random.Random, seed: int, api: str) -> Case:
    """An unharmed response: only its line ends (LF, CRLF, CR) and its reads vary."""
    if rng.random() < 0.6:
        events = _events(rng, api)
        body = b"".join(b"data: " + orjson.dumps(e) + b"\n\n" for e in events)
        body = (body + b"data: [DONE]\n\n").replace(b"\n", rng.choice([b"\n", b"\r\n", b"\r"]))
        tokens = events[-1]["usage"]["completion_tokens"]
        return Case(seed, True, body, [api, "clean"], api, tokens)
    doc = _doc(rng, api)
    choice = doc["choices"][0]
    text = choice["message"]["content"] if api == "chat" else choice["text"]
    return Case(seed, False, orjson.dumps(doc), [api, "clean"], api, 1 if text else 0)


def cases(n: int, seed: int = SEED) -> list[Case]:
    master = random.Random(seed)
    out = []
    for _ in range(n):
        s = master.randrange(2**32)
        out.append(_case(random.Random(s), s))
    return out


def _split(rng: random.Random, body: bytes) -> list[bytes]:
    """The body as the reads a client might see it in."""
    if not body:
        return []
    if len(body) < 200 and rng.random() < 0.2:
        return [body[i : i + 1] for i in range(len(body))]  # one read per byte
    cuts = sorted(rng.sample(range(1, len(body) + 1), k=min(len(body), rng.randint(1, 30))))
    cuts = sorted({0, *cuts, len(body)})
    return [body[a:b] for a, b in zip(cuts, cuts[1:], strict=False)]


def _count_words(text: str) -> int:
    return len(text.split())


ENDPOINTS = [
    OpenAIEndpoint("chat", "m"),
    OpenAIEndpoint("completions", "m", count_output=_count_words),
    OpenAIEndpoint("chat", "m", stream=False, count_output=_count_words),
    OpenAIEndpoint("completions", "m", stream=False),
]


def _check(record: RequestRecord, times: list[int], case: Case) -> None:
    """What every record must be, whatever the bytes were."""
    where = f"seed {case.seed} ({', '.join(case.how)})"
    assert record.error_kind is None or record.error_kind in errors.ALL, where
    if record.error_kind is not None:
        assert isinstance(record.error_detail, str) and record.error_detail, where
    assert len(record.event_tokens) == len(record.event_ns), where
    assert record.event_ns == sorted(record.event_ns), where
    assert set(record.event_ns) <= set(times), where
    if record.event_ns:
        assert (record.first_token_ns, record.last_token_ns) == (
            record.event_ns[0],
            record.event_ns[-1],
        ), where
    for count in (record.input_tokens, record.output_tokens, *record.event_tokens):
        assert count is None or (type(count) is int and 0 <= count <= MAX_COUNT), where
    assert record.output_tokens_source in (None, "usage", "client_tokenizer"), where
    assert all(isinstance(n, str) for n in record.notes), where
    # The type checks are the mechanism: the last-resort net must never have caught anything.
    assert not any(n.startswith("parser_error") for n in record.notes), (where, record.notes)
    timings = record.server_timings
    assert timings is None or all(v is None or type(v) in (int, float) for v in timings.values()), (
        where
    )


def test_thousands_of_mutated_responses_each_become_one_valid_storable_record(
    tmp_path: Path,
) -> None:
    rng = random.Random(SEED + 1)
    records: list[RequestRecord] = []
    kinds: dict[str | None, int] = {}
    clean = 0
    for case in cases(PARSER_CASES):
        for endpoint in ENDPOINTS:
            pieces = _split(rng, case.body)
            times, t = [], 1_000
            for _ in pieces:
                t += rng.randint(0, 1_000)
                times.append(t)
            record = RequestRecord(index=len(records), intended_ns=None, sent_ns=500)
            endpoint.finish(record, pieces, times)
            _check(record, times, case)
            if case.tokens is not None and (endpoint.api, endpoint.stream) == (
                case.api,
                case.stream,
            ):  # unharmed, to the endpoint it was made for: exactly right, however split
                where = f"clean seed {case.seed}"
                assert record.error_kind == (None if case.tokens else errors.NO_TOKENS), where
                assert len(record.event_ns) == case.tokens, where
                clean += 1
            records.append(record)
            kinds[record.error_kind] = kinds.get(record.error_kind, 0) + 1
    # The fuzz reaches every outcome a parser can give (or it fuzzes nothing).
    reached = {None, errors.MALFORMED, errors.STREAM_ERROR, errors.INCOMPLETE}
    assert reached | {errors.NO_TOKENS, errors.NOT_STREAMING} <= set(kinds), kinds
    assert any(r.notes for r in records)  # malformed usage was met, and noted
    assert clean > PARSER_CASES // 20

    store = open_store(tmp_path / "fuzz.duckdb")
    run_id = store.create_run(wall_anchor_s=time.time())
    writer = BatchWriter(store, run_id, origin_ns=0)
    for record in records:
        writer.add_record(record)
    writer.close()
    stored = store.con.execute("SELECT count(*) FROM requests WHERE run_id = ?", [run_id])
    assert (stored.fetchone(), writer.rows_failed) == ((len(records),), 0), writer.failures
    assert writer.requests_written == len(records)


# ---------------------------------------------------------------------------------------
# Over HTTP, through the Runner and every transport.


class FuzzServer:
    """Serves the next mutated case for each request, as its body asks (stream or not),
    with valid HTTP framing chosen per case: chunked (random chunk sizes, each written on
    its own), Content-Length, or read-until-close; kept alive or closed."""

    def __init__(self, seed: int) -> None:
        pool = cases(8 * HTTP_CASES, seed)
        self._pools = {s: [c for c in pool if c.stream is s] for s in (True, False)}
        self._next = {True: 0, False: 0}
        self._rng = random.Random(seed)
        self.served = 0
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    @property
    def base_url(self) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.sockets[0].getsockname()[1]}/v1"

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)

    async def stop(self) -> None:
        assert self._server is not None
        self._server.close()
        for w in list(self._writers):
            w.close()
        await self._server.wait_closed()

    def _pick(self, stream: bool) -> Case:
        pool = self._pools[stream]
        case = pool[self._next[stream] % len(pool)]
        self._next[stream] += 1
        return case

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        try:
            while True:
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
                    return
                length = 0
                for line in head.split(b"\r\n"):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":", 1)[1])
                request = orjson.loads(await reader.readexactly(length)) if length else {}
                self.served += 1
                if not await self._respond(writer, self._pick(bool(request.get("stream")))):
                    return
        except (ConnectionError, asyncio.IncompleteReadError):
            return
        finally:
            self._writers.discard(writer)
            writer.close()

    async def _respond(self, w: asyncio.StreamWriter, case: Case) -> bool:
        rng = self._rng
        framing = rng.choice(["chunked", "chunked", "length", "close"])
        keep = framing != "close" and rng.random() < 0.8
        kind = b"text/event-stream" if case.stream else b"application/json"
        head = b"HTTP/1.1 200 OK\r\n" + rng.choice([b"Content-Type", b"content-type"])
        head += b": " + kind + b"\r\n" + rng.choice([b"", b"X-Request-Id: 7\r\nServer: fuzz\r\n"])
        if not keep:
            head += b"Connection: close\r\n"
        cut = rng.random() < 0.05  # the server dies mid-body: an incomplete response
        if framing == "length":
            body = case.body[: len(case.body) // 2] if cut else case.body
            w.write(head + b"Content-Length: %d\r\n\r\n" % len(case.body) + body)
        elif framing == "close":
            w.write(head + b"\r\n" + case.body)
        else:
            w.write(head + b"Transfer-Encoding: chunked\r\n\r\n")
            pieces = _split(rng, case.body)  # at most ~200 writes
            for n, piece in enumerate(pieces):
                if cut and n >= len(pieces) // 2:
                    break
                # Valid but rarer chunk syntax: upper-case hex, chunk extensions.
                size = (b"%X" if rng.random() < 0.5 else b"%x") % len(piece)
                ext = b";ext=1" if rng.random() < 0.05 else b""
                w.write(size + ext + b"\r\n" + piece + b"\r\n")
                await w.drain()
            if not cut:
                w.write(b"0\r\n" + (b"X-Trailer: 1\r\n" if rng.random() < 0.05 else b"") + b"\r\n")
        await w.drain()
        return keep and not cut


PAIRS = [("chat", True), ("completions", True), ("chat", False), ("completions", False)]


async def _run_over_http(transport: str, db: Path) -> list[str]:
    """Every (api, stream) pair through one transport; returns the problems found."""
    loop = asyncio.get_running_loop()
    unhandled: list[dict[str, Any]] = []
    loop.set_exception_handler(lambda _loop, context: unhandled.append(context))
    server = FuzzServer(SEED + len(transport))
    await server.start()
    store = open_store(db)
    problems: list[str] = []
    try:
        for api, stream in PAIRS:
            settings = HttpSettings(
                base_url=server.base_url, transport=transport, read_timeout_s=5.0
            )  # type: ignore[arg-type]
            client = make_client(settings, time.monotonic_ns)
            run_id = store.create_run(wall_anchor_s=time.time(), api=api)
            writer = BatchWriter(store, run_id, origin_ns=0)
            records: list[RequestRecord] = []

            def sink(
                record: RequestRecord,
                records: list[RequestRecord] = records,
                writer: BatchWriter = writer,
            ) -> None:
                records.append(record)
                writer.add_record(record)

            endpoint = OpenAIEndpoint(api, "m", stream=stream)  # type: ignore[arg-type]
            runner = Runner(client, endpoint, time.monotonic_ns, sink)
            specs = (RequestSpec(index=i, prompt="fuzz", max_tokens=8) for i in range(10**6))
            plan = LoadPlan(concurrency=8, max_requests=HTTP_CASES)
            try:
                outcome = await asyncio.wait_for(runner.run(specs, plan), timeout=60)
            finally:
                await asyncio.wait_for(client.aclose(), timeout=10)
                writer.close()
            label = f"{transport} {api} stream={stream}"
            row = store.con.execute("SELECT count(*) FROM requests WHERE run_id = ?", [run_id])
            stored = (row.fetchone() or (0,))[0]
            books = (len(records), outcome.sent, stored)
            if books != (HTTP_CASES,) * 3:
                problems.append(f"{label}: sink, sent, stored = {books}, {writer.failures}")
            unknown = [(r.error_kind, r.error_detail) for r in records]
            unknown = [(k, d) for k, d in unknown if k is not None and k not in errors.ALL]
            if unknown:
                problems.append(f"{label}: error kinds outside errors.ALL: {unknown[:5]}")
            runner_errors = getattr(outcome, "errors", None)
            if runner_errors:
                problems.append(f"{label}: runner errors {runner_errors}")
    finally:
        await server.stop()
        store.close()
    gc.collect()  # "Task exception was never retrieved" is reported when the task is freed
    await asyncio.sleep(0)
    problems += [f"unhandled: {c.get('message')} {c.get('exception')!r}" for c in unhandled]
    return problems


@pytest.mark.parametrize("transport", ["raw", "httpx", "aiohttp"])
def test_mutated_streams_over_http_keep_the_books(transport: str, tmp_path: Path) -> None:
    started = time.monotonic()
    problems = asyncio.run(_run_over_http(transport, tmp_path / "http.duckdb"))
    assert problems == []
    assert time.monotonic() - started < 60  # no hang: a stalled request would take longer


def test_the_fuzz_is_seeded() -> None:
    a, b = cases(50), cases(50)
    assert [c.body for c in a] == [c.body for c in b]
    assert len({c.body for c in a}) > 40  # and varied
