"""Prompt datasets: ShareGPT JSON, JSONL with ``prompt`` or ``messages``, plain text files.

``load_dataset`` reads a file into ``DatasetItem``s; ``dataset_specs`` turns them into an endless,
deterministic stream of RequestSpecs (cycling through the items in file order).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import orjson

from loadgen.lengths import LengthDist
from loadgen.spec import RequestSpec

FORMATS = ("sharegpt", "jsonl", "text")
_ROLES = {
    "human": "user",
    "user": "user",
    "gpt": "assistant",
    "chatgpt": "assistant",
    "assistant": "assistant",
    "bard": "assistant",
    "bing": "assistant",
    "model": "assistant",
    "system": "system",
}
_BATCH = 1024  # output lengths drawn per LengthDist.sample call


@dataclass(frozen=True, slots=True)
class DatasetItem:
    """One prompt: text (completions) or a chat history ending in a user turn, and the output
    length the dataset implies (the reply's word count) when it gives one."""

    prompt: str | None
    messages: tuple[dict[str, str], ...] | None
    max_tokens: int | None


def _fail(path: object, where: str, expected: str) -> ValueError:
    return ValueError(f"{path}:{where}: {expected}")


def sniff_dataset_format(path: str | Path) -> str:
    with open(path, encoding="utf-8-sig") as f:
        head = f.read(4096).lstrip()
    if head.startswith("["):
        return "sharegpt"
    if head.startswith("{"):
        return "jsonl"
    return "text"


def load_dataset(
    path: str | Path,
    *,
    format: str | None = None,
    turns: Literal["first", "all"] = "first",
) -> list[DatasetItem]:
    """Read a dataset file. ``turns="all"`` makes one item per user turn of a conversation,
    with the earlier turns as chat history (ShareGPT only; other formats are single-turn)."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{path}: no such dataset file")
    if turns not in ("first", "all"):
        raise ValueError(f"turns must be 'first' or 'all', got {turns!r}")
    name = sniff_dataset_format(path) if format is None else format
    if name == "sharegpt":
        items = _load_sharegpt(path, turns)
    elif name == "jsonl":
        items = _load_jsonl(path, turns)
    elif name == "text":
        with open(path, encoding="utf-8-sig") as f:
            items = [DatasetItem(line.strip(), None, None) for line in f if line.strip()]
    else:
        raise ValueError(f"unknown dataset format {format!r}; expected one of {', '.join(FORMATS)}")
    if not items:
        raise ValueError(f"{path}: no prompts found (expected a {name} dataset)")
    return items


def _load_sharegpt(path: Path, turns: str) -> list[DatasetItem]:
    try:
        data = orjson.loads(path.read_bytes())
    except orjson.JSONDecodeError as exc:
        raise _fail(path, str(exc.lineno), "expected a ShareGPT JSON array") from None
    if not isinstance(data, list):
        raise _fail(path, "1", 'expected a JSON array of {"conversations": [...]} objects')
    items: list[DatasetItem] = []
    for n, entry in enumerate(data):
        if not isinstance(entry, dict) or not isinstance(entry.get("conversations"), list):
            raise _fail(path, f"item {n}", 'expected an object with a "conversations" list')
        items.extend(_conversation_items(entry["conversations"], turns, path, f"item {n}"))
    return items


def _conversation_items(
    turns_raw: list[Any], turns: str, path: object, where: str
) -> list[DatasetItem]:
    messages = []
    for turn in turns_raw:
        if not isinstance(turn, dict) or not isinstance(turn.get("value"), str):
            raise _fail(path, where, 'expected turns like {"from": "human", "value": "..."}')
        role = _ROLES.get(str(turn.get("from", "")).lower())
        if role is None:
            return []  # an unknown speaker: skip the conversation, as vLLM's loader does
        messages.append({"role": role, "content": turn["value"]})
    items = []
    history: list[dict[str, str]] = []
    for i, message in enumerate(messages):
        if message["role"] != "user":
            history.append(message)
            continue
        reply = messages[i + 1] if i + 1 < len(messages) else None
        max_tokens = None
        if reply is not None and reply["role"] == "assistant":
            max_tokens = max(1, len(reply["content"].split()))
        if history:
            items.append(DatasetItem(None, (*history, message), max_tokens))
        else:
            items.append(DatasetItem(message["content"], None, max_tokens))
        if turns == "first":
            break
        history.append(message)
    return items


def _load_jsonl(path: Path, turns: str) -> list[DatasetItem]:
    items: list[DatasetItem] = []
    with open(path, encoding="utf-8-sig") as f:
        for line_no, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                obj = orjson.loads(line)
            except orjson.JSONDecodeError:
                raise _fail(path, str(line_no), "expected one JSON object per line") from None
            if not isinstance(obj, dict):
                raise _fail(path, str(line_no), "expected a JSON object")
            if isinstance(obj.get("conversations"), list):
                items.extend(_conversation_items(obj["conversations"], turns, path, str(line_no)))
                continue
            max_tokens = obj.get("max_tokens")
            if max_tokens is not None and (
                isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or max_tokens < 1
            ):
                raise _fail(path, str(line_no), f"expected max_tokens >= 1, got {max_tokens!r}")
            if isinstance(obj.get("prompt"), str):
                items.append(DatasetItem(obj["prompt"], None, max_tokens))
            elif isinstance(obj.get("messages"), list) and obj["messages"]:
                items.append(
                    DatasetItem(None, _messages(obj["messages"], path, line_no), max_tokens)
                )
            else:
                raise _fail(path, str(line_no), 'expected "prompt" (string) or "messages" (list)')
    return items


def _messages(raw: list[Any], path: object, line_no: int) -> tuple[dict[str, str], ...]:
    for m in raw:
        if not (
            isinstance(m, dict)
            and isinstance(m.get("role"), str)
            and isinstance(m.get("content"), str)
        ):
            raise _fail(
                path, str(line_no), 'expected messages like {"role": "user", "content": "..."}'
            )
    return tuple({"role": m["role"], "content": m["content"]} for m in raw)


def dataset_specs(
    items: Sequence[DatasetItem],
    *,
    api: Literal["chat", "completions"],
    output_len: LengthDist | None,
    seed: int,
    ignore_eos: bool = True,
) -> Iterator[RequestSpec]:
    """Endless RequestSpecs cycling through ``items`` in order. Output length is the item's own
    when the file gives one, else drawn from ``output_len`` (seeded, so the stream repeats)."""
    if api not in ("chat", "completions"):
        raise ValueError(f"api must be 'chat' or 'completions', got {api!r}")
    if not items:
        raise ValueError("dataset has no items")
    if output_len is None and any(item.max_tokens is None for item in items):
        raise ValueError("dataset gives no output length for some prompts: set an output length")
    return _specs(list(items), api, output_len, np.random.default_rng(seed), ignore_eos)


def _specs(
    items: list[DatasetItem],
    api: str,
    output_len: LengthDist | None,
    rng: np.random.Generator,
    ignore_eos: bool,
) -> Iterator[RequestSpec]:
    drawn: list[int] = []
    index = 0
    while True:
        for item in items:
            if item.max_tokens is not None:
                max_tokens = item.max_tokens
            else:
                assert output_len is not None
                if not drawn:
                    drawn = [max(1, int(x)) for x in output_len.sample(rng, _BATCH)][::-1]
                max_tokens = drawn.pop()
            prompt, messages = _for_api(item, api)
            yield RequestSpec(
                index=index,
                prompt=prompt,
                messages=messages,
                max_tokens=max_tokens,
                output_tokens_expected=max_tokens,
                extra_body={"ignore_eos": True, "min_tokens": max_tokens} if ignore_eos else None,
            )
            index += 1


def _for_api(item: DatasetItem, api: str) -> tuple[str | None, tuple[dict[str, str], ...] | None]:
    if api == "chat":
        if item.messages is not None:
            return None, item.messages
        return None, ({"role": "user", "content": item.prompt or ""},)
    if item.prompt is not None:
        return item.prompt, None
    # A chat history sent to a completions endpoint: the turns' texts, one paragraph each.
    return "\n\n".join(m["content"] for m in item.messages or ()), None
