"""PiChat: the backend of a personal AI assistant, on Trio.

Layers, each importing only from the layers below it (a test keeps this true):

    clients     clients/, web/static/            the people's clients: ``pichat chat``,
                                                 ``pichat voice``, the page; they speak the
                                                 protocol over a WebSocket and use nothing
                                                 of the server but the WAV helpers
    transport   asgi.py, server.py, transport/   sockets, ASGI, hypercorn, the
                                                 per-connection nursery and outbox; each
                                                 event the hub delivers becomes its frame
                                                 (protocol/encode.py), once per event
    dispatch    dispatch/                        one request: decoded by the protocol,
                                                 the services called, the replies encoded;
                                                 long work runs as the connection's tasks,
                                                 a voice session too (dispatch/voice.py)
    protocol    protocol/                        sans-IO, beside the services (neither
                                                 imports the other): frame text to typed
                                                 requests, typed events and replies to
                                                 frame text; no trio, no sockets
    services    services/                        conversations, chat, settings, speech,
                                                 voice sessions (services/voice/):
                                                 typed arguments in, results out, domain
                                                 events to the hub; no JSON, no connections
    ports       ports.py, models.py, errors.py,  the contracts services need, and the
                domain/, text.py                 domain events they publish
    adapters    adapters/                        sql, ai, speech, hub: implement the
                                                 ports, know nothing of the protocol

``web/`` serves the page's files (the transport's ``/`` route). ``app.py`` is the
composition root that picks an adapter for each port.
"""

__all__ = ["__version__"]

__version__ = "0.1.0"
