"""Qwen-Bailian JSONL: sessions from parent links, float-second timestamps, 16-token blocks."""

import json

from loadgen.traces import load_trace

ROWS = [
    # chat_id, parent (-1 root), timestamp s, in, out, type, turn, hash_ids
    (1, -1, 100.5, 40, 5, "text", 1, [1, 2, 3]),
    (2, -1, 100.75, 20, 8, "search", 1, [9, 10]),
    (3, 1, 103.0, 80, 6, "text", 2, [1, 2, 3, 4, 5]),
    (4, 3, 110.0, 120, 9, "image", 3, [1, 2, 3, 4, 5, 6, 7, 8]),
    (5, 77, 101.0, 16, 2, "file", 2, [11]),  # parent outside the file (a cut window)
]


def write(tmp_path):
    keys = ("chat_id", "parent_chat_id", "timestamp", "input_length", "output_length")
    keys += ("type", "turn", "hash_ids")
    path = tmp_path / "qwen.jsonl"
    path.write_text("".join(json.dumps(dict(zip(keys, row, strict=True))) + "\n" for row in ROWS))
    return path


def test_sessions_follow_parent_links(tmp_path):
    trace = load_trace(write(tmp_path))
    assert trace.format == "bailian"
    got = [(r.t_arrival_s, r.session_id, r.parent_id, r.turn) for r in trace.records]
    assert got == [
        (0.0, "1", None, 1),
        (0.25, "2", None, 1),
        (0.5, "77", "77", 2),
        (2.5, "1", "1", 2),
        (9.5, "1", "3", 3),
    ]
    assert {r.block_size for r in trace.records} == {16}
    assert trace.records[-1].hash_ids == (1, 2, 3, 4, 5, 6, 7, 8)


def test_format_can_be_named(tmp_path):
    assert len(load_trace(write(tmp_path), format="qwen-bailian")) == len(ROWS)
