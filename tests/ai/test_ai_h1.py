"""The HTTP/1.1 parsing under the upstream transport: heads and body framing, without I/O."""

from __future__ import annotations

import pytest

from pichat_trio.adapters.ai.h1 import (
    MAX_HEAD_BYTES,
    BodyReader,
    ProtocolError,
    parse_response_head,
    request_head,
)

CHUNKED = b"7\r\ndata: a\r\n1a;ext=1\r\n" + b"x" * 26 + b"\r\n0\r\nx-trailer: 1\r\n\r\n"
BODY = b"data: a" + b"x" * 26


def feed_in_pieces(reader: BodyReader, data: bytes, size: int) -> bytes:
    out = b""
    for start in range(0, len(data), size):
        out += b"".join(reader.feed(data[start : start + size]))
    return out


@pytest.mark.parametrize("size", [1, 2, 3, 5, 8, 13, len(CHUNKED)])
def test_a_chunked_body_reads_the_same_however_it_is_split(size: int) -> None:
    reader = BodyReader(chunked=True)
    assert feed_in_pieces(reader, CHUNKED + b"NEXT", size) == BODY
    assert reader.done
    assert reader.extra == b"NEXT"


def test_bytes_after_a_chunked_body_are_kept_as_extra() -> None:
    reader = BodyReader(chunked=True)
    assert b"".join(reader.feed(CHUNKED + b"HTTP/1.1 200")) == BODY
    assert reader.done and reader.extra == b"HTTP/1.1 200"


@pytest.mark.parametrize(
    "body",
    [
        b"zz\r\n",  # not hex
        b"-1\r\n",
        b"0x5\r\nhello\r\n",
        b"5\r\nhelloXX",  # data not followed by CRLF
        b"1" * 5000,  # a size line without end
    ],
)
def test_a_malformed_chunked_body_is_a_protocol_error(body: bytes) -> None:
    with pytest.raises(ProtocolError):
        BodyReader(chunked=True).feed(body)


def test_a_chunked_body_cut_short_is_an_error_at_eof() -> None:
    reader = BodyReader(chunked=True)
    assert reader.feed(b"5\r\nhel") == [b"hel"]
    with pytest.raises(ProtocolError):
        reader.eof()


def test_a_content_length_body_ends_at_its_length() -> None:
    reader = BodyReader(length=5)
    assert reader.feed(b"hel") == [b"hel"]
    assert not reader.done
    assert reader.feed(b"loEXTRA") == [b"lo"]
    assert reader.done and reader.extra == b"EXTRA"


def test_a_body_without_framing_runs_until_the_server_closes() -> None:
    reader = BodyReader()
    assert reader.until_close
    assert reader.feed(b"abc") == [b"abc"]
    reader.eof()
    assert reader.done


def test_an_empty_length_body_is_done_at_once() -> None:
    assert BodyReader(length=0).done


def test_a_response_head_is_parsed_with_its_framing() -> None:
    raw = (
        b"HTTP/1.1 100 Continue\r\n\r\n"
        b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
        b"Transfer-Encoding: chunked\r\nX-Odd:  spaced value \t\r\n\r\n5\r\nhello"
    )
    parsed = parse_response_head(raw)
    assert parsed is not None
    head, rest = parsed
    assert (head.status, head.reason, head.keep_alive) == (200, b"OK", True)
    assert (b"x-odd", b"spaced value") in head.headers
    assert rest == b"5\r\nhello"
    assert head.body_reader().feed(rest) == [b"hello"]


@pytest.mark.parametrize(
    ("raw", "keep_alive"),
    [
        (b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n", False),
        (b"HTTP/1.1 200 OK\r\nConnection: Keep-Alive, Close\r\n\r\n", False),
        (b"HTTP/1.0 200 OK\r\n\r\n", False),
        (b"HTTP/1.0 200 OK\r\nConnection: keep-alive\r\n\r\n", True),
        (b"HTTP/1.1 204 No Content\r\n\r\n", True),
    ],
)
def test_keep_alive_follows_the_version_and_connection_header(raw: bytes, keep_alive: bool) -> None:
    parsed = parse_response_head(raw)
    assert parsed is not None
    assert parsed[0].keep_alive is keep_alive


def test_an_incomplete_head_waits_for_more() -> None:
    assert parse_response_head(b"HTTP/1.1 200 OK\r\nContent-") is None


@pytest.mark.parametrize(
    "raw",
    [
        b"HTTP/2 200 OK\r\n\r\n",
        b"HTTP/1.1 2000 OK\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nno colon here\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nbad name: x\r\n\r\n",
        b"HTTP/1.1 200 OK\r\n" + b"x-filler: y\r\n" * (MAX_HEAD_BYTES // 10),
    ],
)
def test_a_malformed_head_is_a_protocol_error(raw: bytes) -> None:
    with pytest.raises(ProtocolError):
        parse_response_head(raw)


@pytest.mark.parametrize(
    "framing",
    [b"Transfer-Encoding: gzip\r\n", b"Content-Length: 12abc\r\n"],
)
def test_unreadable_framing_is_a_protocol_error(framing: bytes) -> None:
    parsed = parse_response_head(b"HTTP/1.1 200 OK\r\n" + framing + b"\r\n")
    assert parsed is not None
    with pytest.raises(ProtocolError):
        parsed[0].body_reader()


def test_a_request_head_is_serialised_and_refuses_header_injection() -> None:
    head = request_head(b"POST", b"/x?a=1", [(b"Host", b"h"), (b"content-length", b"2")])
    assert head == b"POST /x?a=1 HTTP/1.1\r\nHost: h\r\ncontent-length: 2\r\n\r\n"
    with pytest.raises(ValueError, match="invalid header"):
        request_head(b"GET", b"/", [(b"x", b"a\r\nInjected: 1")])
