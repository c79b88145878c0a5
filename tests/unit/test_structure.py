"""Rules of the package's shape, kept true: small modules, trio's tools where they serve.

- No module over ``MAX_LINES`` lines (one job each), but those being split.
- No ``spawn_system_task``: every task runs in a nursery that owns it.
- ``trio.to_thread.run_sync`` is replaced in one module only,
  ``services/db.py``, whose docstring names the benchmark behind it. The
  Azure Speech adapter starts a thread nobody waits for (a recogniser's
  release, which blocks for seconds): not a call's replacement.
- Tasks are parked by hand (``wait_task_rescheduled``, ``reschedule``) in one
  module only, ``transport/wakeup.py`` (a connection writer's wait), whose
  docstring names ``bench/waiters.py``; trio's channels, events and locks serve
  everywhere else.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "pichat_trio"
ROOT = PACKAGE.parent

MAX_LINES = 400
BEING_SPLIT: set[str] = set()
"""Modules over the limit today, each with its split under way."""

THREAD_STARTER = "services/db.py"
FIRE_AND_FORGET = frozenset({"adapters/speech/azure.py"})
PARKER = "transport/wakeup.py"
HAND_PARKING = {"wait_task_rescheduled", "reschedule"}


def _modules() -> dict[str, str]:
    return {
        path.relative_to(PACKAGE).as_posix(): path.read_text() for path in PACKAGE.rglob("*.py")
    }


def _attributes(source: str) -> set[str]:
    """Every ``name`` of an ``x.name`` and every name imported, in ``source``."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Attribute):
            names.add(node.attr)
        elif isinstance(node, ast.ImportFrom):
            names.update(alias.name for alias in node.names)
    return names


def test_no_module_is_over_the_limit() -> None:
    long = {
        name: text.count("\n")
        for name, text in _modules().items()
        if text.count("\n") > MAX_LINES and name not in BEING_SPLIT
    }
    assert long == {}


def test_no_task_is_started_outside_a_nursery() -> None:
    found = [name for name, text in _modules().items() if "spawn_system_task" in _attributes(text)]
    assert found == []


def _only_in(
    names: set[str], module: str, benchmark: str, exempt: frozenset[str] = frozenset()
) -> None:
    """Asserts that ``names`` are used in ``module`` alone, which names ``benchmark``."""
    found = [
        name
        for name, text in _modules().items()
        if names & _attributes(text) and name not in exempt
    ]
    assert found == [module]
    docstring = ast.get_docstring(ast.parse((PACKAGE / module).read_text())) or ""
    assert benchmark in docstring and (ROOT / benchmark).is_file()


def test_worker_threads_are_started_by_hand_in_one_module_that_names_its_benchmark() -> None:
    _only_in({"start_thread_soon"}, THREAD_STARTER, "bench/db_threads.py", FIRE_AND_FORGET)


def test_tasks_are_parked_by_hand_in_one_module_that_names_its_benchmark() -> None:
    _only_in(HAND_PARKING, PARKER, "bench/waiters.py")


def test_the_rules_see_what_they_look_for() -> None:
    source = "import trio\ntrio.lowlevel.spawn_system_task(f)\nfrom x import start_thread_soon\n"
    assert {"spawn_system_task", "start_thread_soon"} <= _attributes(source)
    source = (
        "import trio\ntrio.lowlevel.reschedule(t)\n"
        "from trio.lowlevel import wait_task_rescheduled\n"
    )
    assert _attributes(source) & HAND_PARKING == HAND_PARKING
