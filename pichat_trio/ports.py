"""The ports: what services need from the outside world, as small protocols.

Each port has adapters under ``adapters/`` and one contract test suite that
every adapter passes. Ports speak domain types only (``models``, ``errors``);
they know nothing of WebSockets, JSON frames or the protocol.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Callable, Sequence
from contextlib import AbstractAsyncContextManager
from datetime import datetime
from typing import Literal, Protocol

import msgspec

from .domain.events import DomainEvent
from .models import (
    Conversation,
    Exchange,
    ExchangeRequest,
    FinishRequest,
    Message,
    MessageStatus,
    Settings,
    User,
    VoiceSettings,
)

__all__ = [
    "AudioFormat",
    "AudioStore",
    "ChatDelta",
    "ChatModel",
    "ChatRequest",
    "ChatTurn",
    "Delivery",
    "FinishReason",
    "Hub",
    "Instances",
    "Leases",
    "PcmAudio",
    "PcmSpeaker",
    "RecognitionStream",
    "Repository",
    "SpeechEngine",
    "StreamingRecognizer",
    "Subscriber",
    "Synthesis",
    "VoiceDetector",
]

# --------------------------------------------------------------------- AI

FinishReason = Literal["stop", "length", "content_filter"]


class ChatTurn(msgspec.Struct, frozen=True):
    role: Literal["system", "user", "assistant"]
    content: str


class ChatRequest(msgspec.Struct, frozen=True):
    """One answer to generate.

    ``model`` is the product's model name from the user's settings
    (``gpt-4``, ``gpt-3.5``); the adapter maps it to a deployment or an
    upstream model id.
    """

    model: str
    messages: Sequence[ChatTurn]
    max_tokens: int | None = None


class ChatDelta(msgspec.Struct, frozen=True):
    """A piece of the answer. The last one has ``finish_reason`` set."""

    text: str
    finish_reason: FinishReason | None = None


class ChatModel(Protocol):
    """A streaming chat completion service.

    ``stream_reply`` is an async generator: callers wrap it in
    ``contextlib.aclosing`` so that a cancellation closes the upstream HTTP
    stream at once. It raises ``UpstreamUnavailable`` (unreachable, timed
    out, connection dropped) or ``UpstreamError`` (refused, failed).
    """

    name: str

    def stream_reply(self, request: ChatRequest) -> AsyncGenerator[ChatDelta, None]: ...

    async def preconnect(self, streams: int) -> int:
        """Get ready for ``streams`` answers at once (open connections); how many
        connections it opened. Raises ``UpstreamUnavailable`` when it cannot."""
        ...

    async def aclose(self) -> None: ...


# ----------------------------------------------------------------- speech

AudioFormat = Literal["wav", "mp3"]


class PcmAudio(msgspec.Struct, frozen=True):
    """Validated 16-bit little-endian PCM audio, as parsed from a WAV file."""

    sample_rate: int
    channels: int
    frames: bytes  # interleaved 16-bit samples, no header

    @property
    def duration(self) -> float:
        return len(self.frames) / (2 * self.channels * self.sample_rate)


class Synthesis(msgspec.Struct, frozen=True):
    audio: bytes
    content_type: str  # "audio/wav" or "audio/mpeg"


class SpeechEngine(Protocol):
    """Text to speech and speech to text.

    Blocking engines run in trio threads; a cancellation of the calling
    scope must stop the engine's work (kill the process, stop the SDK call).
    Raises ``UpstreamUnavailable``, ``UpstreamError`` or ``InvalidInput``
    (for example a language the engine lacks).
    """

    name: str

    async def synthesize(
        self, text: str, voice: VoiceSettings, audio_format: AudioFormat
    ) -> Synthesis: ...

    def synthesize_stream(
        self, text: str, voice: VoiceSettings, audio_format: AudioFormat
    ) -> AsyncGenerator[bytes, None]: ...

    async def recognize(self, audio: PcmAudio, language: str, *, owner: str = "") -> str:
        """The text spoken in ``audio``. ``owner`` (a user id) is whose request it
        is, for an engine that shares its work fairly between users; it may
        raise ``RateLimited`` when one owner asks for too much at once."""
        ...

    async def aclose(self) -> None: ...


class AudioStore(Protocol):
    """Where the recorded audio of voice messages is kept."""

    async def save(self, user_id: str, wav: bytes) -> str:
        """Keep ``wav``; the key that names it (stored with the message)."""
        ...


# ---------------------------------------------------------- live speech


class VoiceDetector(Protocol):
    """A voice activity detector for one stream: it may keep state between frames.

    ``frame_samples`` is the length of the frames it judges (mono 16-bit PCM
    at the rate it was made for); ``is_speech`` is called with exactly that.
    """

    frame_samples: int

    def is_speech(self, frame: bytes) -> bool: ...


class RecognitionStream(Protocol):
    """One utterance being recognised as it is spoken.

    ``feed`` takes mono 16-bit PCM at the stream's rate, in order; partial
    hypotheses go to the ``on_partial`` callback given when it was opened,
    from the trio thread. ``finish`` says the audio has ended and returns the
    final text (``""`` when nothing was recognised). Raises like ``SpeechEngine``.
    """

    async def feed(self, pcm: bytes) -> None: ...

    async def finish(self) -> str: ...


class StreamingRecognizer(Protocol):
    """Speech to text while the user speaks (the engine's streaming API)."""

    name: str

    async def prepare(self) -> None:
        """A session has started: get ready for its first utterance (load a model)."""
        ...

    def open_stream(
        self, language: str, sample_rate: int, on_partial: Callable[[str], None]
    ) -> AbstractAsyncContextManager[RecognitionStream]:
        """A stream owned by the block: leaving it stops the engine's work."""
        ...


class PcmSpeaker(Protocol):
    """Text to raw speech: mono 16-bit little-endian PCM at a given rate. One per
    voice session; ``aclose`` releases what it kept (a connection) at the end."""

    async def speak(self, text: str, voice: VoiceSettings, sample_rate: int) -> bytes: ...

    async def aclose(self) -> None: ...


# -------------------------------------------------------------------- hub


class Delivery:
    """One published event on its way to the connections of its user on this instance.

    The hub makes one per event and hands it to each subscriber; the first
    to need the event's frame keeps it in ``encoded`` and the others reuse
    it, so N connections of one user cost one encode. What ``encoded``
    holds is the transport's business (a ``protocol.wire`` frame).
    """

    __slots__ = ("encoded", "event")

    def __init__(self, event: DomainEvent) -> None:
        self.event = event
        self.encoded: object | None = None


class Subscriber(Protocol):
    """One open connection, as the hub sees it."""

    @property
    def id(self) -> str: ...

    def deliver(self, delivery: Delivery) -> None:
        """Queue an event for sending; never blocks (the outbox bounds itself)."""


class Hub(Protocol):
    """Fan-out of domain events to every open connection of a user.

    In-process by default; a Redis backplane implements the same port for
    several server instances (``domain/wire.py`` is an event's wire form).
    """

    async def publish(self, user_id: str, event: DomainEvent) -> None: ...

    def subscribe(
        self, user_id: str, subscriber: Subscriber
    ) -> AbstractAsyncContextManager[None]: ...


class Leases(Protocol):
    """One answer per conversation across server instances (a Redis backplane).

    ``acquire`` is False while another instance runs an answer in the
    conversation; ``release`` never blocks. ``cancel_elsewhere`` stops the
    answer another instance runs: whether there was one, and its message id.
    """

    async def acquire(self, user_id: str, conversation_id: str) -> bool: ...

    def release(self, user_id: str, conversation_id: str) -> None: ...

    async def cancel_elsewhere(
        self, user_id: str, conversation_id: str
    ) -> tuple[bool, str | None]: ...


class Instances(Protocol):
    """This server instance in the shared database, for crash recovery. Blocking methods."""

    instance_id: str

    def register(self) -> None: ...

    def beat(self) -> None: ...

    def sweep(self, *, alone: bool = False) -> int:
        """Mark interrupted the streaming answers of instances that are gone; how many."""
        ...

    def leave(self) -> None: ...


# ------------------------------------------------------------- repository


class Repository(Protocol):
    """SQL storage. Every method is blocking and is called in a trio thread."""

    def ping(self) -> None: ...

    # users
    def add_users(self, names: Sequence[str]) -> list[tuple[User, str]]: ...
    def user_for_token(self, token: str) -> User | None: ...
    def ensure_user(self, name: str, token: str) -> User: ...
    def list_users(self) -> list[User]: ...
    def revoke_user(self, name: str) -> bool: ...
    def revoked_among(self, user_ids: Sequence[str]) -> list[str]: ...

    # conversations
    def list_conversations(
        self, user_id: str, limit: int, before: datetime | None
    ) -> list[Conversation]: ...
    def create_conversation(self, user_id: str, title: str) -> Conversation: ...
    def get_conversation(self, user_id: str, conversation_id: str) -> Conversation | None: ...
    def rename_conversation(
        self, user_id: str, conversation_id: str, title: str
    ) -> Conversation | None: ...
    def delete_conversation(self, user_id: str, conversation_id: str) -> bool: ...

    # messages
    def add_message(
        self,
        user_id: str,
        conversation_id: str,
        role: str,
        content: str,
        status: MessageStatus,
        is_audio: bool = False,
        audio_file: str | None = None,
    ) -> tuple[Message, Conversation] | None: ...
    def start_exchanges(self, requests: Sequence[ExchangeRequest]) -> list[Exchange | None]: ...
    def checkpoint_messages(self, rows: Sequence[tuple[str, str | None, str]]) -> None: ...
    def finish_messages(
        self, requests: Sequence[FinishRequest]
    ) -> list[tuple[Message, Conversation] | None]: ...
    def list_messages(
        self, user_id: str, conversation_id: str, limit: int, before: str | None
    ) -> tuple[list[Message], bool] | None: ...
    def interrupt_streaming(self) -> int: ...

    # settings
    def get_settings(self, user_id: str) -> Settings: ...
    def save_settings(self, user_id: str, settings: Settings) -> Settings: ...
