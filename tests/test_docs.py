"""The project's documents stand alone and stay true.

Every relative link in a Markdown file of the repository points to a file
inside it; docs/protocol.md names every action the router serves and every
error code the server can send.
"""

from __future__ import annotations

import ast
import re
import subprocess
from pathlib import Path

from pichat_trio import errors
from pichat_trio.dispatch.router import Router
from pichat_trio.limits import Limits
from pichat_trio.protocol.schemas import Schemas

ROOT = Path(__file__).resolve().parents[1]
PROTOCOL = ROOT / "docs" / "protocol.md"
_LINK = re.compile(r"\]\(([^)\s]+)\)")


def _markdown_files() -> list[Path]:
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "*.md"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    return [ROOT / name for name in listed if (ROOT / name).exists()]


def _broken_links(path: Path, root: Path = ROOT) -> list[str]:
    broken = []
    for target in _LINK.findall(path.read_text()):
        if re.match(r"[a-z]+:", target) or target.startswith("#"):
            continue  # a web address, mail, or a place in the same page
        resolved = (path.parent / target.split("#", 1)[0]).resolve()
        if not resolved.is_relative_to(root):
            broken.append(f"{path.relative_to(root)}: {target} is outside the repository")
        elif not resolved.exists():
            broken.append(f"{path.relative_to(root)}: {target} does not exist")
    return broken


def test_every_relative_link_stays_inside_the_repository() -> None:
    files = _markdown_files()
    assert ROOT / "README.md" in files and PROTOCOL in files
    assert [problem for path in files for problem in _broken_links(path)] == []


def test_the_link_check_sees_a_link_outside(tmp_path: Path) -> None:
    root = tmp_path / "repo"
    (root / "docs").mkdir(parents=True)
    (root / "docs" / "protocol.md").write_text("")
    page = root / "docs" / "page.md"
    page.write_text("[out](../../shared/X.md) [gone](no.md) [ok](protocol.md) [web](https://x.org)")
    problems = _broken_links(page, root)
    assert len(problems) == 2
    assert "outside the repository" in problems[0] and "does not exist" in problems[1]


def test_readme_links_the_protocol() -> None:
    assert "](docs/protocol.md)" in (ROOT / "README.md").read_text()


def test_the_protocol_names_every_action() -> None:
    router = Router(None, Schemas(Limits()))  # type: ignore[arg-type]
    text = PROTOCOL.read_text()
    missing = [action for action in router.actions if f"`{action}`" not in text]
    assert router.actions and missing == []


def _error_codes() -> set[str]:
    """Every error code in the source: the domain errors' and the protocol's own."""
    codes = {
        cls.code
        for cls in vars(errors).values()
        if isinstance(cls, type) and issubclass(cls, errors.PichatError)
    }
    layers = ("protocol", "dispatch", "transport", "services")  # where wire errors are made
    for path in (p for layer in layers for p in (ROOT / "pichat_trio" / layer).rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and getattr(node.func, "id", None) in (
                "ProtocolError",
                "error_frame",
            ):
                first = node.args[0] if node.args else None
                if isinstance(first, ast.Constant) and isinstance(first.value, str):
                    codes.add(first.value)
    return codes


def test_the_protocol_names_every_error_code() -> None:
    codes = _error_codes()
    text = PROTOCOL.read_text()
    assert {"invalid_json", "not_found", "unsupported_frame"} <= codes
    assert sorted(code for code in codes if f"| `{code}` |" not in text) == []
