"""Prefix structure and think time: multi-turn sessions that carry their history, closed-loop
users who pause between requests, and a shared system prompt.

A session is a short conversation: each turn adds a new user message (its length drawn from
``input_len``) to the whole history so far, plus a synthetic reply to the previous turn. The
runner asks a Conversation for turn n+1 only once turn n has completed and been parsed, so the
reply has the length the server actually returned (with ignore_eos, the drawn length: then
the sequence is a pure function of the seed and the fingerprint covers it). Synthetic replies
mean a server's cache of its *own* previous reply does not hit; everything before it does.
User texts, replies and think times come from separate seeded streams per session, so a short
reply does not change the user text that follows it.

``SessionDriver`` is the runner's SessionSource for sessions; ``ThinkingUsers`` for independent
requests whose senders think between them. ``with_system_share`` gives a fraction of requests
the shared system prompt and the rest a unique one of the same length, so lengths stay as
drawn and the prefix-hit ratio scales.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, replace
from typing import Any, Literal

import numpy as np

from loadgen.lengths import LengthDist
from loadgen.load import Turn
from loadgen.prompts import synth_text
from loadgen.spec import RequestRecord, RequestSpec

__all__ = [
    "THINK_FORMS",
    "Conversation",
    "SessionDriver",
    "SessionWorkload",
    "ThinkTime",
    "ThinkingUsers",
    "parse_think_time",
    "prompt_text",
    "with_system_share",
]

THINK_FORMS = "accepted: SECONDS | exp:mean=S | uniform:min=A,max=B (seconds >= 0)"


@dataclass(frozen=True, slots=True)
class ThinkTime:
    """Seconds a user pauses between a response and their next request: ``constant``
    (``mean_s``), ``exp`` (exponential with mean ``mean_s``) or ``uniform`` on [min_s, max_s]."""

    kind: Literal["constant", "exp", "uniform"] = "constant"
    mean_s: float = 0.0
    min_s: float = 0.0
    max_s: float = 0.0

    def __post_init__(self) -> None:
        values = (self.mean_s, self.min_s, self.max_s)
        if not all(math.isfinite(v) and v >= 0 for v in values):
            raise ValueError("seconds must be finite and >= 0")
        if self.min_s > self.max_s:
            raise ValueError(
                f"uniform needs min <= max, got min={self.min_s:g}, max={self.max_s:g}"
            )

    @property
    def is_zero(self) -> bool:
        return self.mean_s == 0 and self.max_s == 0

    def sample_ns(self, rng: np.random.Generator) -> int:
        if self.kind == "exp":
            return round(rng.exponential(self.mean_s) * 1e9)
        if self.kind == "uniform":
            return round(rng.uniform(self.min_s, self.max_s) * 1e9)
        return round(self.mean_s * 1e9)

    def describe(self) -> str:
        """In parse_think_time's syntax."""
        if self.kind == "exp":
            return f"exp:mean={self.mean_s:g}"
        if self.kind == "uniform":
            return f"uniform:min={self.min_s:g},max={self.max_s:g}"
        return f"{self.mean_s:g}"


def parse_think_time(spec: str | float) -> ThinkTime:
    """``2.5`` (constant seconds), ``exp:mean=2`` or ``uniform:min=1,max=3``. Raises
    ValueError with one line naming the accepted forms."""
    name, sep, body = str(spec).strip().lower().partition(":")
    try:
        if not sep:
            return ThinkTime("constant", mean_s=float(name))
        params = _params(body)
        if name in ("exp", "exponential"):
            think = ThinkTime("exp", mean_s=params.pop("mean"))
        elif name == "uniform":
            think = ThinkTime("uniform", min_s=params.pop("min"), max_s=params.pop("max"))
        else:
            raise ValueError(f"unknown kind {name!r}")
        if params:
            raise ValueError(f"unknown option(s) {', '.join(params)}")
        return think
    except KeyError as exc:
        reason = f"{name} needs {exc.args[0]}="
    except ValueError as exc:
        reason = str(exc) if "could not convert" not in str(exc) else "not a number"
    raise ValueError(f"bad think time {str(spec)!r} ({reason}); {THINK_FORMS}")


def _params(body: str) -> dict[str, float]:
    params: dict[str, float] = {}
    for item in filter(None, body.split(",")):
        key, sep, value = item.partition("=")
        if not sep:
            raise ValueError(f"{item!r} is not key=value")
        params[key.strip()] = float(value)
    return params


@dataclass(frozen=True, slots=True)
class SessionWorkload:
    """Sessions of ``turns`` turns; turn k's prompt is the system prompt (if any), turns
    1..k-1 (user text and a reply each) and turn k's new user text, sent ``think_time``
    after turn k-1 completed.

    ``input_tokens_expected`` is the whole prompt's word count (the built-in simulator's
    token count; real tokenizers add a chat template). Session i always has the same user
    turns and think times, whatever order the sessions are started in.
    """

    input_len: LengthDist  # new user text per turn
    output_len: LengthDist
    turns: LengthDist  # turns per session
    api: Literal["chat", "completions"] = "chat"
    seed: int = 0
    system_prompt_tokens: int = 0
    system_prompt_share: float = 1.0
    ignore_eos: bool = True
    think_time: ThinkTime = ThinkTime()
    # The run's salt (loadgen.prompts.new_salt), put at the start of every session's first
    # message: shared by every turn and session of the run, by no earlier run.
    salt: str = ""

    def __post_init__(self) -> None:
        if self.api not in ("chat", "completions"):
            raise ValueError(f"api must be 'chat' or 'completions', got {self.api!r}")
        if not 0.0 <= self.system_prompt_share <= 1.0:
            share = self.system_prompt_share
            raise ValueError(f"system prompt share must be in [0, 1], got {share}")
        if self.system_prompt_tokens < 0:
            raise ValueError(f"system prompt tokens must be >= 0, got {self.system_prompt_tokens}")

    def describe(self) -> str:
        think = "" if self.think_time.is_zero else f", think {self.think_time.describe()} s"
        return (
            f"sessions of {self.turns.describe()} turns: new input {self.input_len.describe()}, "
            f"output {self.output_len.describe()}{think}"
        )

    def session(self, number: int, first_index: int) -> list[RequestSpec]:
        """The turns of session ``number`` with every reply as drawn (what the runner sends
        when the server honours max_tokens), their indices starting at ``first_index``."""
        conversation = Conversation(self, number, first_index)
        specs = []
        while (turn := conversation.advance()) is not None:
            specs.append(turn.spec)
        return specs

    def system_text(self, number: int, rng: np.random.Generator) -> str:
        return self.system_text_of(number, rng)[0]

    def system_text_of(self, number: int, rng: np.random.Generator) -> tuple[str, bool]:
        """Session ``number``'s system prompt, and whether it is the run's shared one."""
        if rng.random() < self.system_prompt_share:
            shared = np.random.default_rng([self.seed, 12])
            return synth_text(self.system_prompt_tokens, shared), True
        return synth_text(self.system_prompt_tokens, rng), False

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


class Conversation:
    """One session in progress, a runner Session: turn k+1 is built once turn k is done,
    its history carrying a reply of the length the server returned (the drawn length when
    the record reports none)."""

    def __init__(self, workload: SessionWorkload, number: int, first_index: int) -> None:
        rng = np.random.default_rng([workload.seed, 11, number])
        n_turns = int(workload.turns.sample(rng, 1)[0])
        inputs = workload.input_len.sample(rng, n_turns).tolist()
        self._outputs: list[int] = workload.output_len.sample(rng, n_turns).tolist()
        self._history: list[dict[str, Any]] = []
        # Whether the system prompt is the run's shared one: a perfect prefix cache holds it
        # once any earlier session sent it.
        self._shared_system = False
        if workload.system_prompt_tokens:
            system, self._shared_system = workload.system_text_of(number, rng)
            self._history.append({"role": "system", "content": system})
        self._number = number
        self._users = [synth_text(n, rng) for n in inputs]
        self._salt_words = self._salt(workload.salt.split())
        self._replies = np.random.default_rng([workload.seed, 14, number])
        self._thinks = np.random.default_rng([workload.seed, 15, number])
        self._workload = workload
        self._sid = f"s{number}"
        self._first_index = first_index
        self._turn = 0

    def _salt(self, words: list[str]) -> int:
        """Put the salt at the start of the first message (the system prompt when there is
        one), taking as many words as it adds off the end of the first user text (which keeps
        one), so lengths stay as drawn; returns the salt's length in words."""
        if not words or not self._users:
            return 0
        first = self._users[0].split()
        self._users[0] = " ".join(first[: max(1, len(first) - len(words))])
        if self._history:
            system = self._history[0]
            system["content"] = " ".join([*words, system["content"]])
        else:
            self._users[0] = " ".join([*words, self._users[0]])
        return len(words)

    @property
    def turns(self) -> int:
        return len(self._users)

    def next_turn(self, previous: RequestRecord | None) -> Turn | None:
        if previous is None:
            return self.advance()
        # The server's own answer goes back as it came (error or not: what it said is what a
        # real client would have in its history); a stand-in only when there is no text.
        return self.advance(previous.output_tokens, previous.output_text)

    def advance(
        self, reply_tokens: int | None = None, reply_text: str | None = None
    ) -> Turn | None:
        """The next turn, the previous one answered with ``reply_text`` (the server's own
        answer, sent back as it came: a server can reuse its cached generated tokens) or, when
        the text is not known, a stand-in of ``reply_tokens`` words (None or 0: as drawn);
        None when the session is over."""
        k = self._turn
        if k >= len(self._users):
            return None
        wl = self._workload
        think_ns = 0
        if k > 0:
            reply = reply_text
            if not reply:
                reply = synth_text(reply_tokens or self._outputs[k - 1], self._replies)
            self._history.append({"role": "assistant", "content": reply})
            think_ns = wl.think_time.sample_ns(self._thinks)
        self._history.append({"role": "user", "content": self._users[k]})
        messages = tuple(dict(m) for m in self._history)
        cached = self._cached_expected(messages, exact_reply=bool(reply_text))
        n_out = self._outputs[k]
        self._turn += 1
        spec = RequestSpec(
            index=self._first_index + k,
            prompt=" ".join(m["content"] for m in messages) if wl.api == "completions" else None,
            messages=messages if wl.api == "chat" else None,
            max_tokens=n_out,
            input_tokens_expected=sum(len(m["content"].split()) for m in messages),
            output_tokens_expected=n_out,
            session_id=self._sid,
            turn=k,
            extra_body={"ignore_eos": True, "min_tokens": n_out} if wl.ignore_eos else None,
            salt_words=self._salt_words,
            cached_input_tokens_expected=cached,
        )
        return Turn(spec, think_ns)

    def _cached_expected(self, messages: tuple[dict[str, Any], ...], exact_reply: bool) -> int:
        """Prompt words a perfect prefix cache serves for this turn: the previous turn's whole
        prompt, and its reply too when that is the server's own text (a stand-in reply differs
        from what the server generated, so its cache ends where the stand-in starts); on the
        first turn, the shared system prompt once an earlier session has sent it."""
        if len(messages) >= 3 and messages[-2]["role"] == "assistant":
            reused = messages[:-1] if exact_reply else messages[:-2]
            return sum(len(m["content"].split()) for m in reused)
        if self._shared_system and self._number > 0:
            return len(messages[0]["content"].split())
        return 0


class SessionDriver:
    """The runner's SessionSource for a SessionWorkload: sessions 0, 1, 2, ... in the order
    the runner starts them, request indices unique across sessions."""

    def __init__(self, workload: SessionWorkload) -> None:
        self._workload = workload
        self._number = 0
        self._next_index = 0

    def new_session(self) -> Conversation:
        conversation = Conversation(self._workload, self._number, self._next_index)
        self._number += 1
        self._next_index += conversation.turns
        return conversation


class ThinkingUsers:
    """The runner's SessionSource for independent requests from closed-loop users who
    think between a response and their next request. User u draws its think times from its
    own seeded stream, so they do not depend on which user's request finishes first."""

    def __init__(self, specs: Iterator[RequestSpec], think_time: ThinkTime, seed: int) -> None:
        self._specs = specs
        self._think_time = think_time
        self._seed = seed
        self._users = 0

    def new_session(self) -> _User | None:
        first = next(self._specs, None)
        if first is None:
            return None
        rng = np.random.default_rng([self._seed, 16, self._users])
        self._users += 1
        return _User(first, self._specs, self._think_time, rng)


class _User:
    """One user: its first request, then the next one from the shared stream after each."""

    def __init__(
        self,
        first: RequestSpec,
        specs: Iterator[RequestSpec],
        think_time: ThinkTime,
        rng: np.random.Generator,
    ) -> None:
        self._first: RequestSpec | None = first
        self._specs = specs
        self._think_time = think_time
        self._rng = rng

    def next_turn(self, previous: RequestRecord | None) -> Turn | None:
        if self._first is not None:
            first, self._first = self._first, None
            return Turn(first)
        spec = next(self._specs, None)
        return None if spec is None else Turn(spec, self._think_time.sample_ns(self._rng))


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
        # A system prompt of its own: nothing for a prefix cache to serve.
        if spec.messages is not None and spec.messages[0].get("role") == "system":
            messages = ({"role": "system", "content": own}, *spec.messages[1:])
            yield replace(spec, messages=messages, cached_input_tokens_expected=0)
        elif spec.prompt is not None:
            rest = spec.prompt.split(" ", system_tokens)[-1]
            yield replace(spec, prompt=f"{own} {rest}", cached_input_tokens_expected=0)
        else:
            yield spec


def prompt_text(spec: RequestSpec) -> str:
    """The prompt as one text (messages joined in order), for prefix-hit estimates."""
    if spec.prompt is not None:
        return spec.prompt
    return " ".join(str(m.get("content", "")) for m in spec.messages or ())
