"""A live voice session: listen, answer aloud while the answer generates, be interrupted.

One session per connection, owned by a task in the connection's nursery
(``run``). The transport hands it microphone audio, playback reports and
interrupts through plain synchronous calls that never block; the session's
own tasks do the slow work:

- an utterance task per utterance, from the endpointer's start of speech to
  its end: the audio goes to a streaming recogniser, partial and final
  transcripts go to the client, and a non-empty final text starts an answer;
- one answer at a time: its generation runs in the session's nursery, so
  the session's end ends it; the answer's tokens are cut into sentences,
  each is synthesised and sent as a ``voice_audio`` chunk as soon as it is
  complete, in order; a next answer starts only when the previous one's task
  has ended, so two answers' audio never interleave.

Barge-in (``interrupt``, or speech while an answer is playing) closes a gate
synchronously, so no chunk of that answer is sent after it, cancels the
answer task and hands the answer source the text of the chunks heard.
Without echo cancellation on the client, speech during playback needs the
``barge_in_dbfs`` level and ``barge_in_ms`` of it to count (half-duplex).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from functools import partial

import trio

from ...errors import NotFound, PichatError, UnsupportedAudio
from ...models import VoiceSettings
from ...ports import PcmAudio, PcmSpeaker, StreamingRecognizer, VoiceDetector
from ...wav import encode_wav
from .contracts import Answer, AnswerRequest, AnswerSource, VoiceEvents
from .endpointer import Endpointer, SpeechEnded, SpeechStarted, UtteranceAudio
from .playback import Playback
from .sentences import Sentence, SentenceSplitter

__all__ = ["VoiceOptions", "VoiceSession"]

log = logging.getLogger(__name__)

_FEED_MS = 200  # the most audio handed to the recogniser at once: its partials' pace
# The least, until the utterance ends: the recogniser's task wakes and writes
# once per block, not once per detector frame (30 ms), which a hundred sessions
# on one core feel; partials come no faster than this anyway.
_BLOCK_MS = 100
_CLEANUP_SECONDS = 5.0  # storing what was heard, after the session is cancelled


@dataclass(frozen=True)
class VoiceOptions:
    sample_rate: int = 16000
    silence_ms: int = 600
    language: str = "en-US"
    echo_cancellation: bool = False
    max_utterance_seconds: float = 60.0
    threshold_dbfs: float = -50.0  # speech below this is the room, not the user
    barge_in_dbfs: float = -30.0  # during playback without echo cancellation
    barge_in_ms: int = 300  # ... and held this long
    start_ms: int = 90
    idle_ms: int = 2000  # an utterance whose audio stops coming ends after this


@dataclass(eq=False)
class _Utterance:
    audio: bytearray = field(default_factory=bytearray)
    fed: int = 0  # bytes handed to the recogniser
    more: trio.Event = field(default_factory=trio.Event)
    ended: bool = False
    scope: trio.CancelScope = field(default_factory=trio.CancelScope)


@dataclass(eq=False)
class _Speaking:
    """The answer being generated and spoken."""

    playback: Playback | None = None
    answer: Answer | None = None
    scope: trio.CancelScope = field(default_factory=trio.CancelScope)
    gate_open: bool = True  # chunks may still be sent
    done: trio.Event = field(default_factory=trio.Event)


def _heard_so_far(speaking: _Speaking) -> str | None:
    playback = speaking.playback
    if playback is None or playback.reported_ms is None:
        return None
    return playback.heard(playback.reported_ms)


class VoiceSession:
    def __init__(
        self,
        voice_id: str,
        options: VoiceOptions,
        *,
        detector: VoiceDetector,
        recognizer: StreamingRecognizer,
        speaker: PcmSpeaker,
        answers: AnswerSource,
        events: VoiceEvents,
        voice: VoiceSettings,
    ) -> None:
        self.voice_id = voice_id
        self.options = options
        self._recognizer = recognizer
        self._speaker = speaker
        self._answers = answers
        self._events = events
        self._voice = voice
        self._endpointer = Endpointer(
            detector,
            options.sample_rate,
            options.silence_ms,
            start_ms=options.start_ms,
            threshold_dbfs=options.threshold_dbfs,
        )
        self._max_utterance_bytes = int(2 * options.sample_rate * options.max_utterance_seconds)
        self._block_bytes = 2 * options.sample_rate * _BLOCK_MS // 1000
        self._utterance: _Utterance | None = None
        self._speaking: _Speaking | None = None
        self._answered: list[str] = []  # message ids of this session's answers
        self._nursery: trio.Nursery | None = None
        self._turns: trio.MemorySendChannel[tuple[str, bytes]] | None = None
        self.last_voiced_sample = 0  # for the benchmark: where the last utterance ended

    # ------------------------------------------------------------ the task

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """The session, until cancelled (``voice_stop``, the connection closing).

        However it ends, an answer being spoken is stored as heard so far
        (by the last ``voice_playback``), or as generated without reports.
        """
        send, receive = trio.open_memory_channel[tuple[str, bytes]](1)
        try:
            async with trio.open_nursery() as nursery:
                self._nursery, self._turns = nursery, send
                nursery.start_soon(self._answer_turns, receive)
                nursery.start_soon(self._prepare)
                task_status.started()
                await trio.sleep_forever()
        finally:
            self._nursery = self._turns = None
            answer = self._close_speaking()
            with trio.move_on_after(_CLEANUP_SECONDS, shield=True):
                if answer is not None:
                    await answer.wait_stored()
                await self._speaker.aclose()

    async def _prepare(self) -> None:
        try:
            await self._recognizer.prepare()
        except PichatError as error:  # no model: the first utterance will say so too
            log.warning("the recogniser could not get ready: %s", error.message)

    def _close_speaking(self) -> Answer | None:
        """At the end of the session: the answer being spoken stops, as heard."""
        speaking = self._speaking
        if speaking is None or speaking.answer is None or speaking.playback is None:
            return None
        playback, answer = speaking.playback, speaking.answer
        if speaking.gate_open:
            speaking.gate_open = False
            reported = playback.reported_ms
            if reported is None:
                if playback.generating:  # stop it, keep what was generated
                    answer.interrupt(None)
            elif playback.generating or reported < playback.sent_ms:
                answer.interrupt(playback.heard(reported))
        return answer

    # ------------------------------------------- calls from the transport

    def audio(self, pcm: bytes) -> None:
        """Microphone audio, in order. Raises ``UnsupportedAudio`` (the session goes on)."""
        if len(pcm) % 2:
            raise UnsupportedAudio("voice audio must be whole 16-bit samples")
        self._update_threshold()
        for event in self._endpointer.feed(pcm):
            self._on_endpoint(event)

    def end(self) -> None:
        """``voice_end``: the user has finished speaking."""
        for event in self._endpointer.end():
            self._on_endpoint(event)

    def playback(self, message_id: str, played_ms: float) -> None:
        playback = self._playback_of(message_id)
        if playback is not None:
            playback.report(played_ms)

    def interrupt(self, message_id: str, played_ms: float) -> None:
        playback = self._playback_of(message_id)
        if playback is not None:
            self._barge_in(playback.report(played_ms))

    def _playback_of(self, message_id: str) -> Playback | None:
        if message_id not in self._answered:
            raise NotFound("no such answer in this voice session")
        speaking = self._speaking
        if speaking is None or speaking.playback is None:
            return None
        if speaking.playback.message_id != message_id:
            return None  # an earlier answer: over already
        return speaking.playback

    # -------------------------------------------------------- listening

    def _playing(self) -> bool:
        speaking = self._speaking
        return (
            speaking is not None
            and speaking.gate_open
            and (speaking.playback is None or speaking.playback.playing(trio.current_time()))
        )

    def _update_threshold(self) -> None:
        options, endpointer = self.options, self._endpointer
        if self._playing() and not options.echo_cancellation:
            endpointer.threshold_dbfs = max(options.threshold_dbfs, options.barge_in_dbfs)
            endpointer.start_ms = max(options.start_ms, options.barge_in_ms)
        else:
            endpointer.threshold_dbfs = options.threshold_dbfs
            endpointer.start_ms = options.start_ms

    def _on_endpoint(self, event: SpeechStarted | UtteranceAudio | SpeechEnded) -> None:
        if isinstance(event, SpeechStarted):
            if self._playing():
                speaking = self._speaking
                assert speaking is not None
                playback = speaking.playback
                now = trio.current_time()
                self._barge_in(playback.position(now) if playback is not None else 0.0)
            self._start_utterance()
        elif isinstance(event, UtteranceAudio):
            utterance = self._utterance
            if utterance is None or utterance.ended:
                return
            if len(utterance.audio) + len(event.pcm) > self._max_utterance_bytes:
                self._drop_utterance()
                self._events.failed(
                    UnsupportedAudio(
                        f"an utterance is at most {self.options.max_utterance_seconds:g} s"
                    )
                )
                return
            utterance.audio += event.pcm
            if len(utterance.audio) - utterance.fed >= self._block_bytes:
                utterance.more.set()
        else:
            self.last_voiced_sample = event.last_voiced_sample
            if self._utterance is not None:
                self._utterance.ended = True
                self._utterance.more.set()
                self._utterance = None

    def _start_utterance(self) -> None:
        if self._nursery is None:
            return
        if self._utterance is not None:  # cannot happen: the endpointer ends one first
            self._drop_utterance()
        utterance = _Utterance()
        self._utterance = utterance
        self._nursery.start_soon(self._hear, utterance)

    def _drop_utterance(self) -> None:
        if self._utterance is not None:
            self._utterance.scope.cancel()
            self._utterance = None
        self._endpointer.reset()

    async def _hear(self, utterance: _Utterance) -> None:
        with utterance.scope:
            try:
                text = await self._recognise(utterance)
            except PichatError as error:
                self._events.failed(error)
                return
            self._events.transcript(text, True)
            if text and self._turns is not None:
                pcm = PcmAudio(self.options.sample_rate, 1, bytes(utterance.audio))
                await self._turns.send((text, encode_wav(pcm)))

    async def _recognise(self, utterance: _Utterance) -> str:
        partial = ""

        def on_partial(text: str) -> None:
            nonlocal partial
            if text and text != partial and not utterance.scope.cancel_called:
                partial = text
                self._events.transcript(text, False)

        idle = self.options.idle_ms / 1000
        rate = self.options.sample_rate
        step = 2 * rate * _FEED_MS // 1000  # behind the speaker, catch up in steps
        async with self._recognizer.open_stream(self.options.language, rate, on_partial) as stream:
            while True:
                if utterance.fed < len(utterance.audio):
                    end = utterance.fed + step
                    chunk = bytes(utterance.audio[utterance.fed : end])
                    utterance.fed += len(chunk)
                    await stream.feed(chunk)
                    continue
                if utterance.ended:
                    return (await stream.finish()).strip()
                utterance.more = trio.Event()
                with trio.move_on_after(idle):
                    await utterance.more.wait()
                    continue
                # the client stopped sending audio in the middle of speech
                if self._utterance is utterance:
                    self._endpointer.reset()
                    self._utterance = None
                utterance.ended = True

    # -------------------------------------------------------- answering

    async def _answer_turns(self, turns: trio.MemoryReceiveChannel[tuple[str, bytes]]) -> None:
        """One answer at a time, in the order the utterances ended."""
        async for text, wav in turns:
            speaking = _Speaking()
            self._speaking = speaking
            try:
                await self._answer(speaking, text, wav)
            finally:
                speaking.done.set()

    async def _answer(self, speaking: _Speaking, text: str, wav: bytes) -> None:
        with speaking.scope:
            nursery = self._nursery
            if nursery is None:
                return  # the session is ending
            heard = partial(_heard_so_far, speaking)
            try:
                request = AnswerRequest(text, wav, heard, nursery, self._events)
                answer = await self._answers.start(request)
            except PichatError as error:
                self._events.failed(error)
                return
            speaking.answer = answer
            playback = Playback(answer.message_id, self.options.sample_rate)
            speaking.playback = playback
            self._answered.append(answer.message_id)
            send, receive = trio.open_memory_channel[Sentence](256)
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._speak, speaking, receive)
                async with send:
                    splitter = SentenceSplitter()
                    async for token in answer.tokens():
                        for sentence in splitter.feed(token):
                            await send.send(sentence)
                    for sentence in splitter.finish():
                        await send.send(sentence)
            playback.generating = False
            if not speaking.gate_open:
                return
            # It stays the current answer while it plays (``_playing``): speech
            # then is still a barge-in.
            self._events.audio(playback.message_id, playback.next_seq, "", b"", True)

    async def _speak(
        self, speaking: _Speaking, sentences: trio.MemoryReceiveChannel[Sentence]
    ) -> None:
        playback = speaking.playback
        assert playback is not None
        async for sentence in sentences:
            pcm = b""
            if sentence.spoken:
                try:
                    rate = playback.sample_rate
                    pcm = await self._speaker.speak(sentence.spoken, self._voice, rate)
                except PichatError as error:
                    log.warning("a sentence could not be spoken: %s", error.message)
            if not speaking.gate_open:
                return
            chunk = playback.add(sentence.text, len(pcm), trio.current_time())
            self._events.audio(playback.message_id, chunk.seq, chunk.text, pcm, False)

    def _barge_in(self, played_ms: float) -> None:
        speaking = self._speaking
        if speaking is None or not speaking.gate_open or speaking.answer is None:
            return
        speaking.gate_open = False  # from now on, not one more chunk of it
        assert speaking.playback is not None
        speaking.answer.interrupt(speaking.playback.heard(played_ms))
        speaking.scope.cancel()
        if self._nursery is not None:
            self._nursery.start_soon(speaking.answer.wait_stored)
