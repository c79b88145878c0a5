"""The voice table and SSML building."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest

from pichat_trio.adapters.speech.ssml import build_ssml
from pichat_trio.errors import InvalidInput
from pichat_trio.models import VoiceSettings
from pichat_trio.voices import (
    ACCENTS,
    azure_voice,
    espeak_voice,
    espeak_words_per_minute,
    language_for_accent,
    prosody_rate,
)

SSML_NS = "{http://www.w3.org/2001/10/synthesis}"


@pytest.mark.parametrize(
    ("accent", "gender", "voice", "locale", "espeak"),
    [
        ("polish", "female", "pl-PL-ZofiaNeural", "pl-PL", "pl+f5"),
        ("polish", "male", "pl-PL-MarekNeural", "pl-PL", "pl+klatt5"),
        ("american", "female", "en-US-JennyNeural", "en-US", "en-us+f5"),
        ("american", "male", "en-US-GuyNeural", "en-US", "en-us+klatt5"),
        ("british", "female", "en-GB-SoniaNeural", "en-GB", "en-gb+f5"),
        ("british", "male", "en-GB-RyanNeural", "en-GB", "en-gb+klatt5"),
    ],
)
def test_table(accent: str, gender: str, voice: str, locale: str, espeak: str) -> None:
    settings = VoiceSettings(gender=gender, accent=accent, speed=1.0)
    assert azure_voice(settings) == (voice, locale)
    assert espeak_voice(settings) == espeak
    assert language_for_accent(accent) == locale


def test_every_row_is_consistent() -> None:
    for accent in ACCENTS.values():
        assert accent.azure_female.startswith(accent.locale + "-")
        assert accent.azure_male.startswith(accent.locale + "-")


@pytest.mark.parametrize(
    ("speed", "rate", "wpm"),
    [(0.5, "-50%", 88), (1.0, "+0%", 175), (1.25, "+25%", 219), (2.0, "+100%", 350)],
)
def test_speed(speed: float, rate: str, wpm: int) -> None:
    assert prosody_rate(speed) == rate
    assert espeak_words_per_minute(speed) == wpm


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        (VoiceSettings(speed=2.5), "payload.voice_settings.speed: must be between 0.5 and 2.0"),
        (VoiceSettings(speed=0.1), "payload.voice_settings.speed"),
        (VoiceSettings(gender="robot"), "payload.voice_settings.gender: must be female or male"),
        (VoiceSettings(accent="martian"), "payload.voice_settings.accent: unknown accent"),
    ],
)
def test_bad_settings(settings: VoiceSettings, message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        azure_voice(settings)
    with pytest.raises(InvalidInput, match=message):
        espeak_voice(settings)


def test_ssml_is_well_formed_and_carries_the_voice() -> None:
    root = ET.fromstring(build_ssml("Dzień dobry", "pl-PL-ZofiaNeural", "pl-PL", 1.25))
    assert root.tag == SSML_NS + "speak"
    assert root.get("{http://www.w3.org/XML/1998/namespace}lang") == "pl-PL"
    voice = root.find(SSML_NS + "voice")
    assert voice is not None and voice.get("name") == "pl-PL-ZofiaNeural"
    prosody = voice.find(SSML_NS + "prosody")
    assert prosody is not None and prosody.get("rate") == "+25%"
    assert prosody.text == "Dzień dobry"


@pytest.mark.parametrize(
    "attack",
    [
        '</prosody></voice></speak><voice name="en-US-GuyNeural">pwned',
        "<![CDATA[x]]> & &amp; <break time='10s'/> \"quoted\" 'single'",
        "control\x00chars\x1b are dropped",
    ],
)
def test_user_text_stays_text(attack: str) -> None:
    root = ET.fromstring(build_ssml(attack, "en-US-JennyNeural", "en-US", 1.0))
    (voice,) = list(root)
    (prosody,) = list(voice)
    assert list(prosody) == []  # no element smuggled in
    expected = attack.replace("\x00", "").replace("\x1b", "")
    assert prosody.text == expected
