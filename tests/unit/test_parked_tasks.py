"""Tasks parked by hand (``trio.lowlevel.wait_task_rescheduled``) in one module only.

Trio's channels, events and locks serve everywhere else. ``transport/wakeup.py``
keeps the one replacement (a connection writer's wait) and its docstring names
the benchmark that measured why: ``bench/waiters.py``.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "pichat_trio"
PARKER = "transport/wakeup.py"
BENCHMARK = "bench/waiters.py"
HAND_PARKING = {"wait_task_rescheduled", "reschedule"}


def _uses(source: str) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Attribute):
            names.add(node.attr)
        elif isinstance(node, ast.ImportFrom):
            names.update(alias.name for alias in node.names)
    return names & HAND_PARKING


def test_tasks_are_parked_by_hand_in_one_module_that_names_its_benchmark() -> None:
    found = sorted(
        path.relative_to(PACKAGE).as_posix()
        for path in PACKAGE.rglob("*.py")
        if _uses(path.read_text())
    )
    assert found == [PARKER]
    docstring = ast.get_docstring(ast.parse((PACKAGE / PARKER).read_text())) or ""
    assert BENCHMARK in docstring and (PACKAGE.parent / BENCHMARK).is_file()


def test_the_rule_sees_both_spellings() -> None:
    source = (
        "import trio\ntrio.lowlevel.reschedule(t)\n"
        "from trio.lowlevel import wait_task_rescheduled\n"
    )
    assert _uses(source) == HAND_PARKING
