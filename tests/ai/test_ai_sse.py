"""The event-stream decoder, without I/O: bytes in, deltas out."""

from __future__ import annotations

import msgspec
import pytest

from pichat_trio.adapters.ai.sse import ChatStreamDecoder, SSEParser, decode_chunk
from pichat_trio.errors import UpstreamError
from pichat_trio.ports import ChatDelta

PROMPT_FILTER = (
    b'data: {"choices":[],"created":0,"id":"","model":"","object":"","prompt_filter_results":'
    b'[{"prompt_index":0,"content_filter_results":{"hate":{"filtered":false,"severity":"safe"}}}]}'
)
ROLE = (
    b'data: {"choices":[{"content_filter_results":{},"delta":{"content":"","refusal":null,'
    b'"role":"assistant"},"finish_reason":null,"index":0,"logprobs":null}],"id":"c1"}'
)
ROLE_ONLY = b'data: {"choices":[{"index":0,"finish_reason":null,"delta":{"role":"assistant"}}]}'


def token(text: str) -> bytes:
    return (
        b'data: {"choices":[{"content_filter_results":'
        b'{"hate":{"filtered":false,"severity":"safe"}},'
        b'"delta":{"content":"' + text.encode() + b'"},"finish_reason":null,"index":0}]}'
    )


def finish(reason: str) -> bytes:
    return (
        b'data: {"choices":[{"content_filter_results":{},"delta":{},"finish_reason":"'
        + reason.encode()
        + b'","index":0}]}'
    )


def stream(*events: bytes, eol: bytes = b"\r\n") -> bytes:
    return b"".join(event + eol + eol for event in events)


AZURE = stream(
    PROMPT_FILTER,
    b": keep-alive",
    ROLE,
    token("Hello"),
    token(" world"),
    finish("stop"),
    b"data: [DONE]",
)


def decode_all(data: bytes, step: int | None = None) -> tuple[list[ChatDelta], ChatStreamDecoder]:
    decoder = ChatStreamDecoder()
    deltas: list[ChatDelta] = []
    step = step or len(data) or 1
    for i in range(0, len(data), step):
        deltas += decoder.feed(data[i : i + step])
    deltas += decoder.close()
    return deltas, decoder


@pytest.mark.parametrize("eol", [b"\r\n", b"\n"])
@pytest.mark.parametrize("step", [None, 1, 7])
def test_azure_stream_any_line_ending_any_split(eol: bytes, step: int | None) -> None:
    data = AZURE.replace(b"\r\n", eol)
    deltas, decoder = decode_all(data, step)
    assert deltas == [ChatDelta("Hello"), ChatDelta(" world"), ChatDelta("", "stop")]
    assert decoder.done and decoder.complete
    assert decoder.emitted == 3


def test_parser_ignores_comments_and_other_fields_and_joins_data_lines() -> None:
    parser = SSEParser()
    events = parser.feed(b": ping\nevent: message\nid: 7\nretry: 10\ndata:a\ndata: b\n\n\n\n")
    assert events == [b"a\nb"]


def test_parser_close_keeps_a_last_event_without_blank_line() -> None:
    parser = SSEParser()
    assert parser.feed(b"data: [DONE]") == []
    assert parser.close() == [b"[DONE]"]


def test_parser_refuses_an_endless_line() -> None:
    parser = SSEParser()
    with pytest.raises(UpstreamError):
        parser.feed(b"data: " + b"x" * (2 << 20))


@pytest.mark.parametrize("event", [PROMPT_FILTER, ROLE, ROLE_ONLY, token("")])
def test_events_without_text_give_nothing(event: bytes) -> None:
    assert decode_chunk(event.removeprefix(b"data: ")) is None


def test_filter_only_chunk_without_delta_gives_nothing() -> None:
    chunk = b'{"choices":[{"index":0,"finish_reason":null,"content_filter_results":{}}]}'
    assert decode_chunk(chunk) is None


@pytest.mark.parametrize(
    ("reason", "expected"),
    [
        ("stop", "stop"),
        ("length", "length"),
        ("content_filter", "content_filter"),
        ("tool_calls", "stop"),
        ("function_call", "stop"),
    ],
)
def test_finish_reasons(reason: str, expected: str) -> None:
    deltas, _ = decode_all(stream(token("a"), finish(reason), b"data: [DONE]"))
    assert deltas == [ChatDelta("a"), ChatDelta("", expected)]  # type: ignore[arg-type]


def test_text_and_finish_in_one_chunk() -> None:
    chunk = b'{"choices":[{"delta":{"content":"end"},"finish_reason":"length","index":0}]}'
    assert decode_chunk(chunk) == ChatDelta("end", "length")


def test_done_without_finish_reason_ends_as_stop() -> None:
    deltas, decoder = decode_all(stream(token("a"), b"data: [DONE]"))
    assert deltas == [ChatDelta("a"), ChatDelta("", "stop")]
    assert decoder.done


def test_content_after_the_finish_and_events_after_done_are_dropped() -> None:
    deltas, _ = decode_all(
        stream(token("a"), finish("stop"), token("late"), b"data: [DONE]", token("later"))
    )
    assert deltas == [ChatDelta("a"), ChatDelta("", "stop")]


def test_a_stream_cut_short_is_not_complete() -> None:
    deltas, decoder = decode_all(stream(PROMPT_FILTER, ROLE, token("a"))[:-5])
    assert deltas == []
    assert not decoder.complete


def test_finish_without_done_is_complete() -> None:
    _, decoder = decode_all(stream(token("a"), finish("stop")))
    assert decoder.complete and not decoder.done


def test_malformed_event_raises_upstream_error() -> None:
    with pytest.raises(UpstreamError, match="malformed"):
        decode_chunk(b"{not json")


def test_error_event_mid_stream_raises_upstream_error() -> None:
    with pytest.raises(UpstreamError, match="failed while answering"):
        decode_chunk(b'{"error":{"message":"boom","code":"server_error"}}')


def test_non_ascii_and_escapes_survive() -> None:
    chunk = msgspec.json.encode({"choices": [{"delta": {"content": 'Zażółć "gęślą"\n'}}]})
    assert decode_chunk(chunk) == ChatDelta('Zażółć "gęślą"\n')
