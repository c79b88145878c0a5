"""The speech service stays a service: no networking, no protocol, no vendor SDK."""

from __future__ import annotations

import ast
from pathlib import Path

import pichat_trio.services.speech as service_module

FORBIDDEN = (
    "hypercorn",
    "trio_websocket",
    "wsproto",
    "h11",
    "httpx",
    "azure",
    "pocketsphinx",
    "pichat_trio.asgi",
    "pichat_trio.protocol",
    "pichat_trio.transport",
)
FORBIDDEN_RELATIVE = ("asgi", "protocol", "transport")
TRIO_NETWORKING = ("trio.socket", "open_tcp", "serve_tcp", "open_ssl", "SocketStream", "SSLStream")


def test_service_imports() -> None:
    source = Path(service_module.__file__).read_text()
    imported: list[str] = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            imported += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            module = node.module or ""
            if node.level:
                assert module.split(".")[0] not in FORBIDDEN_RELATIVE, module
            else:
                imported.append(module)
    for name in imported:
        assert not name.startswith(FORBIDDEN), name
    for word in TRIO_NETWORKING:
        assert word not in source, word
