"""Sample conversions for recognisers: downmix to mono, resample linearly.

Pure Python on ``array('h')`` because ``audioop`` is deprecated (and gone in
3.13) and numpy is not a dependency. Linear interpolation without a low-pass
filter aliases a little when downsampling; speech recognisers do not mind,
and the work stays about one second per minute of audio. Conversion happens
in slices so that a caller in a worker thread can stop between two slices.
"""

from __future__ import annotations

import sys
from array import array

from ...ports import PcmAudio

__all__ = ["downmix", "quietest_point", "resample_slice", "resampled_length"]


def _samples(frames: bytes) -> array[int]:
    samples = array("h")
    samples.frombytes(frames)
    if sys.byteorder == "big":  # WAV samples are little-endian
        samples.byteswap()
    return samples


def _to_bytes(samples: array[int]) -> bytes:
    if sys.byteorder == "big":
        samples.byteswap()
    return samples.tobytes()


def downmix(pcm: PcmAudio) -> PcmAudio:
    """Mono audio: the mean of the two channels of a stereo file."""
    if pcm.channels == 1:
        return pcm
    samples = _samples(pcm.frames)
    mono = array(
        "h", [(left + right) >> 1 for left, right in zip(samples[0::2], samples[1::2], strict=True)]
    )
    return PcmAudio(sample_rate=pcm.sample_rate, channels=1, frames=_to_bytes(mono))


def resampled_length(pcm: PcmAudio, rate: int) -> int:
    """How many mono samples ``pcm`` has at ``rate``."""
    frames = len(pcm.frames) // (2 * pcm.channels)
    return frames * rate // pcm.sample_rate


def resample_slice(pcm: PcmAudio, rate: int, start: int, stop: int) -> bytes:
    """Mono samples ``start:stop`` of ``pcm`` at ``rate``, as little-endian bytes.

    Slices computed one after another join seamlessly: each output sample is
    interpolated from the source samples around its own position.
    """
    stop = min(stop, resampled_length(pcm, rate))
    if start >= stop:
        return b""
    channels = pcm.channels
    if rate == pcm.sample_rate and channels == 1:
        return pcm.frames[2 * start : 2 * stop]
    step = pcm.sample_rate / rate
    first = int(start * step)
    last = min(int((stop - 1) * step) + 2, len(pcm.frames) // (2 * channels))
    source = _samples(pcm.frames[2 * channels * first : 2 * channels * last])
    if channels == 2:
        source = array("h", [(a + b) >> 1 for a, b in zip(source[0::2], source[1::2], strict=True)])
    end = len(source) - 1
    out = array("h", bytes(2 * (stop - start)))
    for k, i in enumerate(range(start, stop)):
        position = i * step - first
        j = int(position)
        s0 = source[j]
        s1 = source[j + 1] if j < end else s0
        out[k] = int(s0 + (s1 - s0) * (position - j))
    return _to_bytes(out)


def quietest_point(pcm: PcmAudio, rate: int, start: int, stop: int, frame: int) -> int:
    """The middle of the quietest ``frame`` samples in ``start:stop`` (at ``rate``).

    Where a long clip is cut into chunks: between words rather than in one.
    """
    samples = _samples(resample_slice(pcm, rate, start, stop))
    best, best_energy = start + (stop - start) // 2, -1
    for offset in range(0, len(samples) - frame + 1, frame):
        energy = sum(abs(sample) for sample in samples[offset : offset + frame])
        if best_energy < 0 or energy < best_energy:
            best, best_energy = start + offset + frame // 2, energy
    return best
