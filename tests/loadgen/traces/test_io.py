"""Timestamp and number parsing shared by the CSV trace parsers."""

import pytest

from loadgen.traces._io import parse_timestamp_ns, to_count
from loadgen.traces.record import TraceFormatError


def test_all_azure_timestamp_forms_agree_on_the_same_instant():
    base = parse_timestamp_ns("2024-05-10 00:00:00+00:00")
    assert base == 1715299200 * 10**9
    assert parse_timestamp_ns("2024-05-10 00:00:00.009930+00:00") - base == 9_930_000
    assert parse_timestamp_ns("2024-05-10 00:00:01.5000000") - base == 1_500_000_000
    assert parse_timestamp_ns("2024-05-10T00:00:02.25Z") - base == 2_250_000_000
    assert parse_timestamp_ns("2024-05-10 00:00:00") == base


def test_seven_fractional_digits_keep_sub_microsecond_steps():
    a = parse_timestamp_ns("2023-11-16 18:17:03.9799600")
    b = parse_timestamp_ns("2023-11-16 18:17:04.0319600")
    assert b - a == 52_000_000
    assert parse_timestamp_ns("2023-11-16 18:17:03.0000001") % 10**9 == 100


def test_timezone_offsets_are_honoured():
    utc = parse_timestamp_ns("2024-05-10 02:00:00+00:00")
    assert parse_timestamp_ns("2024-05-10 04:00:00+02:00") == utc
    assert parse_timestamp_ns("2024-05-09 21:00:00-05:00") == utc


def test_midnight_crossing_is_continuous():
    before = parse_timestamp_ns("2023-11-16 23:59:59.5")
    after = parse_timestamp_ns("2023-11-17 00:00:00.5")
    assert after - before == 10**9


@pytest.mark.parametrize(
    "bad",
    [
        "",
        "yesterday",
        "2023-11-16",
        "2023-11-16 18:77:00",
        "16/11/2023",
        "2023-11-16 18:17:03,5",
        "2023-11-16 18:17:03.5x",
    ],
)
def test_malformed_timestamps_are_rejected(bad):
    with pytest.raises(ValueError):
        parse_timestamp_ns(bad)


def test_counts_accept_integral_floats_and_reject_the_rest():
    assert to_count("12", "f", 2, "c") == 12
    assert to_count("12.0", "f", 2, "c") == 12
    for bad in ["1.5", "-3", "x", ""]:
        with pytest.raises(TraceFormatError, match=r"^f:2: expected"):
            to_count(bad, "f", 2, "c")
