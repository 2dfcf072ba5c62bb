from loadgen.sse import split_events


def test_an_event_is_timed_by_the_piece_that_completes_it() -> None:
    pieces = [b"data: a\n", b"\ndata: b\n\nda", b"ta: c\n\n"]
    times, data, rest = split_events(pieces, [10, 20, 30])
    assert data == [b"a", b"b", b"c"]
    assert times == [20, 20, 30]
    assert rest == b""


def test_crlf_comments_and_multiline_data() -> None:
    pieces = [b": keep-alive\r\n\r\ndata: x\r\ndata: y\r\n\r\nevent: done\r\n\r\n"]
    times, data, rest = split_events(pieces, [5])
    assert data == [b"x\ny"]
    assert times == [5]


def test_an_unterminated_event_is_returned_as_the_rest() -> None:
    _, data, rest = split_events([b"data: a\n\ndata: half"], [1])
    assert data == [b"a"]
    assert rest == b"data: half"


def test_fast_and_general_paths_agree_on_piece_boundaries() -> None:
    body = b"".join(b'data: {"i":%d}\n\n' % i for i in range(50)) + b"data: [DONE]\n\n"
    # Cut the body into pieces at awkward places, including inside delimiters.
    cuts = [0, 3, 17, 18, 19, 40, 41, 100, 255, 256, 300, len(body)]
    pieces = [body[a:b] for a, b in zip(cuts, cuts[1:], strict=False)]
    times = list(range(100, 100 + len(pieces)))
    from loadgen.sse import _split_general

    assert split_events(pieces, times) == _split_general(pieces, times)
    t, data, _ = split_events(pieces, times)
    assert len(data) == 51 and data[-1] == b"[DONE]"


def test_cr_alone_ends_a_line_as_the_spec_says() -> None:
    times, data, rest = split_events([b"data: a\r\rdata: b\rdata: c\r\r"], [7])
    assert data == [b"a", b"b\nc"] and times == [7, 7] and rest == b""


def test_a_crlf_split_across_reads_is_one_line_end() -> None:
    # The blank line's CRLF is cut after its CR: the event completes with the next read.
    times, data, rest = split_events([b"data: a\r\n\r", b"\ndata: b\r\n\r\n"], [1, 2])
    assert data == [b"a", b"b"] and times == [2, 2] and rest == b""


def test_a_cr_at_the_very_end_still_ends_the_last_event() -> None:
    times, data, rest = split_events([b"data: a\n", b"\r"], [1, 2])
    assert data == [b"a"] and times == [2] and rest == b""


def test_a_leading_byte_order_mark_is_skipped() -> None:
    _, data, _ = split_events([b"\xef\xbb\xbfdata: a\n\n"], [1])
    assert data == [b"a"]
