"""SSML for Azure text to speech.

The user's text is always character data: it is escaped for XML (quotes
included), so ``</speak><voice ...>`` typed by a user is spoken, never
parsed. Characters XML 1.0 forbids (most C0 controls) are dropped, because
one of them would make the whole document invalid and the service would
refuse it.
"""

from __future__ import annotations

import re
from xml.sax.saxutils import escape, quoteattr

from ...voices import prosody_rate

__all__ = ["build_ssml"]

_XML_INVALID = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")
_QUOTES = {'"': "&quot;", "'": "&apos;"}


def build_ssml(text: str, voice: str, locale: str, speed: float) -> str:
    """One ``<speak>`` document; ``speed`` 1.25 becomes ``<prosody rate="+25%">``."""
    body = escape(_XML_INVALID.sub("", text), _QUOTES)
    return (
        '<speak version="1.0" xmlns="http://www.w3.org/2001/10/synthesis" '
        f"xml:lang={quoteattr(locale)}>"
        f"<voice name={quoteattr(voice)}>"
        f"<prosody rate={quoteattr(prosody_rate(speed))}>{body}</prosody>"
        "</voice></speak>"
    )
