"""constraints.txt pins every dependency of pyproject.toml, each pin inside its range.

The container installs from constraints.txt; a dependency added to pyproject.toml
without running ``scripts/lock.sh`` would be resolved afresh at build time.
"""

from __future__ import annotations

import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[1]


def _pins(text: str) -> dict[str, Version]:
    pins: dict[str, Version] = {}
    for raw in text.splitlines():
        line = raw.split("#", 1)[0].strip()
        if line:
            name, _, version = line.partition("==")
            assert version, f"constraints.txt: {line!r} is not a pin"
            pins[canonicalize_name(name.split("[")[0])] = Version(version)
    return pins


def _requirements() -> list[Requirement]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    lines = list(project["dependencies"])
    for extra in project["optional-dependencies"].values():
        lines += extra
    return [Requirement(line) for line in lines]


def test_every_dependency_is_pinned_within_its_range() -> None:
    pins = _pins((ROOT / "constraints.txt").read_text())
    problems = []
    for requirement in _requirements():
        name = canonicalize_name(requirement.name)
        if name not in pins:
            problems.append(f"{requirement.name} is not pinned")
        elif not requirement.specifier.contains(pins[name], prereleases=True):
            problems.append(f"{requirement.name}=={pins[name]} is outside {requirement.specifier}")
    assert not problems, "run scripts/lock.sh: " + "; ".join(problems)


def test_the_checker_sees_a_pin_outside_its_range() -> None:
    pins = _pins("hypercorn==0.19.0\n")
    requirement = Requirement("hypercorn[trio]>=0.17,<0.19")
    assert not requirement.specifier.contains(pins["hypercorn"])
