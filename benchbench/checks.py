"""Checks of user-given URLs and headers, shared by the config and the commands. Each raises
ValueError with one line that says what to fix (the config turns it into a ConfigError)."""

from __future__ import annotations

from benchbench.urls import redact_url

# RFC 9110 token characters: what a header name may hold.
_TOKEN_CHARS = frozenset(
    "!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
)


def check_http_url(url: str, flag: str, example: str) -> None:
    """Raise ValueError (one line, credentials removed) unless `url` is an http(s) URL with a
    host and a valid port: the same URL must not pass here and then fail inside a client."""
    from urllib.parse import urlsplit

    import httpx

    shown = redact_url(url)
    hint = f"{flag} must be an http(s) URL like {example}, got {shown!r}"
    if any(c.isspace() or ord(c) < 0x20 or ord(c) == 0x7F for c in url):
        raise ValueError(f"{hint} (it holds whitespace or control characters)")
    try:
        parts = urlsplit(url)
        port = parts.port  # raises on a port that is not a number in 0..65535
        parsed = httpx.URL(url)
    except ValueError as exc:  # httpx.InvalidURL is not a ValueError; caught below
        raise ValueError(f"{hint} ({_redacted_reason(exc, url, shown)})") from None
    except httpx.InvalidURL as exc:
        raise ValueError(f"{hint} ({_redacted_reason(exc, url, shown)})") from None
    if parts.scheme not in ("http", "https"):
        raise ValueError(hint)
    if not parts.hostname or not parsed.host:
        raise ValueError(f"{hint} (no host)")
    if port == 0:
        raise ValueError(f"{hint} (port 0)")


def _redacted_reason(exc: Exception, url: str, shown: str) -> str:
    reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return reason.replace(url, shown)


def check_header(name: str, value: str) -> None:
    """Raise ValueError unless `name: value` is one well-formed header line: a name of token
    characters, a value without CR, LF or other control characters (tab allowed). A CR/LF in
    a value would otherwise end the line and smuggle in another header. The value is never
    echoed: it may be a secret."""
    if not name or not set(name) <= _TOKEN_CHARS:
        raise ValueError(
            f"--header name {name!r} is not a valid header name "
            "(letters, digits and !#$%&'*+-.^_`|~ only)"
        )
    if any((ord(c) < 0x20 and c != "\t") or ord(c) == 0x7F for c in value):
        raise ValueError(
            f"--header {name}: the value holds CR, LF or another control character; "
            "a header value must be one line"
        )


def parse_header_lines(lines: list[str]) -> dict[str, str]:
    """'Name: value' lines as a dict; a name that is not a header token, or a value holding
    CR/LF (which would smuggle in another header line), is refused."""
    out: dict[str, str] = {}
    for line in lines:
        name, sep, value = line.partition(":")
        if not sep or not name.strip():
            raise ValueError(f"--header must look like 'Name: value', got {name.strip()!r}")
        # Only blanks are trimmed: a CR or LF at either end is refused, not silently dropped.
        name, value = name.strip(" \t"), value.strip(" \t")
        check_header(name, value)
        out[name] = value
    return out
