"""Configuration: environment variables (and an optional ``.env``) to frozen settings.

Every variable the server reads is declared once in ``VARIABLES``
(``variables.py``), with its default and a line of help; ``.env.example``,
``pichat --help`` and the README's table are written from the same list. Each
value is parsed by ``setting_values.py``; a wrong one stops start-up with
``SettingsError`` whose message names the variable.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .limits import Limits
from .setting_values import (
    SettingsError,
    check_tls,
    choice_value,
    database_options,
    env_file_values,
    float_value,
    forwarded_allow_ips,
    int_value,
    listen_port,
    log_format,
    model_map,
    normal_origin,
)
from .variables import KNOWN, VARIABLES, Variable, example_env

__all__ = [
    "VARIABLES",
    "Settings",
    "SettingsError",
    "Variable",
    "check_tls",
    "example_env",
    "listen_port",
    "load_settings",
    "normal_origin",
]


@dataclass(frozen=True)
class Settings:
    """The validated configuration of one server process."""

    port: int = 8080
    host: str = "127.0.0.1"
    tls_certfile: str = ""
    tls_keyfile: str = ""
    forwarded_allow_ips: tuple[str, ...] = ("127.0.0.1", "::1")
    environment: str = "development"
    api_token: str = ""
    api_token_generated: bool = False
    default_user: str = "default"
    database_url: str = "sqlite:///./pichat.db"
    database_setting: str = "DATABASE_URL"
    """The variable a database problem is blamed on: DATABASE_URL, or DB_HOST."""
    db_auth: str = "password"
    db_client_id: str = ""
    db_connect_timeout: float = 30.0
    db_timeout: float = 4.0
    db_pool_size: int = 8
    db_threads: int = 8
    ai_provider: str = "echo"
    azure_openai_endpoint: str = ""
    azure_openai_key: str = ""
    azure_openai_api_version: str = "2024-10-21"
    models: Mapping[str, str] = field(default_factory=lambda: {"gpt-4": "", "gpt-3.5": ""})
    openai_base_url: str = ""
    openai_api_key: str = ""
    ai_connect_timeout: float = 5.0
    ai_read_timeout: float = 30.0
    ai_max_attempts: int = 3
    ai_preconnect: int = 256
    ai_history_tokens: int = 6000
    ai_max_tokens: int | None = None
    echo_tokens_per_second: float = 30.0
    azure_speech_key: str = ""
    azure_speech_region: str = ""
    azure_speech_endpoint: str = ""
    azure_speech_streaming: str = "socket"
    speech_timeout: float = 30.0
    speech_queue_per_user: int = 4
    voice_barge_in_dbfs: float = -30.0
    voice_barge_in_ms: int = 300
    audio_dir: Path = Path("./audio")
    redis_url: str = ""
    redis_auth: str = "password"
    redis_batch_seconds: float = 0.02
    generation_lease_seconds: float = 10.0
    instance_heartbeat_seconds: float = 5.0
    instance_timeout_seconds: float = 20.0
    allowed_origins: frozenset[str] = frozenset()
    auth_failures_burst: float = 20.0
    auth_failures_per_minute: float = 30.0
    heartbeat_interval: float = 20.0
    heartbeat_timeout: float = 60.0
    close_timeout: float = 2.0
    max_frame_bytes: int = 4 * 1024 * 1024
    max_generations_per_connection: int = 4
    max_generations_per_user: int = 16
    max_connections_per_user: int = 32
    rate_limit_per_second: float = 30.0
    rate_limit_burst: float = 60.0
    user_rate_limit_per_second: float = 60.0
    user_rate_limit_burst: float = 120.0
    revocation_check_seconds: float = 0.5
    rate_limit_grace: float = 10.0
    outbox_frames: int = 256
    outbox_stall_seconds: float = 30.0
    checkpoint_seconds: float = 1.0
    frame_seconds: float = 0.0
    frame_sink: str = "fast"
    shutdown_grace: float = 10.0
    log_level: str = "INFO"
    log_format: str = "text"
    metrics_token: str = ""
    applicationinsights_connection_string: str = ""
    limits: Limits = field(default_factory=Limits)

    @property
    def is_development(self) -> bool:
        return self.environment == "development"

    @property
    def model_names(self) -> tuple[str, ...]:
        return tuple(self.models)


def load_settings(
    environ: Mapping[str, str] | None = None, env_file: Path | None = Path(".env"), **overrides: Any
) -> Settings:
    """Read, validate and freeze the configuration.

    Precedence: ``overrides`` (command-line flags), then the process
    environment, then ``env_file``, then the defaults in ``VARIABLES``.
    """
    source = dict(env_file_values(env_file)) if env_file is not None else {}
    source.update(os.environ if environ is None else environ)

    def get(name: str) -> str:
        return source.get(name, KNOWN[name].default).strip()

    environment = get("ENVIRONMENT").lower()
    if environment not in {"development", "production"}:
        raise SettingsError(f"ENVIRONMENT={environment!r}: expected development or production")
    token, generated = get("API_TOKEN"), False
    if not token:
        if environment != "development":
            raise SettingsError("API_TOKEN is required outside development")
        token, generated = secrets.token_urlsafe(24), True
    elif len(token) < 16:
        raise SettingsError("API_TOKEN: use at least 16 characters")
    elif not token.isascii() or not token.isprintable() or " " in token:
        # An Authorization header carries ASCII only: such a token would work in
        # ?token= and never in the header.
        raise SettingsError("API_TOKEN: use printable ASCII characters only, no spaces")

    provider = get("AI_PROVIDER").lower()
    if not provider:
        provider = "azure" if get("AZURE_OPENAI_ENDPOINT") else "echo"
    if provider not in {"azure", "openai", "echo"}:
        raise SettingsError(f"AI_PROVIDER={provider!r}: expected azure, openai or echo")
    models = model_map(
        get("AI_MODELS"), get("AZURE_OPENAI_DEPLOYMENT_GPT4"), get("AZURE_OPENAI_DEPLOYMENT_GPT35")
    )
    if provider == "azure":
        for required in ("AZURE_OPENAI_ENDPOINT", "AZURE_OPENAI_KEY"):
            if not get(required):
                raise SettingsError(f"{required} is required when AI_PROVIDER=azure")
        # Only models with a deployment can be selected.
        models = {name: target for name, target in models.items() if target}
        if not models:
            raise SettingsError(
                "AZURE_OPENAI_DEPLOYMENT_GPT4 or AZURE_OPENAI_DEPLOYMENT_GPT35 is required "
                "when AI_PROVIDER=azure"
            )
    else:
        # An OpenAI-compatible server is asked for the model by its own name.
        models = {name: target or name for name, target in models.items()}
    if provider == "openai" and not get("OPENAI_BASE_URL"):
        raise SettingsError("OPENAI_BASE_URL is required when AI_PROVIDER=openai")
    if get("AZURE_SPEECH_KEY") and not (get("AZURE_SPEECH_REGION") or get("AZURE_SPEECH_ENDPOINT")):
        raise SettingsError("AZURE_SPEECH_REGION is required when AZURE_SPEECH_KEY is set")

    level = get("LOG_LEVEL").upper()
    if level not in {"DEBUG", "INFO", "WARNING", "ERROR"}:
        raise SettingsError(f"LOG_LEVEL={level!r}: expected DEBUG, INFO, WARNING or ERROR")
    interval = float_value("HEARTBEAT_INTERVAL", get("HEARTBEAT_INTERVAL"), 0.01, 3600)
    timeout = float_value("HEARTBEAT_TIMEOUT", get("HEARTBEAT_TIMEOUT"), 0.02, 86400)
    if timeout <= interval:
        raise SettingsError("HEARTBEAT_TIMEOUT must be longer than HEARTBEAT_INTERVAL")
    max_tokens = int_value("AI_MAX_TOKENS", get("AI_MAX_TOKENS"), 0, 1_000_000)

    values: dict[str, Any] = {
        "port": listen_port(source),
        "host": get("SERVER_HOST") or ("127.0.0.1" if environment == "development" else "0.0.0.0"),
        "environment": environment,
        "api_token": token,
        "api_token_generated": generated,
        "default_user": get("DEFAULT_USER") or "default",
        **database_options(get),
        "ai_provider": provider,
        "azure_openai_endpoint": get("AZURE_OPENAI_ENDPOINT").rstrip("/"),
        "azure_openai_key": get("AZURE_OPENAI_KEY"),
        "azure_openai_api_version": get("AZURE_OPENAI_API_VERSION"),
        "models": models,
        "openai_base_url": get("OPENAI_BASE_URL").rstrip("/"),
        "openai_api_key": get("OPENAI_API_KEY"),
        "ai_connect_timeout": float_value(
            "AI_CONNECT_TIMEOUT", get("AI_CONNECT_TIMEOUT"), 0.1, 600
        ),
        "ai_read_timeout": float_value("AI_READ_TIMEOUT", get("AI_READ_TIMEOUT"), 0.1, 3600),
        "ai_max_attempts": int_value("AI_MAX_ATTEMPTS", get("AI_MAX_ATTEMPTS"), 1, 10),
        "ai_preconnect": int_value("AI_PRECONNECT", get("AI_PRECONNECT"), 0, 512),
        "ai_history_tokens": int_value(
            "AI_HISTORY_TOKENS", get("AI_HISTORY_TOKENS"), 100, 2_000_000
        ),
        "ai_max_tokens": max_tokens or None,
        "echo_tokens_per_second": float_value(
            "ECHO_TOKENS_PER_SECOND", get("ECHO_TOKENS_PER_SECOND"), 0, 100_000
        ),
        "azure_speech_key": get("AZURE_SPEECH_KEY"),
        "azure_speech_region": get("AZURE_SPEECH_REGION"),
        "azure_speech_endpoint": get("AZURE_SPEECH_ENDPOINT"),
        "speech_timeout": float_value("SPEECH_TIMEOUT", get("SPEECH_TIMEOUT"), 0.1, 600),
        "speech_queue_per_user": int_value(
            "SPEECH_QUEUE_PER_USER", get("SPEECH_QUEUE_PER_USER"), 1, 1000
        ),
        "voice_barge_in_dbfs": float_value(
            "VOICE_BARGE_IN_DBFS", get("VOICE_BARGE_IN_DBFS"), -90, 0
        ),
        "voice_barge_in_ms": int_value("VOICE_BARGE_IN_MS", get("VOICE_BARGE_IN_MS"), 30, 3000),
        "audio_dir": Path(get("AUDIO_DIR") or "./audio"),
        **redis_options(get),
        "auth_failures_burst": float_value(
            "AUTH_FAILURES_BURST", get("AUTH_FAILURES_BURST"), 1, 1_000_000
        ),
        "auth_failures_per_minute": float_value(
            "AUTH_FAILURES_PER_MINUTE", get("AUTH_FAILURES_PER_MINUTE"), 0.01, 1_000_000
        ),
        "allowed_origins": frozenset(
            normal_origin(o) for o in get("ALLOWED_ORIGINS").split(",") if o.strip()
        ),
        "heartbeat_interval": interval,
        "heartbeat_timeout": timeout,
        "close_timeout": float_value("CLOSE_TIMEOUT", get("CLOSE_TIMEOUT"), 0.01, 600),
        "max_frame_bytes": int_value("MAX_FRAME_BYTES", get("MAX_FRAME_BYTES"), 1024, 1 << 30),
        "max_generations_per_connection": int_value(
            "MAX_GENERATIONS_PER_CONNECTION", get("MAX_GENERATIONS_PER_CONNECTION"), 1, 1000
        ),
        "rate_limit_per_second": float_value(
            "RATE_LIMIT_PER_SECOND", get("RATE_LIMIT_PER_SECOND"), 0.01, 1_000_000
        ),
        "rate_limit_burst": float_value("RATE_LIMIT_BURST", get("RATE_LIMIT_BURST"), 1, 1_000_000),
        "max_generations_per_user": int_value(
            "MAX_GENERATIONS_PER_USER", get("MAX_GENERATIONS_PER_USER"), 1, 100_000
        ),
        "max_connections_per_user": int_value(
            "MAX_CONNECTIONS_PER_USER", get("MAX_CONNECTIONS_PER_USER"), 1, 10_000_000
        ),
        "user_rate_limit_per_second": float_value(
            "USER_RATE_LIMIT_PER_SECOND", get("USER_RATE_LIMIT_PER_SECOND"), 0.01, 1_000_000
        ),
        "user_rate_limit_burst": float_value(
            "USER_RATE_LIMIT_BURST", get("USER_RATE_LIMIT_BURST"), 1, 1_000_000
        ),
        "revocation_check_seconds": float_value(
            "REVOCATION_CHECK_SECONDS", get("REVOCATION_CHECK_SECONDS"), 0.05, 60
        ),
        "rate_limit_grace": float_value("RATE_LIMIT_GRACE", get("RATE_LIMIT_GRACE"), 0, 3600),
        "outbox_frames": int_value("OUTBOX_FRAMES", get("OUTBOX_FRAMES"), 8, 1_000_000),
        "outbox_stall_seconds": float_value(
            "OUTBOX_STALL_SECONDS", get("OUTBOX_STALL_SECONDS"), 0.01, 3600
        ),
        "checkpoint_seconds": float_value(
            "CHECKPOINT_SECONDS", get("CHECKPOINT_SECONDS"), 0.01, 60
        ),
        "frame_seconds": float_value("FRAME_SECONDS", get("FRAME_SECONDS"), 0, 1),
        "frame_sink": choice_value("FRAME_SINK", get("FRAME_SINK"), ("fast", "public")),
        "azure_speech_streaming": choice_value(
            "AZURE_SPEECH_STREAMING", get("AZURE_SPEECH_STREAMING"), ("socket", "sdk")
        ),
        "shutdown_grace": float_value("SHUTDOWN_GRACE", get("SHUTDOWN_GRACE"), 0, 3600),
        "log_level": level,
        "log_format": log_format(get("LOG_FORMAT"), environment),
        "metrics_token": get("METRICS_TOKEN"),
        "applicationinsights_connection_string": get("APPLICATIONINSIGHTS_CONNECTION_STRING"),
        **check_tls(get("TLS_CERTFILE"), get("TLS_KEYFILE")),
        "forwarded_allow_ips": forwarded_allow_ips(get("FORWARDED_ALLOW_IPS")),
        "limits": Limits(
            max_content_chars=int_value(
                "MAX_MESSAGE_CHARS", get("MAX_MESSAGE_CHARS"), 1, 10_000_000
            ),
            max_title_chars=int_value("MAX_TITLE_CHARS", get("MAX_TITLE_CHARS"), 1, 200),
            max_personality_chars=int_value(
                "MAX_PERSONALITY_CHARS", get("MAX_PERSONALITY_CHARS"), 1, 1_000_000
            ),
            max_tts_chars=int_value("MAX_TTS_CHARS", get("MAX_TTS_CHARS"), 1, 1_000_000),
            max_audio_seconds=float_value("MAX_AUDIO_SECONDS", get("MAX_AUDIO_SECONDS"), 1, 3600),
            max_audio_bytes=int_value("MAX_AUDIO_BYTES", get("MAX_AUDIO_BYTES"), 1024, 1 << 30),
        ),
    }
    values.update(overrides)
    return Settings(**values)


def redis_options(get: Callable[[str], str]) -> dict[str, Any]:
    """The backplane's settings (``REDIS_URL`` and the scale-out timings)."""
    url = get("REDIS_URL")
    if url and not url.startswith(("redis://", "rediss://")):
        raise SettingsError("REDIS_URL: expected redis://host:port/db or rediss://...")
    auth = get("REDIS_AUTH") or "password"
    if auth not in ("password", "entra"):
        raise SettingsError(f"REDIS_AUTH={auth!r}: expected password or entra")
    beat = float_value("INSTANCE_HEARTBEAT_SECONDS", get("INSTANCE_HEARTBEAT_SECONDS"), 0.05, 3600)
    timeout = float_value("INSTANCE_TIMEOUT_SECONDS", get("INSTANCE_TIMEOUT_SECONDS"), 0.1, 86400)
    if timeout <= 2 * beat:
        raise SettingsError(
            "INSTANCE_TIMEOUT_SECONDS must be more than twice INSTANCE_HEARTBEAT_SECONDS"
        )
    return {
        "redis_url": url,
        "redis_auth": auth,
        "redis_batch_seconds": float_value("REDIS_BATCH_MS", get("REDIS_BATCH_MS"), 0, 1000) / 1000,
        "generation_lease_seconds": float_value(
            "GENERATION_LEASE_SECONDS", get("GENERATION_LEASE_SECONDS"), 0.1, 3600
        ),
        "instance_heartbeat_seconds": beat,
        "instance_timeout_seconds": timeout,
    }
