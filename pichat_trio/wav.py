"""WAV in and out: parse and validate what clients send, encode what we return.

Pure functions on bytes, no I/O, so the checks are easy to test and cheap to
run before any speech engine is involved. Every refusal is an
``UnsupportedAudio`` (or ``InvalidInput`` for the base64 layer) whose message
says what is wrong in words a user can act on.
"""

from __future__ import annotations

import base64
import binascii
import re
import struct

from .errors import InvalidInput, UnsupportedAudio
from .ports import PcmAudio

__all__ = [
    "MAX_SAMPLE_RATE",
    "MIN_SAMPLE_RATE",
    "decode_audio_base64",
    "encode_wav",
    "parse_wav",
    "wav_header",
]

MIN_SAMPLE_RATE = 8000
MAX_SAMPLE_RATE = 48000

_PCM = 0x0001
_EXTENSIBLE = 0xFFFE
# The first two bytes of the SubFormat GUID carry the format tag; the other 14
# are the fixed KSDATAFORMAT suffix.
_PCM_SUBFORMAT = bytes.fromhex("0100000000001000800000aa00389b71")
_STREAMED_SIZES = (0, 0xFFFFFFFF)
_WHITESPACE = re.compile(rb"[ \t\r\n]+")
_DATA_URL = re.compile(r"^data:[\w.+/-]*(;[\w=.+-]+)*;base64,", re.IGNORECASE)


def parse_wav(data: bytes, *, max_seconds: float, max_bytes: int) -> PcmAudio:
    """Validate a RIFF/WAVE file of 16-bit PCM and return its samples.

    Unknown chunks are skipped. A ``data`` chunk whose size is 0, 0xFFFFFFFF
    or larger than what is left (a WAV written while it was being streamed, as
    espeak-ng and many recorders do) takes the rest of the file.
    """
    if len(data) > max_bytes:
        raise UnsupportedAudio(f"audio is {_mib(len(data))}; the limit is {_mib(max_bytes)}")
    if len(data) < 12 or data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        raise UnsupportedAudio(f"not a WAV file (no RIFF header){_guess_format(data)}")
    fmt: tuple[int, int, int] | None = None
    frames: bytes | None = None
    offset = 12
    while offset + 8 <= len(data):
        chunk_id = data[offset : offset + 4]
        (size,) = struct.unpack_from("<I", data, offset + 4)
        body_start = offset + 8
        if chunk_id == b"data":
            if fmt is None:
                raise UnsupportedAudio("the WAV data chunk comes before its fmt chunk")
            if size in _STREAMED_SIZES or body_start + size > len(data):
                size = len(data) - body_start
            frames = data[body_start : body_start + size]
            break
        if chunk_id == b"fmt ":
            fmt = _parse_fmt(data[body_start : body_start + size])
        offset = body_start + size + (size & 1)  # chunks are padded to even sizes
    if fmt is None:
        raise UnsupportedAudio("the WAV file has no fmt chunk")
    if frames is None:
        raise UnsupportedAudio("the WAV file has no data chunk")
    sample_rate, channels, block_align = fmt
    frames = frames[: len(frames) - len(frames) % block_align]  # drop a torn last frame
    if not frames:
        raise UnsupportedAudio("the WAV file contains no audio")
    pcm = PcmAudio(sample_rate=sample_rate, channels=channels, frames=frames)
    if pcm.duration > max_seconds:
        raise UnsupportedAudio(
            f"audio is {pcm.duration:.1f} s long; the limit is {max_seconds:g} s"
        )
    return pcm


def _parse_fmt(body: bytes) -> tuple[int, int, int]:
    if len(body) < 16:
        raise UnsupportedAudio("the WAV fmt chunk is truncated")
    tag, channels, rate, _byte_rate, block_align, bits = struct.unpack_from("<HHIIHH", body)
    if tag == _EXTENSIBLE:
        if len(body) < 40 or body[24:40] != _PCM_SUBFORMAT:
            raise UnsupportedAudio("only PCM WAV is supported (this extensible WAV is not PCM)")
    elif tag != _PCM:
        raise UnsupportedAudio(
            f"only PCM WAV is supported (format tag {tag:#06x}); send 16-bit PCM"
        )
    if bits != 16:
        raise UnsupportedAudio(f"{bits}-bit samples are not supported; send 16-bit PCM")
    if channels not in (1, 2):
        raise UnsupportedAudio(f"{channels} channels are not supported; send mono or stereo")
    if not MIN_SAMPLE_RATE <= rate <= MAX_SAMPLE_RATE:
        raise UnsupportedAudio(
            f"sample rate {rate} Hz is outside {MIN_SAMPLE_RATE}-{MAX_SAMPLE_RATE} Hz"
        )
    if block_align != 2 * channels:
        raise UnsupportedAudio(
            f"block align {block_align} does not match {channels} channel(s) of 16 bits"
        )
    return rate, channels, block_align


def _guess_format(data: bytes) -> str:
    if data[:3] == b"ID3" or (len(data) > 1 and data[0] == 0xFF and data[1] & 0xE0 == 0xE0):
        return "; this looks like MP3, send WAV with 16-bit PCM"
    if data[:4] == b"OggS":
        return "; this looks like Ogg, send WAV with 16-bit PCM"
    if data[:4] == b"\x1aE\xdf\xa3":
        return "; this looks like WebM, send WAV with 16-bit PCM"
    return ""


def _mib(size: int) -> str:
    if size < 1024 * 1024:
        return f"{size // 1024} KiB" if size >= 1024 else f"{size} bytes"
    return f"{round(size / (1024 * 1024), 1):g} MiB"


def wav_header(sample_rate: int, channels: int, data_size: int = 0xFFFFFFFF) -> bytes:
    """A 44-byte PCM WAV header; the default size marks a stream of unknown length."""
    riff_size = 0xFFFFFFFF if data_size == 0xFFFFFFFF else 36 + data_size
    return struct.pack(
        "<4sI4s4sIHHIIHH4sI",
        b"RIFF",
        riff_size,
        b"WAVE",
        b"fmt ",
        16,
        _PCM,
        channels,
        sample_rate,
        sample_rate * channels * 2,
        channels * 2,
        16,
        b"data",
        data_size,
    )


def encode_wav(pcm: PcmAudio) -> bytes:
    """A complete WAV file with exact sizes in its header."""
    return wav_header(pcm.sample_rate, pcm.channels, len(pcm.frames)) + pcm.frames


def decode_audio_base64(text: str, max_bytes: int) -> bytes:
    """Decode base64 strictly: only the alphabet, padding and line breaks.

    A ``data:audio/wav;base64,`` prefix (what a browser's FileReader gives) is
    accepted. The encoded length is checked first, so an oversized string is
    refused without decoding it.
    """
    field = "payload.audio_data"
    text = _DATA_URL.sub("", text, count=1)
    limit = 4 * ((max_bytes + 2) // 3)
    # Line breaks add at most 2 characters per 76 (MIME) or 64 (PEM) characters.
    if len(text) > limit + limit // 32 + 4:
        raise InvalidInput(field, f"audio is larger than {_mib(max_bytes)}")
    try:
        raw = _WHITESPACE.sub(b"", text.encode("ascii"))
        audio = base64.b64decode(raw, validate=True)
    except (UnicodeEncodeError, binascii.Error):
        raise InvalidInput(field, "not valid base64") from None
    if not audio:
        raise InvalidInput(field, "must not be empty")
    if len(audio) > max_bytes:
        raise InvalidInput(field, f"audio is larger than {_mib(max_bytes)}")
    return audio
