"""The router: one client frame in, replies and errors out, through a dispatch table.

No sockets, no ASGI: the connection passes each text frame to ``handle``
with itself as the ``Peer`` (who asks, where replies go, where long work
runs). Short actions run inline in the reader, so one connection's replies
keep its order; long ones (an answer, a speech call) are spawned into the
connection's nursery and count toward its cap.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

import msgspec

from ..domain.events import Origin
from ..errors import PichatError
from ..log_context import bind_request
from ..protocol.envelope import Request, decode_payload, decode_request, request_context
from ..protocol.errors import ProtocolError, error_frame, error_frame_for
from ..protocol.schemas import Schemas
from . import messages, records, speech
from .call import Call, Peer, Services
from .voice import VoiceActions

__all__ = ["Peer", "Router", "Services"]

log = logging.getLogger(__name__)

Handler = Callable[[Services, Call, Any], Awaitable[None]]
"""A handler takes its action's request type (``protocol.schemas``); the table pairs them."""


class Router:
    def __init__(self, services: Services, schemas: Schemas) -> None:
        self.services = services
        self.schemas = schemas
        s = schemas
        self._table: dict[str, tuple[type[msgspec.Struct], Handler]] = {
            "get_conversations": (s.get_conversations, records.get_conversations),
            "create_conversation": (s.create_conversation, records.create_conversation),
            "get_conversation": (s.id_payload, records.get_conversation),
            "update_conversation": (s.update_conversation, records.update_conversation),
            "delete_conversation": (s.id_payload, records.delete_conversation),
            "send_message": (s.send_message, messages.send_message),
            "get_messages": (s.get_messages, records.get_messages),
            "get_settings": (s.empty, records.get_settings),
            "update_settings": (s.update_settings, records.update_settings),
            "text_to_speech": (s.text_to_speech, speech.text_to_speech),
            "speech_to_text": (s.speech_to_text, speech.speech_to_text),
            "cancel_generation": (s.cancel_generation, messages.cancel_generation),
            "ping": (s.empty, records.ping),
        }
        self.voice = VoiceActions(services, schemas.limits)
        self._table.update(self.voice.table())

    @property
    def actions(self) -> tuple[str, ...]:
        return tuple(self._table)

    async def handle(self, peer: Peer, text: str) -> None:
        """Decode one frame, run its action, queue its replies. Never raises."""
        request: Request | None = None
        try:
            request = decode_request(text)
            entry = self._table.get(request.action)
            if entry is None:
                raise ProtocolError("unknown_action", f"no such action: {request.action[:64]!r}")
            schema, handler = entry
            payload = decode_payload(request, schema)
            bind_request(request.request_id, _conversation_of(payload))
            call = Call(peer, Origin(peer.id, request.request_id), request.action)
            await handler(self.services, call, payload)
        except ProtocolError as error:
            action: str | None
            if request is not None:
                action, request_id = request.action, request.request_id
            else:  # what can be read of a frame that is not a request
                action, request_id = request_context(text)
            log.info("connection %s: %s refused: %s %r", peer.id, action, error.code, error.message)
            peer.send(error_frame(error.code, error.message, action, request_id))
        except PichatError as error:
            assert request is not None
            peer.send(error_frame_for(error, request.action, request.request_id))
        except Exception:
            log.exception("action %s failed", request.action if request else "?")
            peer.send(
                error_frame(
                    "internal_error",
                    "the server failed to handle this request",
                    request.action if request else None,
                    request.request_id if request else None,
                )
            )

    def refuse(self, peer: Peer, text: str, error: PichatError) -> None:
        """Answer a frame that is not handled (over a rate limit) with ``error``, carrying
        the frame's ``request_id`` and action where they can be read."""
        action, request_id = request_context(text)
        peer.send(error_frame_for(error, action, request_id))


def _conversation_of(payload: object) -> str | None:
    """The conversation a request is about, for its log lines."""
    found = getattr(payload, "conversation_id", None) or getattr(payload, "id", None)
    return None if found is None else str(found)
