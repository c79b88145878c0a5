"""Closing handshakes that hypercorn leaves unfinished, finished here.

Two gaps in hypercorn's WebSocket stream (``hypercorn/protocol/ws_stream.py``,
0.17-0.18), both about a close that does not happen:

- **A protocol error gets no close frame.** When the peer sends an
  unmasked frame, a reserved opcode, invalid UTF-8 in a text frame, a
  control frame over 125 bytes or an invalid close code, wsproto reports a
  ``CloseConnection`` with the right code (1002, or 1007 for invalid UTF-8,
  RFC 6455 7.4.1) but keeps its state ``OPEN``; hypercorn answers a close
  only in ``REMOTE_CLOSING``, so it sends nothing and just shuts the TCP
  side (``send_eof``, outside its send lock). A ping of ours in flight at
  that moment then fails in trio's ``send_all`` with ``BusyResourceError``
  and takes the connection's task down with a traceback in the log.
- **A close the peer never answers holds the connection.** When hypercorn
  closes by itself (a frame over ``MAX_FRAME_BYTES``: 1009), the app is not
  told; it waits for the peer's close frame, and a peer that never sends
  one keeps the slot until the read timeout (a minute).

``FinishingClose`` fixes both by wrapping the WebSocket's wsproto
connection, which hypercorn drives (``state``, ``receive_data``,
``events``, ``send``). After a protocol error the wrapper reports
``REMOTE_CLOSING`` until the close frame is out, so hypercorn sends it with
wsproto's code, through its send lock, before it shuts the socket; every
other send (our pings) is refused from the moment the error is seen, so
nothing of ours can be mid-write when the socket shuts. Any close frame
the server starts (hypercorn's 1009, or our own close) calls ``on_close``,
which gives the peer ``CLOSE_TIMEOUT`` to answer (``Connection.closing``);
the app then returns and hypercorn drops the TCP connection.

This module knows only wsproto. Putting the wrapper in place leans on
hypercorn's internals (its stream's ``connection``), so that is done by
``hypercorn_fast`` alone, on a hypercorn release it was tested on, for a
stream whose connection is wsproto's; elsewhere nothing changes.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from wsproto.connection import Connection as WSProtoConnection
from wsproto.connection import ConnectionState
from wsproto.events import CloseConnection, Event
from wsproto.utilities import LocalProtocolError

__all__ = ["FinishingClose"]

_OPEN = ConnectionState.OPEN
_REASONS = {1002: "protocol error", 1007: "invalid UTF-8 in a text frame"}
"""Close reasons for the peer: short and fixed (wsproto's own are parser messages)."""


class FinishingClose:
    """A wsproto connection whose protocol errors and local closes are finished."""

    __slots__ = ("_failure", "_inner", "_on_close")

    def __init__(self, inner: WSProtoConnection, on_close: Callable[[], None]) -> None:
        self._inner = inner
        self._on_close = on_close
        self._failure: int | None = None  # the close code owed for a protocol error

    @property
    def state(self) -> ConnectionState:
        if self._failure is not None:
            return ConnectionState.REMOTE_CLOSING  # hypercorn then answers with our close
        return self._inner.state

    def receive_data(self, data: bytes | None) -> None:
        self._inner.receive_data(data)

    def events(self) -> Iterator[Event]:
        inner = self._inner
        for event in inner.events():
            if isinstance(event, CloseConnection) and inner.state is _OPEN:
                # A close that is not the peer's close frame: wsproto failed to parse.
                self._failure = event.code
            yield event

    def send(self, event: Event) -> bytes:
        failure = self._failure
        if failure is not None:
            if not isinstance(event, CloseConnection):
                raise LocalProtocolError("the connection is failing: only its close frame is sent")
            self._failure = None
            return self._inner.send(CloseConnection(failure, _REASONS.get(failure)))
        data = self._inner.send(event)
        if (
            isinstance(event, CloseConnection)
            and self._inner.state is ConnectionState.LOCAL_CLOSING
        ):
            self._on_close()  # a close we started: the peer's answer is now awaited
        return data
