"""The endpointer on espeak-ng speech and the real WebRTC detector.

Every case feeds audio in 20 ms slices, as a client streams it, and checks
where speech was found to start and end, in samples (the stream's clock).
"""

from __future__ import annotations

import pytest

from pichat_trio.adapters.speech.vad import WebRtcVoiceDetector
from pichat_trio.services.voice.endpointer import (
    Endpointer,
    SpeechEnded,
    SpeechStarted,
    UtteranceAudio,
    frame_dbfs,
)

from .voice_support import RATE, mix, needs_espeak, noise, silence, spoken

pytestmark = needs_espeak

SLICE = 2 * RATE * 20 // 1000  # bytes in 20 ms


def _feed(endpointer: Endpointer, pcm: bytes) -> list[object]:
    events: list[object] = []
    for start in range(0, len(pcm), SLICE):
        events += endpointer.feed(pcm[start : start + SLICE])
    return events


def _endpointer(silence_ms: int = 600, **kw: object) -> Endpointer:
    return Endpointer(WebRtcVoiceDetector(RATE), RATE, silence_ms, **kw)  # type: ignore[arg-type]


def _ms(samples: int) -> float:
    return 1000 * samples / RATE


def test_an_utterance_ends_silence_ms_after_the_last_voiced_sample() -> None:
    speech = spoken("what is the weather like today")
    endpointer = _endpointer(600)
    events = _feed(endpointer, silence(500) + speech + silence(1500))
    kinds = [type(e) for e in events if not isinstance(e, UtteranceAudio)]
    assert kinds == [SpeechStarted, SpeechEnded]
    started = next(e for e in events if isinstance(e, SpeechStarted))
    ended = next(e for e in events if isinstance(e, SpeechEnded))
    assert 400 <= _ms(started.sample) <= 700
    speech_end_ms = 500 + _ms(len(speech) // 2)
    # espeak-ng trails off quietly: the last voiced frame is near the end of its audio
    assert speech_end_ms - 300 <= _ms(ended.last_voiced_sample) <= speech_end_ms + 60
    # the decision came exactly silence_ms of audio later, at a frame boundary
    index = events.index(ended)
    heard = sum(len(e.pcm) for e in events[:index] if isinstance(e, UtteranceAudio)) // 2
    assert heard > 0
    assert endpointer.position >= ended.last_voiced_sample + 600 * RATE // 1000


def test_a_pause_shorter_than_silence_ms_does_not_end_it() -> None:
    first, second = spoken("set a timer"), spoken("for ten minutes")
    endpointer = _endpointer(700)
    events = _feed(endpointer, silence(300) + first + silence(400) + second + silence(1000))
    ends = [e for e in events if isinstance(e, SpeechEnded)]
    assert len(ends) == 1
    total_ms = 300 + _ms(len(first) // 2) + 400 + _ms(len(second) // 2)
    assert _ms(ends[0].last_voiced_sample) > total_ms - 300  # after the second part


def test_a_pause_longer_than_silence_ms_makes_two_utterances() -> None:
    first, second = spoken("set a timer"), spoken("for ten minutes")
    endpointer = _endpointer(300)
    events = _feed(endpointer, silence(300) + first + silence(900) + second + silence(800))
    kinds = [type(e) for e in events if not isinstance(e, UtteranceAudio)]
    assert kinds == [SpeechStarted, SpeechEnded, SpeechStarted, SpeechEnded]


def test_the_utterance_audio_holds_the_speech_and_its_preroll() -> None:
    speech = spoken("tell me a joke")
    endpointer = _endpointer(500, preroll_ms=300)
    events = _feed(endpointer, silence(1000) + speech + silence(800))
    audio = b"".join(e.pcm for e in events if isinstance(e, UtteranceAudio))
    assert speech[: len(speech) // 2] in audio  # contiguous, in order
    assert len(audio) >= len(speech) - 2 * RATE * 300 // 1000


def test_noise_below_the_threshold_never_starts_speech() -> None:
    quiet_speech = bytes(b for b in spoken("remind me to call my mother tomorrow"))
    endpointer = _endpointer(500, threshold_dbfs=-20.0)
    # the same speech 30 dB down, in a hiss: voiced frames, but below -20 dBFS
    from array import array

    samples = array("h")
    samples.frombytes(quiet_speech)
    soft = array("h", (s // 32 for s in samples)).tobytes()
    events = _feed(endpointer, mix(soft, noise(len(soft) * 1000 // (2 * RATE), 200)))
    assert not any(isinstance(e, SpeechStarted) for e in events)


def test_voice_end_ends_the_utterance_at_once() -> None:
    endpointer = _endpointer(2000)
    events = _feed(endpointer, silence(200) + spoken("good morning"))
    assert any(isinstance(e, SpeechStarted) for e in events)
    ended = endpointer.end()
    assert isinstance(ended[-1], SpeechEnded) and ended[-1].forced
    assert endpointer.end() == []  # nothing more to end


@pytest.mark.parametrize(("amplitude", "expected"), [(0, float("-inf")), (32767, 0.0)])
def test_frame_level(amplitude: int, expected: float) -> None:
    from array import array

    level = frame_dbfs(array("h", [amplitude, -amplitude] * 240).tobytes())
    assert level == pytest.approx(expected, abs=0.01)
