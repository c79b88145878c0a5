"""Parsing one setting's value: each parser raises ``SettingsError`` naming the variable.

``load_settings`` (``settings.py``) reads the environment through these; a
few of them also serve the code that reads a setting before the settings
exist (the health check's port, the TLS files).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from .variables import KNOWN

__all__ = [
    "SettingsError",
    "check_tls",
    "checked_url",
    "choice_value",
    "database_options",
    "env_file_values",
    "float_value",
    "forwarded_allow_ips",
    "int_value",
    "listen_port",
    "log_format",
    "model_map",
    "normal_origin",
]


class SettingsError(Exception):
    """A setting is missing or wrong; the message names the variable."""


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


def env_file_values(path: Path) -> dict[str, str]:
    if not path.is_file():
        return {}
    from dotenv import dotenv_values

    return {k: v for k, v in dotenv_values(path).items() if v is not None}


def int_value(name: str, raw: str, low: int, high: int) -> int:
    return int(_number(name, raw, int, "a whole number", low, high))


def float_value(name: str, raw: str, low: float, high: float) -> float:
    return _number(name, raw, float, "a number", low, high)


def _number(
    name: str, raw: str, parse: Callable[[str], float], what: str, low: float, high: float
) -> float:
    try:
        value = parse(raw)
    except ValueError:
        raise SettingsError(f"{name}={raw!r}: expected {what}") from None
    if not low <= value <= high:  # NaN is in no range
        raise SettingsError(f"{name}={value}: expected a number from {low} to {high}")
    return value


def model_map(raw: str, gpt4: str, gpt35: str) -> dict[str, str]:
    models = {"gpt-4": gpt4, "gpt-3.5": gpt35}
    for item in filter(None, (part.strip() for part in raw.split(","))):
        name, sep, target = item.partition("=")
        if not sep or not name.strip():
            raise SettingsError(f"AI_MODELS: {item!r} is not of the form name=deployment")
        models[name.strip()] = target.strip()
    return models


_BACKENDS = ("sqlite", "postgresql", "mssql")


def database_options(get: Callable[[str], str]) -> dict[str, Any]:
    """The database part of the settings: URL, sign-in, timeouts, pool and threads."""
    auth = get("DB_AUTH").lower()
    if auth not in {"password", "managed_identity", "default"}:
        raise SettingsError(f"DB_AUTH={auth!r}: expected password, managed_identity or default")
    connect_timeout = float_value("DB_CONNECT_TIMEOUT", get("DB_CONNECT_TIMEOUT"), 1, 600)
    pool_size = int_value("DB_POOL_SIZE", get("DB_POOL_SIZE"), 1, 256)
    threads = int_value("DB_THREADS", get("DB_THREADS") or str(pool_size), 1, 256)
    if threads > pool_size:  # a thread without a connection would wait inside the pool
        raise SettingsError(f"DB_THREADS={threads}: at most DB_POOL_SIZE ({pool_size})")
    explicit = get("DATABASE_URL")
    if explicit != KNOWN["DATABASE_URL"].default or not get("DB_HOST"):
        url, setting = checked_url(explicit), "DATABASE_URL"
    else:
        required = ("DB_USER", "DB_PASSWORD") if auth == "password" else ()
        for name in required:
            if not get(name):
                raise SettingsError(f"{name} is required when DB_HOST is set")
        from .adapters.sql.odbc import azure_sql_url

        url = azure_sql_url(
            host=get("DB_HOST"),
            port=str(int_value("DB_PORT", get("DB_PORT"), 1, 65535)),
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
        "db_timeout": float_value("DB_TIMEOUT", get("DB_TIMEOUT"), 0, 600) or math.inf,
        "db_pool_size": pool_size,
        "db_threads": threads,
    }


def checked_url(raw: str) -> str:
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
            return int_value(name, source[name].strip(), 0, 65535)
    return int(KNOWN["SERVER_PORT"].default)


def choice_value(name: str, raw: str, choices: tuple[str, ...]) -> str:
    chosen = raw.strip().lower()
    if chosen not in choices:
        raise SettingsError(f"{name}={raw!r}: expected {' or '.join(choices)}")
    return chosen


def log_format(raw: str, environment: str) -> str:
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


def forwarded_allow_ips(raw: str) -> tuple[str, ...]:
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
