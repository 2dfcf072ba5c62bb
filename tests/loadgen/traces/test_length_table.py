"""Length-only tables (no time unless Vidur's arrived_at): the caller attaches arrivals."""

import pytest

from loadgen.traces import load_trace


def test_without_times_records_keep_file_order_and_have_no_arrival(tmp_path):
    path = tmp_path / "lengths.csv"
    path.write_text(
        "num_prefill_tokens,num_decode_tokens,num_total_tokens,pd_ratio\n"
        "300,20,320,15.0\n"
        "100,50,150,2.0\n"
    )
    trace = load_trace(path)
    assert trace.format == "lengths"
    assert not trace.timed
    assert [(r.t_arrival_s, r.input_tokens, r.output_tokens) for r in trace.records] == [
        (None, 300, 20),
        (None, 100, 50),
    ]


def test_vidur_arrived_at_gives_relative_sorted_times(tmp_path):
    path = tmp_path / "vidur.csv"
    path.write_text("arrived_at,num_prefill_tokens,num_decode_tokens\n12.5,10,1.0\n10.0,20,2.0\n")
    trace = load_trace(path, format="vidur")
    assert trace.timed
    assert [(r.t_arrival_s, r.input_tokens, r.output_tokens) for r in trace.records] == [
        (0.0, 20, 2),
        (2.5, 10, 1),
    ]


def test_missing_column_is_reported(tmp_path):
    path = tmp_path / "x.csv"
    path.write_text("num_prefill_tokens,decode\n1,2\n")
    with pytest.raises(ValueError, match=r"x\.csv:1: expected CSV columns .* missing num_decode"):
        load_trace(path, format="lengths")
