"""Azure LLM and multimodal CSV traces."""

import gzip

import pytest

from loadgen.traces import TraceFormatError, load_trace, parse_azure, parse_azure_lmm
from tests.data.traces import AZURE_CODE as CODE
from tests.data.traces import AZURE_CONV as CONV


def test_conv_trace_parses_all_rows():
    trace = load_trace(CONV)
    assert trace.format == "azure"
    assert len(trace) == 19366
    first = trace.records[0]
    assert (first.t_arrival_s, first.input_tokens, first.output_tokens) == (0.0, 374, 44)
    assert trace.records[1].t_arrival_s == pytest.approx(4.31458, abs=1e-5)
    last = trace.records[-1]  # the final line has no newline: it must not be lost
    assert (last.input_tokens, last.output_tokens) == (197, 183)
    assert 3400 < last.t_arrival_s < 3700  # about one hour
    times = [r.t_arrival_s for r in trace.records]
    assert times == sorted(times)


def test_code_trace_parses():
    trace = load_trace(CODE)
    assert len(trace) == 8819
    assert (trace.records[0].input_tokens, trace.records[0].output_tokens) == (4808, 10)


def test_crlf_no_final_newline_and_all_timestamp_forms(tmp_path):
    path = tmp_path / "azure.csv"
    path.write_bytes(
        b"TIMESTAMP,ContextTokens,GeneratedTokens\r\n"
        b"2024-05-10 00:00:00.009930+00:00,100,10\r\n"
        b"2024-05-10 00:00:02+00:00,200,20\r\n"
        b"2024-05-10 00:00:01.5000000,300,30"
    )
    records = parse_azure(path)
    assert [(r.t_arrival_s, r.input_tokens) for r in records] == [
        (0.0, 100),
        (pytest.approx(1.49007), 300),  # out of order in the file: sorted by arrival
        (pytest.approx(1.99007), 200),
    ]


def test_multimodal_trace_gzip_with_z_timestamps(tmp_path):
    path = tmp_path / "lmm.csv.gz"
    with gzip.open(path, "wt", newline="") as f:
        f.write(
            "TIMESTAMP,NumImages,ContextTokens,GeneratedTokens\n"
            "2025-01-01T00:00:00.000000Z,2,1500,80\n"
            "2025-01-01T00:00:00.250000Z,0,300,40\n"
        )
    trace = load_trace(path)
    assert trace.format == "azure-lmm"
    assert [(r.t_arrival_s, r.num_images, r.input_tokens) for r in trace.records] == [
        (0.0, 2, 1500),
        (0.25, 0, 300),
    ]
    assert parse_azure_lmm(path) == list(trace.records)


def test_lmm_parser_requires_num_images(tmp_path):
    path = tmp_path / "a.csv"
    path.write_text("TIMESTAMP,ContextTokens,GeneratedTokens\n2024-05-10 00:00:00,1,1\n")
    with pytest.raises(TraceFormatError, match=r"a\.csv:1: expected CSV columns .*NumImages"):
        parse_azure_lmm(path)


def test_bad_row_names_file_line_and_expectation(tmp_path):
    path = tmp_path / "bad.csv"
    path.write_text(
        "TIMESTAMP,ContextTokens,GeneratedTokens\n"
        "2024-05-10 00:00:00,1,1\n"
        "2024-05-10 00:00:01,lots,1\n"
    )
    with pytest.raises(ValueError) as info:
        load_trace(path)
    message = str(info.value)
    assert message.startswith(f"{path}:3: expected a whole number in ContextTokens")
    assert "\n" not in message


def test_bad_timestamp_and_short_row(tmp_path):
    path = tmp_path / "bad.csv"
    path.write_text("TIMESTAMP,ContextTokens,GeneratedTokens\nnot a time,1,1\n")
    with pytest.raises(TraceFormatError, match=r":2: expected TIMESTAMP like"):
        load_trace(path)
    path.write_text("TIMESTAMP,ContextTokens,GeneratedTokens\n2024-05-10 00:00:00,1\n")
    with pytest.raises(TraceFormatError, match=r":2: expected 3 columns"):
        load_trace(path)
