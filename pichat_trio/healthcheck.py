"""``python -m pichat_trio.healthcheck``: the container's HEALTHCHECK.

Asks ``/healthz`` on the port and scheme the server chose from the same
variables (``SERVER_PORT``, ``WEBSITES_PORT``, ``PORT``; ``TLS_CERTFILE``
for https), so the check follows the server wherever App Service puts it.
Exit status 0 when it answers 200, else 1. The standard library only:
it runs every 30 s and must start fast.
"""

from __future__ import annotations

import os
import ssl
import sys
import urllib.request
from collections.abc import Mapping

from .settings import SettingsError, listen_port

__all__ = ["health_url", "main"]


def health_url(environ: Mapping[str, str]) -> str:
    scheme = "https" if environ.get("TLS_CERTFILE", "").strip() else "http"
    return f"{scheme}://127.0.0.1:{listen_port(environ)}/healthz"


def main(environ: Mapping[str, str] | None = None) -> int:
    environ = os.environ if environ is None else environ
    try:
        url = health_url(environ)
    except SettingsError as error:
        print(f"healthcheck: {error}", file=sys.stderr)
        return 1
    # The certificate names the public host, not 127.0.0.1: TLS without verification here.
    context = None
    if url.startswith("https"):
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    try:
        with urllib.request.urlopen(url, timeout=2, context=context) as response:
            healthy = response.status == 200
    except OSError as error:
        print(f"healthcheck: {url}: {error}", file=sys.stderr)
        return 1
    return 0 if healthy else 1


if __name__ == "__main__":
    raise SystemExit(main())
