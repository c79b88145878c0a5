"""False and true barge-ins while an answer plays on a client without echo cancellation.

A loudspeaker next to the microphone: the microphone hears the answer's own
speech (espeak-ng, female) attenuated by ``echo_db`` with a little room noise.
The half-duplex rule (speech counts during playback only above
``barge_in_dbfs``, held ``barge_in_ms``) must not take that echo for the user:
a "false barge-in" is a start of speech found in echo alone. A "true barge-in"
is the user (a male voice at a normal level) talking over the echo, which
must still be found. The session's own endpointer and the WebRTC detector do
the judging; figures per echo level and threshold, over twelve 5 s answers.

    .venv/bin/python bench/barge_in.py
"""

from __future__ import annotations

import random
import subprocess
import sys
from array import array
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from speech_phrases import PHRASES  # noqa: E402

from pichat_trio.adapters.speech.pcm import resample_slice, resampled_length  # noqa: E402
from pichat_trio.adapters.speech.vad import WebRtcVoiceDetector  # noqa: E402
from pichat_trio.services.voice.endpointer import Endpointer, SpeechStarted  # noqa: E402
from pichat_trio.wav import parse_wav  # noqa: E402

RATE = 16000
FRAME = 2 * RATE * 20 // 1000


def _spoken(text: str, voice: str) -> array[int]:
    argv = ["espeak-ng", "-v", voice, "--stdout", text]
    wav = subprocess.run(argv, capture_output=True, check=True).stdout
    pcm = parse_wav(wav, max_seconds=600.0, max_bytes=1 << 30)
    samples = array("h")
    samples.frombytes(resample_slice(pcm, RATE, 0, resampled_length(pcm, RATE)))
    return samples


def _scaled(samples: array[int], db: float) -> array[int]:
    gain = 10 ** (db / 20)
    return array("h", (int(s * gain) for s in samples))


def _noisy(samples: array[int], amplitude: int, rng: random.Random) -> bytes:
    return array(
        "h", (max(-32768, min(32767, s + rng.randint(-amplitude, amplitude))) for s in samples)
    ).tobytes()


def _starts(pcm: bytes, threshold: float, hold_ms: int) -> int:
    endpointer = Endpointer(
        WebRtcVoiceDetector(RATE), RATE, 600, start_ms=hold_ms, threshold_dbfs=threshold
    )
    found = 0
    for offset in range(0, len(pcm), FRAME):
        found += sum(
            isinstance(e, SpeechStarted) for e in endpointer.feed(pcm[offset : offset + FRAME])
        )
    return found


def main() -> None:
    rng = random.Random(3)
    answer = array("h")
    while len(answer) < 60 * RATE:  # a minute of the answer's voice
        for phrase in PHRASES:
            answer.extend(_spoken(phrase + ".", "en-us+f5"))
    user = _spoken("stop, that is enough, thank you", "en-us+klatt5")
    print("a minute of echo (the answer's voice, attenuated) with room noise; WebRTC mode 3")
    print("false: 5 s answers (of 12) in which the echo alone was taken for the user")
    print(f"{'echo':>6} {'threshold':>10} {'hold':>6} {'false barge-ins':>16} {'user found':>11}")
    for echo_db in (-6.0, -12.0, -20.0):
        echo = _scaled(answer, echo_db)
        for threshold, hold in ((-50.0, 90), (-30.0, 300), (-24.0, 300)):
            windows = [echo[k : k + 5 * RATE] for k in range(0, len(echo) - 5 * RATE, 5 * RATE)]
            false = sum(_starts(_noisy(w, 150, rng), threshold, hold) > 0 for w in windows)
            found = 0
            trials = 10
            for trial in range(trials):
                start = (trial + 1) * 5 * RATE
                mixed = echo[start : start + 4 * RATE]
                for i, s in enumerate(user):
                    if i + RATE // 2 < len(mixed):
                        mixed[i + RATE // 2] = max(-32768, min(32767, mixed[i + RATE // 2] + s))
                found += _starts(_noisy(mixed, 150, rng), threshold, hold) > 0
            print(
                f"{echo_db:5.0f}dB {threshold:8.0f}dB {hold:4d}ms {false:>10d} of {len(windows)} "
                f"{found:>5d} of {trials}"
            )


if __name__ == "__main__":
    main()
