"""Server-sent events, parsed after the stream closed.

The hot path only timestamps raw body pieces on arrival; splitting them into events happens
here, once per request, so parsing can never delay a timestamp. An event's time is the arrival
time of the piece that completed it (its terminating blank line)."""

from __future__ import annotations

from collections.abc import Sequence


def split_events(
    pieces: Sequence[bytes], times_ns: Sequence[int]
) -> tuple[list[int], list[bytes], bytes]:
    """Return (event times, event data payloads, unterminated rest).

    Payload is the concatenated `data:` lines of each event (comments and other fields dropped).
    """
    out_t: list[int] = []
    out_d: list[bytes] = []
    pending = b""
    for t, piece in zip(times_ns, pieces, strict=True):
        data = pending + piece if pending else piece
        if b"\r" in data:
            data = data.replace(b"\r\n", b"\n")
        parts = data.split(b"\n\n")
        pending = parts.pop()
        for part in parts:
            payload = _data_of(part)
            if payload is not None:
                out_t.append(t)
                out_d.append(payload)
    return out_t, out_d, pending


def _data_of(event: bytes) -> bytes | None:
    if event.startswith(b"data:") and b"\n" not in event:  # the common single-line event
        return event[5:].strip()
    lines = [ln[5:].strip() for ln in event.split(b"\n") if ln.startswith(b"data:")]
    if not lines:
        return None
    return b"\n".join(lines)
