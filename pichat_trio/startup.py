"""What the server says about itself as it starts: its version, and what is unwise.

SQLite in production is the warning that matters on App Service: the
container's own disk is lost on every restart and redeploy, and ``/home``
(kept when ``WEBSITES_ENABLE_APP_SERVICE_STORAGE=true``) is a network share
on which SQLite's file locking is not reliable, and which several
instances would share. Production belongs on Azure SQL (``DB_*``) or
PostgreSQL (``DATABASE_URL``).
"""

from __future__ import annotations

import logging
import platform

from . import __version__
from .settings import Settings

__all__ = ["log_start", "production_warnings"]

log = logging.getLogger("pichat_trio.startup")


def production_warnings(settings: Settings) -> list[str]:
    """The warnings for this configuration; none in development."""
    if settings.is_development:
        return []
    warnings = []
    if settings.database_url.startswith("sqlite"):
        warnings.append(
            "SQLite in production: on App Service the container's disk is lost on restart and "
            "/home is a network share where SQLite's locks are unreliable; use Azure SQL (DB_*) "
            "or PostgreSQL (DATABASE_URL)"
        )
    if not settings.metrics_token:
        warnings.append("METRICS_TOKEN is not set: GET /metrics is open to anyone who can reach it")
    return warnings


def log_start(settings: Settings) -> None:
    log.info(
        "PiChat %s starting (Python %s, environment %s, AI %s)",
        __version__,
        platform.python_version(),
        settings.environment,
        settings.ai_provider,
    )
    for warning in production_warnings(settings):
        log.warning("%s", warning)
