"""Between the transport and the services: one request in, the services called, replies out.

The connection hands each text frame to ``Router.handle``; ``protocol``
decodes it into a typed request and encodes the replies; the services
get typed arguments and return results (or raise domain errors), and
publish what other devices must see to the hub as domain events. Long
work (an answer, a speech call) runs as a task of the connection.
"""
