"""A short digest of what a run sends and when, to prove two runs sent the same traffic.

Stored with a run; equal fingerprints mean equal prompts, lengths, request fields and
intended send offsets, so "same seed, same inputs, same requests" can be checked, not hoped.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Sequence

from loadgen.spec import RequestSpec

__all__ = ["fingerprint"]


def _spec_record(spec: RequestSpec) -> bytes:
    record = {
        "index": spec.index,
        "prompt": spec.prompt,
        "messages": list(spec.messages) if spec.messages is not None else None,
        "max_tokens": spec.max_tokens,
        "in": spec.input_tokens_expected,
        "out": spec.output_tokens_expected,
        "session": spec.session_id,
        "turn": spec.turn,
        "extra": spec.extra_body,
    }
    text = json.dumps(record, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    # Hash each spec's text separately: the digest stream stays small however long prompts are.
    return hashlib.sha256(text.encode()).digest()


def fingerprint(specs: Iterable[RequestSpec], offsets_ns: Sequence[int] | None = None) -> str:
    """sha256 hex over every spec (lengths, text, fields) and the send schedule, in order."""
    digest = hashlib.sha256(b"benchbench-workload-v1\n")
    count = 0
    for spec in specs:
        digest.update(_spec_record(spec))
        count += 1
    digest.update(f"\nspecs={count}\n".encode())
    if offsets_ns is not None:
        digest.update(f"offsets={len(offsets_ns)}\n".encode())
        for offset in offsets_ns:
            digest.update(int(offset).to_bytes(8, "little", signed=True))
    return digest.hexdigest()
