"""The people's clients: ``pichat chat`` (a terminal) and ``pichat voice`` (a Raspberry Pi).

A layer above the server: they speak PROTOCOL.md over a WebSocket (trio-websocket) like
any other client, and import nothing of the server but the WAV helpers (``wav.py``).
``session.py`` is the connection (requests and their replies, pushed events, errors in
words); ``chat.py`` and ``voice.py`` are the two programs; ``commands.py`` their options.
"""

__all__: list[str] = []
