"""The voice session service on real audio, the real detector, recogniser and voice.

The answer source is a fake of the session's contract (the chat service's
side is tested over a real socket in tests/e2e/test_voice_ws.py); audio is
espeak-ng speech fed in 20 ms frames.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import pytest
import trio
import trio.lowlevel
import trio.testing

from pichat_trio.errors import UnsupportedAudio
from pichat_trio.services.voice import VoiceSession

from .session_support import FakeAnswers, Recorded, open_session
from .voice_support import RATE, needs_espeak, noise, silence, spoken

pytestmark = needs_espeak

PHRASE, VOICE = "play some music please", "en-us+klatt5"
FIVE = ["One is first. ", "Two comes next. ", "Three is here. ", "Four is near. ", "Five ends it."]
FRAME = 2 * RATE * 20 // 1000


async def _say(session: VoiceSession, pcm: bytes) -> None:
    for start in range(0, len(pcm), FRAME):
        session.audio(pcm[start : start + FRAME])
        await trio.lowlevel.checkpoint()


def _utterance() -> bytes:
    return silence(200) + spoken(PHRASE, VOICE) + silence(800)


def _chunks(events: Recorded, final: bool | None = None) -> list[tuple[object, ...]]:
    return [a for a in events.of("audio") if final is None or a[5] is final]


async def test_an_utterance_is_heard_answered_and_spoken_sentence_by_sentence() -> None:
    answers = FakeAnswers(FIVE, hold_after=2)
    async with open_session(answers) as (session, events):
        await _say(session, _utterance())
        await events.wait(lambda: len(answers.answers) == 1)
        finals = [t for t in events.of("transcript") if t[2]]
        partials = [t for t in events.of("transcript") if not t[2]]
        assert len(finals) == 1 and "music" in finals[0][1]
        assert partials and events.items.index(partials[0]) < events.items.index(finals[0])
        text, wav = answers.asked[0]
        assert text == finals[0][1]
        assert wav[:4] == b"RIFF" and len(wav) > len(spoken(PHRASE, VOICE))
        # two sentences are spoken while the answer is still generating
        await events.wait(lambda: len(_chunks(events)) == 2)
        assert answers.answers[0].generated == "".join(FIVE[:2])
        answers.answers[0].proceed.set()
        await events.wait(lambda: bool(_chunks(events, final=True)))
    chunks = _chunks(events)
    assert [c[2] for c in chunks] == list(range(6))
    assert "".join(c[3] for c in chunks) == "".join(FIVE)
    assert all(c[4] > 0 for c in chunks[:5]) and chunks[5][3:] == ("", 0, True)


async def test_interrupt_stores_exactly_the_chunks_that_had_started() -> None:
    answers = FakeAnswers(FIVE, hold_after=3)
    async with open_session(answers) as (session, events):
        await _say(session, _utterance())
        await events.wait(lambda: len(_chunks(events)) == 3)
        chunks = _chunks(events)
        first_ms = 1000 * (chunks[0][4] // 2) / RATE
        message_id = chunks[0][1]
        session.playback(message_id, 100)
        session.interrupt(message_id, first_ms + 1)  # just into the second chunk
        answer = answers.answers[0]
        heard = chunks[0][3] + chunks[1][3]
        assert heard == "One is first. Two comes next."
        assert answer.interrupted == [heard]
        with trio.fail_after(5):
            await answer.closed.wait()  # the token stream was closed
        sent = len(events.items)
        answer.proceed.set()
        await trio.sleep(0.2)
        assert len(events.items) == sent  # nothing of it after the interrupt
        session.interrupt(message_id, 5000)  # a second one changes nothing
        assert answer.interrupted == [heard]


async def test_played_ms_is_clamped_to_the_audio_sent() -> None:
    answers = FakeAnswers(FIVE, hold_after=2)
    async with open_session(answers) as (session, events):
        await _say(session, _utterance())
        await events.wait(lambda: len(_chunks(events)) == 2)
        session.interrupt(_chunks(events)[0][1], 10**9)
        assert answers.answers[0].interrupted == ["One is first. Two comes next."]


async def test_quiet_sound_during_playback_never_interrupts_loud_speech_does() -> None:
    answers = FakeAnswers(FIVE, hold_after=2)
    async with open_session(answers, barge_in_dbfs=-30.0) as (session, events):
        await _say(session, _utterance())
        await events.wait(lambda: len(_chunks(events)) == 2)
        message_id = _chunks(events)[0][1]
        session.playback(message_id, 50)
        heard_before = len(events.of("transcript"))
        # the answer's own voice, 25 dB down, as a loudspeaker's echo might be
        from array import array

        samples = array("h")
        samples.frombytes(spoken("this is the answer playing back", VOICE))
        echo = array("h", (s // 18 for s in samples)).tobytes()
        await _say(session, echo + noise(500, 300))
        assert answers.answers[0].interrupted == []
        assert len(events.of("transcript")) == heard_before
        await _say(session, spoken(PHRASE, VOICE))
        assert answers.answers[0].interrupted == ["One is first."]  # by the report: 50 ms


async def test_with_echo_cancellation_any_speech_barges_in() -> None:
    answers = FakeAnswers(FIVE, hold_after=2)
    async with open_session(answers, echo_cancellation=True) as (session, events):
        await _say(session, _utterance())
        await events.wait(lambda: len(_chunks(events)) == 2)
        samples_pcm = spoken(PHRASE, VOICE)
        from array import array

        samples = array("h")
        samples.frombytes(samples_pcm)
        await _say(session, array("h", (s // 18 for s in samples)).tobytes())
        assert len(answers.answers[0].interrupted) == 1


@asynccontextmanager
async def _stopped_mid_answer(
    report: Callable[[VoiceSession, str], None] | None,
) -> AsyncIterator[FakeAnswers]:
    answers = FakeAnswers(FIVE, hold_after=2)
    async with open_session(answers) as (session, events):
        await _say(session, _utterance())
        await events.wait(lambda: len(_chunks(events)) == 2)
        if report is not None:
            report(session, _chunks(events)[0][1])
    yield answers


async def test_stop_mid_answer_stores_what_was_heard() -> None:
    async with _stopped_mid_answer(lambda s, m: s.playback(m, 10)) as answers:
        assert answers.answers[0].interrupted == ["One is first."]


async def test_stop_mid_answer_without_reports_keeps_what_was_generated() -> None:
    async with _stopped_mid_answer(None) as answers:
        assert answers.answers[0].interrupted == [None]


async def test_odd_audio_is_refused_and_the_session_goes_on() -> None:
    answers = FakeAnswers(["Fine."])
    async with open_session(answers) as (session, events):
        with pytest.raises(UnsupportedAudio):
            session.audio(b"\x00\x01\x02")
        await _say(session, _utterance())
        await events.wait(lambda: bool(_chunks(events, final=True)))


async def test_an_utterance_past_the_limit_is_dropped() -> None:
    answers = FakeAnswers(["Fine."])
    async with open_session(answers, max_utterance_seconds=0.5) as (session, events):
        await _say(session, _utterance())
        await events.wait(lambda: bool(events.of("failed")))
        assert events.of("failed")[0][1] == "unsupported_audio"
        assert answers.asked == []


class _Scripted:
    """A recogniser that hears ``text`` in any audio: for the clock tests."""

    name = "scripted"

    def __init__(self, text: str) -> None:
        self.text = text

    async def prepare(self) -> None:
        pass

    @asynccontextmanager
    async def open_stream(
        self, language: str, sample_rate: int, on_partial: Callable[[str], None]
    ) -> AsyncIterator[_Scripted]:
        yield self

    async def feed(self, pcm: bytes) -> None:
        pass

    async def finish(self) -> str:
        return self.text


@pytest.mark.parametrize("autojump_clock", [trio.testing.MockClock(autojump_threshold=0)])
async def test_audio_that_stops_mid_speech_ends_the_utterance_after_idle_ms(
    autojump_clock: trio.testing.MockClock,
) -> None:
    answers = FakeAnswers(["Ok."])
    recognizer = _Scripted("hello")
    async with open_session(answers, recognizer=recognizer, idle_ms=2000) as (session, events):
        await _say(session, silence(100) + spoken(PHRASE, VOICE)[:16000])  # cut mid-word
        started = trio.current_time()
        await events.wait(lambda: bool(events.of("transcript")))
        assert trio.current_time() - started == pytest.approx(2.0, abs=0.05)
        assert events.of("transcript") == [("transcript", "hello", True)]
