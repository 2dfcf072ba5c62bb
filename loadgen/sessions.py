"""Prefix structure: multi-turn sessions that carry their history, and a shared system prompt.

A session is a short conversation: each turn adds a new user message (its length drawn from
``input_len``) to the whole history so far, and the reply the next turn carries is synthetic
text of the previous turn's output length. Synthetic replies keep the sequence a pure function
of the seed (the fingerprint covers it, two servers get the same prompts); the price is that a
server's cache of its *own* previous reply does not hit, while everything before it does.

Ordering: turn n+1 may be sent only after turn n completed. The runner's closed loop has each
worker await its request before it pulls the next spec from one shared iterator, so
``SessionDriver`` hands each worker (the asyncio task asking) the next turn of *its* session,
and a new session when that one is done: a closed loop of ``concurrency`` concurrent sessions,
with the runner's think time between turns.

``with_system_share`` gives a fraction of requests the shared system prompt and the rest a
unique one of the same length, so lengths stay as drawn and the prefix-hit ratio scales.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, replace
from typing import Any, Literal

import numpy as np

from loadgen.lengths import LengthDist
from loadgen.prompts import synth_text
from loadgen.spec import RequestSpec

__all__ = ["SessionDriver", "SessionWorkload", "prompt_text", "with_system_share"]


@dataclass(frozen=True, slots=True)
class SessionWorkload:
    """Sessions of ``turns`` turns; turn k's prompt is the system prompt (if any), turns
    1..k-1 (user text and a synthetic reply each) and turn k's new user text.

    ``input_tokens_expected`` is the whole prompt's word count (the built-in simulator's
    token count; real tokenizers add a chat template). Session i always has the same turns,
    whatever order the sessions are started in.
    """

    input_len: LengthDist  # new user text per turn
    output_len: LengthDist
    turns: LengthDist  # turns per session
    api: Literal["chat", "completions"] = "chat"
    seed: int = 0
    system_prompt_tokens: int = 0
    system_prompt_share: float = 1.0
    ignore_eos: bool = True

    def __post_init__(self) -> None:
        if self.api not in ("chat", "completions"):
            raise ValueError(f"api must be 'chat' or 'completions', got {self.api!r}")
        if not 0.0 <= self.system_prompt_share <= 1.0:
            share = self.system_prompt_share
            raise ValueError(f"system prompt share must be in [0, 1], got {share}")
        if self.system_prompt_tokens < 0:
            raise ValueError(f"system prompt tokens must be >= 0, got {self.system_prompt_tokens}")

    def describe(self) -> str:
        return (
            f"sessions of {self.turns.describe()} turns: new input {self.input_len.describe()}, "
            f"output {self.output_len.describe()}"
        )

    def session(self, number: int, first_index: int) -> list[RequestSpec]:
        """The turns of session ``number``, their indices starting at ``first_index``."""
        rng = np.random.default_rng([self.seed, 11, number])
        n_turns = int(self.turns.sample(rng, 1)[0])
        inputs = self.input_len.sample(rng, n_turns).tolist()
        outputs = self.output_len.sample(rng, n_turns).tolist()
        history: list[dict[str, Any]] = []
        if self.system_prompt_tokens:
            history.append({"role": "system", "content": self._system(number, rng)})
        sid = f"s{number}"
        specs = []
        for turn, (n_in, n_out) in enumerate(zip(inputs, outputs, strict=True)):
            history.append({"role": "user", "content": synth_text(n_in, rng)})
            messages = tuple(dict(m) for m in history)
            extra = {"ignore_eos": True, "min_tokens": n_out} if self.ignore_eos else None
            specs.append(
                RequestSpec(
                    index=first_index + turn,
                    prompt=" ".join(m["content"] for m in messages)
                    if self.api == "completions"
                    else None,
                    messages=messages if self.api == "chat" else None,
                    max_tokens=n_out,
                    input_tokens_expected=sum(len(m["content"].split()) for m in messages),
                    output_tokens_expected=n_out,
                    session_id=sid,
                    turn=turn,
                    extra_body=extra,
                )
            )
            history.append({"role": "assistant", "content": synth_text(n_out, rng)})
        return specs

    def _system(self, number: int, rng: np.random.Generator) -> str:
        if rng.random() < self.system_prompt_share:
            shared = np.random.default_rng([self.seed, 12])
            return synth_text(self.system_prompt_tokens, shared)
        return synth_text(self.system_prompt_tokens, rng)

    def sessions(self) -> Iterator[list[RequestSpec]]:
        """Session 0, 1, 2, ... forever; indices are unique across sessions."""
        number, index = 0, 0
        while True:
            turns = self.session(number, index)
            yield turns
            number += 1
            index += len(turns)

    def specs(self) -> Iterator[RequestSpec]:
        """Every turn, session after session (the order a single worker sends them in)."""
        for turns in self.sessions():
            yield from turns


class SessionDriver:
    """The spec iterator for the runner's closed loop: whoever asks (an asyncio task, one per
    concurrency slot) gets the next turn of its own session. Outside a running loop all
    requests come from one session at a time, in order."""

    def __init__(self, workload: SessionWorkload) -> None:
        self._sessions = workload.sessions()
        self._pending: dict[object, deque[RequestSpec]] = {}

    def __iter__(self) -> SessionDriver:
        return self

    def __next__(self) -> RequestSpec:
        key = _asker()
        turns = self._pending.get(key)
        if not turns:
            turns = deque(next(self._sessions))
            self._pending[key] = turns
        return turns.popleft()


def _asker() -> object:
    try:
        return asyncio.current_task()
    except RuntimeError:  # no running event loop
        return None


def with_system_share(
    specs: Iterator[RequestSpec], system_tokens: int, share: float, seed: int
) -> Iterator[RequestSpec]:
    """Keep the shared ``system_tokens``-word system prompt in a ``share`` of the requests
    (seeded draw per request); give the others a unique system prompt of the same length."""
    if not 0.0 <= share <= 1.0:
        raise ValueError(f"system prompt share must be in [0, 1], got {share}")
    rng = np.random.default_rng([seed, 13])
    for spec in specs:
        if system_tokens < 1 or rng.random() < share:
            yield spec
            continue
        own = synth_text(system_tokens, rng)
        if spec.messages is not None and spec.messages[0].get("role") == "system":
            messages = ({"role": "system", "content": own}, *spec.messages[1:])
            yield replace(spec, messages=messages)
        elif spec.prompt is not None:
            rest = spec.prompt.split(" ", system_tokens)[-1]
            yield replace(spec, prompt=f"{own} {rest}")
        else:
            yield spec


def prompt_text(spec: RequestSpec) -> str:
    """The prompt as one text (messages joined in order), for prefix-hit estimates."""
    if spec.prompt is not None:
        return spec.prompt
    return " ".join(str(m.get("content", "")) for m in spec.messages or ())
