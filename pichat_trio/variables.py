"""Every environment variable the server reads, declared once.

Each ``Variable`` has its default and a line of help; ``.env.example``
(``example_env``), ``pichat --help`` and the README's configuration table are
written from this one list, and a test keeps them in step.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["KNOWN", "VARIABLES", "Variable", "example_env"]


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
    Variable(
        "AZURE_SPEECH_STREAMING",
        "socket",
        "live voice sessions with Azure: `socket` (its protocol from the event loop) or `sdk`",
    ),
    Variable("SPEECH_TIMEOUT", "30", "seconds a speech call may take"),
    Variable(
        "SPEECH_QUEUE_PER_USER",
        "4",
        "offline speech_to_text calls of one user queued or decoding; past it rate_limited",
    ),
    Variable(
        "VOICE_BARGE_IN_DBFS",
        "-30",
        "level (dBFS, -90 to 0) speech must reach to interrupt an answer playing without echo "
        "cancellation",
    ),
    Variable(
        "VOICE_BARGE_IN_MS",
        "300",
        "how long (ms, 30 to 3000) it must hold that level to count as a barge-in",
    ),
    Variable("AUDIO_DIR", "./audio", "where recorded audio of voice messages is kept"),
    Variable(
        "REDIS_URL",
        "",
        "Redis (redis:// or rediss://) shared by several instances; empty: one instance",
        secret=True,
    ),
    Variable("REDIS_AUTH", "password", "`password` (from REDIS_URL) or `entra` (managed identity)"),
    Variable("REDIS_BATCH_MS", "20", "window in which events for other instances are batched"),
    Variable(
        "GENERATION_LEASE_SECONDS", "10", "expiry of an answer's lease across instances (renewed)"
    ),
    Variable("INSTANCE_HEARTBEAT_SECONDS", "5", "seconds between this instance's heartbeats"),
    Variable(
        "INSTANCE_TIMEOUT_SECONDS",
        "20",
        "heartbeat silence after which an instance is gone and its answers interrupted",
    ),
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
    Variable(
        "FRAME_SINK",
        "fast",
        "`fast`: frames written to hypercorn's socket on a tested release; `public`: ASGI only",
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

KNOWN = {v.name: v for v in VARIABLES}
"""Each variable by its name."""


def example_env() -> str:
    """The text of ``.env.example``: every variable with its default and help."""
    lines = ["# PiChat configuration. Copy to .env and edit; the environment wins over .env.", ""]
    for var in VARIABLES:
        lines.append(f"# {var.help}")
        lines.append(f"{var.name}={'' if var.secret else var.default}")
        lines.append("")
    return "\n".join(lines)
