"""The composition root: settings in, a running set of services and adapters out.

``open_app`` owns every resource (database engine, HTTP client of the AI
adapter, speech engine, hub) and closes them in reverse order. It knows
which adapter each setting picks; nothing below it does.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, AsyncExitStack, asynccontextmanager
from functools import partial
from typing import TYPE_CHECKING

import sqlalchemy as sa
import trio

from . import models
from .adapters.ai import open_chat_model
from .adapters.audio_store import LocalAudioStore
from .adapters.hub.local import LocalHub
from .adapters.speech import open_speech_engine
from .adapters.speech.local_stream import OfflineStreamingRecognizer
from .adapters.speech.pcm_speaker import EnginePcmSpeaker
from .adapters.speech.vad import WebRtcVoiceDetector
from .adapters.sql.engine import engine_for, startup_error
from .adapters.sql.instances import InstanceRegistry
from .adapters.sql.migrate import upgrade
from .adapters.sql.repository import SqlRepository
from .dispatch.router import Router, Services
from .errors import PichatError
from .metrics import Metrics
from .ports import ChatModel, Hub, Leases, PcmSpeaker, SpeechEngine, StreamingRecognizer
from .protocol.schemas import Schemas
from .services.chat import ChatService
from .services.conversations import ConversationService
from .services.db import Database
from .services.instances import Heartbeat
from .services.preconnect import Preconnect
from .services.revocation import RevocationWatch
from .services.settings import SettingsService
from .services.speech import SpeechService
from .services.voice import VoiceKit
from .settings import Settings
from .transport.auth import Authenticator
from .transport.connection import Connection, ConnectionLimits
from .transport.handshakes import FailedHandshakes
from .transport.pacer import FramePacer
from .transport.user_limits import UserLimits
from .voices import ACCENTS

if TYPE_CHECKING:
    from .adapters.redis.backplane import Backplane

__all__ = ["App", "open_app"]

log = logging.getLogger(__name__)

DEFAULT_PERSONALITY = "You are PiChat, a friendly and concise personal assistant."


class App:
    """Everything a connection needs, plus the set of open connections."""

    def __init__(
        self,
        settings: Settings,
        db: Database,
        hub: Hub,
        router: Router,
        auth: Authenticator,
        chat: ChatService,
        speech_engine: str,
        metrics: Metrics | None = None,
    ) -> None:
        self.settings = settings
        self.metrics = Metrics() if metrics is None else metrics
        """This app's figures (``GET /metrics``); the services were given the same."""
        self.db = db
        self.hub = hub
        self.router = router
        self.auth = auth
        self.chat = chat
        self.speech_engine = speech_engine
        self.connections: set[Connection] = set()
        self.preconnect: Preconnect | None = None
        """Told the number of clients as they connect, when ``AI_PRECONNECT`` is on."""
        self.draining = False
        self.failed_handshakes = FailedHandshakes(
            settings.auth_failures_burst, settings.auth_failures_per_minute
        )
        self.pacer = FramePacer(settings.frame_seconds) if settings.frame_seconds > 0 else None
        self._limits = ConnectionLimits(
            max_tasks=settings.max_generations_per_connection,
            max_frames=settings.outbox_frames,
            stall_seconds=settings.outbox_stall_seconds,
            rate=settings.rate_limit_per_second,
            burst=settings.rate_limit_burst,
            pacer=self.pacer,
            close_seconds=settings.close_timeout,
            grace=settings.rate_limit_grace,
        )
        self.user_limits = UserLimits(
            settings.max_connections_per_user,
            settings.user_rate_limit_per_second,
            settings.user_rate_limit_burst,
        )
        """Connections and requests per user; the handshake asks ``open`` first."""
        self._revoked: set[str] = set()  # users whose connections are being closed

    def connection(self, user: models.User) -> Connection | None:
        """A connection for ``user``, counted against its cap; None when the user has
        ``MAX_CONNECTIONS_PER_USER`` open. ``closed(connection)`` when it ends."""
        bucket = self.user_limits.open(user.id)
        if bucket is None:
            return None
        return Connection(
            user,
            self.router,
            self.hub,
            self._limits,
            accepting=lambda: not self.draining,
            user_bucket=bucket,
        )

    def closed(self, connection: Connection) -> None:
        user_id = connection.user.id
        self.connections.discard(connection)
        self.user_limits.close(user_id)
        if not self.user_limits.connections(user_id):
            self._revoked.discard(user_id)

    def user_revoked(self, user_id: str) -> None:
        """The user's token no longer holds: its answers stop and its connections close
        with 1008 (policy violation), as a new handshake would be refused."""
        if user_id in self._revoked:
            return  # closing already; its connections leave within the close wait
        self._revoked.add(user_id)
        stopped = self.chat.cancel_user(user_id)
        closing = [c for c in self.connections if c.user.id == user_id]
        for connection in closing:
            connection.close(1008)
        if closing or stopped:
            log.info(
                "token of user %s revoked: closing %d connections, %d answers",
                closing[0].user.name if closing else user_id,
                len(closing),
                stopped,
            )

    def opened(self, connection: Connection) -> None:
        """A client is connected: counted, and upstream connections got ready for it."""
        self.connections.add(connection)
        if self.preconnect is not None:
            self.preconnect.clients(len(self.connections))

    async def ready(self) -> bool:
        """Whether to send this instance traffic: not once draining began, nor without a DB."""
        if self.draining:
            return False
        try:
            with trio.fail_after(2):
                await self.db.run(self.db.repository.ping)
        except Exception:
            log.warning("readiness check: the database does not answer", exc_info=True)
            return False
        return True

    async def drain(self, grace: float) -> None:
        """Shutdown: let answers finish for ``grace`` seconds, then close everything with 1001."""
        self.draining = True
        if self.chat.active:
            log.info("waiting up to %.0f s for %d answers to finish", grace, self.chat.active)
        with trio.move_on_after(grace):
            await self.chat.wait_idle()
        self.chat.cancel_all("interrupted")
        with trio.move_on_after(5):
            await self.chat.wait_idle()
        for connection in list(self.connections):
            connection.close(1001)


def _default_settings(settings: Settings) -> models.Settings:
    return models.Settings(
        selected_model=settings.model_names[0],
        voice_settings=models.VoiceSettings(),
        assistant_personality=DEFAULT_PERSONALITY,
    )


@asynccontextmanager
async def open_app(settings: Settings, *, migrate: bool = True) -> AsyncIterator[App]:
    """Build and own the whole server; the schema is brought up first (``migrate.py``).

    A database that cannot be used at start-up (unreachable, refused,
    wrong password, not a database) raises ``SettingsError`` naming the
    setting: the server cannot serve without it.
    """
    async with AsyncExitStack() as stack:
        engine = engine_for(settings)
        stack.callback(engine.dispose)
        repository = SqlRepository(engine, _default_settings(settings))
        instances = InstanceRegistry(engine, str(uuid.uuid4()), settings.instance_timeout_seconds)
        repository.instance_id = instances.instance_id  # each answer names its instance
        metrics = Metrics()
        db = Database(repository, settings.db_threads, metrics, timeout=settings.db_timeout)
        default_user = await _start_database(settings, db, instances, migrate=migrate)

        backplane = await _open_backplane(stack, settings, instances.instance_id, metrics)
        hub: Hub = LocalHub() if backplane is None else backplane.hub
        leases: Leases | None = None if backplane is None else backplane.leases
        model: ChatModel = await stack.enter_async_context(_open_model(settings))
        log.info("AI provider: %s", model.name)
        speech, audio_store, speech_name, accents = await _open_speech(stack, settings, metrics)
        voice = _voice_kit(speech.engine, settings)
        log.info("speech engine: %s", speech_name)

        conversations = ConversationService(db, hub)
        user_settings = SettingsService(db, hub, settings.model_names, accents)
        chat = ChatService(
            db,
            hub,
            model,
            history_tokens=settings.ai_history_tokens,
            max_tokens=settings.ai_max_tokens,
            checkpoint_seconds=settings.checkpoint_seconds,
            max_per_user=settings.max_generations_per_user,
            metrics=metrics,
            leases=leases,
        )
        if backplane is not None:
            backplane.leases.cancel_here = chat.cancel_here
        services = Services(
            conversations, user_settings, chat, speech, audio_store, voice, settings.max_frame_bytes
        )
        router = Router(services, Schemas(settings.limits))

        async def lookup(token: str) -> models.User | None:
            return await db.run(repository.user_for_token, token)

        auth = Authenticator(settings.api_token, default_user, lookup)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(chat.run_checkpoints)
            nursery.start_soon(chat.unsaved.run)
            await nursery.start(chat.exchanges.run)
            await nursery.start(chat.finishes.run)
            app = App(settings, db, hub, router, auth, chat, speech_name, metrics)
            metrics.watch(lambda: len(app.connections), lambda: chat.active)
            watch = RevocationWatch(
                db, app.user_limits.users, app.user_revoked, settings.revocation_check_seconds
            )
            nursery.start_soon(watch.run)
            if backplane is not None:  # several instances: each beats, and sweeps the dead
                beat = settings.instance_heartbeat_seconds
                nursery.start_soon(Heartbeat(db, instances, beat).run)
            if settings.ai_preconnect > 0:
                app.preconnect = Preconnect(model, settings.ai_preconnect)
                nursery.start_soon(app.preconnect.run)
            if app.pacer is not None:
                nursery.start_soon(app.pacer.run)
            try:
                yield app
            finally:
                nursery.cancel_scope.cancel()
                await _leave(db, instances)


async def _start_database(
    settings: Settings, db: Database, instances: InstanceRegistry, *, migrate: bool
) -> models.User:
    """Schema, default user, this instance's row, and the answers a stop cut off."""
    repository = db.repository
    try:
        if migrate:
            await trio.to_thread.run_sync(upgrade, instances.engine)
        default_user = await db.run(
            repository.ensure_user, settings.default_user, settings.api_token
        )
        await db.run(instances.register)
        # Alone, every answer left streaming was cut off; with other instances
        # (a backplane), only those of instances that stopped beating.
        interrupted = await db.run(partial(instances.sweep, alone=not settings.redis_url))
    except (sa.exc.SQLAlchemyError, PichatError, OSError) as error:
        raise startup_error(error, settings.database_setting) from error
    if interrupted:
        log.warning("%d answers were cut off by a previous stop; marked interrupted", interrupted)
    return default_user


async def _open_backplane(
    stack: AsyncExitStack, settings: Settings, instance_id: str, metrics: Metrics
) -> Backplane | None:
    """The Redis backplane when ``REDIS_URL`` is set (several instances), else None."""
    if not settings.redis_url:
        return None
    from .adapters.redis.backplane import open_backplane  # coredis: the ``redis`` extra

    backplane = await stack.enter_async_context(
        open_backplane(
            settings.redis_url,
            instance_id=instance_id,
            registry=metrics.registry,
            auth=settings.redis_auth,
            batch_seconds=settings.redis_batch_seconds,
            lease_seconds=settings.generation_lease_seconds,
        )
    )
    log.info("instance %s: events across instances through Redis", instance_id)
    return backplane


async def _leave(db: Database, instances: InstanceRegistry) -> None:
    """A clean stop: this instance's row goes, shielded, within two seconds."""
    with trio.move_on_after(2) as leaving:
        leaving.shield = True
        try:
            await db.run(instances.leave)
        except Exception:
            log.warning("could not remove instance %s from the database", instances.instance_id)


def _open_model(settings: Settings) -> AbstractAsyncContextManager[ChatModel]:
    return open_chat_model(
        settings.ai_provider,
        endpoint=settings.azure_openai_endpoint,
        api_key=settings.azure_openai_key
        if settings.ai_provider == "azure"
        else settings.openai_api_key,
        api_version=settings.azure_openai_api_version,
        deployments=settings.models,
        base_url=settings.openai_base_url,
        echo_tokens_per_second=settings.echo_tokens_per_second,
        connect_timeout=settings.ai_connect_timeout,
        read_timeout=settings.ai_read_timeout,
        max_attempts=settings.ai_max_attempts,
    )


async def _open_speech(
    stack: AsyncExitStack, settings: Settings, metrics: Metrics
) -> tuple[SpeechService, LocalAudioStore, str, tuple[str, ...]]:
    """The speech service, the audio store, the engine's name and the known accents."""
    engine = await stack.enter_async_context(
        open_speech_engine(
            azure_key=settings.azure_speech_key or None,
            azure_region=settings.azure_speech_region or None,
            azure_endpoint=settings.azure_speech_endpoint or None,
            queue_per_user=settings.speech_queue_per_user,
        )
    )
    service = SpeechService(
        engine,
        max_text_chars=settings.limits.max_tts_chars,
        max_audio_seconds=settings.limits.max_audio_seconds,
        max_audio_bytes=settings.limits.max_audio_bytes,
        timeout=settings.speech_timeout,
        metrics=metrics,
    )
    return service, LocalAudioStore(settings.audio_dir), engine.name, tuple(ACCENTS)


def _voice_kit(engine: SpeechEngine, settings: Settings) -> VoiceKit:
    """The live-voice engines that go with ``engine``: the same service listens
    (Azure's protocol on a socket of ours or the SDK's push stream, or
    pocketsphinx's streaming decoder) and speaks."""
    recognizer: StreamingRecognizer
    speaker: Callable[[], PcmSpeaker] = partial(EnginePcmSpeaker, engine)
    if engine.name == "azure":  # the SDK is imported only when it is used
        from .adapters.speech.azure import AzureSpeechEngine
        from .adapters.speech.azure_socket import AzureSocketRecognizer
        from .adapters.speech.azure_socket_speaker import AzureSocketSpeaker
        from .adapters.speech.azure_stream import AzureStreamingRecognizer
        from .adapters.speech.azure_voice import AzureSessionSpeaker

        assert isinstance(engine, AzureSpeechEngine)
        if settings.azure_speech_streaming == "sdk":
            recognizer = AzureStreamingRecognizer(engine)
            speaker = partial(AzureSessionSpeaker, engine)
        else:
            recognizer = AzureSocketRecognizer(engine)
            speaker = partial(AzureSocketSpeaker, engine)
    else:
        recognizer = OfflineStreamingRecognizer()
    return VoiceKit(
        engine=engine.name,
        detector=WebRtcVoiceDetector,
        recognizer=recognizer,
        speaker=speaker,
        barge_in_dbfs=settings.voice_barge_in_dbfs,
        barge_in_ms=settings.voice_barge_in_ms,
    )
