"""Live voice sessions: end of speech, streaming recognition, speech while generating."""

from .contracts import Answer, AnswerSource, VoiceEvents
from .kit import VoiceKit
from .session import VoiceOptions, VoiceSession

__all__ = ["Answer", "AnswerSource", "VoiceEvents", "VoiceKit", "VoiceOptions", "VoiceSession"]
