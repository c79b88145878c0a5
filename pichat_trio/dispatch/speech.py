"""Handlers of ``text_to_speech`` and ``speech_to_text``: long work in the connection."""

from __future__ import annotations

import base64
import logging
from contextlib import aclosing

from ..errors import PichatError, UpstreamUnavailable
from ..models import VoiceSettings
from ..ports import AudioFormat
from ..protocol.schemas import SpeechToText, TextToSpeech
from ..services.speech import SpeechService
from .call import Call, Services

__all__ = ["speech_to_text", "text_to_speech"]

log = logging.getLogger(__name__)


def _speech(services: Services) -> SpeechService:
    if services.speech is None:
        raise UpstreamUnavailable("speech is not available on this server")
    return services.speech


async def text_to_speech(services: Services, call: Call, p: TextToSpeech) -> None:
    speech = _speech(services)
    call.peer.check_capacity()
    settings = await services.settings.get(call.user)
    voice = settings.voice_settings
    if p.voice_settings is not None:
        patch = p.voice_settings
        voice = services.settings.voice(voice, patch.gender, patch.accent, patch.speed)
    call.peer.spawn(_run_tts, call, speech, p.text, voice, p.format, p.stream)


async def _run_tts(
    call: Call,
    speech: SpeechService,
    text: str,
    voice: VoiceSettings,
    audio_format: AudioFormat,
    stream: bool,
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
        call.fail(error)
    except Exception:
        log.exception("action %s failed", call.action)
        call.failed()


async def speech_to_text(services: Services, call: Call, p: SpeechToText) -> None:
    speech = _speech(services)
    call.peer.check_capacity()
    language = p.language
    if language is None:
        settings = await services.settings.get(call.user)
        language = speech.language_for_accent(settings.voice_settings.accent)
    call.peer.spawn(_run_stt, call, speech, p.audio_data, language)


async def _run_stt(call: Call, speech: SpeechService, audio_data: str, language: str) -> None:
    try:
        text = await speech.speech_to_text(audio_data, language, user=call.user.id)
        call.reply(
            "speech_to_text_result",
            {"text": text, "language": language, "engine": speech.engine_name},
        )
    except PichatError as error:
        call.fail(error)
    except Exception:
        log.exception("action %s failed", call.action)
        call.failed()


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _content_type(audio_format: str) -> str:
    return "audio/mpeg" if audio_format == "mp3" else "audio/wav"
