"""WebSocket text frames as bytes, and frames sent through ASGI's ``send``.

Plain helpers of the transport, with no tie to any server's internals:
``direct_frames`` writes the bytes of ``text_frames`` straight to the
socket, and every connection falls back to ``send_by_asgi``.
"""

from __future__ import annotations

import struct
from collections.abc import Awaitable, Callable
from typing import Any

from ..events import Texts

__all__ = ["send_by_asgi", "text_frame", "text_frames"]

Send = Callable[[dict[str, Any]], Awaitable[None]]

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


async def send_by_asgi(send: Send, texts: Texts) -> None:
    """``texts``' frame (or frames, in order) through ASGI's ``send``, one message each."""
    for text in (texts,) if isinstance(texts, str) else texts:
        await send({"type": "websocket.send", "text": text})
