"""Credentials in URLs never leave the process: stored, printed and reported URLs are redacted."""

from benchbench.urls import REDACTED, redact_url


def test_a_password_in_the_authority_is_replaced():
    assert redact_url("http://user:PASS@host:8000/v1") == f"http://{REDACTED}@host:8000/v1"


def test_a_token_in_the_query_is_replaced_and_other_parameters_kept():
    out = redact_url("http://h:9400/metrics?token=abc&job=gpu&X-Api-Key=k")
    assert "abc" not in out and "=k" not in out
    assert "job=gpu" in out


def test_a_url_without_credentials_is_unchanged():
    for url in ("http://127.0.0.1:8000/v1", "https://[::1]:443/v1?model=x", "http://h/p#frag"):
        assert redact_url(url) == url


def test_a_malformed_url_still_loses_its_password():
    assert "PASS" not in redact_url("http://u:PASS@[::1")
