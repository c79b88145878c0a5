"""The layering written in pichat_trio/__init__.py, kept true.

protocol/ is sans-IO: no trio at all, no networking, no services, no
dispatch, no transport, no adapters. services/ import no networking, no
protocol, no dispatch, no transport, no adapters and no JSON encoder, and
build no JSON text: they publish typed domain events. domain/ (the events)
imports only what the ports do. dispatch/ (between transport and
services) imports no transport and no adapters. adapters/ import neither
the protocol, the dispatch, the transport nor the services.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "pichat_trio"

NETWORKING = ("hypercorn", "wsproto", "trio_websocket", "h11", "httpx", "socket", "trio.socket")
_OUTER = ("pichat_trio.asgi", "pichat_trio.server", "pichat_trio.app")
_WIRE = ("pichat_trio.protocol", "json", "msgspec.json")
"""The frame text and JSON encoders: the protocol's."""
_ABOVE_SERVICES = ("pichat_trio.dispatch", "pichat_trio.transport")
RULES = {
    "protocol": (
        *NETWORKING,
        *_OUTER,
        "trio",
        *_ABOVE_SERVICES,
        "pichat_trio.services",
        "pichat_trio.adapters",
    ),
    "dispatch": (*NETWORKING, *_OUTER, "pichat_trio.transport", "pichat_trio.adapters"),
    "services": (*NETWORKING, *_OUTER, *_WIRE, *_ABOVE_SERVICES, "pichat_trio.adapters"),
    "domain": (
        *NETWORKING,
        *_OUTER,
        "trio",
        *_WIRE[:2],
        *_ABOVE_SERVICES,
        "pichat_trio.services",
        "pichat_trio.adapters",
    ),
    "adapters": (
        *_OUTER,
        "pichat_trio.protocol",
        *_ABOVE_SERVICES,
        "pichat_trio.services",
    ),
}
NETWORK_CALLS = ("open_tcp_stream", "open_tcp_listeners", "serve_tcp", "open_ssl_over_tcp_stream")


def _imports(path: Path) -> list[str]:
    module = ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return _imported_names(path.read_text(), module)


def _imported_names(source: str, module: str) -> list[str]:
    """What ``source``, the text of ``module``, imports (relative imports made absolute)."""
    package = module.rsplit(".", 1)[0]
    names: list[str] = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                prefix = ".".join(base + ([node.module] if node.module else []))
            else:
                prefix = node.module or ""
            names.append(prefix)
            names += [f"{prefix}.{alias.name}" for alias in node.names]
        elif isinstance(node, ast.Attribute) and node.attr in NETWORK_CALLS:
            names.append(f"trio.socket.{node.attr}")
    return names


def _offences(layer: str, names: list[str]) -> list[str]:
    return [
        name
        for name in names
        for forbidden in RULES[layer]
        if name == forbidden or name.startswith(forbidden + ".")
    ]


@pytest.mark.parametrize("layer", sorted(RULES))
def test_layer_imports_only_what_it_may(layer):
    offences = [
        f"{path.relative_to(PACKAGE)} imports {name}"
        for path in sorted((PACKAGE / layer).rglob("*.py"))
        for name in _offences(layer, _imports(path))
    ]
    assert offences == []


def test_the_rules_can_fail():
    """The checker sees forbidden imports, relative and absolute (so the test above can fail)."""
    source = "from ..transport import connection\nimport httpx\nfrom . import chat\n"
    names = _imported_names(source, "pichat_trio.services.probe")
    assert _offences("services", names) == [
        "pichat_trio.transport",
        "pichat_trio.transport.connection",
        "httpx",
    ]
    assert "pichat_trio.services.chat" in names
    source = "import msgspec.json\nfrom ..protocol.wire import encode_event\n"
    assert _offences("services", _imported_names(source, "pichat_trio.services.probe")) == [
        "msgspec.json",
        "pichat_trio.protocol.wire",
        "pichat_trio.protocol.wire.encode_event",
    ]
    source = "import trio\nfrom ..services.chat import ChatService\nfrom ..dispatch import router\n"
    assert _offences("protocol", _imported_names(source, "pichat_trio.protocol.probe")) == [
        "trio",
        "pichat_trio.services.chat",
        "pichat_trio.services.chat.ChatService",
        "pichat_trio.dispatch",
        "pichat_trio.dispatch.router",
    ]


_ENVELOPE = re.compile(r'"(action|payload|request_id)"\s*:')


def _json_texts(source: str) -> list[str]:
    """String constants of ``source`` that are (parts of) a frame's JSON text."""
    return [
        node.value
        for node in ast.walk(ast.parse(source))
        if isinstance(node, ast.Constant)
        and isinstance(node.value, str)
        and _ENVELOPE.search(node.value)
    ]


def test_services_build_no_json():
    """Services publish typed events; a frame's text is the protocol's to write."""
    built = [
        f"{path.relative_to(PACKAGE)}: {text!r}"
        for path in sorted((PACKAGE / "services").rglob("*.py"))
        for text in _json_texts(path.read_text())
    ]
    assert built == []
    probe = """prefix = '{"action":"message_stream","payload":' + head"""
    assert _json_texts(probe) == ['{"action":"message_stream","payload":']


CLIENT_MAY_IMPORT = {
    "clients": ("pichat_trio.clients", "pichat_trio.wav", "pichat_trio.errors"),
    "web": ("pichat_trio.web",),
}
"""The clients are a layer above the server, not part of it: of the server's code they
use only the WAV helpers (and the error those raise); the page's server is static files."""


@pytest.mark.parametrize("layer", sorted(CLIENT_MAY_IMPORT))
def test_clients_import_nothing_of_the_server(layer):
    allowed = CLIENT_MAY_IMPORT[layer]
    offences = []
    for path in sorted((PACKAGE / layer).rglob("*.py")):
        for name in _imports(path):
            if name.startswith("pichat_trio") and not any(
                name == ok or name.startswith(ok + ".") for ok in allowed
            ):
                offences.append(f"{path.relative_to(PACKAGE)} imports {name}")
    assert offences == []
    assert list((PACKAGE / layer).rglob("*.py"))  # the layer exists: the test looked


def test_the_server_does_not_import_the_clients():
    offences = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if path.relative_to(PACKAGE).parts[0] in ("clients", "__main__.py"):
            continue
        offences += [
            f"{path.relative_to(PACKAGE)} imports {name}"
            for name in _imports(path)
            if name.startswith("pichat_trio.clients")
        ]
    assert offences == []


VOICE_SESSION = ("session.py", "endpointer.py", "sentences.py", "playback.py", "contracts.py")
"""The voice session's own modules: written against its contracts and the ports, so
they import no other service (``chat_answers.py`` is the one bridge to the chat service)."""


def test_the_voice_session_depends_on_its_contracts_not_on_the_chat_service():
    voice = PACKAGE / "services" / "voice"
    offences = [
        f"services/voice/{name} imports {imported}"
        for name in VOICE_SESSION
        for imported in _imports(voice / name)
        if imported.startswith("pichat_trio.services")
        and not imported.startswith("pichat_trio.services.voice")
    ]
    assert offences == []
    bridge = _imports(voice / "chat_answers.py")
    assert "pichat_trio.services.chat" in bridge  # the rule sees such an import


def test_only_the_redis_adapter_speaks_to_redis():
    """The Redis client is one adapter's business; the rest see the Hub and Leases ports."""
    home = PACKAGE / "adapters" / "redis"
    offenders = [
        str(path.relative_to(PACKAGE))
        for path in PACKAGE.rglob("*.py")
        if home not in path.parents
        and any(name.split(".")[0] in ("coredis", "redis") for name in _imports(path))
    ]
    assert offenders == []
    assert any("coredis" in _imports(path) for path in home.glob("*.py"))


CALLBACKS_FROM_ABOVE = {"spawn", "reply", "reply_with", "peer", "connection"}
"""Parameter names of the shape services must not take: a way to start a task in the
connection's nursery, or to write to a connection. Services publish events and run
their tasks in nurseries they are handed or own."""


def _parameters(source: str) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda):
            arguments = node.args
            every = [*arguments.posonlyargs, *arguments.args, *arguments.kwonlyargs]
            names.update(argument.arg for argument in every)
    return names


def test_services_take_no_callbacks_into_the_layer_above():
    offences = sorted(
        f"{path.relative_to(PACKAGE)} takes {name}"
        for path in (PACKAGE / "services").rglob("*.py")
        for name in _parameters(path.read_text()) & CALLBACKS_FROM_ABOVE
    )
    assert offences == []
    probe = "def start(self, text, *, spawn, reply): ..."
    assert _parameters(probe) & CALLBACKS_FROM_ABOVE == {"spawn", "reply"}


SANS_IO = ("speech/azure_wire.py",)
"""Adapter modules that only build and parse a service's messages: no I/O library."""
IO_LIBRARIES = ("trio", "trio_websocket", "wsproto", "socket", "ssl", "azure")


@pytest.mark.parametrize("name", SANS_IO)
def test_a_wire_codec_does_no_io(name):
    imported = _imports(PACKAGE / "adapters" / name)
    offences = [i for i in imported if i.split(".")[0] in IO_LIBRARIES]
    assert offences == []
    assert "pichat_trio.adapters.speech.azure_wire" in _imports(
        PACKAGE / "adapters" / "speech" / "azure_socket.py"
    )  # the rule looks at a module that is used
