"""Server-sent events of a streamed chat completion, decoded without I/O.

Azure OpenAI and the OpenAI-compatible servers send the same stream:
``data: {json}`` events separated by blank lines, ``:`` comment lines as
keep-alives, and ``data: [DONE]`` at the end. Lines end in LF or CRLF.

This module is the hot path of every answer (one call per token for hundreds
of concurrent streams), so it is sans-IO and does as little as it can: split
bytes into events, decode each event with a typed ``msgspec`` decoder that
skips the fields we do not need (content filter results, logprobs, ids),
and turn it into at most one ``ChatDelta``.
"""

from __future__ import annotations

import logging

import msgspec

from ...errors import UpstreamError
from ...ports import ChatDelta, FinishReason

__all__ = ["DONE", "ChatStreamDecoder", "SSEParser", "decode_chunk", "finish_reason_of"]

logger = logging.getLogger(__name__)

DONE = b"[DONE]"
"""The payload of the event that ends a stream."""

_MAX_PENDING_BYTES = 1 << 20
"""Bound, in bytes, on a partial line held between reads (1 MiB: a single
event is a few hundred bytes; more means the peer is not sending SSE)."""


class SSEParser:
    """Splits a byte stream into the ``data`` payloads of its events.

    Feed it whatever the socket returned; it keeps the partial last line.
    Multi-line ``data`` fields are joined with ``\\n`` as the SSE spec says;
    ``event``, ``id`` and ``retry`` fields and comments are ignored.
    """

    __slots__ = ("_data", "_partial")

    def __init__(self) -> None:
        self._partial = b""
        self._data: list[bytes] = []

    def feed(self, chunk: bytes) -> list[bytes]:
        """Return the payloads of the events that ``chunk`` completes."""
        if self._partial:
            chunk = self._partial + chunk
        lines = chunk.split(b"\n")
        self._partial = lines.pop()
        if len(self._partial) > _MAX_PENDING_BYTES:
            raise UpstreamError("The AI service sent a malformed answer.")
        events: list[bytes] = []
        data = self._data
        for raw in lines:
            line = raw[:-1] if raw.endswith(b"\r") else raw
            if not line:
                if data:
                    events.append(data[0] if len(data) == 1 else b"\n".join(data))
                    data.clear()
            elif line.startswith(b"data:"):
                value = line[5:]
                data.append(value[1:] if value.startswith(b" ") else value)
            # anything else is a comment (":") or a field we do not use
        return events

    def close(self) -> list[bytes]:
        """Flush at end of stream.

        The spec drops an event that lacks its blank line; we keep one whose
        data lines were complete, and a last ``data: [DONE]`` even without
        its line end, so such a server still ends the stream cleanly. A cut
        line is dropped: it is a truncated event.
        """
        tail = self._partial.rstrip(b"\r")
        if tail.startswith(b"data:") and tail[5:].strip() == DONE:
            self._data.append(DONE)
        events = [b"\n".join(self._data)] if self._data else []
        self._partial = b""
        self._data = []
        return events


# The parts of a chunk we read; msgspec skips every other field unparsed.


class _Delta(msgspec.Struct):
    content: str | None = None


class _Choice(msgspec.Struct):
    delta: _Delta | None = None
    finish_reason: str | None = None


class _ErrorBody(msgspec.Struct):
    message: str | None = None
    code: str | int | None = None


class _Chunk(msgspec.Struct):
    choices: list[_Choice] = []
    error: _ErrorBody | None = None


_decoder = msgspec.json.Decoder(_Chunk)

_FINISH_REASONS: dict[str, FinishReason] = {
    "stop": "stop",
    "length": "length",
    "content_filter": "content_filter",
}


def finish_reason_of(value: str) -> FinishReason:
    """Our finish reason for an upstream one; unknown ones (tool calls) end as ``stop``."""
    return _FINISH_REASONS.get(value, "stop")


def decode_chunk(payload: bytes) -> ChatDelta | None:
    """The delta carried by one event, or None for an event without text or end.

    Prompt filter results (empty ``choices``), role-only deltas and
    filter-only chunks carry neither and give None. An ``error`` event sent
    mid-stream raises ``UpstreamError``.
    """
    try:
        chunk = _decoder.decode(payload)
    except msgspec.DecodeError as exc:
        logger.warning("undecodable event from the AI service: %s", exc)
        raise UpstreamError("The AI service sent a malformed answer.") from exc
    if not chunk.choices:
        if chunk.error is not None:
            logger.warning(
                "the AI service failed mid-stream: code=%s message=%s",
                chunk.error.code,
                chunk.error.message,
            )
            raise UpstreamError("The AI service failed while answering.")
        return None
    choice = chunk.choices[0]
    delta = choice.delta
    text = (delta.content or "") if delta is not None else ""
    if choice.finish_reason is not None:
        return ChatDelta(text, finish_reason_of(choice.finish_reason))
    if text:
        return ChatDelta(text)
    return None


class ChatStreamDecoder:
    """Bytes of a completion stream in, the deltas to pass on out.

    Keeps the state a stream needs: the end comes at ``[DONE]`` (a stream
    that ends there without a finish reason ends as ``stop``), content after
    the finish reason is dropped, and ``emitted`` counts what was passed on
    so the caller knows whether a retry is still safe.
    """

    __slots__ = ("_parser", "done", "emitted", "finished")

    def __init__(self) -> None:
        self._parser = SSEParser()
        self.done = False
        """``[DONE]`` was seen."""
        self.finished = False
        """A delta with a finish reason was emitted."""
        self.emitted = 0

    @property
    def complete(self) -> bool:
        """The answer ended properly, by ``[DONE]`` or a finish reason."""
        return self.done or self.finished

    def feed(self, chunk: bytes) -> list[ChatDelta]:
        """The deltas completed by ``chunk``; stops at ``[DONE]``."""
        return self._accept(self._parser.feed(chunk))

    def close(self) -> list[ChatDelta]:
        """The deltas of a last event left without its blank line at end of stream."""
        return self._accept(self._parser.close())

    def _accept(self, payloads: list[bytes]) -> list[ChatDelta]:
        deltas: list[ChatDelta] = []
        for payload in payloads:
            if self.done:
                break
            if payload == DONE:
                self.done = True
                if not self.finished:
                    self.finished = True
                    deltas.append(ChatDelta("", "stop"))
                break
            if self.finished:
                continue
            delta = decode_chunk(payload)
            if delta is not None:
                if delta.finish_reason is not None:
                    self.finished = True
                deltas.append(delta)
        self.emitted += len(deltas)
        return deltas
