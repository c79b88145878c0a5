"""PiChat: the backend of a personal AI assistant, on Trio.

Layers, each importing only from the layers below it (a test keeps this true):

    clients     clients/, web/static/            the people's clients: ``pichat chat``,
                                                 ``pichat voice``, the page; they speak the
                                                 protocol over a WebSocket and use nothing
                                                 of the server but the WAV helpers
    transport   asgi.py, server.py, transport/   sockets, ASGI, hypercorn, the
                                                 per-connection nursery and outbox
    protocol    protocol/                        envelope, schemas, errors, router;
                                                 no trio networking, no ASGI
    services    services/                        conversations, chat, settings, speech;
                                                 no WebSockets, no JSON envelopes
    ports       ports.py, models.py, errors.py,  the contracts services need
                events.py, text.py
    adapters    adapters/                        sql, ai, speech, hub: implement the
                                                 ports, know nothing of the protocol

``web/`` serves the page's files (the transport's ``/`` route). ``app.py`` is the
composition root that picks an adapter for each port.
"""

__all__ = ["__version__"]

__version__ = "0.1.0"
