"""The outgoing frame objects, under the name transport modules import them by.

They live in ``protocol/wire.py`` (text of frames is the protocol's); this
module keeps ``transport/outbox.py``'s import working unchanged.
"""

from .protocol.wire import Frame, Texts, TokenFrame, encode_event, frame_for

__all__ = ["Frame", "Texts", "TokenFrame", "encode_event", "frame_for"]
