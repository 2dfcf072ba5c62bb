"""Error kinds: a failed request is data (a record with one of these), never an exception through
the engine. The strings are stored, so they are part of the data model.

Every transport maps what went wrong through the same three functions: `classify_status` for a
final HTTP status, `classify_exception` for a transport failure, and `should_resend` for the
one retry rule (a reused connection that died before any response byte)."""

from __future__ import annotations

import h11
import httpcore
import httptools
import httpx

CONNECT = "connect"  # could not connect / connection refused or reset before any response
TIMEOUT = "timeout"  # no response, a stalled stream, or the total deadline passed
AUTH = "auth"  # 401 / 403
RATE_LIMITED = "rate_limited"  # 429
REDIRECT = "redirect"  # any 3xx final status: we never follow redirects (a benchmark must not)
HTTP_CLIENT = "http_4xx"  # other 4xx
HTTP_SERVER = "http_5xx"  # 5xx, and any final status outside 200..599
NOT_STREAMING = "not_streaming"  # 200 but the body is not an SSE stream
MALFORMED = "malformed"  # an SSE event whose data is not valid JSON
STREAM_ERROR = "stream_error"  # the server sent an error object inside the stream
INCOMPLETE = "incomplete"  # the response broke off: cut short, or malformed HTTP framing
NO_TOKENS = "no_tokens"  # a complete stream that carried no output token
CANCELLED = "cancelled"  # stopped by the client (Ctrl-C, drain timeout)
# The client's own code raised on this request: a benchbench bug, never the server's fault.
# The record is kept so the books balance, and the run is marked failed.
INTERNAL = "internal"
# The client worker process (or Ray actor) that sent the request died before it ended
# (`bench run --workers N`): the request was sent, its outcome is unknown. Like INTERNAL it
# is the client's failure, never the server's.
WORKER_LOST = "worker_lost"

# What a server (or the client's own stop) can cause; INTERNAL is apart: it is always a bug.
ALL = (
    CONNECT,
    TIMEOUT,
    AUTH,
    RATE_LIMITED,
    REDIRECT,
    HTTP_CLIENT,
    HTTP_SERVER,
    NOT_STREAMING,
    MALFORMED,
    STREAM_ERROR,
    INCOMPLETE,
    NO_TOKENS,
    CANCELLED,
)

# Raised by an HTTP parser: bytes arrived but they were not a valid response, so the server did
# answer (never a connect error, never retried).
_PROTOCOL_ERRORS: tuple[type[BaseException], ...] = (
    h11.RemoteProtocolError,
    httptools.HttpParserError,
)
_TIMEOUTS: tuple[type[BaseException], ...] = (
    TimeoutError,
    httpx.TimeoutException,
    httpcore.TimeoutException,
)


def classify_status(status: int) -> str | None:
    """Error kind for a final HTTP status; None for success."""
    if 200 <= status < 300:
        return None
    if 300 <= status < 400:
        return REDIRECT
    if status in (401, 403):
        return AUTH
    if status == 429:
        return RATE_LIMITED
    if 400 <= status < 500:
        return HTTP_CLIENT
    return HTTP_SERVER


kind_for_status = classify_status  # the former name


def classify_exception(exc: BaseException, *, got_response: bool) -> str:
    """Error kind for a transport failure. `got_response`: a status line or body byte of this
    request's response had arrived (then a broken connection is `incomplete`, not `connect`)."""
    chain = _chain(exc)
    if any(_is_timeout(e) for e in chain):
        return TIMEOUT
    if got_response or any(_is_protocol_error(e) for e in chain):
        return INCOMPLETE
    return CONNECT


def should_resend(kind: str, *, reused: bool, got_response: bool, attempt: int) -> bool:
    """The one retry rule: a request whose reused (pooled) connection was closed, reset or
    refused the write before any response byte is sent again, once, on a fresh connection.
    A server may close an idle kept-alive socket at any moment (llama.cpp closes after every
    stream), and the request then never reached it. A fresh connection failing, a timeout, or
    anything after a response byte is never retried: that is the server's answer."""
    return kind == CONNECT and reused and not got_response and attempt == 0


def _chain(exc: BaseException) -> list[BaseException]:
    """exc and what it was raised from or while handling, outermost first; bounded against
    cycles. Suppressed contexts count: httpcore re-raises h11's errors `from None`."""
    chain = [exc]
    while len(chain) < 16:
        e = chain[-1]
        inner = e.__cause__ or e.__context__
        if inner is None:
            break
        chain.append(inner)
    return chain


def _is_timeout(exc: BaseException) -> bool:
    if not isinstance(exc, _TIMEOUTS):
        return False
    # httpx-aiohttp maps every aiohttp.ClientConnectionError (a socket closed under a write,
    # a server disconnect) to httpx.ConnectTimeout; its explicit cause says what happened.
    cause = exc.__cause__
    return not (isinstance(exc, httpx.TimeoutException) and cause is not None) or isinstance(
        cause, _TIMEOUTS
    )


def _is_protocol_error(exc: BaseException) -> bool:
    # aiohttp's parser errors are matched by module, so that this module (imported by every
    # transport) does not import aiohttp.
    return isinstance(exc, _PROTOCOL_ERRORS) or type(exc).__module__ == "aiohttp.http_exceptions"
