"""The raw transport's own promises: one timestamp per read, connections never reused after a
response they could not frame, and timers that fire whatever the server sends."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable

from loadgen import errors
from loadgen.client import HttpSettings
from loadgen.rawhttp import RawStreamClient
from loadgen.spec import RequestRecord
from tests.loadgen.faulty_server import _read_request

Handler = Callable[[asyncio.StreamWriter], Awaitable[None]]
HEAD = b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n"


def _chunk(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


@contextlib.asynccontextmanager
async def _serve(handler: Handler, connections: list[int]) -> AsyncIterator[str]:
    """A loopback server answering every request on a connection with `handler`."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connections.append(1)
        try:
            for _ in range(100):
                await _read_request(reader)
                await handler(writer)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    try:
        yield f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}/v1"
    finally:
        server.close()


async def _post(
    handler: Handler, n: int = 1, **settings: object
) -> tuple[list[tuple[RequestRecord, list[bytes], list[int]]], int, int]:
    """n requests one after another; returns (record, pieces, times) each, connections made
    and the client's retries."""
    connections: list[int] = []
    out = []
    async with _serve(handler, connections) as url:
        client = RawStreamClient(HttpSettings(base_url=url, **settings), time.monotonic_ns)
        for i in range(n):
            record = RequestRecord(index=i, intended_ns=None, sent_ns=0)
            pieces: list[bytes] = []
            times: list[int] = []
            await asyncio.wait_for(client.post("/completions", b"{}", record, pieces, times), 10)
            out.append((record, pieces, times))
        await client.aclose()
    return out, len(connections), client.retries


def test_the_body_bytes_of_one_read_are_one_piece_with_one_time() -> None:
    async def three_chunks_then_one(w: asyncio.StreamWriter) -> None:
        w.write(HEAD + _chunk(b"a") + _chunk(b"bb") + _chunk(b"ccc"))
        await w.drain()
        await asyncio.sleep(0.05)
        w.write(_chunk(b"dddd") + b"0\r\n\r\n")

    ((record, pieces, times),), _, _ = asyncio.run(_post(three_chunks_then_one))
    assert record.error_kind is None and record.http_status == 200
    assert pieces == [b"abbccc", b"dddd"]
    assert len(times) == 2 and times[1] - times[0] > 40_000_000


def test_a_chunk_split_across_reads_keeps_each_reads_time() -> None:
    async def split(w: asyncio.StreamWriter) -> None:
        w.write(HEAD + b"6\r\nabc")
        await w.drain()
        await asyncio.sleep(0.05)
        w.write(b"def\r\n0\r\n\r\n")

    ((record, pieces, times),), _, _ = asyncio.run(_post(split))
    assert record.error_kind is None
    assert pieces == [b"abc", b"def"] and len(times) == 2


def test_bytes_after_a_response_are_never_read_as_the_next_one() -> None:
    async def overlong(w: asyncio.StreamWriter) -> None:
        w.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhiHTTP/1.1 500 Stray\r\n\r\n")

    results, connections, retries = asyncio.run(_post(overlong, n=3))
    assert [(r.error_kind, p) for r, p, _ in results] == [(None, [b"hi"])] * 3
    assert connections == 3 and retries == 0  # each suspect connection was dropped


def test_one_connection_reads_keep_alive_responses_of_every_framing_in_turn() -> None:
    # The connection's one parser reads each response after the last: chunked, then a
    # Content-Length body, then one behind a 100 Continue, then chunked split mid-chunk.
    answers = [
        HEAD + _chunk(b"one") + b"0\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\ntwo",
        b"HTTP/1.1 100 Continue\r\n\r\n" + HEAD + _chunk(b"three") + b"0\r\n\r\n",
        HEAD + b"4\r\nfo",
    ]
    turn = iter(range(100))

    async def each_in_turn(w: asyncio.StreamWriter) -> None:
        i = next(turn) % 4
        w.write(answers[i])
        if i == 3:
            await w.drain()
            await asyncio.sleep(0.05)
            w.write(b"ur\r\n0\r\n\r\n")

    results, connections, retries = asyncio.run(_post(each_in_turn, n=8))
    assert [(r.error_kind, r.http_status) for r, _, _ in results] == [(None, 200)] * 8
    assert [b"".join(p) for _, p, _ in results] == [b"one", b"two", b"three", b"four"] * 2
    assert [len(t) for _, p, t in results] == [len(p) for _, p, _ in results]
    assert results[3][1] == [b"fo", b"ur"]  # the split chunk keeps each read's piece
    assert connections == 1 and retries == 0


def test_a_switch_of_protocols_ends_the_request() -> None:
    async def upgrade(w: asyncio.StreamWriter) -> None:
        w.write(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n\x81\x05hello")

    ((record, _, _),), _, _ = asyncio.run(_post(upgrade))
    assert record.error_kind == errors.INCOMPLETE and "switched protocols" in record.error_detail


def test_a_server_that_accepts_and_never_answers_is_a_timeout_not_a_retry() -> None:
    async def mute(w: asyncio.StreamWriter) -> None:
        await asyncio.sleep(30)

    t0 = time.monotonic()
    ((record, _, _),), _, retries = asyncio.run(_post(mute, read_timeout_s=0.4))
    assert record.error_kind == errors.TIMEOUT and retries == 0
    assert time.monotonic() - t0 < 5


def test_a_flood_of_bytes_cannot_starve_the_total_deadline() -> None:
    """A server writing as fast as it can keeps data_received busy; the deadline's timer must
    still fire (parsing a read is bounded work: the loop gets control back after each)."""

    async def flood(w: asyncio.StreamWriter) -> None:
        w.write(HEAD)
        comment = _chunk(b":" * 1000 + b"\n\n")
        for _ in range(200_000):
            w.write(comment * 16)
            await w.drain()

    t0 = time.monotonic()
    ((record, pieces, _),), _, _ = asyncio.run(_post(flood, request_timeout_s=0.5))
    assert record.error_kind == errors.TIMEOUT and "total" in record.error_detail
    assert len(pieces) > 1
    assert time.monotonic() - t0 < 5
