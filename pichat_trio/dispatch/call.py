"""What a handler works with: the services, and the request it answers."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol

from ..domain.events import Origin
from ..errors import PichatError
from ..models import User
from ..ports import AudioStore
from ..protocol.errors import error_frame, error_frame_for
from ..protocol.wire import Texts, encode_event
from ..services.chat import ChatService
from ..services.conversations import ConversationService
from ..services.settings import SettingsService
from ..services.speech import SpeechService
from ..services.voice.kit import VoiceKit

__all__ = ["Call", "Peer", "Services"]


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
    speech: SpeechService | None = None  # when speech is configured
    audio_store: AudioStore | None = None  # stores recorded audio of voice messages
    voice: VoiceKit | None = None  # the engines of voice sessions, when offered
    max_frame_bytes: int | None = None  # for hello's limits


@dataclass(frozen=True, slots=True)
class Call:
    """One request: who asks, on which connection, for which action."""

    peer: Peer
    origin: Origin
    action: str

    @property
    def user(self) -> User:
        return self.peer.user

    def reply(self, action: str, payload: Any) -> None:
        self.peer.send(encode_event(action, payload, self.origin.request_id))

    def reply_with(self, action: str, payload: Any, after: str) -> None:
        """``reply``, and the frame ``after`` written together with it."""
        self.peer.send((encode_event(action, payload, self.origin.request_id), after))

    def fail(self, error: PichatError) -> None:
        """The request's error, from long work that raised it."""
        self.peer.send(error_frame_for(error, self.action, self.origin.request_id))

    def failed(self) -> None:
        """Long work failed unexpectedly: the request gets its error (log it first)."""
        self.peer.send(
            error_frame(
                "internal_error",
                "the server failed to handle this request",
                self.action,
                self.origin.request_id,
            )
        )
