"""WebSocket text frames as bytes (RFC 6455 5.2), unmasked, as a server sends them.

A plain helper with no tie to any server: ``hypercorn_fast`` writes these
bytes straight to the socket.
"""

from __future__ import annotations

import struct

from ..protocol.wire import Texts

__all__ = ["text_frame", "text_frames"]

_SHORT = struct.Struct("!BB")
_MEDIUM = struct.Struct("!BBH")
_LONG = struct.Struct("!BBQ")
_FIN_TEXT = 0x81  # FIN bit and opcode 1: a whole text message


def text_frame(text: str) -> bytes:
    """One unmasked WebSocket text frame carrying ``text``."""
    payload = text.encode()
    size = len(payload)
    if size < 126:
        return _SHORT.pack(_FIN_TEXT, size) + payload
    if size < 65536:
        return _MEDIUM.pack(_FIN_TEXT, 126, size) + payload
    return _LONG.pack(_FIN_TEXT, 127, size) + payload


def text_frames(texts: Texts) -> bytes:
    """``text_frame`` of one text, or of several, one after the other."""
    if isinstance(texts, str):
        return text_frame(texts)
    return b"".join(map(text_frame, texts))
