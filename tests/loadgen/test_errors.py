"""One classification for every transport: status to kind, exception to kind, and the one
retry rule."""

from __future__ import annotations

import h11
import httpx
import pytest

from loadgen import errors


@pytest.mark.parametrize(
    ("status", "kind"),
    [
        (200, None),
        (204, None),
        (301, errors.REDIRECT),
        (302, errors.REDIRECT),
        (304, errors.REDIRECT),
        (307, errors.REDIRECT),
        (401, errors.AUTH),
        (403, errors.AUTH),
        (404, errors.HTTP_CLIENT),
        (429, errors.RATE_LIMITED),
        (500, errors.HTTP_SERVER),
        (503, errors.HTTP_SERVER),
        (999, errors.HTTP_SERVER),
    ],
)
def test_each_final_status_has_one_kind(status: int, kind: str | None) -> None:
    assert errors.classify_status(status) == kind
    assert kind is None or kind in errors.ALL


def _raised(outer: type[BaseException], inner: BaseException, explicit: bool) -> BaseException:
    """outer raised from inner (`raise ... from`) or while handling it."""
    try:
        try:
            raise inner
        except BaseException as exc:
            if explicit:
                raise outer("wrapped") from exc
            raise outer("wrapped") from None
    except BaseException as exc:
        return exc
    raise AssertionError("unreachable")


def test_timeouts_are_timeouts_whatever_wraps_them() -> None:
    assert errors.classify_exception(TimeoutError(), got_response=False) == errors.TIMEOUT
    assert errors.classify_exception(httpx.ReadTimeout("x"), got_response=True) == errors.TIMEOUT
    wrapped = _raised(httpx.ReadTimeout, TimeoutError(), explicit=True)
    assert errors.classify_exception(wrapped, got_response=True) == errors.TIMEOUT


def test_a_closed_socket_mislabelled_connect_timeout_is_a_connect_error() -> None:
    """httpx-aiohttp maps aiohttp.ServerDisconnectedError to httpx.ConnectTimeout."""
    disconnect = ConnectionResetError("Server disconnected")
    wrapped = _raised(httpx.ConnectTimeout, disconnect, explicit=True)
    assert errors.classify_exception(wrapped, got_response=False) == errors.CONNECT
    assert errors.classify_exception(wrapped, got_response=True) == errors.INCOMPLETE


def test_a_broken_connection_is_connect_before_the_response_and_incomplete_after() -> None:
    exc = httpx.RemoteProtocolError("Server disconnected without sending a response.")
    assert errors.classify_exception(exc, got_response=False) == errors.CONNECT
    assert errors.classify_exception(exc, got_response=True) == errors.INCOMPLETE
    assert errors.classify_exception(OSError("reset"), got_response=False) == errors.CONNECT


def test_bytes_that_are_not_http_are_an_answer_never_a_connect_error() -> None:
    """httpcore re-raises h11's parse errors `from None`; the parser's error still counts."""
    bad = _raised(httpx.RemoteProtocolError, h11.RemoteProtocolError("illegal status line"), False)
    assert errors.classify_exception(bad, got_response=False) == errors.INCOMPLETE


@pytest.mark.parametrize(
    ("kind", "reused", "got_response", "attempt", "resend"),
    [
        (errors.CONNECT, True, False, 0, True),  # a pooled socket closed under the request
        (errors.CONNECT, False, False, 0, False),  # a fresh connection failing: never
        (errors.CONNECT, True, False, 1, False),  # only once
        (errors.CONNECT, True, True, 0, False),  # the server had answered
        (errors.INCOMPLETE, True, True, 0, False),
        (errors.TIMEOUT, True, False, 0, False),  # a slow server is data, not a retry
    ],
)
def test_the_one_retry_rule(
    kind: str, reused: bool, got_response: bool, attempt: int, resend: bool
) -> None:
    assert (
        errors.should_resend(kind, reused=reused, got_response=got_response, attempt=attempt)
        is resend
    )
