"""The voice table: one row per accent a user can pick in the settings.

A row names the locale (also the speech-to-text language for that accent),
the Azure neural voice for each gender and the espeak-ng voice used offline.
Adding an accent is adding a row; nothing else in the code lists accents.

| accent   | locale | female (Azure)      | male (Azure)        | espeak-ng |
|----------|--------|---------------------|---------------------|-----------|
| polish   | pl-PL  | pl-PL-ZofiaNeural   | pl-PL-MarekNeural   | pl        |
| american | en-US  | en-US-JennyNeural   | en-US-GuyNeural     | en-us     |
| british  | en-GB  | en-GB-SoniaNeural   | en-GB-RyanNeural    | en-gb     |
| german   | de-DE  | de-DE-KatjaNeural   | de-DE-ConradNeural  | de        |
| french   | fr-FR  | fr-FR-DeniseNeural  | fr-FR-HenriNeural   | fr-fr     |
| spanish  | es-ES  | es-ES-ElviraNeural  | es-ES-AlvaroNeural  | es        |
| italian  | it-IT  | it-IT-ElsaNeural    | it-IT-DiegoNeural   | it        |

espeak-ng voices are male by default; a female voice adds the ``+f5``
variant and a male one the ``+klatt5`` variant (Klatt's formant synthesiser).
Both were picked for the offline recogniser, which hears its own speech: at
espeak-ng's 22.05 kHz, pocketsphinx's model heard 88% of the words of
``+klatt5`` and 48% of ``+f5``, against 25% for the plain voice and 36% for
``+f3`` (the former choices); ``bench/speech_accuracy.py`` measures it.

``speed`` (0.5-2.0, 1.0 normal) becomes an SSML prosody rate
relative to the voice's own pace and an espeak-ng rate in words per minute
(175 is espeak-ng's normal pace).
"""

from __future__ import annotations

from dataclasses import dataclass

from .errors import InvalidInput
from .models import VoiceSettings

__all__ = [
    "ACCENTS",
    "MAX_SPEED",
    "MIN_SPEED",
    "Accent",
    "accent_for",
    "azure_voice",
    "espeak_voice",
    "espeak_words_per_minute",
    "language_for_accent",
    "prosody_rate",
]

MIN_SPEED = 0.5
MAX_SPEED = 2.0
_ESPEAK_NORMAL_WPM = 175
_ESPEAK_FEMALE_VARIANT = "+f5"
_ESPEAK_MALE_VARIANT = "+klatt5"
_GENDERS = ("female", "male")


@dataclass(frozen=True)
class Accent:
    locale: str
    azure_female: str
    azure_male: str
    espeak: str


ACCENTS: dict[str, Accent] = {
    "polish": Accent("pl-PL", "pl-PL-ZofiaNeural", "pl-PL-MarekNeural", "pl"),
    "american": Accent("en-US", "en-US-JennyNeural", "en-US-GuyNeural", "en-us"),
    "british": Accent("en-GB", "en-GB-SoniaNeural", "en-GB-RyanNeural", "en-gb"),
    "german": Accent("de-DE", "de-DE-KatjaNeural", "de-DE-ConradNeural", "de"),
    "french": Accent("fr-FR", "fr-FR-DeniseNeural", "fr-FR-HenriNeural", "fr-fr"),
    "spanish": Accent("es-ES", "es-ES-ElviraNeural", "es-ES-AlvaroNeural", "es"),
    "italian": Accent("it-IT", "it-IT-ElsaNeural", "it-IT-DiegoNeural", "it"),
}


def accent_for(name: str) -> Accent:
    try:
        return ACCENTS[name.lower()]
    except KeyError:
        known = ", ".join(ACCENTS)
        raise InvalidInput(
            "payload.voice_settings.accent", f"unknown accent {name!r}; one of {known}"
        ) from None


def language_for_accent(accent: str) -> str:
    """The speech-to-text language for an accent: ``polish`` -> ``pl-PL``."""
    return accent_for(accent).locale


def _check(voice: VoiceSettings) -> Accent:
    if voice.gender not in _GENDERS:
        raise InvalidInput(
            "payload.voice_settings.gender", f"must be female or male, not {voice.gender!r}"
        )
    if not MIN_SPEED <= voice.speed <= MAX_SPEED:
        raise InvalidInput(
            "payload.voice_settings.speed", f"must be between {MIN_SPEED} and {MAX_SPEED}"
        )
    return accent_for(voice.accent)


def azure_voice(voice: VoiceSettings) -> tuple[str, str]:
    """``(voice name, locale)`` for Azure, after validating the settings."""
    accent = _check(voice)
    name = accent.azure_female if voice.gender == "female" else accent.azure_male
    return name, accent.locale


def espeak_voice(voice: VoiceSettings) -> str:
    accent = _check(voice)
    variant = _ESPEAK_FEMALE_VARIANT if voice.gender == "female" else _ESPEAK_MALE_VARIANT
    return accent.espeak + variant


def prosody_rate(speed: float) -> str:
    """1.25 -> ``+25%``, 0.5 -> ``-50%``, 1.0 -> ``+0%``."""
    return f"{round((speed - 1.0) * 100):+d}%"


def espeak_words_per_minute(speed: float) -> int:
    return round(_ESPEAK_NORMAL_WPM * speed)
