"""Whether the installed hypercorn is one the fast paths were tested on.

Two fast paths lean on hypercorn's internals, not its public ASGI interface:

- ``direct_frames.DirectFrames`` writes text frames to the socket of
  hypercorn's ``TCPServer`` under its ``send_lock`` (a third of the server
  core at 200 streams; ``bench/README.md``);
- the app's one heartbeat task pings every WebSocket through
  ``WSStream._send_wsproto_event`` (``asgi.AsgiApp.ping_for``), instead of
  hypercorn's task per connection.

They were tested on the hypercorn releases in ``TESTED``, the range that
``pyproject.toml`` allows. On any other release (an install that ignored the
bounds, a patched build) both are off: frames go through ASGI's ``send`` and
hypercorn pings by itself. ``fast_paths`` says which, once, at start-up, with
one warning line when it falls back.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version

__all__ = ["TESTED", "FastPaths", "fast_paths", "installed_version"]

log = logging.getLogger(__name__)

TESTED = ("0.17", "0.18")
"""hypercorn release series (major.minor) the fast paths were tested on."""


@dataclass(frozen=True)
class FastPaths:
    direct_frames: bool
    """Text frames written straight to hypercorn's socket when it can take them."""
    app_pings: bool
    """One heartbeat task for every connection, pinging through hypercorn's stream."""


def installed_version() -> str:
    try:
        return version("hypercorn")
    except PackageNotFoundError:  # run from a source tree without metadata
        return "unknown"


def fast_paths(hypercorn_version: str | None = None) -> FastPaths:
    """The fast paths for ``hypercorn_version`` (default: the installed one)."""
    found = installed_version() if hypercorn_version is None else hypercorn_version
    series = ".".join(found.split(".")[:2])
    if series in TESTED:
        from hypercorn.protocol.ws_stream import WSStream

        return FastPaths(
            direct_frames=True,
            app_pings=callable(getattr(WSStream, "_send_wsproto_event", None)),
        )
    log.warning(
        "hypercorn %s is not a release the fast paths were tested on (%s): "
        "frames go through ASGI and hypercorn sends the pings",
        found,
        ", ".join(TESTED),
    )
    return FastPaths(direct_frames=False, app_pings=False)
