"""The offline speech engine: espeak-ng speaks, pocketsphinx listens.

The default when no Azure Speech key is configured, so that a fresh machine
has working (if robotic, English-only for recognition) speech with nothing
but ``apt-get install espeak-ng`` and ``pip install pocketsphinx``.

espeak-ng runs as a child process owned by the calling task: a cancellation
kills it. pocketsphinx runs in worker threads and cannot be interrupted in
the middle of a call, so audio is fed to it a quarter second at a time and the
cancellation takes effect between two slices.
"""

from __future__ import annotations

import logging
import math
import shutil
import struct
import subprocess
import tempfile
from collections.abc import AsyncGenerator
from typing import Any

import trio

from ...errors import InvalidInput, UnsupportedAudio, UpstreamError, UpstreamUnavailable
from ...models import VoiceSettings
from ...ports import AudioFormat, PcmAudio, Synthesis
from ...voices import espeak_voice, espeak_words_per_minute
from ...wav import encode_wav, parse_wav, wav_header
from .pcm import quietest_point, resample_slice, resampled_length
from .turns import Turns

__all__ = ["OfflineSpeechEngine", "new_decoder"]

log = logging.getLogger(__name__)

_RECOGNISER_RATE = 16000  # pocketsphinx's bundled en-US model is trained on 16 kHz
# 0.25 s of audio per worker-thread call: the cancellation latency, and the
# longest the trio loop waits, since pocketsphinx's process_raw holds the GIL
# for the whole call (measured: the loop ran 3 times during a 3 s call).
_SLICE_SAMPLES = _RECOGNISER_RATE // 4
_PRIMING_SAMPLES = 3 * _RECOGNISER_RATE  # audio that adapts the cepstral mean (see recognize)
# A turn decodes at most 3 s of audio (about 1 s of CPU here, 3 s on a
# machine loaded twice over): the longest another user's clip waits for the
# decoder. The cut falls on the quietest 10 ms of the last second, so mostly
# between words.
_CHUNK_SAMPLES = 3 * _RECOGNISER_RATE
_CUT_SEARCH_SAMPLES = _RECOGNISER_RATE
_CUT_FRAME = _RECOGNISER_RATE // 100
_LANGUAGES = ("en-us", "en")
_READ_BYTES = 16384  # one read from espeak-ng's stdout, about 0.4 s of 22 kHz audio
_CLEANUP_SECONDS = 5.0  # reaping a killed espeak-ng; it dies at once in practice
_WAV_HEADER_BYTES = 44  # espeak-ng writes the canonical header and nothing else
_MAX_OUTPUT_BYTES = 512 * 1024 * 1024  # a sanity bound for parse_wav on our own output
_INSTALL_HINT = "espeak-ng is not installed; install it with `apt-get install espeak-ng`"


class OfflineSpeechEngine:
    """Text to speech with espeak-ng, speech to text with pocketsphinx (en-US).

    The pocketsphinx decoder is loaded on first use, in a thread, and kept.
    It holds one utterance at a time; recognitions take turns at it, a chunk
    at a time, round robin between owners (``turns``).
    """

    name = "offline"

    def __init__(self, *, espeak_path: str | None = None, queue_per_owner: int = 4) -> None:
        self._espeak = espeak_path or shutil.which("espeak-ng")
        self._decoder: Any = None
        self._initial_cmn = ""
        self._in_utterance = False
        self.turns = Turns(jobs_per_owner=queue_per_owner)

    # ------------------------------------------------------------ speaking

    def _argv(self, voice: VoiceSettings, audio_format: AudioFormat) -> list[str]:
        if audio_format != "wav":
            raise InvalidInput(
                "payload.format",
                "the offline speech engine produces WAV only; MP3 needs Azure Speech "
                "(set AZURE_SPEECH_KEY and AZURE_SPEECH_REGION)",
            )
        if self._espeak is None:
            raise UpstreamUnavailable(_INSTALL_HINT)
        wpm = str(espeak_words_per_minute(voice.speed))
        # -b 1: the text on stdin is UTF-8. Text never goes on the command line.
        return [self._espeak, "-v", espeak_voice(voice), "-s", wpm, "-b", "1", "--stdout"]

    async def synthesize(
        self, text: str, voice: VoiceSettings, audio_format: AudioFormat
    ) -> Synthesis:
        argv = self._argv(voice, audio_format)
        try:
            done = await trio.run_process(
                argv, stdin=text.encode(), capture_stdout=True, capture_stderr=True, check=False
            )
        except FileNotFoundError:
            raise UpstreamUnavailable(_INSTALL_HINT) from None
        if done.returncode != 0:
            log.warning("espeak-ng exited with %s: %s", done.returncode, done.stderr[-500:])
            raise UpstreamError("the offline speech synthesiser failed")
        try:
            pcm = parse_wav(done.stdout, max_seconds=math.inf, max_bytes=_MAX_OUTPUT_BYTES)
        except UnsupportedAudio as exc:
            log.warning("espeak-ng wrote unexpected output: %s", exc.message)
            raise UpstreamError("the offline speech synthesiser failed") from None
        return Synthesis(audio=encode_wav(pcm), content_type="audio/wav")

    async def synthesize_stream(
        self, text: str, voice: VoiceSettings, audio_format: AudioFormat
    ) -> AsyncGenerator[bytes, None]:
        """WAV bytes as espeak-ng produces them; the header marks an unknown length.

        Closing the generator (or cancelling its consumer) kills espeak-ng.
        """
        argv = self._argv(voice, audio_format)
        # The text goes in through an anonymous file, so writing it cannot
        # block on a full pipe while nobody reads espeak-ng's output yet.
        with tempfile.TemporaryFile() as stdin:
            stdin.write(text.encode())
            stdin.seek(0)
            try:
                process = await trio.lowlevel.open_process(
                    argv, stdin=stdin, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL
                )
            except FileNotFoundError:
                raise UpstreamUnavailable(_INSTALL_HINT) from None
        assert process.stdout is not None
        try:
            header = b""
            while len(header) < _WAV_HEADER_BYTES:
                chunk = await process.stdout.receive_some(_WAV_HEADER_BYTES - len(header))
                if not chunk:
                    break
                header += bytes(chunk)
            yield _restamp_header(header)
            while chunk := await process.stdout.receive_some(_READ_BYTES):
                yield bytes(chunk)
            if await process.wait() != 0:
                log.warning("espeak-ng exited with %s", process.returncode)
                raise UpstreamError("the offline speech synthesiser failed")
        finally:
            with trio.move_on_after(_CLEANUP_SECONDS, shield=True):
                if process.returncode is None:
                    process.kill()
                await process.stdout.aclose()
                await process.wait()

    # ----------------------------------------------------------- listening

    async def recognize(self, audio: PcmAudio, language: str, *, owner: str = "") -> str:
        """English text of ``audio``; ``""`` when nothing was recognised.

        The decoder is shared fairly between owners (see ``turns``): the
        audio is decoded in chunks of at most ``_CHUNK_SAMPLES``, cut at the
        quietest moment near the end of each, one turn per chunk. Past
        ``queue_per_owner`` recognitions of one owner: ``RateLimited``.

        Cancellation: pocketsphinx cannot stop inside a call, so it is fed a
        quarter second of audio per thread call; a cancelled caller waits for at most
        the slice in progress (tens of milliseconds of CPU).
        """
        if language.lower() not in _LANGUAGES:
            raise InvalidInput(
                "payload.language",
                f"the offline speech recogniser only knows en-US, not {language}; "
                "configure Azure Speech (AZURE_SPEECH_KEY) for other languages",
            )
        total = resampled_length(audio, _RECOGNISER_RATE)
        texts: list[str] = []
        async with self.turns.job(owner):
            start, cmn = 0, None
            while start < total or cmn is None:
                async with self.turns.turn(owner):
                    decoder = await self._load_decoder()
                    if cmn is None:
                        # Two passes over the start, so that every request is
                        # decoded alike: pocketsphinx normalises features with a
                        # running cepstral mean that it carries from one
                        # utterance to the next, which made a result depend on
                        # the previous request. The first pass resets it and
                        # adapts it on the first seconds; its words are thrown
                        # away. The mean is then carried from chunk to chunk of
                        # this clip only, whatever other clips ran in between.
                        await self._decode(decoder, audio, 0, min(total, _PRIMING_SAMPLES))
                        cmn = decoder.get_cmn(False)
                    stop = await trio.to_thread.run_sync(_chunk_end, audio, start, total)
                    texts.append(await self._decode(decoder, audio, start, stop, cmn))
                    cmn = decoder.get_cmn(False)
                start = stop
        return " ".join(text for text in texts if text)

    async def _decode(
        self, decoder: Any, audio: PcmAudio, start: int, stop: int, cmn: str | None = None
    ) -> str:
        await trio.to_thread.run_sync(self._start, decoder, cmn or self._initial_cmn)
        for first in range(start, stop, _SLICE_SAMPLES):
            end = min(first + _SLICE_SAMPLES, stop)
            await trio.to_thread.run_sync(self._feed, decoder, audio, first, end)
        return await trio.to_thread.run_sync(self._finish, decoder)

    async def _load_decoder(self) -> Any:
        if self._decoder is None:
            self._decoder = await trio.to_thread.run_sync(new_decoder, _RECOGNISER_RATE)
            self._initial_cmn = self._decoder.get_cmn(False)
        return self._decoder

    def _start(self, decoder: Any, cmn: str) -> None:
        if self._in_utterance:  # left open by a cancelled recognition
            decoder.end_utt()
        decoder.set_cmn(cmn)
        decoder.start_utt()
        self._in_utterance = True

    @staticmethod
    def _feed(decoder: Any, audio: PcmAudio, start: int, stop: int) -> None:
        decoder.process_raw(resample_slice(audio, _RECOGNISER_RATE, start, stop), False, False)

    def _finish(self, decoder: Any) -> str:
        decoder.end_utt()
        self._in_utterance = False
        hypothesis = decoder.hyp()
        return str(hypothesis.hypstr).strip() if hypothesis is not None else ""

    async def aclose(self) -> None:
        self._decoder = None


def _chunk_end(audio: PcmAudio, start: int, total: int) -> int:
    """Where the chunk that begins at ``start`` ends: all of a short rest, else
    the quietest moment of the last ``_CUT_SEARCH_SAMPLES`` before the longest chunk."""
    if total - start <= _CHUNK_SAMPLES:
        return total
    latest = start + _CHUNK_SAMPLES
    return quietest_point(audio, _RECOGNISER_RATE, latest - _CUT_SEARCH_SAMPLES, latest, _CUT_FRAME)


def new_decoder(sample_rate: int, **options: Any) -> Any:
    """A pocketsphinx decoder with its bundled en-US model (about 90 MB, 0.4 s to load);
    ``options`` are the decoder's own (``fwdflat=False``, ...)."""
    try:
        from pocketsphinx import Decoder
    except ImportError:
        raise UpstreamUnavailable(
            "pocketsphinx is not installed; install it with `pip install pocketsphinx`"
        ) from None
    return Decoder(samprate=sample_rate, loglevel="FATAL", **options)


def _restamp_header(header: bytes) -> bytes:
    """espeak-ng's streamed header with the standard unknown-length marker.

    espeak-ng writes 0x7FFFF000-ish sizes; we send 0xFFFFFFFF like the Azure
    stream does, so a client sees one convention whatever the engine.
    """
    if len(header) < _WAV_HEADER_BYTES or header[:4] != b"RIFF" or header[36:40] != b"data":
        raise UpstreamError("the offline speech synthesiser failed")
    channels, rate = struct.unpack_from("<HI", header, 22)
    return wav_header(rate, channels)
