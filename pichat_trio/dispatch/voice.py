"""The handlers of protocol v1.1: ``hello`` and the voice session actions.

The router hands this module the actions below and every binary frame of
a connection that holds a session (``takes_audio``, ``audio``). A session
runs in the connection's nursery, owned by it: ``voice_stop`` or the
connection's end cancels it, and the session stores what was heard.
``voice_transcript``, ``voice_audio`` and the stored utterance's
``message_sent`` go to the session's connection only (``_Events``); the
answer's message events fan out as any ``send_message``'s.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import asdict, dataclass, field
from typing import Any

import trio

from .. import __version__
from ..domain.events import Origin
from ..errors import Busy, NotFound, PichatError, RateLimited, UpstreamUnavailable
from ..limits import Limits
from ..models import Message
from ..protocol.encode import typing_text
from ..protocol.errors import ProtocolError, error_frame_for
from ..protocol.voice import (
    PROTOCOL_VERSION,
    HelloPayload,
    VoiceId,
    VoicePosition,
    VoiceStart,
    audio_text,
    transcript_text,
)
from ..protocol.wire import encode_event
from ..services.voice import VoiceKit, VoiceOptions, VoiceSession
from ..services.voice.chat_answers import ChatAnswers
from ..voices import ACCENTS, language_for_accent
from .call import Call, Services

__all__ = ["VoiceActions"]

log = logging.getLogger(__name__)

# A client may send audio faster than real time after a stall, not for long:
# past ``_AUDIO_BURST_SECONDS`` ahead of the clock (at 1.5x), frames are dropped.
_AUDIO_SPEEDUP = 1.5
_AUDIO_BURST_SECONDS = 5.0


@dataclass(eq=False)
class _Live:
    session: VoiceSession
    peer: Any
    scope: trio.CancelScope = field(default_factory=trio.CancelScope)
    started_at: float = 0.0
    audio_seconds: float = 0.0
    stop_request_id: str | None = None
    stopped_by_client: bool = False


class VoiceActions:
    def __init__(self, services: Services, limits: Limits) -> None:
        self.services = services
        kit = getattr(services, "voice", None)  # None in tests that only list actions
        self.limits = limits
        self.kit: VoiceKit | None = kit
        self._live: dict[str, _Live] = {}  # by connection id

    def table(self) -> dict[str, tuple[type[Any], Any]]:
        return {
            "hello": (HelloPayload, self._hello),
            "voice_start": (VoiceStart, self._start),
            "voice_playback": (VoicePosition, self._playback),
            "voice_interrupt": (VoicePosition, self._interrupt),
            "voice_end": (VoiceId, self._end),
            "voice_stop": (VoiceId, self._stop),
        }

    # ----------------------------------------------------------- hello

    async def _hello(self, services: Services, call: Call, p: HelloPayload) -> None:
        kit = self.kit
        features = ["tts_stream"]
        if kit is not None:
            features += ["voice", "barge_in"]
        engine = kit.engine if kit is not None else None
        voices = {
            name: (
                {"female": a.azure_female, "male": a.azure_male}
                if engine == "azure"
                else {"female": a.espeak + "+f5", "male": a.espeak + "+klatt5"}
            )
            for name, a in ACCENTS.items()
        }
        limits: dict[str, Any] = {"max_frame_bytes": self.services.max_frame_bytes}
        for name, value in asdict(self.limits).items():
            limits["max_message_chars" if name == "max_content_chars" else name] = value
        call.reply(
            "hello",
            {
                "protocol": PROTOCOL_VERSION,
                "server_version": __version__,
                "features": features,
                "models": list(self.services.settings.models),
                "accents": list(ACCENTS),
                "voices": voices,
                "limits": limits,
                "audio": {
                    "sample_rates": list(kit.sample_rates) if kit is not None else [],
                    "formats": ["pcm_s16le"],
                },
            },
        )

    # ------------------------------------------------------ the session

    async def _start(self, services: Services, call: Call, p: VoiceStart) -> None:
        kit = self.kit
        if kit is None:
            raise UpstreamUnavailable("voice sessions are not available on this server")
        if call.peer.id in self._live:
            raise Busy("a voice session is already open on this connection")
        if p.sample_rate not in kit.sample_rates:
            rates = ", ".join(map(str, kit.sample_rates))
            raise ProtocolError("invalid_request", f"payload.sample_rate: one of {rates}")
        call.peer.check_capacity()
        user = call.user
        # the session's events carry no request_id: only voice_started answers it
        session_origin = Origin(call.origin.connection_id, None)
        settings = await services.settings.get(user)
        if p.conversation_id is None:
            conversation = await services.conversations.create(user, session_origin, None)
            conversation_id = conversation.id
        else:
            conversation_id = str(p.conversation_id)
            await services.conversations.get(user, conversation_id)
        language = p.language or language_for_accent(settings.voice_settings.accent)
        voice_id = str(uuid.uuid4())
        options = VoiceOptions(
            sample_rate=p.sample_rate,
            silence_ms=p.silence_ms,
            language=language,
            echo_cancellation=p.echo_cancellation,
            max_utterance_seconds=self.limits.max_audio_seconds,
            threshold_dbfs=kit.threshold_dbfs,
            barge_in_dbfs=kit.barge_in_dbfs,
            barge_in_ms=kit.barge_in_ms,
        )
        peer = call.peer
        answers = ChatAnswers(
            services.chat, user, session_origin, conversation_id, save_audio=self._save_audio()
        )
        session = VoiceSession(
            voice_id,
            options,
            detector=kit.detector(p.sample_rate),
            recognizer=kit.recognizer,
            speaker=kit.speaker(),
            answers=answers,
            events=_Events(peer, voice_id, p.sample_rate),
            voice=settings.voice_settings,
        )
        live = _Live(session, peer, started_at=trio.current_time())
        self._live[peer.id] = live
        try:
            peer.spawn(self._run, live)
        except BaseException:
            del self._live[peer.id]
            raise
        call.reply(
            "voice_started",
            {
                "voice_id": voice_id,
                "conversation_id": conversation_id,
                "sample_rate": p.sample_rate,
                "silence_ms": p.silence_ms,
                "engine": kit.engine,
            },
        )

    def _save_audio(self) -> Any:
        store = self.services.audio_store
        return None if store is None else store.save

    async def _run(self, live: _Live) -> None:
        try:
            with live.scope:
                await live.session.run()
        finally:
            if self._live.get(live.peer.id) is live:
                del self._live[live.peer.id]
            if live.stopped_by_client:
                live.peer.send(
                    encode_event(
                        "voice_stopped", {"voice_id": live.session.voice_id}, live.stop_request_id
                    )
                )

    def _session(self, call: Call, voice_id: uuid.UUID) -> _Live:
        live = self._live.get(call.peer.id)
        if live is None or live.session.voice_id != str(voice_id):
            raise NotFound("no such voice session on this connection")
        return live

    async def _playback(self, services: Services, call: Call, p: VoicePosition) -> None:
        self._session(call, p.voice_id).session.playback(str(p.message_id), p.played_ms)

    async def _interrupt(self, services: Services, call: Call, p: VoicePosition) -> None:
        self._session(call, p.voice_id).session.interrupt(str(p.message_id), p.played_ms)

    async def _end(self, services: Services, call: Call, p: VoiceId) -> None:
        self._session(call, p.voice_id).session.end()

    async def _stop(self, services: Services, call: Call, p: VoiceId) -> None:
        live = self._session(call, p.voice_id)
        live.stopped_by_client = True
        live.stop_request_id = call.origin.request_id
        live.scope.cancel()

    # ------------------------------------------------------------ audio

    def takes_audio(self, peer: Any) -> bool:
        return peer.id in self._live

    def audio(self, peer: Any, data: bytes) -> None:
        """One binary frame of a session's microphone. Never raises."""
        live = self._live.get(peer.id)
        if live is None:
            return
        rate = live.session.options.sample_rate
        seconds = len(data) / (2 * rate)
        allowed = _AUDIO_BURST_SECONDS + _AUDIO_SPEEDUP * (trio.current_time() - live.started_at)
        if live.audio_seconds + seconds > allowed:
            error = RateLimited("voice audio faster than real time; slow down", 1000)
            peer.send(error_frame_for(error, None, None))
            return
        live.audio_seconds += seconds
        try:
            live.session.audio(data)
        except PichatError as error:
            peer.send(error_frame_for(error, None, None))


class _Events:
    """``VoiceEvents`` for one connection: frames for it alone."""

    def __init__(self, peer: Any, voice_id: str, sample_rate: int) -> None:
        self._peer = peer
        self._voice_id = voice_id
        self._rate = sample_rate

    def transcript(self, text: str, final: bool) -> None:
        self._peer.send(transcript_text(self._voice_id, text, final))

    def audio(self, message_id: str, seq: int, text: str, pcm: bytes, final: bool) -> None:
        voice_id, rate = self._voice_id, self._rate
        self._peer.send(audio_text(voice_id, message_id, seq, text, pcm, rate, final))

    def message_sent(self, message: Message) -> None:
        typing = typing_text(message.conversation_id, True)
        self._peer.send((encode_event("message_sent", message), typing))

    def failed(self, error: PichatError) -> None:
        self._peer.send(error_frame_for(error, None, None))
