"""The web page: static files served at ``/`` and ``/static/``, no build step, no CDN.

The page is a client like any other: it speaks PROTOCOL.md over ``/ws`` and imports
nothing of the server. ``static.py`` serves the files, with a strict
Content-Security-Policy; ``static/vendor/`` holds the pinned third-party scripts
(``scripts/vendor_web.sh``).
"""

from .static import respond

__all__ = ["respond"]
