"""wav.py: parsing, refusals with useful messages, encoding, base64."""

from __future__ import annotations

import base64
import struct

import pytest

from pichat_trio.errors import InvalidInput, UnsupportedAudio
from pichat_trio.ports import PcmAudio
from pichat_trio.wav import decode_audio_base64, encode_wav, parse_wav, wav_header

from .speech_support import make_wav


def parse(data: bytes) -> PcmAudio:
    """With the protocol's default limits: 60 s, 10 MiB."""
    return parse_wav(data, max_seconds=60.0, max_bytes=10 * 1024 * 1024)


def test_parses_mono_16_bit() -> None:
    pcm = parse(make_wav(0.5, rate=16000))
    assert (pcm.sample_rate, pcm.channels) == (16000, 1)
    assert pcm.duration == pytest.approx(0.5)


def test_parses_stereo_and_skips_unknown_chunks() -> None:
    extra = b"LIST" + struct.pack("<I", 5) + b"abcde" + b"\0"  # odd size: padded
    pcm = parse(make_wav(0.25, rate=44100, channels=2, extra_chunks=extra))
    assert (pcm.sample_rate, pcm.channels) == (44100, 2)
    assert len(pcm.frames) == int(0.25 * 44100) * 4


@pytest.mark.parametrize("size", [0, 0xFFFFFFFF, 0x7FFFF000])
def test_streamed_data_size_takes_the_rest(size: int) -> None:
    whole = make_wav(0.1)
    pcm = parse(make_wav(0.1, data_size=size))
    assert pcm.frames == parse(whole).frames


def test_extensible_pcm_is_accepted() -> None:
    fmt = struct.pack("<HHIIHHHHI", 0xFFFE, 1, 16000, 32000, 2, 16, 22, 16, 4)
    fmt += bytes.fromhex("0100000000001000800000aa00389b71")
    data = b"\1\0" * 1600
    body = b"WAVEfmt " + struct.pack("<I", len(fmt)) + fmt + b"data" + struct.pack("<I", len(data))
    pcm = parse(b"RIFF" + struct.pack("<I", len(body) + len(data)) + body + data)
    assert pcm.frames == data


def test_encode_round_trip() -> None:
    pcm = PcmAudio(sample_rate=22050, channels=2, frames=b"\1\2\3\4" * 100)
    wav = encode_wav(pcm)
    assert wav[:4] == b"RIFF" and struct.unpack_from("<I", wav, 4)[0] == len(wav) - 8
    assert parse(wav) == pcm


def test_streaming_header_marks_unknown_length() -> None:
    header = wav_header(24000, 1)
    assert len(header) == 44 and header.endswith(b"data\xff\xff\xff\xff")


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"ID3\x04\0\0" + bytes(100), "not a WAV file (no RIFF header); this looks like MP3"),
        (b"\xff\xfb\x90\x64" + bytes(100), "not a WAV file (no RIFF header); this looks like MP3"),
        (b"hello", "not a WAV file (no RIFF header)"),
        (make_wav(0.1, bits=8), "8-bit samples are not supported; send 16-bit PCM"),
        (make_wav(0.1, bits=24), "24-bit samples are not supported; send 16-bit PCM"),
        (make_wav(0.1, rate=96000), "sample rate 96000 Hz is outside 8000-48000 Hz"),
        (make_wav(0.1, rate=4000), "sample rate 4000 Hz is outside 8000-48000 Hz"),
        (make_wav(0.1, channels=6), "6 channels are not supported; send mono or stereo"),
        (make_wav(0.1, tag=3), "only PCM WAV is supported (format tag 0x0003)"),
        (make_wav(61, rate=8000), "audio is 61.0 s long; the limit is 60 s"),
        (make_wav(0.1)[:36], "the WAV file has no data chunk"),
        (make_wav(0.1)[:12] + b"data" + bytes(8), "the WAV data chunk comes before its fmt chunk"),
        (make_wav(0.0), "the WAV file contains no audio"),
    ],
)
def test_refusals_say_what_is_wrong(data: bytes, message: str) -> None:
    with pytest.raises(UnsupportedAudio, match=message.replace("(", r"\(").replace(")", r"\)")):
        parse(data)


def test_byte_limit() -> None:
    with pytest.raises(UnsupportedAudio, match="audio is 31 KiB; the limit is 1000 bytes"):
        parse_wav(make_wav(1), max_seconds=60, max_bytes=1000)


def test_base64_strict() -> None:
    wav = make_wav(0.1)
    assert decode_audio_base64(base64.b64encode(wav).decode(), 1 << 20) == wav
    assert decode_audio_base64(base64.encodebytes(wav).decode(), 1 << 20) == wav  # MIME lines
    url = "data:audio/wav;base64," + base64.b64encode(wav).decode()
    assert decode_audio_base64(url, 1 << 20) == wav
    for bad in ["not base64!", "QUJD*", "QUJ", "zażółć", "QUJD\x00"]:
        with pytest.raises(InvalidInput, match=r"payload\.audio_data: not valid base64"):
            decode_audio_base64(bad, 1 << 20)
    with pytest.raises(InvalidInput, match="must not be empty"):
        decode_audio_base64("", 1 << 20)


def test_base64_too_large_is_refused_before_decoding() -> None:
    huge = "A" * (20 * 1024 * 1024)  # would decode to 15 MiB
    with pytest.raises(InvalidInput, match=r"payload\.audio_data: audio is larger than 10 MiB"):
        decode_audio_base64(huge, 10 * 1024 * 1024)
    just_over = base64.b64encode(bytes(1001)).decode()
    with pytest.raises(InvalidInput, match="larger than"):
        decode_audio_base64(just_over, 1000)
