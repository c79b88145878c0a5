"""A voice session's sentences spoken by Azure over one kept socket of the event loop.

The SDK's session speaker (``azure_voice.py``) keeps a synthesizer, and with
it native threads that wake whether or not a sentence comes, and waits for
each result on a worker thread. This speaker speaks the SDK's synthesis
protocol itself, message for message (a test holds the two to the same
sequence against the fake service), on a connection kept for the session
(``ws_client``: no reader task, no thread):

- the handshake to ``/cognitiveservices/websocket/v1`` with the key and a
  connection id, and ``speech.config`` once per connection;
- per sentence, a turn: ``synthesis.context`` (raw PCM at the session's
  rate) and the ``ssml``; the service answers ``turn.start``, binary
  ``audio`` messages and ``turn.end``.

A sentence cut off by a cancellation (a barge-in) or a failure drops the
connection, so the next sentence never reads the rest of an abandoned turn;
a connection the service closed while idle is opened again, once.
"""

from __future__ import annotations

import logging

import trio

from ...errors import UpstreamError, UpstreamUnavailable
from ...models import VoiceSettings
from . import azure_wire as wire
from .azure import AzureSpeechEngine, ssml_for
from .pcm_speaker import EnginePcmSpeaker
from .ws_client import Closed, Rejected, WebSocketClient, connect

__all__ = ["AzureSocketSpeaker"]

log = logging.getLogger(__name__)

_PATH = "/cognitiveservices/websocket/v1"
_RAW = {rate: f"raw-{rate // 1000}khz-16bit-mono-pcm" for rate in (8000, 16000, 24000, 48000)}
_CONNECT_SECONDS = 10.0
_SENTENCE_SECONDS = 30.0  # one sentence's synthesis, from the request to its last audio
_MAX_MESSAGE_BYTES = 4 * 1024 * 1024
_SSML = "application/ssml+xml"


class AzureSocketSpeaker:
    def __init__(self, engine: AzureSpeechEngine) -> None:
        self._engine = engine
        self._client: WebSocketClient | None = None
        self._fallback = EnginePcmSpeaker(engine)  # a rate Azure has no raw format for

    async def speak(self, text: str, voice: VoiceSettings, sample_rate: int) -> bytes:
        output = _RAW.get(sample_rate)
        if output is None:
            return await self._fallback.speak(text, voice, sample_rate)
        ssml = ssml_for(text, voice)
        done = False
        try:
            with trio.fail_after(_SENTENCE_SECONDS):
                try:
                    audio = await self._turn(output, ssml, fresh=self._client is None)
                except _Stale:  # the kept connection had gone: once more on a new one
                    audio = await self._turn(output, ssml, fresh=True)
            done = True
            return audio
        except trio.TooSlowError:
            raise UpstreamUnavailable("Azure Speech did not answer in time") from None
        finally:
            if not done:  # cancelled or failed mid-sentence: this connection is not reused
                await self.aclose()

    async def aclose(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            with trio.CancelScope(shield=True):
                await client.aclose()

    async def _turn(self, output: str, ssml: str, *, fresh: bool) -> bytes:
        client = await self._connection() if fresh else self._client
        assert client is not None
        rid = wire.new_id()
        context = {
            "synthesis": {
                "audio": {
                    "outputFormat": output,
                    "metadataOptions": {"sessionEndEnabled": True},
                },
                "language": {"autoDetection": False},
            }
        }
        audio = bytearray()
        try:
            await client.send(
                wire.text_message("synthesis.context", context, rid, content_type=None)
            )
            await client.send(wire.text_message("ssml", ssml, rid, content_type=_SSML))
            while True:
                message = wire.parse_message(await client.receive())
                if message.request_id and message.request_id != rid:
                    continue
                if message.path == "audio":
                    audio += message.payload
                elif message.path == "turn.end":
                    return bytes(audio)
        except Closed as error:
            await self.aclose()
            if not fresh and not audio:
                raise _Stale from None
            log.warning("Azure Speech closed the synthesis connection: %s", error)
            raise UpstreamUnavailable("Azure Speech closed the connection") from None
        except ValueError as error:
            log.warning("Azure Speech sent a message this client cannot read: %s", error)
            raise UpstreamError("Azure Speech failed") from None

    async def _connection(self) -> WebSocketClient:
        await self.aclose()
        engine = self._engine
        url = engine.websocket_url("tts", _PATH)
        try:
            with trio.fail_after(_CONNECT_SECONDS):
                client = await connect(
                    url,
                    engine.websocket_headers(wire.new_id()),
                    max_message_bytes=_MAX_MESSAGE_BYTES,
                )
        except Rejected as rejected:
            raise wire.handshake_error(rejected.status) from None
        except (OSError, Closed, trio.TooSlowError) as error:
            raise wire.unreachable_error(engine.redact(repr(error))) from None
        self._client = client
        try:
            await client.send(
                wire.text_message("speech.config", wire.client_context(), content_type=None)
            )
        except Closed:
            await self.aclose()
            raise UpstreamUnavailable("Azure Speech closed the connection") from None
        return client


class _Stale(Exception):
    """The kept connection was found closed before the turn got any answer."""
