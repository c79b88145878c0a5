"""PiChat: the backend of a personal AI assistant, on Trio.

Layers, each importing only from the layers below it (a test keeps this true):

    transport   asgi.py, server.py, transport/   sockets, ASGI, hypercorn, the
                                                 per-connection nursery and outbox
    protocol    protocol/                        envelope, schemas, errors, router;
                                                 no trio networking, no ASGI
    services    services/                        conversations, chat, settings, speech;
                                                 no WebSockets, no JSON envelopes
    ports       ports.py, models.py, errors.py,  the contracts services need
                events.py
    adapters    adapters/                        sql, ai, speech, hub: implement the
                                                 ports, know nothing of the protocol

``app.py`` is the composition root that picks an adapter for each port.
"""

__all__ = ["__version__"]

__version__ = "0.1.0"
