"""SSE framing: events are cut at blank lines, whatever the chunk boundaries."""

from app.errors import UpstreamTimeout
from app.streaming.relay import relay
from app.upstream import sse


def feed_all(chunks):
    splitter = sse.EventSplitter()
    return [splitter.feed(c) for c in chunks], splitter.rest()


def test_complete_events_leave_at_once_and_partial_ones_wait():
    blocks, rest = feed_all([b"data: 1\n\ndata: 2", b"\n", b"\ndata: 3\n\n", b"data: 4\n"])
    assert blocks == [b"data: 1\n\n", b"", b"data: 2\n\ndata: 3\n\n", b""]
    assert rest == b"data: 4\n"


def test_crlf_line_ends_are_understood_even_when_split():
    blocks, _ = feed_all([b"data: 1\r\n\r", b"\ndata: 2\r\n", b"\r\n"])
    assert b"".join(blocks) == b"data: 1\n\ndata: 2\n\n"


def test_data_of_joins_lines_and_skips_comments():
    assert sse.data_of(b": keep-alive\n\n") is None
    assert sse.data_of(b"event: x\ndata: a\ndata:b\n\n") == b"a\nb"
    assert list(sse.iter_data(iter([b": ping\n\ndata: {\"a\"", b": 1}\n\ndata: [DONE]\n\n"]))) == [b'{"a": 1}', b"[DONE]"]


def test_relay_ends_with_one_error_event_and_closes():
    closed = []

    def chunks():
        yield b"data: 1\n\n"
        raise UpstreamTimeout("Provider openai stopped sending.")

    out = list(relay(chunks(), close=lambda: closed.append(True)))
    assert out[0] == b"data: 1\n\n"
    assert out[1].startswith(b'data: {"error":{"message":"Provider openai stopped sending."') and len(out) == 2
    assert closed == [True]


def test_relay_closes_upstream_when_the_client_goes_away():
    closed = []
    stream = relay(iter([b"data: 1\n\n", b"data: 2\n\n"]), close=lambda: closed.append(True))
    assert next(stream) == b"data: 1\n\n"
    stream.close()
    assert closed == [True]
