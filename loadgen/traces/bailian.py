"""Qwen-Bailian JSONL: ``chat_id, parent_chat_id (-1 = root), timestamp (s), input_length,
output_length, type, turn, hash_ids`` with 16-token blocks.

A session is the chain of parent links back to its root: every request gets its root's chat_id
as session_id, so a replay can keep a conversation's turns together.
"""

from __future__ import annotations

from pathlib import Path

from loadgen.traces._jsonl import field_count, field_hash_ids, field_seconds, jsonl_objects
from loadgen.traces.record import TraceFormatError, TraceRecord, rezero

BLOCK_SIZE = 16
_ROOT = "-1"


def _id(obj: dict, key: str, path: object, line: int) -> str:
    value = obj.get(key)
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise TraceFormatError(path, line, f"expected {key!r} as an id (int or string)")
    return str(value)


def parse_bailian(path: str | Path) -> list[TraceRecord]:
    rows = []
    parent_of: dict[str, str] = {}
    for line, obj in jsonl_objects(path):
        chat_id = _id(obj, "chat_id", path, line)
        parent = _id(obj, "parent_chat_id", path, line)
        parent_of[chat_id] = parent
        rows.append((line, obj, chat_id, parent))

    root_of: dict[str, str] = {}

    def root(chat_id: str) -> str:
        # Iterative walk up the parent links. A parent missing from the file (a cut window)
        # names the session, so its children still share one; a cycle ends the walk.
        chain: list[str] = []
        node = chat_id
        while True:
            if node in root_of:
                found = root_of[node]
                break
            chain.append(node)
            parent = parent_of.get(node, _ROOT)
            if parent == _ROOT or parent in chain:
                found = node
                break
            if parent not in parent_of:
                found = parent
                break
            node = parent
        for n in chain:
            root_of[n] = found
        return found

    records = []
    for line, obj, chat_id, parent in rows:
        turn = obj.get("turn", 0)
        if isinstance(turn, bool) or not isinstance(turn, int):
            raise TraceFormatError(path, line, f"expected 'turn' as an integer, got {turn!r}")
        records.append(
            TraceRecord(
                t_arrival_s=field_seconds(obj, "timestamp", 1.0, path, line),
                input_tokens=field_count(obj, "input_length", path, line),
                output_tokens=field_count(obj, "output_length", path, line),
                session_id=root(chat_id),
                parent_id=None if parent == _ROOT else parent,
                turn=turn,
                block_size=BLOCK_SIZE,
                hash_ids=field_hash_ids(obj, path, line),
            )
        )
    return rezero(records)
