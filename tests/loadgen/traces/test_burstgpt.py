"""BurstGPT CSV: both layouts, failures (Response tokens = 0) and the Model / Log Type filters."""

import pytest

from loadgen.traces import load_trace, parse_burstgpt

V1 = (
    "Timestamp,Model,Request tokens,Response tokens,Total tokens,Log Type\n"
    "5,ChatGPT,472,18,490,Conversation log\n"
    "45,ChatGPT,1087,0,1087,Conversation log\n"
    "118,GPT-4,417,276,693,API log\n"
    "120,ChatGPT,300,20,320,API log\n"
)
V3 = (
    "Timestamp,Session ID,Elapsed time,Model,"
    "Request tokens,Response tokens,Total tokens,Log Type\r\n"
    "10.5,s-1,1.2,ChatGPT,100,10,110,Conversation log\r\n"
    "11.0,s-2,0.8,GPT-4,200,0,200,Conversation log\r\n"
    "12.25,s-1,2.0,ChatGPT,150,15,165,Conversation log"
)


def write(tmp_path, text, name="burst.csv"):
    path = tmp_path / name
    path.write_bytes(text.encode())
    return path


def test_v1_layout_skips_failures_by_default(tmp_path):
    trace = load_trace(write(tmp_path, V1))
    assert trace.format == "burstgpt"
    assert [(r.t_arrival_s, r.input_tokens, r.output_tokens, r.model) for r in trace.records] == [
        (0.0, 472, 18, "ChatGPT"),
        (113.0, 417, 276, "GPT-4"),
        (115.0, 300, 20, "ChatGPT"),
    ]
    assert all(r.source_ok for r in trace.records)


def test_failures_can_be_kept_as_error_samples(tmp_path):
    trace = load_trace(write(tmp_path, V1), keep_failed=True)
    failed = [r for r in trace.records if not r.source_ok]
    assert [(r.t_arrival_s, r.input_tokens, r.output_tokens) for r in failed] == [(40.0, 1087, 0)]
    assert len(trace) == 4


def test_filters_by_model_and_log_type_ignore_case(tmp_path):
    path = write(tmp_path, V1)
    assert [r.input_tokens for r in parse_burstgpt(path, model="gpt-4")] == [417]
    assert [r.input_tokens for r in parse_burstgpt(path, log_type="API log")] == [417, 300]
    both = parse_burstgpt(path, model=["ChatGPT"], log_type="api LOG")
    assert [(r.t_arrival_s, r.input_tokens) for r in both] == [(0.0, 300)]  # re-zeroed


def test_v3_layout_with_sessions_crlf_and_no_final_newline(tmp_path):
    records = load_trace(write(tmp_path, V3)).records
    assert [(r.t_arrival_s, r.session_id, r.input_tokens) for r in records] == [
        (0.0, "s-1", 100),
        (1.75, "s-1", 150),
    ]


def test_column_names_with_odd_spacing_and_case(tmp_path):
    text = (
        "Timestamp, Model ,request tokens,Response Tokens,Total tokens,Log Type\n"
        "1,ChatGPT,5,6,11,API log\n"
    )
    assert [r.output_tokens for r in load_trace(write(tmp_path, text)).records] == [6]


def test_filters_are_refused_for_formats_without_those_columns(tmp_path):
    path = write(tmp_path, "num_prefill_tokens,num_decode_tokens\n1,2\n", "lengths.csv")
    with pytest.raises(ValueError, match="burstgpt only"):
        load_trace(path, model="GPT-4")


def test_bad_timestamp_names_the_line(tmp_path):
    text = V1.replace("118,GPT-4", "soon,GPT-4")
    with pytest.raises(ValueError, match=r"burst\.csv:4: expected seconds in Timestamp"):
        load_trace(write(tmp_path, text))
