"""What both HTTP clients (loadgen.client, loadgen.rawhttp) share: their settings, the
header check, the early-close rule and the error detail kept for a failed status. Its own
module so that neither client imports the other's module at load time."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal
from urllib.parse import urlsplit

TransportName = Literal["raw", "aiohttp", "httpx"]


@dataclass(frozen=True, slots=True)
class HttpSettings:
    base_url: str
    headers: Mapping[str, str] = field(default_factory=dict)
    max_connections: int = 256
    connect_timeout_s: float = 10.0
    # Between two body pieces: a stalled stream is an error, a long generation is not.
    read_timeout_s: float = 300.0
    transport: TransportName = "raw"
    # From send to the end of the response, retries included: bounds a server that trickles
    # bytes often enough to never trip read_timeout_s. None: no total deadline.
    request_timeout_s: float | None = None

    def __post_init__(self) -> None:
        check_headers(self.headers)


def check_headers(headers: Mapping[str, str]) -> None:
    """Refuse a header that would change the request's framing: a CR or LF in a value would
    be sent as an extra header line (header injection). Raises ValueError naming the header;
    never echoes the value, which may be a credential."""
    for name, value in headers.items():
        if not _TOKEN.fullmatch(name):
            raise ValueError(
                f"header name {name!r} is not a valid HTTP token "
                "(no spaces, colons, CR/LF or other separators)"
            )
        if any(c in value for c in "\r\n\0"):
            raise ValueError(
                f"header {name!r}: the value holds a CR, LF or NUL; it must be one line"
            )


# RFC 9110 token: the characters a header name may hold.
_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")

# Seen closing a kept-alive connection within this long after a complete response, this many
# times, a server is taken to close after every response (llama-server does, while advertising
# keep-alive): each request then gets a fresh connection, so none is sent on a socket the
# server is about to close (a race that costs a retry at best, an error at worst).
EARLY_CLOSE_NS = 1_000_000_000
EARLY_CLOSES_TO_STOP_REUSE = 2


def status_detail(status: int, location: str | None, body: bytes) -> str:
    """error_detail for a final status that is an error kind (errors.classify_status)."""
    text = body[:200].decode("utf-8", "replace")
    if 300 <= status < 400:
        return f"HTTP {status} to {_public(location) if location else '(no Location)'}: {text}"
    return f"HTTP {status}: {text}"


def _public(url: str) -> str:
    """A redirect target without userinfo, query or fragment: they can hold credentials
    (presigned URLs) and the detail is stored."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "(unparseable Location)"
    host = parts.netloc.rsplit("@", 1)[-1]
    return f"{parts.scheme}://{host}{parts.path}" if parts.scheme else parts.path or "/"
