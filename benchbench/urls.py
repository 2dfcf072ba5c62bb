"""URLs as they may be shown or stored: credentials never leave the process.

A user may put a password in the endpoint (`http://user:PASS@host/v1`) or a token in a
query string (`/metrics?token=...`); both are needed to make the request, and neither may
reach the store, the JSON, an export, a report or the console."""

from __future__ import annotations

from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

REDACTED = "REDACTED"

# Query parameters that carry credentials in the wild (API gateways, exporters, signed URLs).
_SECRET_PARAMS = (
    "token",
    "access_token",
    "auth",
    "authorization",
    "key",
    "api_key",
    "apikey",
    "api-key",
    "password",
    "passwd",
    "pwd",
    "secret",
    "signature",
    "sig",
    "x-amz-signature",
    "x-amz-credential",
    "x-goog-signature",
    "session",
    "jwt",
    "bearer",
)


def _is_secret(name: str) -> bool:
    low = name.lower()
    return any(low == s or low.endswith("_" + s) or low.endswith("-" + s) for s in _SECRET_PARAMS)


def redact_url(url: str) -> str:
    """`url` with any user:password and secret-looking query values replaced by REDACTED.

    A string that does not parse as a URL is returned with everything after an `@` in its
    authority dropped, so a malformed URL cannot leak a password either."""
    try:
        parts = urlsplit(url)
        netloc = parts.netloc
    except ValueError:
        head, sep, _ = url.partition("://")
        rest = url[len(head) + len(sep) :]
        if "@" in rest.split("/", 1)[0]:
            return f"{head}{sep}{REDACTED}@{rest.split('/', 1)[0].rsplit('@', 1)[1]}"
        return url
    if "@" in netloc:
        netloc = f"{REDACTED}@{netloc.rsplit('@', 1)[1]}"
    query = parts.query
    if query:
        pairs = parse_qsl(query, keep_blank_values=True)
        if any(_is_secret(k) for k, _ in pairs):
            query = urlencode([(k, REDACTED if _is_secret(k) else v) for k, v in pairs])
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))
