"""Driving the page in Debian's headless Chromium with Playwright's sync API.

Playwright's sync API runs an event loop of its own, so a test runs its browser steps
in a worker thread (``trio.to_thread.run_sync``); the steps reach back into the test's
trio loop (the server, a second client) with ``trio.from_thread.run``.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import partial
from pathlib import Path
from typing import Any

import pytest
import trio

CHROMIUM = "/usr/bin/chromium"
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--autoplay-policy=no-user-gesture-required",
]
TIMEOUT_MS = 30_000
"""How long an expectation waits for the page: generous, the machine is shared."""

try:
    from playwright.sync_api import Page, expect
except ImportError:  # pragma: no cover - the test extra installs it
    Page = Any  # type: ignore[misc,assignment]
    expect = None  # type: ignore[assignment]

needs_browser = pytest.mark.skipif(
    expect is None or shutil.which(CHROMIUM) is None,
    reason=f"needs Playwright (the test extra) and {CHROMIUM} (apt-get install chromium)",
)


class Console:
    """The page's console errors and uncaught exceptions; ``allow`` lists expected texts."""

    def __init__(self, page: Page, allow: tuple[str, ...]) -> None:
        self.errors: list[str] = []
        self.allow = allow
        page.on("console", self._console)
        page.on("pageerror", lambda error: self.errors.append(f"uncaught: {error}"))

    def _console(self, message: Any) -> None:
        if message.type == "error" and not any(text in message.text for text in self.allow):
            self.errors.append(message.text)


@contextmanager
def open_page(
    shots: Path,
    *,
    allow_errors: tuple[str, ...] = (),
    extra_args: tuple[str, ...] = (),
    **context_options: Any,
) -> Iterator[Page]:
    """A fresh browser and page; on the way out, a screenshot and no console errors."""
    from playwright.sync_api import sync_playwright

    expect.set_options(timeout=TIMEOUT_MS)
    context_options.setdefault("viewport", {"width": 1000, "height": 700})
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, args=[*ARGS, *extra_args], timeout=60_000
        )
        try:
            page = browser.new_context(**context_options).new_page()
            page.set_default_timeout(TIMEOUT_MS)
            console = Console(page, allow_errors)
            try:
                yield page
            finally:
                shots.mkdir(parents=True, exist_ok=True)
                page.screenshot(path=shots / "last.png")
            assert console.errors == []
        finally:
            browser.close()


async def in_browser(steps: Callable[..., None], *args: Any, **kwargs: Any) -> None:
    """Run the browser ``steps`` in a worker thread, from a trio test."""
    await trio.to_thread.run_sync(partial(steps, *args, **kwargs))


def on_trio(fn: Callable[..., Any], *args: Any) -> Any:
    """From the browser thread: run an async function on the test's trio loop."""
    return trio.from_thread.run(fn, *args)
