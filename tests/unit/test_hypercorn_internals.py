"""hypercorn's internals are touched by one module only: ``transport/hypercorn_fast.py``.

Elsewhere in the package: no import of ``hypercorn.protocol`` or
``hypercorn.trio.tcp_server``, no underscored hypercorn module or name, and
no use of an underscored attribute of hypercorn's classes on anything but
``self`` (``x._send_wsproto_event``, ``getattr(x, "_send_wsproto_event")``).
A new hypercorn release then breaks at most the fast path, which checks
the release at start-up and otherwise leaves the public path in place.
"""

from __future__ import annotations

import ast
from pathlib import Path

import hypercorn

PACKAGE = Path(__file__).resolve().parents[2] / "pichat_trio"
FAST_PATH = PACKAGE / "transport" / "hypercorn_fast.py"
INTERNAL_MODULES = ("hypercorn.protocol", "hypercorn.trio.tcp_server")


def _private(name: str) -> bool:
    return name.startswith("_") and not name.startswith("__")


def hypercorn_private_names() -> set[str]:
    """The underscored methods and attributes hypercorn's own classes define."""
    names: set[str] = set()
    for path in Path(hypercorn.__file__).parent.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and _private(node.name):
                names.add(node.name)
            elif (
                isinstance(node, ast.Attribute)
                and isinstance(node.value, ast.Name)
                and node.value.id == "self"
                and _private(node.attr)
            ):
                names.add(node.attr)
    return names


def offences(source: str, private: set[str]) -> list[str]:
    found: list[str] = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            modules = [alias.name for alias in node.names]
            imported: list[str] = []
        elif isinstance(node, ast.ImportFrom) and not node.level:
            modules = [node.module or ""]
            imported = [alias.name for alias in node.names]
        elif isinstance(node, ast.Attribute):
            base = node.value
            if node.attr in private and not (isinstance(base, ast.Name) and base.id == "self"):
                found.append(f"line {node.lineno}: .{node.attr}")
            continue
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name)
            and node.func.id in ("getattr", "setattr", "hasattr")
            and len(node.args) >= 2
            and isinstance(node.args[1], ast.Constant)
            and node.args[1].value in private
        ):
            found.append(f"line {node.lineno}: {node.func.id} {node.args[1].value!r}")
            continue
        else:
            continue
        for module in modules:
            if not (module == "hypercorn" or module.startswith("hypercorn.")):
                continue
            if module.startswith(INTERNAL_MODULES) or any(map(_private, module.split("."))):
                found.append(f"line {node.lineno}: imports {module}")
            found += [f"line {node.lineno}: imports {module}.{n}" for n in imported if _private(n)]
    return found


def test_only_the_fast_path_module_touches_hypercorn_internals() -> None:
    private = hypercorn_private_names()
    assert "_send_wsproto_event" in private  # the scan sees hypercorn's internals
    found = {
        str(path.relative_to(PACKAGE)): bad
        for path in sorted(PACKAGE.rglob("*.py"))
        if path != FAST_PATH and (bad := offences(path.read_text(), private))
    }
    assert found == {}


def test_the_check_sees_each_kind_of_use() -> None:
    private = hypercorn_private_names()
    source = (
        "from hypercorn.protocol.ws_stream import WSStream\n"
        "import hypercorn.trio.tcp_server\n"
        "from hypercorn.utils import _private_thing\n"
        "from hypercorn.config import Config\n"
        "stream._send_wsproto_event(ping)\n"
        "getattr(stream, '_send_wsproto_event')\n"
        "self._send_wsproto_event = None\n"
    )
    assert sorted(offences(source, private)) == [
        "line 1: imports hypercorn.protocol.ws_stream",
        "line 2: imports hypercorn.trio.tcp_server",
        "line 3: imports hypercorn.utils._private_thing",
        "line 5: ._send_wsproto_event",
        "line 6: getattr '_send_wsproto_event'",
    ]
    assert offences(FAST_PATH.read_text(), private)  # where they are allowed, they are
