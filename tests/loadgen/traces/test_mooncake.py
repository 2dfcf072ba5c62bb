"""Mooncake JSONL traces (timestamps in ms, 512-token prefix-chained hash blocks)."""

import math

import pytest

from loadgen.traces import load_trace, parse_mooncake
from tests.data.traces import MOONCAKE_CONV as CONV


def test_conversation_trace_parses_with_block_hashes():
    trace = load_trace(CONV)
    assert trace.format == "mooncake"
    assert len(trace) == 12031
    first = trace.records[0]
    assert (first.input_tokens, first.output_tokens, first.block_size) == (6758, 500, 512)
    assert first.hash_ids == tuple(range(14))
    assert all(len(r.hash_ids) == math.ceil(r.input_tokens / 512) for r in trace.records)
    assert 3000 < trace.records[-1].t_arrival_s < 4000  # ms became s


def test_small_file_sorted_and_relative(tmp_path):
    path = tmp_path / "m.jsonl"
    path.write_text(
        '{"timestamp": 2500, "input_length": 10, "output_length": 3, "hash_ids": [0]}\n'
        "\n"
        '{"timestamp": 1000, "input_length": 600, "output_length": 7, "hash_ids": [0, 1]}\n'
    )
    records = parse_mooncake(path)
    assert [(r.t_arrival_s, r.input_tokens, r.hash_ids) for r in records] == [
        (0.0, 600, (0, 1)),
        (1.5, 10, (0,)),
    ]


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("not json", "one JSON object per line"),
        ('{"timestamp": 1, "input_length": -1, "output_length": 1}', "'input_length' as a count"),
        ('{"timestamp": "x", "input_length": 1, "output_length": 1}', "'timestamp' as a number"),
        (
            '{"timestamp": 1, "input_length": 1, "output_length": 1, "hash_ids": "0"}',
            "'hash_ids' as a list",
        ),
    ],
)
def test_bad_lines_name_file_and_line(tmp_path, line, expected):
    path = tmp_path / "m.jsonl"
    path.write_text('{"timestamp": 0, "input_length": 1, "output_length": 1}\n' + line + "\n")
    with pytest.raises(ValueError, match=rf"m\.jsonl:2: expected {expected}"):
        parse_mooncake(path)
