"""Serving the page's files over ASGI HTTP.

The files ship inside the package and are read once, on the first request:
a few hundred KiB, kept in memory with their ETags. Every response carries a
Content-Security-Policy that allows scripts, styles and connections only from
the page's own origin (no inline script or style, nothing from elsewhere), so
text that slipped past the sanitiser still could not run.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from importlib import resources
from typing import Any

__all__ = ["CSP", "Asset", "assets", "respond"]

Send = Callable[[dict[str, Any]], Awaitable[None]]

_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".mjs": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".webmanifest": "application/manifest+json",
    ".txt": "text/plain; charset=utf-8",
}
"""What is served, by suffix; other files in the folder (licences, notes) are not."""

CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
    "media-src 'self' blob:; font-src 'self'; manifest-src 'self'; worker-src 'self'; "
    "connect-src 'self'{ws}; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
"""``connect-src 'self'`` covers ws/wss of the same origin in current browsers; the explicit
``ws://HOST wss://HOST`` is for those that read CSP level 2."""

_HOST = re.compile(r"^[A-Za-z0-9.-]+(:[0-9]{1,5})?$|^\[[0-9A-Fa-f:.]+\](:[0-9]{1,5})?$")


@dataclass(frozen=True)
class Asset:
    body: bytes
    content_type: str
    etag: bytes


_assets: dict[str, Asset] | None = None


def assets() -> dict[str, Asset]:
    """URL path -> file, read from the package on first use."""
    global _assets  # noqa: PLW0603 - a cache filled once
    if _assets is None:
        found: dict[str, Asset] = {}
        root = resources.files(__package__).joinpath("static")
        _walk(root, "/static/", found)
        found["/"] = found.pop("/static/index.html")
        _assets = found
    return _assets


def _walk(folder: Any, prefix: str, found: dict[str, Asset]) -> None:
    for entry in folder.iterdir():
        if entry.is_dir():
            _walk(entry, f"{prefix}{entry.name}/", found)
            continue
        suffix = "." + entry.name.rsplit(".", 1)[-1] if "." in entry.name else ""
        content_type = _TYPES.get(suffix)
        if content_type is None:
            continue
        body = entry.read_bytes()
        etag = b'"' + hashlib.sha256(body).hexdigest()[:32].encode() + b'"'
        found[prefix + entry.name] = Asset(body, content_type, etag)


def _header(headers: list[tuple[bytes, bytes]], name: bytes) -> bytes | None:
    return next((value for key, value in headers if key.lower() == name), None)


def _security_headers(host: bytes | None) -> list[tuple[bytes, bytes]]:
    ws = ""
    if host is not None:
        text = host.decode("latin-1")
        if _HOST.match(text):
            ws = f" ws://{text} wss://{text}"
    return [
        (b"content-security-policy", CSP.format(ws=ws).encode()),
        (b"x-content-type-options", b"nosniff"),
        (b"referrer-policy", b"no-referrer"),
        (b"permissions-policy", b"microphone=(self), camera=(), geolocation=()"),
        (b"cross-origin-opener-policy", b"same-origin"),
    ]


async def respond(scope: dict[str, Any], send: Send) -> bool:
    """Answer a request for the page or one of its files; False when the path is not one."""
    asset = assets().get(scope["path"])
    if asset is None:
        return False
    headers = list(scope.get("headers") or [])
    response = _security_headers(_header(headers, b"host"))
    method = scope.get("method", "GET")
    if method not in ("GET", "HEAD"):
        response += [(b"allow", b"GET, HEAD"), (b"content-type", b"text/plain; charset=utf-8")]
        await _send(send, 405, response, b"method not allowed\n")
        return True
    # The files change only with the package, but their names do not: revalidate each
    # time (a 304 costs one round trip), so an upgraded server is never mixed with old files.
    response += [
        (b"etag", asset.etag),
        (b"cache-control", b"no-cache"),
        (b"content-type", asset.content_type.encode()),
    ]
    match = _header(headers, b"if-none-match")
    if match is not None and asset.etag in [tag.strip() for tag in match.split(b",")]:
        await _send(send, 304, response, b"")
        return True
    response.append((b"content-length", str(len(asset.body)).encode()))
    await _send(send, 200, response, b"" if method == "HEAD" else asset.body)
    return True


async def _send(send: Send, status: int, headers: list[tuple[bytes, bytes]], body: bytes) -> None:
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
