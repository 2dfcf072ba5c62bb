"""load_trace: format sniffing and errors for files that are no trace."""

import gzip

import pytest

from loadgen.traces import FORMATS, load_trace, sniff_format

HEADS = {
    "azure": "TIMESTAMP,ContextTokens,GeneratedTokens\r\n2024-05-12 00:00:00+00:00,1,1",
    "azure-lmm": "TIMESTAMP,NumImages,ContextTokens,GeneratedTokens\n2025-01-01T00:00:00Z,1,1,1\n",
    "burstgpt": "Timestamp,Model,Request tokens,Response tokens,Total tokens,Log Type\n"
    "0,ChatGPT,1,1,2,API log\n",
    "mooncake": '{"timestamp": 0, "input_length": 1, "output_length": 1, "hash_ids": [0]}\n',
    "bailian": '{"chat_id": 1, "parent_chat_id": -1, "timestamp": 0.0, "input_length": 1, '
    '"output_length": 1, "type": "text", "turn": 1, "hash_ids": [0]}\n',
    "lengths": "num_prefill_tokens,num_decode_tokens\n1,1\n",
}


@pytest.mark.parametrize("name", sorted(HEADS))
def test_every_format_is_sniffed_from_its_first_line(tmp_path, name):
    path = tmp_path / "trace"
    path.write_bytes(HEADS[name].encode())
    assert sniff_format(path) == name
    assert load_trace(path).format == name


def test_every_format_has_a_sniffing_sample():
    assert set(HEADS) == set(FORMATS)


def test_gzip_is_detected_by_content_not_name(tmp_path):
    path = tmp_path / "trace.dat"
    path.write_bytes(gzip.compress(HEADS["mooncake"].encode()))
    assert load_trace(path).format == "mooncake"


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (b"", "empty file"),
        (b"a,b,c\n1,2,3\n", "unknown trace header"),
        (b'{"foo": 1}\n', "expected Mooncake"),
        (b"\xff\xfe\x00garbage", "readable text file"),
    ],
)
def test_unrecognised_files_get_one_line_errors(tmp_path, content, expected):
    path = tmp_path / "t.csv"
    path.write_bytes(content)
    with pytest.raises(ValueError, match=expected) as info:
        load_trace(path)
    assert "\n" not in str(info.value)


def test_missing_file_and_unknown_format_name(tmp_path):
    with pytest.raises(ValueError, match="no such trace file"):
        load_trace(tmp_path / "nope.csv")
    path = tmp_path / "t.csv"
    path.write_text(HEADS["lengths"])
    with pytest.raises(ValueError, match="unknown trace format 'parquet'"):
        load_trace(path, format="parquet")
