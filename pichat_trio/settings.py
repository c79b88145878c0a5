"""Configuration: environment variables (and an optional ``.env``) to frozen settings.

Every variable the server reads is declared once in ``VARIABLES``, with its
default and a line of help; ``.env.example``, ``pichat --help`` and the
README's table are written from the same list. A wrong value stops start-up
with ``SettingsError`` whose message names the variable.
"""

from __future__ import annotations

import math
import os
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .limits import Limits

__all__ = [
    "VARIABLES",
    "Settings",
    "SettingsError",
    "Variable",
    "check_tls",
    "listen_port",
    "load_settings",
    "normal_origin",
]


class SettingsError(Exception):
    """A setting is missing or wrong; the message names the variable."""


@dataclass(frozen=True)
class Variable:
    name: str
    default: str
    help: str
    secret: bool = False


VARIABLES: tuple[Variable, ...] = (
    Variable("SERVER_PORT", "8080", "TCP port to listen on (`pichat serve --port` wins)"),
    Variable(
        "WEBSITES_PORT", "", "App Service's port for the container; used when SERVER_PORT is unset"
    ),
    Variable(
        "PORT", "", "port given by the platform; used when SERVER_PORT and WEBSITES_PORT are unset"
    ),
    Variable("SERVER_HOST", "", "address to bind; empty: 127.0.0.1 in development, else 0.0.0.0"),
    Variable("TLS_CERTFILE", "", "PEM certificate (chain): serve https:// and wss:// directly"),
    Variable("TLS_KEYFILE", "", "PEM private key of TLS_CERTFILE"),
    Variable(
        "FORWARDED_ALLOW_IPS", "127.0.0.1,::1", "proxies (IPs, CIDRs, `*`) trusted to forward"
    ),
    Variable("ENVIRONMENT", "development", "`development` or `production`"),
    Variable(
        "API_TOKEN",
        "",
        "token of the default user; generated and printed at start in development",
        secret=True,
    ),
    Variable("DEFAULT_USER", "default", "name of the user that API_TOKEN belongs to"),
    Variable("DATABASE_URL", "sqlite:///./pichat.db", "SQLAlchemy URL; overrides DB_*"),
    Variable("DB_HOST", "", "Azure SQL host; with DB_* builds an mssql+pyodbc URL"),
    Variable("DB_PORT", "1433", "Azure SQL port"),
    Variable("DB_NAME", "pichat", "Azure SQL database"),
    Variable("DB_USER", "", "Azure SQL user"),
    Variable("DB_PASSWORD", "", "Azure SQL password", secret=True),
    Variable("DB_DRIVER", "ODBC Driver 18 for SQL Server", "ODBC driver name for Azure SQL"),
    Variable(
        "DB_AUTH",
        "password",
        "Azure SQL sign-in: `password`, `managed_identity` or `default` (azure-identity token)",
    ),
    Variable("DB_CLIENT_ID", "", "client id of a user-assigned managed identity (DB_AUTH)"),
    Variable("DB_CONNECT_TIMEOUT", "30", "seconds to open a database connection (login timeout)"),
    Variable(
        "DB_TIMEOUT",
        "4",
        "seconds a request waits for the database before `unavailable`; 0: no limit",
    ),
    Variable("DB_POOL_SIZE", "8", "database connections per process"),
    Variable("DB_THREADS", "", "database worker threads; empty: DB_POOL_SIZE (never more)"),
    Variable(
        "AI_PROVIDER", "", "`azure`, `openai` or `echo`; empty: azure if configured, else echo"
    ),
    Variable("AZURE_OPENAI_ENDPOINT", "", "https://NAME.openai.azure.com/"),
    Variable("AZURE_OPENAI_KEY", "", "Azure OpenAI api-key", secret=True),
    Variable("AZURE_OPENAI_API_VERSION", "2024-10-21", "Azure OpenAI api-version"),
    Variable("AZURE_OPENAI_DEPLOYMENT_GPT4", "", "deployment used for the `gpt-4` model"),
    Variable("AZURE_OPENAI_DEPLOYMENT_GPT35", "", "deployment used for the `gpt-3.5` model"),
    Variable(
        "AI_MODELS",
        "",
        "extra model map `name=deployment,...` (Azure deployments or upstream model ids)",
    ),
    Variable("OPENAI_BASE_URL", "", "OpenAI-compatible base URL, e.g. http://localhost:11434/v1"),
    Variable("OPENAI_API_KEY", "", "bearer key for the OpenAI-compatible server", secret=True),
    Variable("AI_CONNECT_TIMEOUT", "5", "seconds to connect to the AI service"),
    Variable("AI_READ_TIMEOUT", "30", "seconds of upstream silence before a stream fails"),
    Variable("AI_MAX_ATTEMPTS", "3", "attempts per answer before the first token (retries)"),
    Variable(
        "AI_PRECONNECT",
        "256",
        "AI connections kept ready for the connected clients (at most this many); 0 = off",
    ),
    Variable("AI_HISTORY_TOKENS", "6000", "history budget sent upstream (estimated tokens)"),
    Variable("AI_MAX_TOKENS", "0", "max_tokens per answer; 0 leaves it to the service"),
    Variable("ECHO_TOKENS_PER_SECOND", "30", "pace of the offline echo model; 0 = no delay"),
    Variable("AZURE_SPEECH_KEY", "", "Azure Speech key; empty: offline engines", secret=True),
    Variable("AZURE_SPEECH_REGION", "", "Azure Speech region, e.g. westeurope"),
    Variable("AZURE_SPEECH_ENDPOINT", "", "Azure Speech host override (containers, tests)"),
    Variable("SPEECH_TIMEOUT", "30", "seconds a speech call may take"),
    Variable(
        "SPEECH_QUEUE_PER_USER",
        "4",
        "offline speech_to_text calls of one user queued or decoding; past it rate_limited",
    ),
    Variable("AUDIO_DIR", "./audio", "where recorded audio of voice messages is kept"),
    Variable("REDIS_URL", "", "Redis URL for fan-out across instances; empty: in-process"),
    Variable("ALLOWED_ORIGINS", "", "comma-separated Origins allowed to connect; empty: any"),
    Variable(
        "AUTH_FAILURES_BURST", "20", "failed handshakes a client address may make before HTTP 429"
    ),
    Variable(
        "AUTH_FAILURES_PER_MINUTE", "30", "failed handshakes an address is allowed per minute after"
    ),
    Variable("HEARTBEAT_INTERVAL", "20", "seconds between WebSocket pings"),
    Variable("HEARTBEAT_TIMEOUT", "60", "seconds of peer silence (pongs included) before closing"),
    Variable("CLOSE_TIMEOUT", "2", "seconds a peer has to answer the server's close frame"),
    Variable("MAX_FRAME_BYTES", str(4 * 1024 * 1024), "largest incoming frame; larger: close 1009"),
    Variable("MAX_MESSAGE_CHARS", "32000", "longest message content, characters"),
    Variable("MAX_TITLE_CHARS", "200", "longest conversation title, characters (at most 200)"),
    Variable("MAX_PERSONALITY_CHARS", "4000", "longest assistant_personality, characters"),
    Variable("MAX_TTS_CHARS", "5000", "longest text_to_speech text, characters"),
    Variable("MAX_AUDIO_SECONDS", "60", "longest speech_to_text or voice-message audio, seconds"),
    Variable("MAX_AUDIO_BYTES", str(10 * 1024 * 1024), "largest decoded audio, bytes"),
    Variable("MAX_GENERATIONS_PER_CONNECTION", "4", "concurrent AI/speech calls per connection"),
    Variable("MAX_GENERATIONS_PER_USER", "16", "concurrent AI answers per user, all devices"),
    Variable(
        "MAX_CONNECTIONS_PER_USER", "32", "open WebSockets per user; more: HTTP 429 at handshake"
    ),
    Variable(
        "RATE_LIMIT_PER_SECOND", "30", "requests a connection may make per second, on average"
    ),
    Variable("RATE_LIMIT_BURST", "60", "requests a connection may make in a burst"),
    Variable(
        "RATE_LIMIT_GRACE", "10", "seconds a connection may go on past its rate before close 1008"
    ),
    Variable(
        "USER_RATE_LIMIT_PER_SECOND",
        "60",
        "requests a user may make per second over all devices, on average",
    ),
    Variable("USER_RATE_LIMIT_BURST", "120", "requests a user may make in a burst, all devices"),
    Variable(
        "REVOCATION_CHECK_SECONDS",
        "0.5",
        "how often connected users' tokens are checked for revocation",
    ),
    Variable("OUTBOX_FRAMES", "256", "frames queued per connection before it counts as stuck"),
    Variable("OUTBOX_STALL_SECONDS", "30", "seconds a full outbox may stay full before closing"),
    Variable("CHECKPOINT_SECONDS", "1", "how often a growing answer is saved"),
    Variable(
        "FRAME_SECONDS",
        "0",
        "shortest time between two token frames to one connection (0: a frame per token)",
    ),
    Variable("SHUTDOWN_GRACE", "10", "seconds in-flight answers may finish at shutdown"),
    Variable("LOG_LEVEL", "INFO", "DEBUG, INFO, WARNING or ERROR"),
    Variable("LOG_FORMAT", "", "`json` or `text`; empty: json in production, text in development"),
    Variable("METRICS_TOKEN", "", "bearer token GET /metrics needs; empty: open", secret=True),
    Variable(
        "APPLICATIONINSIGHTS_CONNECTION_STRING",
        "",
        "send metrics and traces to Azure Monitor (the `azure-monitor` extra)",
        secret=True,
    ),
)

_KNOWN = {v.name: v for v in VARIABLES}


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
    speech_timeout: float = 30.0
    speech_queue_per_user: int = 4
    audio_dir: Path = Path("./audio")
    redis_url: str = ""
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


_DEFAULT_PORTS = {"http": "80", "https": "443", "ws": "80", "wss": "443"}


def normal_origin(origin: str) -> str:
    """An origin as compared: lower case, no trailing slash, no default port
    (``HTTPS://Pi.local:443/`` is ``https://pi.local``), as RFC 6454 compares them."""
    origin = origin.strip().rstrip("/").lower()
    scheme, sep, rest = origin.partition("://")
    host, colon, port = rest.rpartition(":")
    if sep and colon and "]" not in port and _DEFAULT_PORTS.get(scheme) == port:
        return f"{scheme}://{host}"
    return origin


def _env_file_values(path: Path) -> dict[str, str]:
    if not path.is_file():
        return {}
    from dotenv import dotenv_values

    return {k: v for k, v in dotenv_values(path).items() if v is not None}


def _int(name: str, raw: str, low: int, high: int) -> int:
    try:
        value = int(raw)
    except ValueError:
        raise SettingsError(f"{name}={raw!r}: expected a whole number") from None
    if not low <= value <= high:
        raise SettingsError(f"{name}={value}: expected a number from {low} to {high}")
    return value


def _float(name: str, raw: str, low: float, high: float) -> float:
    try:
        value = float(raw)
    except ValueError:
        raise SettingsError(f"{name}={raw!r}: expected a number") from None
    if not low <= value <= high:
        raise SettingsError(f"{name}={value}: expected a number from {low} to {high}")
    return value


def _model_map(raw: str, gpt4: str, gpt35: str) -> dict[str, str]:
    models = {"gpt-4": gpt4, "gpt-3.5": gpt35}
    for item in filter(None, (part.strip() for part in raw.split(","))):
        name, sep, target = item.partition("=")
        if not sep or not name.strip():
            raise SettingsError(f"AI_MODELS: {item!r} is not of the form name=deployment")
        models[name.strip()] = target.strip()
    return models


_BACKENDS = ("sqlite", "postgresql", "mssql")


def _database(get: Callable[[str], str]) -> dict[str, Any]:
    """The database part of the settings: URL, sign-in, timeouts, pool and threads."""
    auth = get("DB_AUTH").lower()
    if auth not in {"password", "managed_identity", "default"}:
        raise SettingsError(f"DB_AUTH={auth!r}: expected password, managed_identity or default")
    connect_timeout = _float("DB_CONNECT_TIMEOUT", get("DB_CONNECT_TIMEOUT"), 1, 600)
    pool_size = _int("DB_POOL_SIZE", get("DB_POOL_SIZE"), 1, 256)
    threads = _int("DB_THREADS", get("DB_THREADS") or str(pool_size), 1, 256)
    if threads > pool_size:  # a thread without a connection would wait inside the pool
        raise SettingsError(f"DB_THREADS={threads}: at most DB_POOL_SIZE ({pool_size})")
    explicit = get("DATABASE_URL")
    if explicit != _KNOWN["DATABASE_URL"].default or not get("DB_HOST"):
        url, setting = _checked_url(explicit), "DATABASE_URL"
    else:
        required = ("DB_USER", "DB_PASSWORD") if auth == "password" else ()
        for name in required:
            if not get(name):
                raise SettingsError(f"{name} is required when DB_HOST is set")
        from .adapters.sql.odbc import azure_sql_url

        url = azure_sql_url(
            host=get("DB_HOST"),
            port=str(_int("DB_PORT", get("DB_PORT"), 1, 65535)),
            database=get("DB_NAME"),
            user=get("DB_USER"),
            password=get("DB_PASSWORD"),
            driver=get("DB_DRIVER"),
            auth=auth,
            client_id=get("DB_CLIENT_ID"),
            connect_timeout=connect_timeout,
        ).render_as_string(hide_password=False)
        setting = "DB_HOST"
    return {
        "database_url": url,
        "database_setting": setting,
        "db_auth": auth,
        "db_client_id": get("DB_CLIENT_ID"),
        "db_connect_timeout": connect_timeout,
        "db_timeout": _float("DB_TIMEOUT", get("DB_TIMEOUT"), 0, 600) or math.inf,
        "db_pool_size": pool_size,
        "db_threads": threads,
    }


def _checked_url(raw: str) -> str:
    """``DATABASE_URL`` if SQLAlchemy can use it, else ``SettingsError`` saying why."""
    import sqlalchemy as sa
    from sqlalchemy.exc import ArgumentError, NoSuchModuleError

    try:
        url = sa.make_url(raw)
    except ArgumentError:
        raise SettingsError(
            f"DATABASE_URL={raw!r}: not a database URL (e.g. sqlite:///./pichat.db)"
        ) from None
    if url.get_backend_name() not in _BACKENDS:
        raise SettingsError(
            f"DATABASE_URL: unsupported database {url.get_backend_name()!r}; "
            "expected sqlite, postgresql+psycopg or mssql+pyodbc"
        )
    try:
        url.get_dialect()
    except NoSuchModuleError:
        raise SettingsError(f"DATABASE_URL: unknown driver {url.drivername!r}") from None
    return raw


def listen_port(source: Mapping[str, str]) -> int:
    """SERVER_PORT when set; else App Service's WEBSITES_PORT, else the platform's PORT."""
    for name in ("SERVER_PORT", "WEBSITES_PORT", "PORT"):
        if source.get(name, "").strip():
            return _int(name, source[name].strip(), 0, 65535)
    return int(_KNOWN["SERVER_PORT"].default)


def _log_format(raw: str, environment: str) -> str:
    chosen = raw.lower() or ("json" if environment == "production" else "text")
    if chosen not in {"json", "text"}:
        raise SettingsError(f"LOG_FORMAT={raw!r}: expected json or text")
    return chosen


def check_tls(certfile: str, keyfile: str) -> dict[str, str]:
    if bool(certfile) != bool(keyfile):
        raise SettingsError("TLS_CERTFILE and TLS_KEYFILE go together: set both or neither")
    for name, path in (("TLS_CERTFILE", certfile), ("TLS_KEYFILE", keyfile)):
        if path and not Path(path).is_file():
            raise SettingsError(f"{name}={path!r}: no such file")
    return {"tls_certfile": certfile, "tls_keyfile": keyfile}


def _forwarded_allow_ips(raw: str) -> tuple[str, ...]:
    import ipaddress

    entries = tuple(part.strip() for part in raw.split(",") if part.strip())
    for entry in entries:
        if entry == "*":
            continue
        try:
            ipaddress.ip_network(entry, strict=False)
        except ValueError:
            raise SettingsError(
                f"FORWARDED_ALLOW_IPS: {entry!r} is not an IP address, a CIDR or *"
            ) from None
    return entries


def load_settings(
    environ: Mapping[str, str] | None = None, env_file: Path | None = Path(".env"), **overrides: Any
) -> Settings:
    """Read, validate and freeze the configuration.

    Precedence: ``overrides`` (command-line flags), then the process
    environment, then ``env_file``, then the defaults in ``VARIABLES``.
    """
    source = dict(_env_file_values(env_file)) if env_file is not None else {}
    source.update(os.environ if environ is None else environ)

    def get(name: str) -> str:
        return source.get(name, _KNOWN[name].default).strip()

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
    models = _model_map(
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
    interval = _float("HEARTBEAT_INTERVAL", get("HEARTBEAT_INTERVAL"), 0.01, 3600)
    timeout = _float("HEARTBEAT_TIMEOUT", get("HEARTBEAT_TIMEOUT"), 0.02, 86400)
    if timeout <= interval:
        raise SettingsError("HEARTBEAT_TIMEOUT must be longer than HEARTBEAT_INTERVAL")
    max_tokens = _int("AI_MAX_TOKENS", get("AI_MAX_TOKENS"), 0, 1_000_000)

    values: dict[str, Any] = {
        "port": listen_port(source),
        "host": get("SERVER_HOST") or ("127.0.0.1" if environment == "development" else "0.0.0.0"),
        "environment": environment,
        "api_token": token,
        "api_token_generated": generated,
        "default_user": get("DEFAULT_USER") or "default",
        **_database(get),
        "ai_provider": provider,
        "azure_openai_endpoint": get("AZURE_OPENAI_ENDPOINT").rstrip("/"),
        "azure_openai_key": get("AZURE_OPENAI_KEY"),
        "azure_openai_api_version": get("AZURE_OPENAI_API_VERSION"),
        "models": models,
        "openai_base_url": get("OPENAI_BASE_URL").rstrip("/"),
        "openai_api_key": get("OPENAI_API_KEY"),
        "ai_connect_timeout": _float("AI_CONNECT_TIMEOUT", get("AI_CONNECT_TIMEOUT"), 0.1, 600),
        "ai_read_timeout": _float("AI_READ_TIMEOUT", get("AI_READ_TIMEOUT"), 0.1, 3600),
        "ai_max_attempts": _int("AI_MAX_ATTEMPTS", get("AI_MAX_ATTEMPTS"), 1, 10),
        "ai_preconnect": _int("AI_PRECONNECT", get("AI_PRECONNECT"), 0, 512),
        "ai_history_tokens": _int("AI_HISTORY_TOKENS", get("AI_HISTORY_TOKENS"), 100, 2_000_000),
        "ai_max_tokens": max_tokens or None,
        "echo_tokens_per_second": _float(
            "ECHO_TOKENS_PER_SECOND", get("ECHO_TOKENS_PER_SECOND"), 0, 100_000
        ),
        "azure_speech_key": get("AZURE_SPEECH_KEY"),
        "azure_speech_region": get("AZURE_SPEECH_REGION"),
        "azure_speech_endpoint": get("AZURE_SPEECH_ENDPOINT"),
        "speech_timeout": _float("SPEECH_TIMEOUT", get("SPEECH_TIMEOUT"), 0.1, 600),
        "speech_queue_per_user": _int(
            "SPEECH_QUEUE_PER_USER", get("SPEECH_QUEUE_PER_USER"), 1, 1000
        ),
        "audio_dir": Path(get("AUDIO_DIR") or "./audio"),
        "redis_url": get("REDIS_URL"),
        "auth_failures_burst": _float(
            "AUTH_FAILURES_BURST", get("AUTH_FAILURES_BURST"), 1, 1_000_000
        ),
        "auth_failures_per_minute": _float(
            "AUTH_FAILURES_PER_MINUTE", get("AUTH_FAILURES_PER_MINUTE"), 0.01, 1_000_000
        ),
        "allowed_origins": frozenset(
            normal_origin(o) for o in get("ALLOWED_ORIGINS").split(",") if o.strip()
        ),
        "heartbeat_interval": interval,
        "heartbeat_timeout": timeout,
        "close_timeout": _float("CLOSE_TIMEOUT", get("CLOSE_TIMEOUT"), 0.01, 600),
        "max_frame_bytes": _int("MAX_FRAME_BYTES", get("MAX_FRAME_BYTES"), 1024, 1 << 30),
        "max_generations_per_connection": _int(
            "MAX_GENERATIONS_PER_CONNECTION", get("MAX_GENERATIONS_PER_CONNECTION"), 1, 1000
        ),
        "rate_limit_per_second": _float(
            "RATE_LIMIT_PER_SECOND", get("RATE_LIMIT_PER_SECOND"), 0.01, 1_000_000
        ),
        "rate_limit_burst": _float("RATE_LIMIT_BURST", get("RATE_LIMIT_BURST"), 1, 1_000_000),
        "max_generations_per_user": _int(
            "MAX_GENERATIONS_PER_USER", get("MAX_GENERATIONS_PER_USER"), 1, 100_000
        ),
        "max_connections_per_user": _int(
            "MAX_CONNECTIONS_PER_USER", get("MAX_CONNECTIONS_PER_USER"), 1, 10_000_000
        ),
        "user_rate_limit_per_second": _float(
            "USER_RATE_LIMIT_PER_SECOND", get("USER_RATE_LIMIT_PER_SECOND"), 0.01, 1_000_000
        ),
        "user_rate_limit_burst": _float(
            "USER_RATE_LIMIT_BURST", get("USER_RATE_LIMIT_BURST"), 1, 1_000_000
        ),
        "revocation_check_seconds": _float(
            "REVOCATION_CHECK_SECONDS", get("REVOCATION_CHECK_SECONDS"), 0.05, 60
        ),
        "rate_limit_grace": _float("RATE_LIMIT_GRACE", get("RATE_LIMIT_GRACE"), 0, 3600),
        "outbox_frames": _int("OUTBOX_FRAMES", get("OUTBOX_FRAMES"), 8, 1_000_000),
        "outbox_stall_seconds": _float(
            "OUTBOX_STALL_SECONDS", get("OUTBOX_STALL_SECONDS"), 0.01, 3600
        ),
        "checkpoint_seconds": _float("CHECKPOINT_SECONDS", get("CHECKPOINT_SECONDS"), 0.01, 60),
        "frame_seconds": _float("FRAME_SECONDS", get("FRAME_SECONDS"), 0, 1),
        "shutdown_grace": _float("SHUTDOWN_GRACE", get("SHUTDOWN_GRACE"), 0, 3600),
        "log_level": level,
        "log_format": _log_format(get("LOG_FORMAT"), environment),
        "metrics_token": get("METRICS_TOKEN"),
        "applicationinsights_connection_string": get("APPLICATIONINSIGHTS_CONNECTION_STRING"),
        **check_tls(get("TLS_CERTFILE"), get("TLS_KEYFILE")),
        "forwarded_allow_ips": _forwarded_allow_ips(get("FORWARDED_ALLOW_IPS")),
        "limits": Limits(
            max_content_chars=_int("MAX_MESSAGE_CHARS", get("MAX_MESSAGE_CHARS"), 1, 10_000_000),
            max_title_chars=_int("MAX_TITLE_CHARS", get("MAX_TITLE_CHARS"), 1, 200),
            max_personality_chars=_int(
                "MAX_PERSONALITY_CHARS", get("MAX_PERSONALITY_CHARS"), 1, 1_000_000
            ),
            max_tts_chars=_int("MAX_TTS_CHARS", get("MAX_TTS_CHARS"), 1, 1_000_000),
            max_audio_seconds=_float("MAX_AUDIO_SECONDS", get("MAX_AUDIO_SECONDS"), 1, 3600),
            max_audio_bytes=_int("MAX_AUDIO_BYTES", get("MAX_AUDIO_BYTES"), 1024, 1 << 30),
        ),
    }
    values.update(overrides)
    return Settings(**values)


def example_env() -> str:
    """The text of ``.env.example``: every variable with its default and help."""
    lines = ["# PiChat configuration. Copy to .env and edit; the environment wins over .env.", ""]
    for var in VARIABLES:
        lines.append(f"# {var.help}")
        lines.append(f"{var.name}={'' if var.secret else var.default}")
        lines.append("")
    return "\n".join(lines)
