"""A voice session with Azure Speech, over a real socket, speech streamed in real time,
against the fake speech endpoint: the service's protocol spoken from the event loop
(the default), and the real SDK's push stream and synthesis (``AZURE_SPEECH_STREAMING``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import trio
from support import run_with_fake_azure
from voice.voice_support import RATE, needs_espeak

from pichat_trio.fakes.azure_openai import Behaviour, FakeAzureOpenAI
from pichat_trio.fakes.azure_speech import FakeAzureSpeech, open_fake_azure_speech

from .test_voice_ws import WORDS, _microphone, _of, _until, _utterance

pytestmark = needs_espeak


@pytest.mark.parametrize("streaming", ["socket", "sdk"])
async def test_an_azure_voice_session_streams_recognition_and_speech(
    tmp_path: Path, streaming: str
) -> None:
    speech = FakeAzureSpeech(key="voice-speech-key", stt_text="Play some music, please.")
    ai = FakeAzureOpenAI(words=WORDS, behaviour=Behaviour(tokens=len(WORDS), rate=8.0))
    async with open_fake_azure_speech(speech):
        env = {
            "AZURE_SPEECH_KEY": speech.key,
            "AZURE_SPEECH_ENDPOINT": speech.host,
            "AZURE_SPEECH_STREAMING": streaming,
        }
        async with run_with_fake_azure(tmp_path, ai, env) as (server, _), server.client() as client:
            started = await client.call("voice_start", {"sample_rate": RATE})
            assert started["payload"]["engine"] == "azure", started
            frames: list[dict[str, Any]] = []
            with trio.fail_after(60):
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(_microphone, client, _utterance("play some music please"))
                    await _until(
                        client,
                        frames,
                        lambda f: f["action"] == "voice_audio" and f["payload"]["final"],
                    )
    transcripts = _of(frames, "voice_transcript")
    partials = [t["text"] for t in transcripts if not t["final"]]
    assert partials and partials[0] == "play"  # the service's hypotheses, word by word
    assert [t["text"] for t in transcripts if t["final"]] == ["Play some music, please."]
    [sent] = _of(frames, "message_sent")
    assert sent["content"] == "Play some music, please." and sent["audio_file"]
    chunks = _of(frames, "voice_audio")
    assert "".join(c["text"] for c in chunks) == ai.answer()
    assert all(c["audio_data"] for c in chunks[:-1])  # each sentence synthesised by Azure
    # a recognition connection per utterance; one synthesis per sentence, all of them
    # on the session's one synthesis connection, asking for raw 16 kHz PCM
    paths = [c.path for c in speech.connections]
    assert sum("/speech/recognition/" in p for p in paths) >= 1
    assert len(speech.ssml) == len(chunks) - 1
    synthesis = [c for c in speech.connections if "/cognitiveservices/websocket/v1" in c.path]
    assert len(synthesis) == 1
    assert "raw-16khz-16bit-mono-pcm" in synthesis[0].bodies("synthesis.context")[0]
