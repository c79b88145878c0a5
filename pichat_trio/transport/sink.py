"""The seam under a connection: where its frames go (``FrameSink``).

A connection's writer and the producers of its frames see one WebSocket
through this interface, whatever carries the frames: the public ASGI
``send`` (``asgi_sink.AsgiSink``) or hypercorn's socket written directly
(``hypercorn_fast.FastSink``). Both pass one conformance suite
(``tests/sink/``), run through a real hypercorn on loopback with a real
client: frames in order, a tuple's texts together, backpressure from a
client that stops reading, keepalive pings, closes with their codes, and
quiet behaviour once the peer is gone.

Rules every sink keeps:

- Frames go out whole and in the order they were given, across
  ``try_send``, ``send`` and ``flush``; a ``Texts`` tuple is several
  WebSocket messages, written one after the other.
- One writer at a time calls the async methods (the connection's writer);
  ``try_send`` may be called by any task while that writer is not mid-send
  (the outbox calls it only when nothing is queued and nothing is being
  sent).
- A peer that is gone is not an error: sends to it return, and the reader
  (the ASGI ``receive``) reports the disconnect.
"""

from __future__ import annotations

from typing import Protocol

from ..protocol.wire import Texts

__all__ = ["FrameSink"]


class FrameSink(Protocol):
    """One WebSocket's outgoing side."""

    app_pings: bool
    """True: the server leaves keepalive pings to the app, which calls ``ping``.
    False: the server pings by itself, and ``ping`` does nothing."""

    @property
    def owed(self) -> bool:
        """A frame ``try_send`` began is not all out yet: ``flush`` before anything else."""
        ...

    def try_send(self, texts: Texts) -> bool:
        """Send ``texts`` now, in this step, without waiting, if the sink can.

        False: nothing was sent (the socket is busy or full, or the sink has
        no such path); send it with ``send`` in turn. True: it is sent, or
        begun with the rest held in the sink (``owed``), still ahead of
        anything sent later.
        """
        ...

    async def flush(self) -> None:
        """Send what ``try_send`` left of a frame (waiting for the socket), if anything."""
        ...

    async def send(self, texts: Texts) -> None:
        """Send ``texts``, waiting while the peer's socket has no room (backpressure)."""
        ...

    async def ping(self) -> None:
        """A keepalive ping, when ``app_pings``; the peer's pong is read by the server."""
        ...

    async def close(self, code: int, reason: str = "") -> None:
        """Start the closing handshake with ``code`` (after every frame sent before)."""
        ...
