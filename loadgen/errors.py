"""Error kinds: a failed request is data (a record with one of these), never an exception through
the engine. The strings are stored, so they are part of the data model."""

from __future__ import annotations

CONNECT = "connect"  # could not connect / connection refused or reset before any response
TIMEOUT = "timeout"  # no response or stalled stream within the timeout
AUTH = "auth"  # 401 / 403
RATE_LIMITED = "rate_limited"  # 429
HTTP_CLIENT = "http_4xx"  # other 4xx
HTTP_SERVER = "http_5xx"  # 5xx
NOT_STREAMING = "not_streaming"  # 200 but the body is not an SSE stream
MALFORMED = "malformed"  # an SSE event whose data is not valid JSON
STREAM_ERROR = "stream_error"  # the server sent an error object inside the stream
INCOMPLETE = "incomplete"  # the stream ended without its terminator
NO_TOKENS = "no_tokens"  # a complete stream that carried no output token
CANCELLED = "cancelled"  # stopped by the client (Ctrl-C, drain timeout)

ALL = (
    CONNECT,
    TIMEOUT,
    AUTH,
    RATE_LIMITED,
    HTTP_CLIENT,
    HTTP_SERVER,
    NOT_STREAMING,
    MALFORMED,
    STREAM_ERROR,
    INCOMPLETE,
    NO_TOKENS,
    CANCELLED,
)


def kind_for_status(status: int) -> str | None:
    """Error kind for an HTTP status; None for success."""
    if 200 <= status < 300:
        return None
    if status in (401, 403):
        return AUTH
    if status == 429:
        return RATE_LIMITED
    if 400 <= status < 500:
        return HTTP_CLIENT
    return HTTP_SERVER
