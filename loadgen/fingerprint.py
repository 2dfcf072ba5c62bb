"""A short digest of what a run sends and when, to prove two runs sent the same traffic.

Stored with a run; equal fingerprints mean equal prompts, lengths, request fields and
intended send offsets, so "same seed, same inputs, same requests" can be checked, not hoped.

A run's salt (RequestSpec.salt_words) is left out: it is new every run by design, so two
salted runs of the same workload have the same fingerprint. A salted and an unsalted run do
not (the salt's place is marked, and it took words off the prompt's end).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Sequence

from loadgen.spec import RequestSpec

__all__ = ["fingerprint"]


def _unsalted(text: str, salt_words: int) -> str:
    """``text`` with its first ``salt_words`` words (the run's salt) replaced by a marker."""
    rest = text.split(" ", salt_words)[salt_words:]
    return " ".join([f"<salt:{salt_words}>", *rest])


def _spec_record(spec: RequestSpec) -> bytes:
    prompt, messages = spec.prompt, list(spec.messages) if spec.messages is not None else None
    if spec.salt_words > 0:
        if prompt is not None:
            prompt = _unsalted(prompt, spec.salt_words)
        elif messages and isinstance(messages[0].get("content"), str):
            messages[0] = {
                **messages[0],
                "content": _unsalted(messages[0]["content"], spec.salt_words),
            }
    record = {
        "index": spec.index,
        "prompt": prompt,
        "messages": messages,
        "max_tokens": spec.max_tokens,
        "in": spec.input_tokens_expected,
        "out": spec.output_tokens_expected,
        "session": spec.session_id,
        "turn": spec.turn,
        "extra": spec.extra_body,
    }
    if spec.inputs is not None:  # embeddings / rerank texts (absent keeps older digests)
        record["inputs"] = list(spec.inputs)
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
