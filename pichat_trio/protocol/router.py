"""The router: one client frame in, replies and errors out, through a dispatch table.

No sockets, no ASGI: the connection passes each text frame to ``handle``
with itself as the ``Peer`` (who asks, where replies go, where long work
runs). Short actions run inline in the reader, so one connection's replies
keep its order; long ones (an answer, a speech call) are spawned into the
connection's nursery and count toward its cap.
"""

from __future__ import annotations

import base64
import logging
from collections.abc import Awaitable, Callable
from contextlib import aclosing
from dataclasses import dataclass
from functools import partial
from typing import Any, Protocol

from ..errors import PichatError, UpstreamUnavailable
from ..events import Texts, encode_event
from ..log_context import bind_request
from ..models import User
from ..services.chat import ChatService
from ..services.conversations import ConversationService
from ..services.fanout import Origin
from ..services.settings import SettingsService
from .envelope import Request, decode_payload, decode_request, request_context
from .errors import ProtocolError, error_frame, error_frame_for
from .schemas import Schemas, utc

__all__ = ["Peer", "Router", "Services"]

log = logging.getLogger(__name__)

_CONVERSATIONS_PAGE = 50
_MESSAGES_PAGE = 100


class Peer(Protocol):
    """The connection a frame came from."""

    @property
    def id(self) -> str: ...

    @property
    def user(self) -> User: ...

    def send(self, text: Texts) -> None:
        """Queue a frame (or frames, written together) for this connection alone."""

    def check_capacity(self) -> None:
        """Raise ``Busy`` (or ``UpstreamUnavailable`` while draining) if ``spawn`` would."""

    def spawn(self, fn: Callable[..., Awaitable[None]], *args: Any) -> None:
        """Run long work in the connection's nursery; raises ``Busy`` at the cap."""


@dataclass
class Services:
    conversations: ConversationService
    settings: SettingsService
    chat: ChatService
    speech: Any = None  # services.speech.SpeechService, when speech is configured
    audio_store: Any = None  # stores recorded audio of voice messages


@dataclass(frozen=True, slots=True)
class _Call:
    peer: Peer
    origin: Origin
    action: str

    def reply(self, action: str, payload: Any) -> None:
        self.peer.send(encode_event(action, payload, self.origin.request_id))

    def reply_with(self, action: str, payload: Any, after: str) -> None:
        """``reply``, and the frame ``after`` written together with it."""
        self.peer.send((encode_event(action, payload, self.origin.request_id), after))


Handler = Callable[[_Call, Any], Awaitable[None]]


class Router:
    def __init__(self, services: Services, schemas: Schemas) -> None:
        self.services = services
        self.schemas = schemas
        s = schemas
        self._table: dict[str, tuple[type[Any], Handler]] = {
            "get_conversations": (s.get_conversations, self._get_conversations),
            "create_conversation": (s.create_conversation, self._create_conversation),
            "get_conversation": (s.id_payload, self._get_conversation),
            "update_conversation": (s.update_conversation, self._update_conversation),
            "delete_conversation": (s.id_payload, self._delete_conversation),
            "send_message": (s.send_message, self._send_message),
            "get_messages": (s.get_messages, self._get_messages),
            "get_settings": (s.empty, self._get_settings),
            "update_settings": (s.update_settings, self._update_settings),
            "text_to_speech": (s.text_to_speech, self._text_to_speech),
            "speech_to_text": (s.speech_to_text, self._speech_to_text),
            "cancel_generation": (s.cancel_generation, self._cancel_generation),
            "ping": (s.empty, self._ping),
        }

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
            origin = Origin(peer.user, peer.id, request.request_id)
            await handler(_Call(peer, origin, request.action), payload)
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

    # ----------------------------------------------------- conversations

    async def _get_conversations(self, call: _Call, p: Any) -> None:
        before = None if p.before is None else utc(p.before, "payload.before")
        found = await self.services.conversations.recent(
            call.origin.user, p.limit or _CONVERSATIONS_PAGE, before
        )
        call.reply("conversations_list", {"conversations": found})

    async def _create_conversation(self, call: _Call, p: Any) -> None:
        await self.services.conversations.create(call.origin, p.title)

    async def _get_conversation(self, call: _Call, p: Any) -> None:
        conversation = await self.services.conversations.get(call.origin.user, str(p.id))
        call.reply("conversation", conversation)

    async def _update_conversation(self, call: _Call, p: Any) -> None:
        await self.services.conversations.rename(call.origin, str(p.id), p.title)

    async def _delete_conversation(self, call: _Call, p: Any) -> None:
        conversation_id = str(p.id)
        await self.services.conversations.delete(call.origin, conversation_id)
        chat = self.services.chat
        if chat.is_generating(call.origin.user.id, conversation_id):
            await chat.cancel(call.origin, conversation_id)

    async def _get_messages(self, call: _Call, p: Any) -> None:
        conversation_id = str(p.conversation_id)
        found, has_more = await self.services.conversations.messages(
            call.origin.user,
            conversation_id,
            p.limit or _MESSAGES_PAGE,
            None if p.before is None else str(p.before),
        )
        call.reply(
            "messages_list",
            {"conversation_id": conversation_id, "messages": found, "has_more": has_more},
        )

    # ---------------------------------------------------------- messages

    async def _send_message(self, call: _Call, p: Any) -> None:
        call.peer.check_capacity()  # before anything is stored
        audio_file = None
        if p.audio_data is not None:
            audio_file = await self._store_audio(call, p.audio_data)
        chat = self.services.chat
        # This connection's next frame waits for the store: replies keep their
        # order, and a read after a send sees the message.
        await chat.send(
            call.origin,
            str(p.conversation_id),
            p.content,
            is_audio=p.is_audio or audio_file is not None,
            audio_file=audio_file,
            spawn=call.peer.spawn,
            reply=partial(call.reply_with, "message_sent"),
        )

    async def _store_audio(self, call: _Call, audio_data: str) -> str:
        store = self.services.audio_store
        speech = self.services.speech
        if store is None or speech is None:
            raise UpstreamUnavailable("audio messages need speech support on this server")
        audio = speech.decode_wav(audio_data)
        key: str = await store.save(call.origin.user.id, audio)
        return key

    async def _cancel_generation(self, call: _Call, p: Any) -> None:
        conversation_id = str(p.conversation_id)
        message_id = await self.services.chat.cancel(call.origin, conversation_id)
        call.reply(
            "generation_cancelled", {"conversation_id": conversation_id, "message_id": message_id}
        )

    # ---------------------------------------------------------- settings

    async def _get_settings(self, call: _Call, p: Any) -> None:
        call.reply("settings", await self.services.settings.get(call.origin.user))

    async def _update_settings(self, call: _Call, p: Any) -> None:
        voice = p.voice_settings
        await self.services.settings.update(
            call.origin,
            selected_model=p.selected_model,
            voice=None if voice is None else (voice.gender, voice.accent, voice.speed),
            assistant_personality=p.assistant_personality,
        )

    # ------------------------------------------------------------ speech

    def _speech(self) -> Any:
        if self.services.speech is None:
            raise UpstreamUnavailable("speech is not available on this server")
        return self.services.speech

    async def _text_to_speech(self, call: _Call, p: Any) -> None:
        speech = self._speech()
        call.peer.check_capacity()
        settings = await self.services.settings.get(call.origin.user)
        voice = settings.voice_settings
        if p.voice_settings is not None:
            patch = p.voice_settings
            voice = self.services.settings.voice(voice, patch.gender, patch.accent, patch.speed)
        call.peer.spawn(self._run_tts, call, speech, p.text, voice, p.format, p.stream)

    async def _run_tts(
        self, call: _Call, speech: Any, text: str, voice: Any, audio_format: str, stream: bool
    ) -> None:
        try:
            if stream:
                seq = 0
                chunks = speech.text_to_speech_stream(text, voice, audio_format)
                async with aclosing(chunks):  # a cancellation stops the engine at once
                    async for chunk in chunks:
                        call.reply(
                            "text_to_speech_chunk",
                            {"seq": seq, "audio_data": _b64(chunk), "final": False},
                        )
                        seq += 1
                call.reply(
                    "text_to_speech_chunk",
                    {
                        "seq": seq,
                        "audio_data": "",
                        "final": True,
                        "content_type": _content_type(audio_format),
                        "engine": speech.engine_name,
                    },
                )
                return
            result = await speech.text_to_speech(text, voice, audio_format)
            call.reply(
                "text_to_speech_result",
                {
                    "audio_data": _b64(result.audio),
                    "content_type": result.content_type,
                    "engine": speech.engine_name,
                },
            )
        except PichatError as error:
            call.peer.send(error_frame_for(error, call.action, call.origin.request_id))
        except Exception:
            _failed(call)

    async def _speech_to_text(self, call: _Call, p: Any) -> None:
        speech = self._speech()
        call.peer.check_capacity()
        language = p.language
        if language is None:
            settings = await self.services.settings.get(call.origin.user)
            language = speech.language_for_accent(settings.voice_settings.accent)
        call.peer.spawn(self._run_stt, call, speech, p.audio_data, language)

    async def _run_stt(self, call: _Call, speech: Any, audio_data: str, language: str) -> None:
        try:
            text = await speech.speech_to_text(audio_data, language, user=call.origin.user.id)
            call.reply(
                "speech_to_text_result",
                {"text": text, "language": language, "engine": speech.engine_name},
            )
        except PichatError as error:
            call.peer.send(error_frame_for(error, call.action, call.origin.request_id))
        except Exception:
            _failed(call)

    # ------------------------------------------------------------- misc

    async def _ping(self, call: _Call, p: Any) -> None:
        call.reply("pong", {})


def _failed(call: _Call) -> None:
    """Long work failed unexpectedly: the log gets why, the request its error."""
    log.exception("action %s failed", call.action)
    call.peer.send(
        error_frame(
            "internal_error",
            "the server failed to handle this request",
            call.action,
            call.origin.request_id,
        )
    )


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _content_type(audio_format: str) -> str:
    return "audio/mpeg" if audio_format == "mp3" else "audio/wav"


def _conversation_of(payload: Any) -> str | None:
    """The conversation a request is about, for its log lines."""
    found = getattr(payload, "conversation_id", None) or getattr(payload, "id", None)
    return None if found is None else str(found)
