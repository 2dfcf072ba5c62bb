"""The synthetic workload: an endless, seeded stream of RequestSpecs of sampled lengths.

Four independent random streams are derived from the seed (input lengths, output lengths,
prompt text, system prompt), so changing the output distribution leaves the prompts as they
were, and changing the input distribution leaves the output lengths as they were.

``salt_specs`` puts a run's salt (loadgen.prompts.new_salt) at the start of any spec stream:
synthetic, dataset or trace replay, chat or completions.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, replace
from typing import Any, Literal

import numpy as np

from loadgen.fingerprint import fingerprint
from loadgen.lengths import LengthDist
from loadgen.presets import get_preset
from loadgen.prompts import synth_text
from loadgen.spec import RequestSpec

__all__ = ["SyntheticWorkload", "fingerprint", "salt_spec", "salt_specs"]

_BATCH = 1024  # lengths drawn per numpy call


@dataclass(frozen=True, slots=True)
class SyntheticWorkload:
    """Random-word prompts of ``input_len`` tokens asking for ``output_len`` tokens.

    ``input_len`` is the whole prompt, system prompt included: with
    ``system_prompt_tokens`` = S, every request starts with the same S-token system text
    (chat: a system message; completions: a prefix of the prompt) and the user part is
    max(1, sampled - S) tokens. With ``ignore_eos`` the request also asks the server to
    generate exactly ``max_tokens`` (``ignore_eos``, ``min_tokens``; servers that do not
    know the fields ignore them).
    """

    input_len: LengthDist
    output_len: LengthDist
    api: Literal["chat", "completions"] = "chat"
    seed: int = 0
    system_prompt_tokens: int = 0
    ignore_eos: bool = True
    model: str | None = None  # sent in extra_body["model"]: RequestSpec has no model field

    def __post_init__(self) -> None:
        if self.api not in ("chat", "completions"):
            raise ValueError(f"api must be 'chat' or 'completions', got {self.api!r}")
        if self.system_prompt_tokens < 0:
            raise ValueError(f"system prompt tokens must be >= 0, got {self.system_prompt_tokens}")

    @classmethod
    def from_preset(
        cls,
        name: str,
        *,
        api: Literal["chat", "completions"] | None = None,
        seed: int = 0,
        system_prompt_tokens: int = 0,
        ignore_eos: bool = True,
        model: str | None = None,
    ) -> SyntheticWorkload:
        """A preset's input and output tables; ``api`` defaults to the one its trace used."""
        preset = get_preset(name)
        return cls(
            input_len=preset.input,
            output_len=preset.output,
            api=api or preset.api,
            seed=seed,
            system_prompt_tokens=system_prompt_tokens,
            ignore_eos=ignore_eos,
            model=model,
        )

    def describe(self) -> str:
        return (
            f"synthetic {self.api}: input {self.input_len.describe()}, "
            f"output {self.output_len.describe()}, seed {self.seed}"
        )

    def specs(self) -> Iterator[RequestSpec]:
        """Request 0, 1, 2, ... forever; the same seed gives the same sequence."""
        in_ss, out_ss, text_ss, system_ss = np.random.SeedSequence(self.seed).spawn(4)
        in_rng, out_rng = np.random.default_rng(in_ss), np.random.default_rng(out_ss)
        text_rng = np.random.default_rng(text_ss)
        system = ""
        if self.system_prompt_tokens:
            system = synth_text(self.system_prompt_tokens, np.random.default_rng(system_ss))
        index = 0
        while True:
            inputs = self.input_len.sample(in_rng, _BATCH).tolist()
            outputs = self.output_len.sample(out_rng, _BATCH).tolist()
            for n_in, n_out in zip(inputs, outputs, strict=True):
                yield self._spec(index, system, n_in, n_out, text_rng)
                index += 1

    def _spec(
        self, index: int, system: str, n_in: int, n_out: int, text_rng: np.random.Generator
    ) -> RequestSpec:
        n_user = max(1, n_in - self.system_prompt_tokens)
        user = synth_text(n_user, text_rng)
        extra: dict[str, Any] = {}
        if self.ignore_eos:
            extra = {"ignore_eos": True, "min_tokens": n_out}
        if self.model is not None:
            extra["model"] = self.model
        prompt, messages = None, None
        if self.api == "completions":
            prompt = f"{system} {user}" if system else user
        else:
            user_msg = {"role": "user", "content": user}
            system_msg = {"role": "system", "content": system}
            messages = (system_msg, user_msg) if system else (user_msg,)
        return RequestSpec(
            index=index,
            prompt=prompt,
            messages=messages,
            max_tokens=n_out,
            input_tokens_expected=n_user + self.system_prompt_tokens,
            output_tokens_expected=n_out,
            extra_body=extra or None,
            cached_input_tokens_expected=self._cached_expected(index),
        )

    def _cached_expected(self, index: int) -> int | None:
        """A perfect prefix cache serves the shared system prompt to every request after the
        first (which makes it warm); None: no shared prefix, no claim."""
        if not self.system_prompt_tokens:
            return None
        return self.system_prompt_tokens if index > 0 else 0


def salt_spec(spec: RequestSpec, salt: str) -> RequestSpec:
    """``spec`` with ``salt`` at the very start: of its first message (the system prompt when
    there is one, so a shared system prompt stays shared within the run) or of its prompt.

    A spec with a target length keeps it: its last message (or the prompt) gives up as many
    words from its end as the salt adds, and always keeps one of its own; so a very short
    prompt carries a shorter salt, still a prefix of the run's. A spec without a target
    (a dataset's text) is sent whole, the salt's words added to it.
    """
    words = salt.split()
    parts = _parts(spec)
    if not words or parts is None:
        return spec
    texts = list(parts)
    k = len(words)
    if spec.input_tokens_expected is not None:
        last = texts[-1].split()
        k = min(k, len(last) - 1)
        if k < 1:
            return spec
        texts[-1] = " ".join(last[:-k])
    texts[0] = " ".join([*words[:k], texts[0]]) if texts[0] else " ".join(words[:k])
    return _with_parts(replace(spec, salt_words=k), texts)


def salt_specs(specs: Iterator[RequestSpec], salt: str) -> Iterator[RequestSpec]:
    """Every spec salted (see salt_spec); the stream unchanged when ``salt`` is empty."""
    if not salt:
        return specs
    return (salt_spec(spec, salt) for spec in specs)


def _parts(spec: RequestSpec) -> list[str] | None:
    """The prompt, or the messages' texts; None when there is nothing to salt (no text, or
    a message whose content is not plain text)."""
    if spec.prompt is not None:
        return [spec.prompt]
    contents = [m.get("content") for m in spec.messages or ()]
    if not contents or not all(isinstance(c, str) for c in contents):
        return None
    return [str(c) for c in contents]


def _with_parts(spec: RequestSpec, texts: list[str]) -> RequestSpec:
    if spec.prompt is not None:
        return replace(spec, prompt=texts[0])
    messages = tuple({**m, "content": t} for m, t in zip(spec.messages or (), texts, strict=True))
    return replace(spec, messages=messages)
