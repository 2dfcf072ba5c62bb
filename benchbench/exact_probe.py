"""The chat-template probe: tokens a server adds to the counted content (chat template, BOS),
measured per message layout with one real request of its own text (benchbench.exact)."""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from typing import Any

import httpx

from benchbench.exact import (
    TokenCounter,
    TokenizeError,
    json_answer,
    message_layout,
    prompt_parts,
)
from benchbench.target import Bounds, DeadlineExceeded, http_call
from benchbench.urls import redact_url
from loadgen.prompts import WORDS
from loadgen.spec import RequestSpec

__all__ = ["measure_offsets", "probe_text"]


def probe_text(part: int) -> str:
    """Content for the template probe's messages: a fresh nonce word first, so the probe
    shares no prefix with any workload prompt (or an earlier run's probe) beyond the chat
    template itself, and the server's prefix cache is not primed with request 0. Lowercase
    letters only, like the workload's words, so the template's boundary tokenizes alike."""
    while True:
        nonce = "".join(secrets.choice("bcdfghjklmnpqrstvwxz") for _ in range(10))
        if nonce not in WORDS:
            return f"{nonce} calibration probe part {part} count these tokens only"


def _probe_spec(layout: tuple[str, ...]) -> RequestSpec:
    if layout == ("prompt",):
        return RequestSpec(index=-1, prompt=probe_text(0))
    messages = tuple({"role": role, "content": probe_text(i)} for i, role in enumerate(layout))
    return RequestSpec(index=-1, messages=messages)


def measure_offsets(
    specs: Sequence[RequestSpec],
    counter: TokenCounter,
    base_url: str,
    model: str,
    headers: dict[str, str],
    timeout_s: float = 60.0,
    request_timeout_s: float | None = None,
    *,
    connect_timeout_s: float | None = None,
) -> dict[tuple[str, ...], int]:
    """Tokens the server adds to the counted content (chat template, BOS), per message layout
    of `specs`: one real request each (``max_tokens=1``) with the same roles but probe text of
    its own (see probe_text), usage.prompt_tokens minus the content count. Each request is
    bounded by ``timeout_s`` (silence) and ``request_timeout_s`` (total)."""
    layouts = list(dict.fromkeys(message_layout(s) for s in specs if prompt_parts(s)))
    bounds = Bounds(timeout_s, request_timeout_s or timeout_s, connect_timeout_s)
    offsets: dict[tuple[str, ...], int] = {}
    for layout in layouts:
        probe = _probe_spec(layout)
        body: dict[str, Any] = {"model": model, "max_tokens": 1, "stream": False}
        if probe.prompt is not None:
            body["prompt"] = probe.prompt
            path = "/completions"
        else:
            body["messages"] = list(probe.messages or ())
            path = "/chat/completions"
        usage = _probe_usage(base_url.rstrip("/") + path, headers, bounds, body)
        if not isinstance(usage.get("prompt_tokens"), int):
            continue  # no usage: leave the offset at 0 (stated in the run's description)
        offsets[layout] = usage["prompt_tokens"] - sum(counter.count(prompt_parts(probe)))
    return offsets


def _probe_usage(
    url: str, headers: dict[str, str], bounds: Bounds, body: dict[str, Any]
) -> dict[str, Any]:
    """The probe's usage object; failures as one line naming the URL without credentials."""
    shown = redact_url(url)
    try:
        r = http_call("POST", url, headers, bounds, body)
    except DeadlineExceeded as exc:
        raise TokenizeError(f"{shown}: {exc}") from None
    except httpx.TimeoutException:
        raise TokenizeError(f"{shown}: silent for {bounds.silence_s:g} s (--timeout)") from None
    except httpx.HTTPError as exc:
        raise TokenizeError(f"{shown}: {type(exc).__name__}") from None
    data = json_answer(r.status_code, r.json, shown)
    usage = data.get("usage") if isinstance(data, dict) else None
    return usage if isinstance(usage, dict) else {}
